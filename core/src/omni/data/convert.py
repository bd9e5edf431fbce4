"""Raw rows in the formats people publish (messages, ShareGPT, Alpaca, query/response, TRL, text) to messages.

The messages format is DESIGN.md §3: ``{"messages": [{"role", "content"}...], "images": [...], ...}``
with string contents in which ``<image>``/``<audio>``/``<video>`` tags pair in order with the files.
Columns a format does not consume are kept as they are (they reach reward functions).
"""

from __future__ import annotations

import json
import re
from typing import Any

from omni.data.rows import RowProblem, row_error, with_origin
from omni.data.tools import fold_tool_messages, normalise_tool_calls, normalise_tools
from omni.errors import OmniError

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
MEDIA_COLUMNS: dict[str, str] = {"image": "images", "audio": "audios", "video": "videos"}
MEDIA_TAG = re.compile(r"<(image|audio|video)>")
# Column names read as each media column: ms-swift's (``images``/``image`` ...) and the ``*_path`` ones exports use.
MEDIA_SPELLINGS: dict[str, tuple[str, ...]] = {
    column: (column, modality, f"{modality}_path") for modality, column in MEDIA_COLUMNS.items()
}

_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "function_call",  # a tool call when its value is one (`fold_tool_messages`)
    "observation": "tool",
    "tool": "tool",
}
# OpenAI-style content part types and the modality each one carries.
_PART_MODALITY = {
    "image_url": "image",
    "image": "image",
    "input_audio": "audio",
    "audio_url": "audio",
    "audio": "audio",
    "video_url": "video",
    "video": "video",
}


def parse_columns(values: list[str]) -> dict[str, str]:
    """``["question=query", ...]`` (or one ms-swift JSON object) as an old-to-new column-name mapping."""
    if len(values) == 1 and values[0].lstrip().startswith("{"):
        try:
            mapping = json.loads(values[0])
        except json.JSONDecodeError as exc:
            raise OmniError(f"--columns: not a JSON object ({exc.msg})") from None
        if not isinstance(mapping, dict):
            raise OmniError("--columns: give OLD=NEW pairs or a JSON object of old to new names")
        return {str(k): str(v) for k, v in mapping.items()}
    pairs = [value.partition("=") for value in values]
    bad = [old for old, sep, new in pairs if not (sep and old and new)]
    if bad:
        raise OmniError(f"--columns: {bad[0]!r} is not OLD=NEW (e.g. --columns question=query answer=response)")
    return {old: new for old, _, new in pairs}


def rename_columns(raw: Any, mapping: dict[str, str]) -> Any:
    """`raw` with its columns renamed by `mapping` (rows that are not objects are left for validation)."""
    if not mapping or not isinstance(raw, dict):
        return raw
    return {mapping.get(key, key): value for key, value in raw.items()}


def to_messages_row(raw: dict[str, Any]) -> dict[str, Any]:
    """The row in the messages format, with string contents and media lists; raises `RowProblem`.

    Recognised inputs: ``messages`` (contents may be OpenAI content parts), ShareGPT ``conversations``
    (``from``/``value``), Alpaca (``instruction``/``input``/``output``, optional ``system``/``history``),
    ms-swift ``query``/``response`` (optional ``system``/``history``; ``text`` answers when there is no
    ``response``), TRL ``prompt`` with ``completion`` or ``chosen``/``rejected`` (the rejected answer becomes
    ``rejected_response``), and ``text``: with media, the answer to them (a caption or transcript); without,
    a pre-training row, returned as it is.

    A ``tools`` column and assistant ``tool_calls`` are put in OpenAI's shape (`omni.data.tools`), ms-swift's
    ``tool_call``/``tool_response`` messages folded into them.

    Media columns may be spelled as in `MEDIA_SPELLINGS` (one spelling per modality). A modality whose files
    have no tag at all in the messages gets one tag per file in front of the first non-system message, as
    ms-swift's templates add them; a modality with some tags keeps them, and `validate_row` checks the count.
    """
    if not isinstance(raw, dict):
        raise RowProblem(f"a row must be a JSON object, got {type(raw).__name__}")
    row = dict(raw)
    _gather_media(row)
    has_media = any(row.get(column) for column in MEDIA_COLUMNS.values())
    if "messages" in row:
        messages = _decoded(row.pop("messages"), "messages")
    elif "conversations" in row:
        messages = _from_sharegpt(_decoded(row.pop("conversations"), "conversations"))
    elif "instruction" in row:
        instruction, extra = row.pop("instruction"), row.pop("input", None)
        query = f"{instruction}\n{extra}" if _present(extra) else instruction
        messages = _from_pairs(row.pop("system", None), row.pop("history", None), query, row.pop("output", None))
    elif "query" in row:
        response = row.pop("response") if "response" in row else row.pop("text", None)
        messages = _from_pairs(row.pop("system", None), row.pop("history", None), row.pop("query"), response)
    elif "prompt" in row:
        messages = _from_prompt(row)
    elif "text" in row:
        if not isinstance(row["text"], str):
            raise RowProblem(f"text must be a string, got {type(row['text']).__name__}")
        if not has_media:
            return row  # pre-training text stays as it is: it is learned whole, without a chat template
        # Text beside media is about them: the answer to a user turn that holds only the media's tags.
        messages = [{"role": "user", "content": ""}, {"role": "assistant", "content": row.pop("text")}]
    else:
        columns = ", ".join(sorted(map(str, raw))) or "none"
        raise RowProblem(
            "no conversation found: expected a messages, conversations (ShareGPT), instruction/output (Alpaca), "
            f"query/response, prompt (TRL) or text column (columns: {columns})"
        )
    if not isinstance(messages, list):
        raise RowProblem(f"messages must be a list of {{role, content}} objects, got {type(messages).__name__}")
    if "tools" in row:
        tools = normalise_tools(row.pop("tools"))
        if tools:  # an empty list is no tools: the template writes no tool prompt
            row["tools"] = tools
    given = frozenset(c for c in MEDIA_COLUMNS.values() if row.get(c))
    messages = fold_tool_messages(messages)
    row["messages"] = [_normalise_message(m, i, row, given) for i, m in enumerate(messages)]
    _add_missing_tags(row)
    return row


def tagged_row(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with string contents only: OpenAI content parts (as inference requests send them) become text
    with media tags and their media move to the row's columns. Errors name the row; templates call this."""
    if all(isinstance(m.get("content"), str) for m in row.get("messages", [])):
        return row
    try:
        return with_origin(to_messages_row(row), row)
    except RowProblem as problem:
        raise row_error(row, str(problem)) from None


def media_tags(row: dict[str, Any]) -> list[str]:
    """The modality of every media tag in `row`'s messages, in order (``["image", "audio", ...]``)."""
    return [tag for m in row.get("messages", []) for tag in MEDIA_TAG.findall(m["content"])]


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _decoded(value: Any, column: str) -> Any:
    """CSV cells and some parquet exports hold nested columns as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowProblem(f"{column} is a string that is not valid JSON ({exc.msg})") from None
    return value


def _from_sharegpt(turns: Any) -> list[dict[str, Any]]:
    if not isinstance(turns, list):
        raise RowProblem(f"conversations must be a list, got {type(turns).__name__}")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowProblem(f"conversations[{i}] must be an object with from/value")
        speaker = turn.get("from", turn.get("role"))
        role = _SHAREGPT_ROLES.get(str(speaker).lower())
        if role is None:
            known = ", ".join(_SHAREGPT_ROLES)
            raise RowProblem(f"conversations[{i}] has unknown speaker {speaker!r} (known: {known})")
        messages.append({"role": role, "content": turn.get("value", turn.get("content"))})
    return messages


def _from_pairs(system: Any, history: Any, query: Any, response: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if _present(system):
        messages.append({"role": "system", "content": system})
    for i, pair in enumerate(_decoded(history, "history") or []):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise RowProblem(f"history[{i}] must be a [question, answer] pair")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    messages.append({"role": "user", "content": query})
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def _from_prompt(row: dict[str, Any]) -> list[dict[str, Any]]:
    """TRL's formats: a prompt (text or messages) with an optional completion, or chosen and rejected ones."""
    messages = _as_messages(row.pop("prompt"), "user", "prompt")
    answer = row.pop("completion", None) if "completion" in row else row.pop("chosen", None)
    if "rejected" in row:
        row["rejected_response"] = _answer_text(row.pop("rejected"), "rejected")
    if answer is not None:
        messages += _as_messages(answer, "assistant", "completion")
    return messages


def _as_messages(value: Any, role: str, column: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return list(value)
    raise RowProblem(f"{column} must be text or a list of messages, got {type(value).__name__}")


def _answer_text(value: Any, column: str) -> str:
    """The text of an answer given as text or as messages (the last message's content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    raise RowProblem(f"{column} must be text or a list of messages")


def _gather_media(row: dict[str, Any]) -> None:
    """Move each media column, however it is spelled, to its canonical name as a list of files."""
    for column, spellings in MEDIA_SPELLINGS.items():
        present = [name for name in spellings if name in row]
        if len(present) > 1:
            raise RowProblem(f"has both {present[0]} and {present[1]} columns; give the files in one of them")
        if present:
            row[column] = _media_list(row.pop(present[0]), present[0])


def _add_missing_tags(row: dict[str, Any]) -> None:
    """One tag per file for each modality whose files no message tags, in front of the first non-system message.

    ms-swift's `Template._add_default_tags` does the same at encoding time (each modality's tags go in front
    of those already added: video, audio, image, then the text); omni does it when rows are read, so what is
    validated is what trains."""
    messages = [m for m in row["messages"] if m.get("role") != "system"]
    if not messages:
        return
    tagged = set(media_tags(row))
    for modality, column in MEDIA_COLUMNS.items():
        files = len(row.get(column) or [])
        if files and modality not in tagged:
            messages[0]["content"] = f"<{modality}>" * files + messages[0]["content"]


def _media_list(value: Any, column: str) -> list[Any]:
    value = _decoded(value, column) if isinstance(value, str) and value.startswith("[") else value
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _normalise_message(message: Any, index: int, row: dict[str, Any], given: frozenset[str]) -> dict[str, Any]:
    if not isinstance(message, dict) or "role" not in message:
        raise RowProblem(f"messages[{index}] must be an object with role and content")
    message = dict(message)
    content = message.get("content")
    if message.get("tool_calls"):
        if message["role"] != "assistant":
            raise RowProblem(
                f"messages[{index}] is a {message['role']} message with tool_calls; only assistants call tools"
            )
        message["tool_calls"] = normalise_tool_calls(message["tool_calls"], f"messages[{index}].tool_calls")
    else:
        message.pop("tool_calls", None)  # an empty list or null: chat templates test for the key
    if message["role"] == "tool" and isinstance(content, dict | list) and not _are_parts(content):
        message["content"] = json.dumps(content, ensure_ascii=False)  # a structured result, as its JSON text
    elif isinstance(content, list):
        message["content"] = _flatten_parts(content, index, row, given)
    elif content is None:
        message["content"] = ""
    elif not isinstance(content, str):
        raise RowProblem(f"messages[{index}].content must be a string or a list of content parts")
    return message


def _are_parts(content: Any) -> bool:
    return isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content)


def _flatten_parts(parts: list[Any], index: int, row: dict[str, Any], given: frozenset[str]) -> str:
    """Content parts to text with media tags; the media go to the row's lists in order.

    `given` are the media columns the row already filled: their files pair with tags in the text, so
    parts of the same modality would make the pairing ambiguous.
    """
    text = []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text.append(str(part.get("text", "")))
            continue
        modality = _PART_MODALITY.get(str(kind))
        if modality is None:
            raise RowProblem(f"messages[{index}].content[{j}] has unknown part type {kind!r}")
        column = MEDIA_COLUMNS[modality]
        if column in given:
            raise RowProblem(f"messages[{index}] mixes {modality} content parts with a {column} column; use one")
        row.setdefault(column, []).append(_part_media(part, kind, index, j))
        text.append(f"<{modality}>")
    return "".join(text)


def _part_media(part: dict[str, Any], kind: str, index: int, j: int) -> Any:
    value = part.get(kind)
    if kind == "input_audio":
        if not isinstance(value, dict) or "data" not in value:
            raise RowProblem(f"messages[{index}].content[{j}].input_audio must have data (base64) and format")
        return f"data:audio/{value.get('format', 'wav')};base64,{value['data']}"
    if isinstance(value, dict):
        value = value.get("url", value.get("path"))
    if not value:
        raise RowProblem(f"messages[{index}].content[{j}] ({kind}) names no file or URL")
    return value
