"""The `format` reward: 1.0 when the completion has the required shape (a regex), else 0.0."""

from __future__ import annotations

import re
from typing import Any

from omni.api import OmniError

from omni_plugin_grpo.rewards.inputs import Completion, completion_text
from omni_plugin_grpo.rewards.options import FormatOptions


class FormatReward:
    """Scores whether each whole completion matches ``format_pattern``."""

    def __init__(self, options: FormatOptions) -> None:
        try:
            self.pattern = re.compile(options.format_pattern, re.DOTALL)
        except re.error as exc:
            raise OmniError(f"--format-pattern {options.format_pattern!r} is not a valid regex: {exc}") from None

    def __call__(self, prompts: list[Any], completions: list[Completion], **columns: Any) -> list[float | None]:
        """1.0 per completion whose text, stripped, matches the pattern in full; else 0.0."""
        return [1.0 if self.pattern.fullmatch(completion_text(c).strip()) else 0.0 for c in completions]
