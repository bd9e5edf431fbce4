"""Exact chat templates of Qwen2.5 and Qwen3, as their published tokenizers render them."""

from __future__ import annotations

from typing import Any

from omni.api import IM_END, IM_START, ChatMLTemplate, Piece, answer_turn

EMPTY_THINK = "<think>\n\n</think>\n\n"


class Qwen25Template(ChatMLTemplate):
    """Qwen2.5: ChatML, Qwen's default system prompt, consecutive tool results in one user turn."""

    stop_words = (IM_END, "<|endoftext|>")
    default_system: str | None = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

    def render_message(self, messages: list[dict[str, Any]], index: int) -> list[Piece]:
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
        is_last = index == len(messages) - 1
        if index <= last_query_index(messages) or not (is_last or reasoning):
            return answer_turn(index, content)
        if not reasoning.strip("\n"):
            return answer_turn(index, content.lstrip("\n"), opening=EMPTY_THINK)
        header, _, tail = answer_turn(index, "")
        think = f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n"
        return [header, Piece(think + content.lstrip("\n") + IM_END, answer=index), tail]

    def generation_prompt(self) -> str:
        prompt = super().generation_prompt()
        return prompt + EMPTY_THINK if self.options.enable_thinking is False else prompt


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
