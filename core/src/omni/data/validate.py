"""Checks that a converted row is a conversation a template can encode."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from omni.data.convert import MEDIA_COLUMNS, ROLES
from omni.data.rows import RowProblem
from omni.data.tools import tool_names

# Which roles may come right after which (None: the first non-system message).
_MAY_FOLLOW: dict[str | None, tuple[str, ...]] = {
    None: ("user", "assistant"),  # a conversation may open with the assistant (a greeting)
    "user": ("assistant",),
    "assistant": ("user", "tool"),
    "tool": ("tool", "assistant"),
}


def validate_row(row: dict[str, Any], *, require_answer: bool) -> None:
    """Raise `RowProblem` unless the row's roles, turn order, answers and media tags make sense.

    `require_answer` (training) asks for at least one non-empty assistant turn; prompt-only rows
    (RL prompts, inference) pass without.
    """
    if "messages" not in row and isinstance(row.get("text"), str):
        if require_answer and not row["text"].strip():
            raise RowProblem("text is empty")
        return
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RowProblem("messages is empty")
    previous: str | None = None
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise RowProblem(f"messages[{i}] has role {role!r}; roles are {', '.join(ROLES)}")
        if role == "system":
            if i != 0:
                raise RowProblem(f"messages[{i}] is a system message; only the first message may be one")
            continue
        if role not in _MAY_FOLLOW[previous]:
            after = f"after a {previous} message" if previous else "as the first turn"
            raise RowProblem(
                f"messages[{i}] is a {role} message {after}; expected {' or '.join(_MAY_FOLLOW[previous])}"
            )
        previous = role
    if require_answer and not any(
        m["role"] == "assistant" and (m["content"].strip() or m.get("tool_calls")) for m in messages
    ):
        raise RowProblem("no assistant answer to train on (add an assistant message with content or tool_calls)")
    _check_calls_name_tools(row)
    for modality, column in MEDIA_COLUMNS.items():
        tags = sum(m["content"].count(f"<{modality}>") for m in messages)
        files = len(row.get(column) or [])
        if tags != files:
            raise RowProblem(
                f"{tags} <{modality}> tag(s) in the messages but {files} file(s) in {column}; give one tag per "
                f"file, or no {modality} tag at all to have them added in front of the first message"
            )


def _check_calls_name_tools(row: dict[str, Any]) -> None:
    """Every tool call names a function of the row's ``tools``, when it has any."""
    if not row.get("tools"):
        return
    names = tool_names(row["tools"])
    for i, message in enumerate(row["messages"]):
        for j, call in enumerate(message.get("tool_calls") or []):
            name = call["function"]["name"]
            if name not in names:
                raise RowProblem(
                    f"messages[{i}].tool_calls[{j}] calls {name!r}, which tools does not define "
                    f"(tools: {', '.join(names)})"
                )


def media_problem(row: dict[str, Any], modalities: Collection[str]) -> str | None:
    """What is wrong with giving `row` to a model that takes `modalities` (a model spec's ``modalities``):
    the images, audio or video it holds that the model cannot take, or None when it fits."""
    for modality, column in MEDIA_COLUMNS.items():
        count = len(row.get(column) or [])
        if count and modality not in modalities:
            return f"has {count} {modality} item(s) in {column}, but the model takes only {', '.join(modalities)}"
    return None
