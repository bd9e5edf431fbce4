"""The template interface every model family's template implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omni.errors import DataError, OmniError
from omni.template.tools import ToolCallParser

IGNORE_INDEX = -100
# Per-token inputs vision-language processors give beside input_ids, each token's modality (Qwen2-VL's
# mm_token_type_ids, Gemma 3's token_type_ids); templates keep them aligned with the ids, collators pad them alike.
TOKEN_TYPE_KEYS = ("mm_token_type_ids", "token_type_ids")
# Per-token media inputs of shape (1, length, ...) per row, whose second axis follows the ids: Mllama's
# cross_attention_mask (tokens x images x tiles: which image tiles each token attends to). Templates cut them with
# the ids; collators pad that axis with zeros (a pad attends to no image) and batch them by row.
TOKEN_AXIS_KEYS = ("cross_attention_mask",)

LossScope = Literal["assistant", "all", "last"]
Truncation = Literal["left", "right", "error"]


class TemplateError(OmniError):
    """A template cannot render a conversation (no chat template, a format it does not support)."""


class RowTooLongError(DataError):
    """A row does not fit ``--max-length`` without losing its answer; ``--skip-bad-rows`` may count it."""


@dataclass
class Encoded:
    """One encoded row: `labels` is `IGNORE_INDEX` where no loss is taken. `extras` holds modality tensors."""

    input_ids: list[int]
    labels: list[int]
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class TemplateOptions:
    """How rows become tokens; set from the command's options."""

    system: str | None = None  # replaces the row's system message, or adds one
    max_length: int | None = None
    truncation: Truncation = "left"  # never drops the final answer silently
    loss_scope: LossScope = "assistant"  # which turns are trained
    enable_thinking: bool | None = None  # for families with a thinking switch (Qwen3)
    use_audio_in_video: bool = False  # for families that hear a video's own audio track (Qwen-Omni)


class Template:
    """Turns message rows into `Encoded` (training) or prompt ids (generation) for one tokenizer.

    Subclasses registered through `register_templates` implement `encode` and `encode_prompt`;
    `processor` is the tokenizer or the multimodal processor the model spec's loader returned.
    """

    stop_words: tuple[str, ...] = ()
    # Whether rows may carry tool definitions (``tools``) and assistant ``tool_calls``; without a tool format
    # such rows are refused rather than trained or prompted with the tools silently left out.
    supports_tools: bool = False
    # Reads the calls this template's format writes back out of generated text (`omni serve`'s ``tool_calls``).
    tool_parser: ToolCallParser | None = None

    def __init__(self, processor: Any, options: TemplateOptions | None = None) -> None:
        self.processor = processor
        self.options = options or TemplateOptions()

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    def encode(self, row: dict[str, Any]) -> Encoded:
        """Token ids and labels for a whole conversation (the messages format of DESIGN.md §3)."""
        raise NotImplementedError

    def encode_prompt(self, row: dict[str, Any]) -> Encoded:
        """Token ids that prompt the model to write the next assistant turn (labels unused).

        A trailing assistant turn is the row's reference answer and is left out of the prompt.
        """
        raise NotImplementedError
