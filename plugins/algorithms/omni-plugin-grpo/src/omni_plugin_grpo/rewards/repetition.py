"""The `repetition` reward: a penalty growing with the share of repeated word n-grams."""

from __future__ import annotations

from typing import Any

from omni.api import OmniError

from omni_plugin_grpo.rewards.inputs import Completion, completion_text
from omni_plugin_grpo.rewards.options import RepetitionOptions


class RepetitionReward:
    """``max_penalty * (1 - distinct n-grams / n-grams)`` over lower-cased words: 0 without repeats."""

    def __init__(self, options: RepetitionOptions) -> None:
        if options.repetition_n_grams < 1:
            raise OmniError(f"--repetition-n-grams must be at least 1, got {options.repetition_n_grams}")
        if options.repetition_max_penalty > 0:
            raise OmniError(
                f"--repetition-max-penalty is a penalty and must be <= 0, got {options.repetition_max_penalty}"
            )
        self.n = options.repetition_n_grams
        self.max_penalty = options.repetition_max_penalty

    def __call__(self, prompts: list[Any], completions: list[Completion], **columns: Any) -> list[float | None]:
        """One penalty in [max_penalty, 0] per completion; completions shorter than one n-gram score 0."""
        return [self.penalty(completion_text(c)) for c in completions]

    def penalty(self, text: str) -> float:
        """The penalty of one text."""
        words = text.lower().split()
        grams = [tuple(words[i : i + self.n]) for i in range(len(words) - self.n + 1)]
        if not grams:
            return 0.0
        return self.max_penalty * (1 - len(set(grams)) / len(grams))
