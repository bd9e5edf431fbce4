"""Rewards on completion length alone, in tokens: `length` (near a target) and `soft_overlong` (DAPO)."""

from __future__ import annotations

from typing import Any

from omni.api import OmniError

from omni_plugin_grpo.rewards.inputs import Completion, token_lengths
from omni_plugin_grpo.rewards.options import LengthOptions, SoftOverlongOptions


def positive_length(flag: str, value: int | None) -> int:
    """`value` when it is a positive token count, else an error naming `flag`."""
    if value is None:
        raise OmniError(f"{flag} is not set; give it a positive number of tokens")
    if value <= 0:
        raise OmniError(f"{flag} must be a positive number of tokens, got {value}")
    return value


class LengthReward:
    """1.0 at ``length_target`` tokens, falling linearly to 0.0 at zero and at twice the target."""

    def __init__(self, options: LengthOptions) -> None:
        self.target = positive_length("--length-target", options.length_target)

    def __call__(self, prompts: list[Any], completions: list[Completion], **columns: Any) -> list[float | None]:
        """One score in [0, 1] per completion."""
        lengths = token_lengths("length", columns, len(completions))
        return [max(0.0, 1.0 - abs(n - self.target) / self.target) for n in lengths]


class SoftOverlongReward:
    """DAPO's soft overlong punishment: 0 up to ``max - cache`` tokens, then linear down to -1 at ``max``,
    and -1 beyond (a truncated completion)."""

    def __init__(self, options: SoftOverlongOptions) -> None:
        self.max_length = positive_length("--soft-max-length", options.soft_max_length)
        self.cache_length = positive_length("--soft-cache-length", options.soft_cache_length)
        if self.cache_length >= self.max_length:
            raise OmniError(
                f"--soft-cache-length ({self.cache_length}) must be smaller than --soft-max-length ({self.max_length})"
            )

    def __call__(self, prompts: list[Any], completions: list[Completion], **columns: Any) -> list[float | None]:
        """One penalty in [-1, 0] per completion."""
        return [self.penalty(n) for n in token_lengths("soft_overlong", columns, len(completions))]

    def penalty(self, length: int) -> float:
        """The penalty of a completion of `length` tokens."""
        free = self.max_length - self.cache_length
        return max(-1.0, min(0.0, (free - length) / self.cache_length))
