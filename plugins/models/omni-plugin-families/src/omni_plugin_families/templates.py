"""GLM chat turns with a trained stop token: `glm4` (GLM-4-0414, GLM-4-9B chat) and `glm4-moe` (GLM-4.5 / 4.6).

The published GLM templates write no end-of-turn token: an answer runs on into the next ``<|user|>`` (the models'
generation configs stop on ``<|user|>`` and ``<|observation|>``). Encoded with `default`, the last answer would train
no stop token, so a fine-tuned model would not stop. Here each answer trains with the ``<|user|>`` that follows it,
written after the last answer too. The ids are the published template's (with ``<|user|>`` appended after a final
answer). GLM-4.5/4.6 also open every answer with an empty ``<think></think>`` scaffold: `glm4-moe` keeps it in the
prompt (not trained as if it were the answer), and its generation prompt ends with the scaffold, as in training,
unless thinking is asked for (``--enable-thinking true``).
"""

from __future__ import annotations

from typing import Any

from omni.api import Piece, PieceTemplate, row_error

GMASK, USER, ASSISTANT, SYSTEM, OBSERVATION = (
    "[gMASK]<sop>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|observation|>",
)
EMPTY_THINKING = "\n<think></think>"


class Glm4Template(PieceTemplate):
    """GLM-4-0414 and GLM-4-9B chat (text turns; the published tool format is not written here).

    GLM-4-0414's template moves system messages to the front and GLM-4-9B's keeps them in place: both agree when the
    system message comes first, the only place this template takes one.
    """

    name = "glm4"
    stop_words = (USER, OBSERVATION, "<|endoftext|>")
    system_only_first = True

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> list[Piece]:
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        pieces = [Piece(GMASK)]
        for index, message in enumerate(messages):
            role, content = message["role"], message["content"]
            if role == "system":
                pieces.append(Piece(f"{SYSTEM}\n{content}"))
            elif role == "user":
                # After an answer, its trained <|user|> already opened this turn.
                opened = index > 0 and messages[index - 1]["role"] == "assistant"
                pieces.append(Piece(("" if opened else USER) + f"\n{content}{self._question_suffix(content)}"))
            else:
                pieces += self._answer(index, content, final=index > last_user)
        if add_generation_prompt:
            pieces.append(Piece(ASSISTANT + self._generation_suffix()))
        return pieces

    def _question_suffix(self, content: str) -> str:
        return ""

    def _answer(self, index: int, content: str, *, final: bool) -> list[Piece]:
        return [Piece(ASSISTANT), Piece(f"\n{content}{USER}", answer=index)]

    def _generation_suffix(self) -> str:
        return ""

    def messages(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        messages = super().messages(row)
        for index, message in enumerate(messages):
            if message["role"] not in ("system", "user", "assistant"):
                raise row_error(
                    row, f"messages[{index}]: the {self.name} template writes system, user and assistant turns"
                )
            if message["role"] == "system" and index > 0 and self.system_only_first:
                raise row_error(row, f"messages[{index}]: the {self.name} template takes a system message only first")
        return messages


class Glm4MoeTemplate(Glm4Template):
    """GLM-4.5 / GLM-4.6 (text turns; the published tool format is not written here)."""

    name = "glm4-moe"
    system_only_first = False  # the published template writes it in place

    def _question_suffix(self, content: str) -> str:
        thinking_off = self.options.enable_thinking is False
        return "/nothink" if thinking_off and not content.endswith("/nothink") else ""

    def _answer(self, index: int, content: str, *, final: bool) -> list[Piece]:
        reasoning, answer = _split_reasoning(content)
        if final and reasoning:  # reasoning of the final turn is written, and trained
            pieces = [Piece(ASSISTANT), Piece(f"\n<think>{reasoning}</think>", answer=index)]
        else:
            pieces = [Piece(ASSISTANT + EMPTY_THINKING)]
        return [*pieces, Piece((f"\n{answer}" if answer else "") + USER, answer=index)]

    def _generation_suffix(self) -> str:
        return "" if self.options.enable_thinking else EMPTY_THINKING


def _split_reasoning(content: str) -> tuple[str, str]:
    """(reasoning, answer) as the published template splits an assistant message at its ``</think>``."""
    if "</think>" not in content:
        return "", content.strip()
    before, after = content.split("</think>")[0], content.split("</think>")[-1]
    return before.rstrip("\n").split("<think>")[-1].lstrip("\n").strip(), after.lstrip("\n").strip()
