"""`--algo ppo`, asked for by ms-swift users (`--rlhf_type ppo`), refused in one line before anything loads.

TRL 1.16, which omni's RL algorithms run on, has no PPOTrainer (removed from TRL; not in trl.experimental either),
and omni does not write its own PPO (a value model, GAE and their training loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omni.api import OmniError

PPO_UNAVAILABLE = (
    "--algo ppo is not available yet: TRL 1.16, which omni's RL algorithms run on, no longer has a PPOTrainer, and "
    "omni does not reimplement PPO's value model and GAE; use a critic-free algorithm instead: --algo grpo, gspo, "
    "rloo or reinforce_plus_plus (with --reward-model for a trained reward model)"
)


@dataclass
class PpoOptions:
    """PPO has no options to give: parsing them (before any model loads) is where the run is refused."""

    def __post_init__(self) -> None:
        raise OmniError(PPO_UNAVAILABLE)


def run_ppo(job: Any) -> Any:
    """Refuse the run (reached only by callers that build a job without parsing the command line)."""
    raise OmniError(PPO_UNAVAILABLE)
