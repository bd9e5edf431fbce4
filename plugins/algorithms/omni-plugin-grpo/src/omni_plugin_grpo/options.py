"""Options of the GRPO-family algorithms, under TRL's and ms-swift's names (light module: no torch, no TRL).

Each algorithm has its own options class, so `--help` shows its own defaults. A reward's own options (the
built-in ones' `--cosine-max-len` and friends, or any plugin reward's) join the command line when
`--reward-funcs` names it: the algorithms select rewards as `--tuner` selects a tuner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from omni.api import OmniError, Selector, option

from omni_plugin_grpo.rewards.options import CosineOptions, GrpoRewardOptions, SoftOverlongOptions

LOSS_TYPES = "grpo (per-sequence mean), bnpo, dr_grpo (fixed length divisor), dapo (token-level), cispo, sapo"


# `--reward-funcs` selects rewards; a FILE.py or FILE.py:NAME is the user's own, not a registered name.
REWARD_SELECTOR = Selector("reward_funcs", "rewards", external=r".*\.py(:.*)?")
# `--environment` selects an environment; its options join the command line.
ENVIRONMENT_SELECTOR = Selector("environment", "environments")
# Built-in rewards' length options whose unset value means the run's --max-completion-length.
_LENGTHS_FROM_THE_RUN = (
    ("cosine", CosineOptions, "cosine_max_len"),
    ("soft_overlong", SoftOverlongOptions, "soft_max_length"),
)


@dataclass
class GrpoOptions(GrpoRewardOptions):
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
    importance_sampling_level: Literal["token", "sequence"] = option(
        "token",
        help="probability ratio per token, or per sequence (the mean of its tokens' log-ratios: GSPO)",
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
        "pt",
        help="engine generating the rollouts: pt (the training model itself), vllm (omni-plugin-vllm) ..., or "
        "server (an `omni rollout` server at --rollout-server-url, sent the weights after every step)",
    )
    rollout_server_url: str | None = option(
        None,
        help="URL of the `omni rollout` server generating the rollouts (implies --rollout-engine server; default "
        "http://--vllm-server-host:--vllm-server-port)",
        aliases=("vllm_server_base_url",),
    )
    rollout_server_api_key: str | None = option(
        None, help="the rollout server's --api-key (default: $OMNI_API_KEY when set)"
    )
    rollout_server_timeout: float = option(
        240.0, help="seconds to wait for the rollout server to answer at start", aliases=("vllm_server_timeout",)
    )
    use_vllm: bool = option(False, help="ms-swift's switch: rollouts by vLLM (--vllm-mode says where)")
    vllm_mode: Literal["colocate", "server"] | None = option(
        None,
        help="ms-swift's spelling: colocate = --rollout-engine vllm in this process; server = --rollout-engine server",
    )
    vllm_server_host: str | None = option(
        None, help="ms-swift's spelling: the rollout server's host (implies --rollout-engine server)"
    )
    vllm_server_port: int = option(8000, help="ms-swift's spelling: the rollout server's port")
    async_generate: bool = option(
        False,
        help="generate the next batch's rollouts while this step trains (ms-swift's --async_generate): rollouts "
        "are one optimizer step stale; needs an engine other than pt",
    )
    environment: str | None = option(
        None,
        help="environment answering the model's tool calls, for multi-turn rollouts (omni list environments)",
    )
    max_turns: int = option(3, help="most model turns per rollout with --environment (ms-swift: --max_turns)")
    completions_per_step: int = option(
        16, help="completions per generation batch written to completions.jsonl (0: none)"
    )

    def with_rollout_resolved(self) -> GrpoOptions:
        """These options with ms-swift's rollout spellings folded into --rollout-engine and --rollout-server-url:
        `--vllm-mode colocate` (or `--use-vllm` alone) is `--rollout-engine vllm`; `--vllm-mode server`, a server
        host or URL is `--rollout-engine server` at that URL (default http://127.0.0.1:8000)."""
        engine, url = self.rollout_engine, self.rollout_server_url
        server = self.vllm_mode == "server" or url is not None or self.vllm_server_host is not None
        if server or engine == "server":
            if engine not in ("pt", "server"):
                raise OmniError(f"--rollout-engine {engine} generates in this process; a rollout server was named too")
            host = self.vllm_server_host or "127.0.0.1"
            url = url or f"http://{f'[{host}]' if ':' in host else host}:{self.vllm_server_port}"
            return dataclasses.replace(self, rollout_engine="server", rollout_server_url=url)
        if self.vllm_mode == "colocate" or self.use_vllm:
            if engine not in ("pt", "vllm"):
                raise OmniError(f"--vllm-mode colocate rolls out with vllm; --rollout-engine {engine} was named too")
            return dataclasses.replace(self, rollout_engine="vllm")
        return self

    def reward_options(self, chosen: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Options by reward name: `chosen` (those the command line parsed), where the built-in rewards'
        lengths left unset default to --max-completion-length, whether chosen or not."""
        filled = dict(chosen or {})
        for name, cls, length in _LENGTHS_FROM_THE_RUN:
            options = filled.get(name) or cls()
            if isinstance(options, cls) and getattr(options, length) is None:
                options = dataclasses.replace(options, **{length: self.max_completion_length})
            filled[name] = options
        return filled


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
class GspoOptions(GrpoOptions):
    """GSPO (Zheng et al. 2025): one importance ratio per sequence, clipped in a narrow range, loss per sequence."""

    importance_sampling_level: Literal["token", "sequence"] = option(
        "sequence",
        help="probability ratio per token, or per sequence (the mean of its tokens' log-ratios: GSPO)",
    )
    # The paper's clip range: a sequence-level ratio stays much closer to 1 than token-level ones.
    epsilon: float = option(3e-4, help="clip range of the sequence-level ratio (lower bound, and upper by default)")
    epsilon_high: float | None = option(4e-4, help="upper clip range of the sequence-level ratio")


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


@dataclass
class PpoOptions(GrpoOptions):
    """PPO (Schulman et al. 2017) as RLHF runs it (Ouyang et al. 2022; TRL's former PPOTrainer): a value model,
    token-level rewards (the sequence's score at its last token, minus a KL penalty to the reference at every
    token), GAE advantages, a clipped policy loss and a clipped value loss."""

    num_generations: int = option(
        2, help="completions sampled per prompt (PPO needs no group; TRL's sampling machinery takes at least 2)"
    )
    beta: float = option(
        0.05,
        help="weight of the per-token KL penalty to the reference model, part of the reward (PPO's kl_coef)",
        aliases=("kl_coef",),
    )
    epsilon: float = option(0.2, help="clip range of the policy's probability ratio", aliases=("cliprange",))
    num_iterations: int = option(
        4, help="optimisation passes (optimizer steps) over each generated batch", aliases=("num_ppo_epochs",)
    )
    value_model: str | None = option(
        None,
        help="the value model's starting point: a reward model (its score head predicts values), a causal LM (a "
        "fresh value head) or an adapter; default: the first --reward-model, else --model",
    )
    vf_coef: float = option(0.1, help="weight of the value loss beside the policy loss")
    cliprange_value: float = option(0.2, help="clip range of the value prediction around its value at sampling")
    gamma: float = option(1.0, help="discount factor over completion tokens")
    lam: float = option(0.95, help="GAE's lambda: 1 is the Monte-Carlo return, 0 the one-step TD error")
    whiten_rewards: bool = option(False, help="normalise the token rewards over the batch before GAE")
    missing_eos_penalty: float | None = option(
        None, help="subtracted from the score of a completion cut at --max-completion-length (no end token)"
    )

    def __post_init__(self) -> None:
        """What PPO does not run with yet, refused before anything loads."""
        if self.environment:
            raise OmniError("--algo ppo rolls out single turns for now; use --algo grpo with --environment")
        if self.dynamic_sample:
            raise OmniError("--dynamic-sample swaps whole groups, which PPO's token advantages do not have")
