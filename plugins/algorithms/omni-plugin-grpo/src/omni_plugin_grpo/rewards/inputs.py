"""What a reward reads from its call: each completion's text, its length in tokens, and dataset columns.

Completions arrive as strings, or as message lists for conversational rows (``[{"role": "assistant",
"content": ...}]``); columns arrive as keyword arguments holding one value per completion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omni.api import OmniError

Completion = str | list[dict[str, Any]]


def completion_text(completion: Completion) -> str:
    """The text of one completion: the string itself, or the text of its messages joined in order."""
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, list):
        raise TypeError(f"a completion is a string or a list of messages, got {type(completion).__name__}")
    return "".join(_message_text(message) for message in completion)


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text parts carry words
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return ""  # a message with only tool calls has no text


def required_column(reward: str, column: str, columns: Mapping[str, Any], count: int) -> Sequence[Any]:
    """The `column` values, one per completion, or an error saying which reward needs which column."""
    if column not in columns:
        present = ", ".join(sorted(columns)) or "none"
        raise OmniError(f"the {reward} reward needs a {column!r} column in the dataset (columns given: {present})")
    values = columns[column]
    if len(values) != count:
        raise OmniError(f"the {reward} reward got {len(values)} {column!r} values for {count} completions")
    return values


def token_lengths(reward: str, columns: Mapping[str, Any], count: int) -> list[int]:
    """Each completion's length in tokens, from the ``completion_ids`` the GRPO trainer passes."""
    if "completion_ids" not in columns:
        raise OmniError(
            f"the {reward} reward measures completions in tokens and needs `completion_ids` (one list of token ids "
            "per completion; the GRPO trainer passes them)"
        )
    ids = required_column(reward, "completion_ids", columns, count)
    return [len(row) for row in ids]
