"""The `cosine` reward: correctness scaled by length on a cosine schedule (Yeo et al. 2025, arXiv:2502.03373).

Short correct answers earn most and long wrong ones are punished least, so a model is pushed to be
concise when it knows the answer and to keep thinking when it does not.
"""

from __future__ import annotations

import math
from typing import Any

from omni_plugin_grpo.rewards.accuracy import is_correct
from omni_plugin_grpo.rewards.inputs import Completion, completion_text, required_column, token_lengths
from omni_plugin_grpo.rewards.length import positive_length
from omni_plugin_grpo.rewards.options import CosineOptions


def cosine_schedule(length: int, max_length: int, at_zero: float, at_max: float) -> float:
    """`at_zero` at length 0, `at_max` at `max_length` and beyond, following half a cosine in between."""
    progress = min(length, max_length) / max_length
    return at_max + (at_zero - at_max) * (1 + math.cos(math.pi * progress)) / 2


class CosineReward:
    """Per completion: the correct or the wrong schedule (by math-verify against ``solution``) at its length."""

    def __init__(self, options: CosineOptions) -> None:
        self.options = options
        self.max_length = positive_length("--cosine-max-len", options.cosine_max_len)

    def __call__(self, prompts: list[Any], completions: list[Completion], **columns: Any) -> list[float | None]:
        """One score per completion; None where the row's solution can't be read (as `accuracy`)."""
        solutions = required_column("cosine", "solution", columns, len(completions))
        lengths = token_lengths("cosine", columns, len(completions))
        return [
            self.score(is_correct(completion_text(c), s), n)
            for c, s, n in zip(completions, solutions, lengths, strict=True)
        ]

    def score(self, correct: bool | None, length: int) -> float | None:
        """The reward of an answer of `length` tokens that is `correct` (None: unknown, no reward)."""
        if correct is None:
            return None
        o = self.options
        if correct:
            return cosine_schedule(
                length, self.max_length, o.cosine_min_len_value_correct, o.cosine_max_len_value_correct
            )
        return cosine_schedule(length, self.max_length, o.cosine_min_len_value_wrong, o.cosine_max_len_value_wrong)
