"""Tool definitions and tool calls in rows: OpenAI's shapes, in the spellings ms-swift also reads.

A row's ``tools`` becomes a list of ``{"type": "function", "function": {"name", "description", "parameters"}}``
and an assistant message's ``tool_calls`` a list of ``{"type": "function", "function": {"name", "arguments"}}``
with `arguments` a dict: chat templates write dicts (Llama 3's cannot write a JSON string), and OpenAI clients
send them as JSON text. ms-swift's ``tool_call`` (or ``function_call``) messages, whose content is
``{"name", "arguments"}``, join the assistant turn they belong to; ``tool_response`` and ``observation`` are
tool results.
"""

from __future__ import annotations

import json
from typing import Any

from omni.data.rows import RowProblem

CALL_ROLES = ("tool_call", "function_call")  # ms-swift's assistant calls, one message per call
RESULT_ROLES = ("tool_response", "observation")  # ms-swift's names of the tool role


def normalise_tools(value: Any) -> list[dict[str, Any]]:
    """A row's ``tools`` (a list, or JSON text of one) as OpenAI function definitions; raises `RowProblem`."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowProblem(f"tools is a string that is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list):
        raise RowProblem(f"tools must be a list of function definitions, got {type(value).__name__}")
    tools = []
    for i, tool in enumerate(value):
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise RowProblem(
                f'tools[{i}] must be {{"type": "function", "function": {{"name": ..., "parameters": ...}}}}'
            )
        tools.append({"type": "function", "function": function})
    return tools


def tool_names(tools: list[dict[str, Any]]) -> list[str]:
    """The function names `tools` (normalised) define."""
    return [tool["function"]["name"] for tool in tools]


def normalise_tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls`` in OpenAI's shape with dict arguments; `where` names it in errors."""
    if not isinstance(value, list):
        raise RowProblem(f"{where} must be a list of calls, got {type(value).__name__}")
    return [_call(call, f"{where}[{i}]") for i, call in enumerate(value)]


def _call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise RowProblem(f'{where} must be {{"type": "function", "function": {{"name": ..., "arguments": {{...}}}}}}')
    arguments = function.get("arguments", function.get("parameters", {}))  # Llama 3 writes "parameters"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise RowProblem(f"{where}: arguments is not valid JSON ({exc.msg})") from None
    if not isinstance(arguments, dict):
        raise RowProblem(f"{where}: arguments must be a JSON object, got {type(arguments).__name__}")
    normalised: dict[str, Any] = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
    if isinstance(call, dict) and call.get("id"):
        normalised["id"] = call["id"]
    return normalised


def fold_tool_messages(messages: list[Any]) -> list[Any]:
    """ms-swift's spellings in OpenAI's shape: each ``tool_call``/``function_call`` message becomes a call of the
    assistant turn it follows (or of a new one), ``tool_response``/``observation`` messages tool results.

    A ``function_call`` whose content is not a JSON call (ReAct-style text) stays an assistant answer.
    """
    folded: list[Any] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role in RESULT_ROLES:
            folded.append({**message, "role": "tool"})
        elif role in CALL_ROLES:
            call = _call_content(message.get("content"), f"messages[{i}]", strict=role == "tool_call")
            if call is None:
                folded.append({**message, "role": "assistant"})
                continue
            previous = folded[-1] if folded else None
            if previous is not None and previous.get("role") == "assistant":
                previous["tool_calls"] = [*previous.get("tool_calls", []), call]
            else:
                folded.append({"role": "assistant", "content": "", "tool_calls": [call]})
        else:
            folded.append(dict(message) if isinstance(message, dict) else message)
    return folded


def _call_content(content: Any, where: str, *, strict: bool) -> dict[str, Any] | None:
    """The call a ms-swift call message holds (``{"name", "arguments"}`` as JSON text or an object)."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except json.JSONDecodeError:
            content = None
    if isinstance(content, dict) and "name" in content:
        return _call(content, where)
    if strict:
        raise RowProblem(f'{where} is a tool_call message; its content must be {{"name": ..., "arguments": {{...}}}}')
    return None
