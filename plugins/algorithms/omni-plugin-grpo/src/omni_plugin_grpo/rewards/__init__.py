"""Rewards for GRPO-family training, and the resolution of ``--reward-funcs`` into callables.

The call contract every reward follows::

    reward(prompts, completions, **columns) -> list[float | None]

Importing this package stays light: the modules holding rewards import math-verify when loaded.
"""

from __future__ import annotations

from omni_plugin_grpo.rewards.options import GrpoRewardOptions
from omni_plugin_grpo.rewards.resolve import RewardFunc, WeightedReward, resolve_rewards

__all__ = ["GrpoRewardOptions", "RewardFunc", "WeightedReward", "resolve_rewards"]
