"""Exact chat templates of Llama 3.1+ and SmolLM2, as their published tokenizers render them."""

from __future__ import annotations

import json
from typing import Any

from omni.api import (
    ChatMLTemplate,
    ParsedAnswer,
    Piece,
    PieceTemplate,
    ToolCall,
    ToolCallParser,
    json_object,
    row_error,
)

BOS, EOT = "<|begin_of_text|>", "<|eot_id|>"
PYTHON_TAG = "<|python_tag|>"
TOOLS_PROMPT = (
    "Given the following functions, please respond with a JSON for a function call with its proper arguments that "
    'best answers the given prompt.\n\nRespond in the format {"name": function name, "parameters": dictionary of '
    "argument name and its value}.Do not use variables.\n\n"
)


class Llama3JsonToolParser(ToolCallParser):
    """Llama 3's calls: the whole answer is one JSON object ``{"name": ..., "parameters": {...}}`` (several may be
    joined by ``;``), optionally after ``<|python_tag|>``."""

    def parse(self, text: str) -> ParsedAnswer:
        body = text.strip().removeprefix(PYTHON_TAG).strip()
        calls = []
        for part in body.split(";") if body.startswith("{") else []:
            call = json_object(part.strip())
            arguments = (call or {}).get("parameters", (call or {}).get("arguments", {}))
            if call is None or not isinstance(call.get("name"), str) or not isinstance(arguments, dict):
                return ParsedAnswer(text)  # not calls after all: all of it is the answer
            calls.append(ToolCall(call["name"], arguments))
        return ParsedAnswer("", tuple(calls)) if calls else ParsedAnswer(text)

    def content_end(self, text: str) -> int:
        start = text.lstrip()
        if not start or start.startswith("{") or PYTHON_TAG.startswith(start[: len(PYTHON_TAG)]):
            return 0  # a call (or whitespace before one) takes the whole answer
        return len(text)

    def call_opening(self, name: str | None = None) -> str:
        return "{" if name is None else f'{{"name": {json.dumps(name)}, "parameters":'


def _header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


class Llama3Template(PieceTemplate):
    """Llama 3.1 / 3.2 / 3.3 instruct.

    The system block always carries the knowledge cutoff and a date. Llama 3.1 renders a fixed date;
    Llama 3.2+ tokenizers render today's date when called without `date_string`, so `date_string` is
    pinned here (the date is prompt text and does not affect what trains).
    """

    stop_words = (EOT, "<|eom_id|>", "<|end_of_text|>")
    date_string = "26 Jul 2024"
    supports_tools = True
    tool_parser = Llama3JsonToolParser()

    def render(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool, tools: list[dict[str, Any]] | None = None
    ) -> list[Piece]:
        has_system = bool(messages) and messages[0]["role"] == "system"
        system = messages[0]["content"].strip() if has_system else ""
        environment = "Environment: ipython\n" if tools is not None else ""
        dates = f"Cutting Knowledge Date: December 2023\nToday Date: {self.date_string}\n\n"
        pieces = [Piece(f"{BOS}{_header('system')}{environment}{dates}{system}{EOT}")]
        first = 1 if has_system else 0
        if tools is not None:  # the definitions go in the first user turn, before its text
            listed = "".join(json.dumps(tool, ensure_ascii=False, indent=4) + "\n\n" for tool in tools)
            question = messages[first]["content"].strip()
            pieces.append(Piece(f"{_header('user')}{TOOLS_PROMPT}{listed}{question}{EOT}"))
            first += 1
        for index in range(first, len(messages)):
            role, content = messages[index]["role"], messages[index]["content"]
            if role == "assistant" and messages[index].get("tool_calls"):
                pieces += [Piece(_header("assistant")), Piece(_tool_call(messages, index) + EOT, answer=index)]
            elif role == "assistant":
                pieces += [Piece(_header("assistant")), Piece(content.strip() + EOT, answer=index)]
            elif role == "tool":  # tool results go in ipython turns, JSON-encoded as the template does
                pieces.append(Piece(_header("ipython") + json.dumps(content, ensure_ascii=False) + EOT))
            else:
                pieces.append(Piece(_header(role) + content.strip() + EOT))
        if add_generation_prompt:
            pieces.append(Piece(_header("assistant")))
        return pieces

    def messages(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        messages = super().messages(row)
        for index, message in enumerate(messages):
            if message.get("tool_calls") and (len(message["tool_calls"]) != 1 or message["content"].strip()):
                raise row_error(
                    row, f"messages[{index}]: Llama 3 writes one tool call per assistant turn, with no text beside it"
                )
        return messages


def _tool_call(messages: list[dict[str, Any]], index: int) -> str:
    """Assistant message `index`'s call as Llama 3 writes it."""
    function = messages[index]["tool_calls"][0]["function"]
    arguments = json.dumps(function["arguments"], ensure_ascii=False)
    return f'{{"name": "{function["name"]}", "parameters": {arguments}}}'


class SmolLM2Template(ChatMLTemplate):
    """SmolLM2 instruct: ChatML; conversations without a system message get SmolLM's default one."""

    default_system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
