"""Options of the built-in rewards and of reward selection (light: no math-verify, no torch).

Each field becomes a flag of the command that selects the reward; names carry the reward's name as a
prefix so they cannot clash with other options, and match ms-swift's flags where ms-swift has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import option

# The DeepSeek-R1 / ms-swift reasoning format: a think block, then an answer block, nothing else.
THINK_ANSWER_PATTERN = r"<think>.*?</think>\s*<answer>.*?</answer>"


@dataclass
class GrpoRewardOptions:
    """Which rewards score a GRPO-family run, and how much each counts; part of the algorithm's options."""

    reward_funcs: list[str] = option(
        default_factory=list,
        help="rewards by name (`omni list rewards`), or FILE.py:FUNCTION for your own; commas also separate",
        aliases=("reward",),  # DESIGN.md spells it `--reward accuracy,format`
    )
    reward_model: list[str] = option(
        default_factory=list,
        help="reward models scoring each completion (a checkpoint or adapter from omni rlhf --algo rm, or any "
        "sequence-classification model with one score), rendered with their own chat template",
    )
    reward_model_plugin: list[str] = option(
        default_factory=list,
        help="how each --reward-model scores: default (its score head) or genrm (a chat model asked to grade the "
        "answer from 0 to 10, through the pt engine); one per --reward-model (default: default each)",
    )
    reward_weights: list[float] | None = option(
        None, help="one weight per reward: --reward-funcs, then --reward-model (default: 1.0 each)"
    )


@dataclass
class FormatOptions:
    """The `format` reward."""

    format_pattern: str = option(
        THINK_ANSWER_PATTERN,
        help="regex the whole completion must match (surrounding whitespace ignored; `.` matches newlines)",
    )


@dataclass
class LengthOptions:
    """The `length` reward."""

    length_target: int = option(100, help="completion length in tokens that scores 1.0")


@dataclass
class CosineOptions:
    """The `cosine` reward (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs")."""

    cosine_min_len_value_wrong: float = option(-0.5, help="reward of a wrong answer of length 0")
    cosine_max_len_value_wrong: float = option(0.0, help="reward of a wrong answer at --cosine-max-len tokens")
    cosine_min_len_value_correct: float = option(1.0, help="reward of a correct answer of length 0")
    cosine_max_len_value_correct: float = option(0.5, help="reward of a correct answer at --cosine-max-len tokens")
    cosine_max_len: int | None = option(
        None, help="length in tokens where the schedule ends (default: the run's --max-completion-length)"
    )


@dataclass
class RepetitionOptions:
    """The `repetition` reward."""

    repetition_n_grams: int = option(3, help="size of the word n-grams counted as repeats")
    repetition_max_penalty: float = option(-1.0, help="reward of a completion made only of repeats (<= 0)")


@dataclass
class SoftOverlongOptions:
    """The `soft_overlong` reward (DAPO, Yu et al. 2025)."""

    soft_max_length: int | None = option(
        None, help="length in tokens past which the penalty is -1 (default: the run's --max-completion-length)"
    )
    soft_cache_length: int | None = option(
        None,
        help="width in tokens of the window before --soft-max-length where the penalty grows from 0 to -1 (required)",
    )
