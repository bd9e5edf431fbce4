"""Exact chat templates of Qwen2.5 and Qwen3, as their published tokenizers render them."""

from __future__ import annotations

import json
from typing import Any

from omni.api import (
    IM_END,
    IM_START,
    ChatMLTemplate,
    ParsedAnswer,
    Piece,
    ToolCall,
    ToolCallParser,
    answer_turn,
    json_object,
    partial_marker_end,
)

EMPTY_THINK = "<think>\n\n</think>\n\n"
CALL_START, CALL_END = "<tool_call>", "</tool_call>"
TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)


class HermesToolParser(ToolCallParser):
    """Qwen's (Hermes') calls: ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks."""

    def parse(self, text: str) -> ParsedAnswer:
        calls, outside, rest = [], [], text
        while (start := rest.find(CALL_START)) >= 0 and (end := rest.find(CALL_END, start)) >= 0:
            call = json_object(rest[start + len(CALL_START) : end])
            if call is None or not isinstance(call.get("name"), str) or not isinstance(call.get("arguments", {}), dict):
                break  # not a call after all: it and the rest stay content
            outside.append(rest[:start])
            calls.append(ToolCall(call["name"], call.get("arguments", {})))
            rest = rest[end + len(CALL_END) :]
        if not calls:
            return ParsedAnswer(text)
        return ParsedAnswer("".join([*outside, rest]).strip(), tuple(calls))

    def content_end(self, text: str) -> int:
        return partial_marker_end(text, CALL_START)

    def call_opening(self, name: str | None = None) -> str:
        return CALL_START if name is None else f'{CALL_START}\n{{"name": {json.dumps(name)}, "arguments":'


class Qwen25Template(ChatMLTemplate):
    """Qwen2.5: ChatML, Qwen's default system prompt, consecutive tool results in one user turn; tools in the system
    turn, calls in ``<tool_call>`` blocks after the answer's text."""

    stop_words = (IM_END, "<|endoftext|>")
    default_system: str | None = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    supports_tools = True
    tool_parser = HermesToolParser()

    def render(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool, tools: list[dict[str, Any]] | None = None
    ) -> list[Piece]:
        if not tools:
            return super().render(messages, add_generation_prompt=add_generation_prompt)
        # Tools go in the system turn, after the system message's own text (or the default system prompt).
        has_system = messages[0]["role"] == "system"
        system = messages[0]["content"] if has_system else self.default_system
        opening = "" if system is None else system + "\n\n"
        listed = "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
        pieces = [Piece(f"{IM_START}system\n{opening}{TOOLS_HEADER}{listed}{TOOLS_FOOTER}{IM_END}\n")]
        for index in range(has_system, len(messages)):
            pieces += self.render_message(messages, index)
        if add_generation_prompt:
            pieces.append(Piece(self.generation_prompt()))
        return pieces

    def render_message(self, messages: list[dict[str, Any]], index: int) -> list[Piece]:
        message = messages[index]
        if message["role"] == "assistant" and message.get("tool_calls"):
            content = message["content"]
            return answer_turn(index, content + tool_calls_text(message["tool_calls"], after_text=bool(content)))
        if messages[index]["role"] != "tool":
            return super().render_message(messages, index)
        opens = index == 0 or messages[index - 1]["role"] != "tool"
        closes = index == len(messages) - 1 or messages[index + 1]["role"] != "tool"
        text = f"\n<tool_response>\n{messages[index]['content']}\n</tool_response>"
        return [Piece((f"{IM_START}user" if opens else "") + text + (f"{IM_END}\n" if closes else ""))]


class Qwen3Template(Qwen25Template):
    """Qwen3 (dense and MoE).

    As the published template does, answers after the last user query carry a ``<think>`` block
    (empty when the row has no reasoning), while earlier answers are written without their thinking.
    Reasoning comes from an assistant message's ``reasoning_content`` or a ``<think>...</think>``
    prefix of its content, and is trained; the empty block is template scaffolding and is not.
    `enable_thinking=False` makes generation prompts open with the empty block (no thinking).
    """

    default_system = None

    def render_message(self, messages: list[dict[str, Any]], index: int) -> list[Piece]:
        message = messages[index]
        if message["role"] != "assistant":
            return super().render_message(messages, index)
        reasoning, content = split_reasoning(message)
        calls = tool_calls_text(message.get("tool_calls") or [], after_text=bool(content))
        is_last = index == len(messages) - 1
        if index <= last_query_index(messages) or not (is_last or reasoning):
            return answer_turn(index, content + calls)
        if not reasoning.strip("\n"):
            return answer_turn(index, content.lstrip("\n") + calls, opening=EMPTY_THINK)
        header, _, tail = answer_turn(index, "")
        think = f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n"
        return [header, Piece(think + content.lstrip("\n") + calls + IM_END, answer=index), tail]

    def generation_prompt(self) -> str:
        prompt = super().generation_prompt()
        return prompt + EMPTY_THINK if self.options.enable_thinking is False else prompt


def tool_calls_text(calls: list[dict[str, Any]], *, after_text: bool) -> str:
    """An assistant turn's calls as Qwen3 writes them after its text: one ``<tool_call>`` block each, on new lines."""
    blocks = []
    for call in calls:
        function = call["function"]
        arguments = function["arguments"]
        arguments = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        blocks.append(f'{CALL_START}\n{{"name": "{function["name"]}", "arguments": {arguments}}}\n{CALL_END}')
    return ("\n" if after_text and blocks else "") + "\n".join(blocks)


def split_reasoning(message: dict[str, Any]) -> tuple[str, str]:
    """(reasoning, answer) of an assistant message, as Qwen3's template separates them."""
    content = message["content"]
    if isinstance(message.get("reasoning_content"), str):
        return message["reasoning_content"], content
    if "</think>" not in content:
        return "", content
    before, _, after = content.partition("</think>")
    reasoning = before.rstrip("\n").split("<think>")[-1].lstrip("\n")
    return reasoning, content.split("</think>")[-1].lstrip("\n")


def last_query_index(messages: list[dict[str, Any]]) -> int:
    """Index of the last real user query (tool results sent as user turns do not count)."""
    for index in range(len(messages) - 1, -1, -1):
        content = messages[index]["content"]
        if messages[index]["role"] == "user" and not (
            content.startswith("<tool_response>") and content.endswith("</tool_response>")
        ):
            return index
    return len(messages) - 1
