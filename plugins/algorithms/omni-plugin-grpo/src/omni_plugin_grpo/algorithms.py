"""The GRPO family as omni offers it: one entry per `--algo`, all trained by one TRL GRPOTrainer subclass."""

from __future__ import annotations

from dataclasses import dataclass

from omni_plugin_grpo.options import (
    DapoOptions,
    DrGrpoOptions,
    GrpoOptions,
    GspoOptions,
    PpoOptions,
    ReinforcePlusPlusOptions,
    RlooOptions,
)


@dataclass(frozen=True)
class Algorithm:
    """An algorithm of the family: its options class holds its defining defaults (loss type, reward scaling,
    clip-higher, dynamic sampling); `leave_one_out` rescales group-centred advantages into RLOO's; `value_model`
    replaces group advantages with a learned value model's (PPO)."""

    name: str
    description: str
    options: type[GrpoOptions]
    aliases: tuple[str, ...] = ()
    leave_one_out: bool = False
    value_model: bool = False


ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm(
        "grpo", "Group Relative Policy Optimization: advantages normalised within each prompt's group", GrpoOptions
    ),
    Algorithm(
        "dapo",
        "DAPO: clip-higher, dynamic sampling, token-level loss (add the soft_overlong reward for its length penalty)",
        DapoOptions,
    ),
    Algorithm(
        "gspo",
        "GSPO: one clipped importance ratio per sequence (sequence-level importance sampling), per-sequence loss",
        GspoOptions,
    ),
    Algorithm("dr_grpo", "Dr. GRPO: GRPO without length and std normalisation biases", DrGrpoOptions),
    Algorithm(
        "rloo",
        "REINFORCE Leave-One-Out: each completion's baseline is its siblings' mean reward",
        RlooOptions,
        leave_one_out=True,
    ),
    Algorithm(
        "reinforce_plus_plus",
        "REINFORCE++ (baseline): group-mean baseline, advantages normalised over the whole batch",
        ReinforcePlusPlusOptions,
        aliases=("reinforce++", "reinforce_pp"),
    ),
    Algorithm(
        "ppo",
        "PPO: a value model and GAE advantages on token rewards (the reward model's score, a KL penalty to the "
        "reference), clipped policy and value losses",
        PpoOptions,
        value_model=True,
    ),
)
BY_OPTIONS: dict[type[GrpoOptions], Algorithm] = {a.options: a for a in ALGORITHMS}
