"""Template flags shared by the commands that encode conversations (`omni sft`, `omni template render` ...).

Kept free of heavy imports: this module is imported whenever a command's `--help` is printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.options import option
from omni.template.base import TemplateOptions


@dataclass
class TemplateCliOptions:
    """How conversations become tokens; `template_options()` gives what a `Template` takes."""

    template: str | None = option(None, help="chat template name (default: the model family's, else `default`)")
    system: str | None = option(None, help="system prompt that replaces (or adds) each row's system message")
    max_length: int | None = option(None, help="longest encoded row in tokens; longer rows are truncated")
    truncation: Literal["left", "right", "error"] = option(
        "left",
        help="for rows over --max-length: left drops the oldest prompt tokens and keeps the answer; right cuts the "
        "end (only where nothing trained is lost, e.g. with --loss-scope all); error stops",
        aliases=("truncation_strategy",),
    )
    loss_scope: Literal["assistant", "all", "last"] = option(
        "assistant",
        help="which tokens are trained: every assistant turn, all tokens, or the last assistant turn only",
    )
    enable_thinking: bool | None = option(
        None, help="templates with a thinking switch (Qwen3): whether prompts open a <think> block"
    )
    use_audio_in_video: bool = option(
        False,
        help="templates of models that hear video (Qwen3-Omni): also feed each <video>'s audio track, "
        "interleaved with its frames in time",
    )

    def template_options(self) -> TemplateOptions:
        """The `TemplateOptions` these flags describe."""
        return TemplateOptions(
            system=self.system,
            max_length=self.max_length,
            truncation=self.truncation,
            loss_scope=self.loss_scope,
            enable_thinking=self.enable_thinking,
            use_audio_in_video=self.use_audio_in_video,
        )
