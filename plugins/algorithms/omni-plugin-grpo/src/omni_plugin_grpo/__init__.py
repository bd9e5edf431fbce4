"""omni-plugin-grpo: `omni rlhf --algo grpo|dapo|gspo|dr_grpo|rloo|reinforce_plus_plus|ppo` and the rewards they
use.

Registering imports nothing heavy: TRL, torch and math-verify load when a run starts or a reward is used.
"""

from __future__ import annotations

from omni.api import AlgorithmSpec, EnvironmentSpec, RewardSpec, hookimpl

from omni_plugin_grpo.algorithms import ALGORITHMS
from omni_plugin_grpo.options import ENVIRONMENT_SELECTOR, REWARD_SELECTOR
from omni_plugin_grpo.rewards.options import (
    CosineOptions,
    FormatOptions,
    LengthOptions,
    RepetitionOptions,
    SoftOverlongOptions,
)

OMNI_PLUGIN_API = "1.8"

_REWARDS = "omni_plugin_grpo.rewards"
REWARD_SPECS: tuple[RewardSpec, ...] = (
    RewardSpec(
        name="accuracy",
        description="1 if the final answer (\\boxed{}, <answer>, or last expression) equals the `solution` column "
        "by math-verify, else 0; None where the solution can't be read",
        impl=f"{_REWARDS}.accuracy:accuracy_reward",
    ),
    RewardSpec(
        name="format",
        description="1 if the completion matches --format-pattern (default <think>...</think><answer>...</answer>), else 0",
        impl=f"{_REWARDS}.format:FormatReward",
        options=FormatOptions,
    ),
    RewardSpec(
        name="length",
        description="1 at --length-target tokens, falling linearly to 0 at zero and at twice the target",
        impl=f"{_REWARDS}.length:LengthReward",
        options=LengthOptions,
    ),
    RewardSpec(
        name="cosine",
        description="accuracy scaled by length on a cosine schedule: short correct answers earn most, long wrong "
        "ones lose least (arXiv:2502.03373)",
        impl=f"{_REWARDS}.cosine:CosineReward",
        options=CosineOptions,
    ),
    RewardSpec(
        name="repetition",
        description="penalty up to --repetition-max-penalty for the share of repeated word n-grams",
        impl=f"{_REWARDS}.repetition:RepetitionReward",
        options=RepetitionOptions,
    ),
    RewardSpec(
        name="soft_overlong",
        description="DAPO's soft overlong punishment: 0, then down to -1 over the last --soft-cache-length tokens "
        "before --soft-max-length",
        impl=f"{_REWARDS}.length:SoftOverlongReward",
        options=SoftOverlongOptions,
    ),
    RewardSpec(
        name="environment",
        description="the rewards the --environment gave over the episode, summed (None where it gave none)",
        impl=f"{_REWARDS}.environment:environment_reward",
    ),
)


@hookimpl
def register_rewards(register):
    """Register the built-in GRPO rewards."""
    for spec in REWARD_SPECS:
        register(spec)


@hookimpl
def register_environments(register):
    """Register the built-in environments for multi-turn rollouts."""
    register(
        EnvironmentSpec(
            name="calculator",
            description="a calculate(expression) tool: + - * / // % ** and parentheses on numbers, evaluated safely",
            impl="omni_plugin_grpo.environments.calculator:Calculator",
        )
    )


@hookimpl
def register_algorithms(register):
    """Register one `rlhf` algorithm per member of the GRPO family."""
    for algorithm in ALGORITHMS:
        register(
            AlgorithmSpec(
                name=algorithm.name,
                command="rlhf",
                description=algorithm.description,
                impl="omni_plugin_grpo.run:run_grpo",
                options=algorithm.options,
                aliases=algorithm.aliases,
                # the named rewards' and environment's options join the command line
                selects=(REWARD_SELECTOR, ENVIRONMENT_SELECTOR),
            )
        )
