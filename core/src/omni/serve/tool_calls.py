"""Tool calling in `omni serve`: a request's ``tools`` and ``tool_choice`` checked against the engine's template, and
answers turned into OpenAI ``tool_calls`` by the template's `ToolCallParser`, whole or streamed.

``tool_choice`` ``auto`` (the default with tools) lets the model choose; ``none`` shows it the tools but reads no
calls; ``required`` and a named function continue the prompt from the call's opening (`ToolCallParser.call_opening`),
so the answer starts as a call (of that function).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from omni.data.rows import RowProblem
from omni.data.tools import normalise_tools, tool_names
from omni.infer.engine import PROMPT_IDS, Engine, StreamDelta
from omni.serve.protocol import ApiError
from omni.template.tools import ParsedAnswer, ToolCall, ToolCallParser


@dataclass(frozen=True)
class ToolUse:
    """How one request's answers are read: the template's parser, and the text each answer was started with."""

    parser: ToolCallParser
    opening: str = ""

    def parse(self, text: str) -> ParsedAnswer:
        return self.parser.parse(self.opening + text)

    def rewrite(self, completion: dict[str, Any]) -> dict[str, Any]:
        """A ``chat.completion`` whose messages hold the calls their text made as ``tool_calls``."""
        for choice in completion["choices"]:
            parsed = self.parse(choice["message"]["content"])
            if parsed.tool_calls:
                choice["message"] = {
                    "role": "assistant",
                    "content": parsed.content or None,
                    "tool_calls": [_call_object(call) for call in parsed.tool_calls],
                }
                choice["finish_reason"] = _finish_reason(choice["finish_reason"])
            elif self.opening:
                choice["message"]["content"] = self.opening + choice["message"]["content"]
        return completion


def tool_use(tools: list[dict[str, Any]] | None, tool_choice: Any, engine: Engine) -> ToolUse | None:
    """How a request with `tools` and `tool_choice` is answered (None: as plain text); what the server cannot do
    is a 400 naming the parameter."""
    if not tools:
        if tool_choice not in (None, "none", "auto"):
            raise ApiError(400, "tool_choice needs tools: send the functions the model may call", param="tool_choice")
        return None
    try:
        names = tool_names(normalise_tools(tools))
    except RowProblem as problem:
        raise ApiError(400, str(problem), param="tools") from None
    template = getattr(engine, "template", None)
    if template is None or not template.supports_tools:
        what = f"template ({type(template).__name__})" if template is not None else f"engine ({type(engine).__name__})"
        raise ApiError(
            400,
            f"this server's {what} has no tool format; serve the model with a template that has one "
            "(--template qwen3, qwen2.5, llama3, or default with a chat template that takes tools)",
            param="tools",
        )
    choice = "auto" if tool_choice is None else tool_choice
    if choice == "none":
        return None
    if template.tool_parser is None:
        raise ApiError(
            400, f"this server's template ({type(template).__name__}) cannot read tool calls back", param="tools"
        )
    if choice == "auto":
        return ToolUse(template.tool_parser)
    if choice == "required":
        name = None
    elif isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if name not in names:
            raise ApiError(
                400,
                f"tool_choice names {name!r}, which tools does not define ({', '.join(names)})",
                param="tool_choice",
            )
    else:
        raise ApiError(
            400,
            'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    if PROMPT_IDS not in engine.features:
        raise ApiError(
            400, f"this server's engine cannot require a tool call (tool_choice {choice!r})", param="tool_choice"
        )
    return ToolUse(template.tool_parser, template.tool_parser.call_opening(name))


@dataclass
class ToolCallStream:
    """Turns a request's streamed deltas into OpenAI chunk choices: text outside calls as ``content`` while it is
    surely not a call, each call as a ``tool_calls`` delta (index, id, type and name first, then its arguments)."""

    tool_use: ToolUse
    texts: dict[int, str] = field(default_factory=dict)
    content_sent: dict[int, int] = field(default_factory=dict)  # characters of each choice's text sent as content
    calls_sent: dict[int, int] = field(default_factory=dict)

    def choices(self, delta: StreamDelta) -> list[dict[str, Any]]:
        """The chunk choices `delta` adds (none while a call is still being written)."""
        index, parser = delta.index, self.tool_use.parser
        text = self.texts.get(index, self.tool_use.opening) + delta.text
        self.texts[index] = text
        sent = self.content_sent.get(index, 0)
        parsed = parser.parse(text)
        out = []
        if delta.finish_reason is None:
            end = parser.content_end(text)
            if end > sent and not self.calls_sent.get(index):
                out.append(_content_choice(index, text[sent:end]))
                self.content_sent[index] = end
        out += self._new_calls(index, parsed.tool_calls)
        if delta.finish_reason is not None:
            done = text[:sent]
            if not parsed.tool_calls:
                rest = text[sent:]
            else:  # text after the calls
                rest = parsed.content[len(done.strip()) :] if parsed.content.startswith(done.strip()) else ""
            if rest:
                out.append(_content_choice(index, rest))
            reason = _finish_reason(delta.finish_reason) if parsed.tool_calls else delta.finish_reason
            out.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": reason})
        return out

    def _new_calls(self, index: int, calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
        sent = self.calls_sent.get(index, 0)
        self.calls_sent[index] = len(calls)
        out = []
        for number, call in enumerate(calls[sent:], start=sent):
            opening = {"index": number, **_call_object(call)}
            opening["function"] = {"name": call.name, "arguments": ""}
            arguments = {"index": number, "function": {"arguments": call.arguments_json()}}
            out += [_tool_calls_choice(index, opening), _tool_calls_choice(index, arguments)]
        return out


def _call_object(call: ToolCall) -> dict[str, Any]:
    """A call as OpenAI's ``message.tool_calls`` holds it: a fresh id, arguments as JSON text."""
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json()},
    }


def _finish_reason(engine_reason: str) -> str:
    """OpenAI's finish reason of an answer that made calls: ``tool_calls``, unless it was cut off."""
    return "tool_calls" if engine_reason == "stop" else engine_reason


def _content_choice(index: int, text: str) -> dict[str, Any]:
    return {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}


def _tool_calls_choice(index: int, call: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "delta": {"tool_calls": [call]}, "logprobs": None, "finish_reason": None}
