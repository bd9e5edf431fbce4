"""Reading tool calls back out of generated text: the parser a template names in `Template.tool_parser`.

A family writes tool calls in its own format (Qwen's ``<tool_call>{json}</tool_call>``, Llama 3's bare JSON), so
the template that renders them also names the `ToolCallParser` that reads them; `omni serve` and `omni infer` use
it to answer with OpenAI ``tool_calls``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One call the model wrote: the function's name and its arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def arguments_json(self) -> str:
        """The arguments as OpenAI sends them: JSON text."""
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class ParsedAnswer:
    """Generated text split into the text outside tool calls (`content`) and the calls, in order."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()


class ToolCallParser:
    """Finds a family's tool calls in generated text; subclasses implement `parse`, `content_end` and `call_opening`.

    Text that does not parse as a call (a call cut off by ``max_tokens``, invalid JSON) stays content, so nothing
    the model wrote is lost.
    """

    def parse(self, text: str) -> ParsedAnswer:
        """The complete calls in `text` and the text around them (stripped; `text` unchanged when it has no call)."""
        raise NotImplementedError

    def content_end(self, text: str) -> int:
        """How much of `text`, a partly generated answer, is surely content: where a call starts (or may be
        starting, for a call's first characters at the end); streaming sends that much as content."""
        raise NotImplementedError

    def call_opening(self, name: str | None = None) -> str:
        """The text that opens a call (of function `name`, when given, up to its arguments): what a prompt is
        continued from when ``tool_choice`` requires a call."""
        raise NotImplementedError


def json_object(text: str) -> dict[str, Any] | None:
    """`text` parsed as one JSON object, else None."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def partial_marker_end(text: str, marker: str) -> int:
    """Where `marker` starts in `text`, or where an unfinished `marker` may start at its end, else its length."""
    found = text.find(marker)
    if found >= 0:
        return found
    for keep in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-keep:]):
            return len(text) - keep
    return len(text)
