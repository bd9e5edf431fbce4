"""Options of the GRPO-family algorithms, under TRL's and ms-swift's names (light module: no torch, no TRL).

Each algorithm has its own options class, so `--help` shows its own defaults; the built-in rewards' options
join every class, so `--cosine-max-len` and friends are flags of `omni rlhf --algo grpo`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from omni.options import option

from omni_plugin_grpo.rewards.options import (
    CosineOptions,
    FormatOptions,
    GrpoRewardOptions,
    LengthOptions,
    RepetitionOptions,
    SoftOverlongOptions,
)

LOSS_TYPES = "grpo (per-sequence mean), bnpo, dr_grpo (fixed length divisor), dapo (token-level), cispo, sapo"


@dataclass
class GrpoOptions(
    GrpoRewardOptions, FormatOptions, LengthOptions, CosineOptions, RepetitionOptions, SoftOverlongOptions
):
    """GRPO: group-normalised advantages on a PPO-style clipped objective (TRL's GRPOTrainer)."""

    num_generations: int = option(8, help="completions sampled per prompt (the group)")
    max_completion_length: int = option(512, help="most tokens generated per completion")
    temperature: float = option(1.0, help="sampling temperature of the rollouts")
    top_p: float = option(1.0, help="nucleus sampling of the rollouts")
    top_k: int = option(0, help="top-k cut of the rollouts (0: none)")
    repetition_penalty: float = option(1.0, help="repetition penalty of the rollouts")
    beta: float = option(
        0.0,
        help="weight of the KL penalty to the reference model (TRL's default 0: no reference model; ms-swift: 0.04)",
    )
    epsilon: float = option(0.2, help="clip range of the probability ratio (lower bound, and upper by default)")
    epsilon_high: float | None = option(None, help="upper clip range (DAPO's clip-higher; default: --epsilon)")
    loss_type: str = option("grpo", help=f"how token losses are aggregated: {LOSS_TYPES}")
    scale_rewards: Literal["group", "batch", "none"] = option(
        "group", help="divide advantages by the group's reward std, the batch's, or not at all"
    )
    num_iterations: int = option(1, help="optimisation passes over each generated batch (GRPO's mu)")
    steps_per_generation: int | None = option(
        None, help="optimizer micro-steps per generation batch (default: --gradient-accumulation-steps)"
    )
    mask_truncated_completions: bool = option(
        False, help="leave completions cut at --max-completion-length out of the loss (overlong filtering)"
    )
    dynamic_sample: bool = option(
        False, help="DAPO's dynamic sampling: replace groups whose rewards are all equal with fresh prompts"
    )
    max_resample_times: int = option(3, help="rounds of fresh prompts per batch with --dynamic-sample")
    rollout_engine: str = option(
        "pt", help="engine generating the rollouts: pt (the training model itself), vllm (omni-plugin-vllm) ..."
    )
    completions_per_step: int = option(
        16, help="completions per generation batch written to completions.jsonl (0: none)"
    )

    def reward_options(self) -> dict[str, Any]:
        """The built-in rewards' options, filled from this run (lengths default to --max-completion-length)."""
        values = dataclasses.asdict(self)

        def pick(cls: type) -> Any:
            return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})

        cosine = pick(CosineOptions)
        if cosine.cosine_max_len is None:
            cosine.cosine_max_len = self.max_completion_length
        overlong = pick(SoftOverlongOptions)
        if overlong.soft_max_length is None:
            overlong.soft_max_length = self.max_completion_length
        return {
            "format": pick(FormatOptions),
            "length": pick(LengthOptions),
            "cosine": cosine,
            "repetition": pick(RepetitionOptions),
            "soft_overlong": overlong,
        }


@dataclass
class DapoOptions(GrpoOptions):
    """DAPO (Yu et al. 2025): clip-higher, dynamic sampling, token-level loss, no KL; add `soft_overlong` for
    its overlong penalty."""

    epsilon_high: float | None = option(0.28, help="upper clip range (clip-higher)")
    loss_type: str = option("dapo", help=f"how token losses are aggregated: {LOSS_TYPES}")
    dynamic_sample: bool = option(
        True, help="replace groups whose rewards are all equal with fresh prompts (dynamic sampling)"
    )


@dataclass
class DrGrpoOptions(GrpoOptions):
    """Dr. GRPO (Liu et al. 2025): no std scaling, loss divided by a constant length."""

    loss_type: str = option("dr_grpo", help=f"how token losses are aggregated: {LOSS_TYPES}")
    scale_rewards: Literal["group", "batch", "none"] = option(
        "none", help="divide advantages by the group's reward std, the batch's, or not at all"
    )


@dataclass
class RlooOptions(GrpoOptions):
    """RLOO: each completion's baseline is the mean reward of the other completions of its prompt."""

    scale_rewards: Literal["group", "batch", "none"] = option(
        "none", help="divide advantages by the group's reward std, the batch's, or not at all"
    )


@dataclass
class ReinforcePlusPlusOptions(GrpoOptions):
    """REINFORCE++ (baseline variant): group mean subtracted, then normalised over the whole batch."""

    scale_rewards: Literal["group", "batch", "none"] = option(
        "batch", help="divide advantages by the group's reward std, the batch's, or not at all"
    )
