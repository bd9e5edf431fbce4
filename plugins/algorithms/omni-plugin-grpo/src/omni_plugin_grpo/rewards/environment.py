"""The `environment` reward: what the `--environment` scored over a multi-turn rollout."""

from __future__ import annotations

from typing import Any

from omni.api import OmniError


def environment_reward(
    prompts: list[Any], completions: list[Any], environment_reward: list[float | None] | None = None, **columns: Any
) -> list[float | None]:
    """The episode's summed step rewards per completion (None where the environment gave none)."""
    if environment_reward is None:
        raise OmniError("the environment reward scores multi-turn rollouts; name one with --environment NAME")
    return list(environment_reward)
