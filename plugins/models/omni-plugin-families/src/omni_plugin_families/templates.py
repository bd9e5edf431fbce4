"""The `glm4-moe` template: GLM-4.5 / GLM-4.6 chat turns with a trained stop token.

The published template writes no end-of-turn token: an answer runs on into the next ``<|user|>`` (the model's
generation config stops on ``<|user|>`` and ``<|observation|>``), and every answer opens with an empty
``<think></think>`` scaffold. Encoded with `default`, the last answer would train no stop token and the
scaffold would train as if it were the answer. Here the scaffold is prompt, and each answer trains with the
``<|user|>`` that follows it, written after the last answer too, so a fine-tuned model stops. The ids are the
published template's (with ``<|user|>`` appended after a final answer); the generation prompt ends with the
scaffold, as in training, unless thinking is asked for (``--enable-thinking true``).
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


class Glm4MoeTemplate(PieceTemplate):
    """GLM-4.5 / GLM-4.6 (text turns; the published tool format is not written here)."""

    stop_words = (USER, OBSERVATION, "<|endoftext|>")

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> list[Piece]:
        thinking = self.options.enable_thinking
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        pieces = [Piece(GMASK)]
        for index, message in enumerate(messages):
            role, content = message["role"], message["content"]
            if role == "system":
                pieces.append(Piece(f"{SYSTEM}\n{content}"))
            elif role == "user":
                # After an answer, its trained <|user|> already opened this turn.
                opened = index > 0 and messages[index - 1]["role"] == "assistant"
                no_think = "/nothink" if thinking is False and not content.endswith("/nothink") else ""
                pieces.append(Piece(("" if opened else USER) + f"\n{content}{no_think}"))
            else:
                reasoning, answer = _split_reasoning(content)
                if index > last_user and reasoning:  # reasoning of the final turn is written, and trained
                    pieces += [Piece(ASSISTANT), Piece(f"\n<think>{reasoning}</think>", answer=index)]
                else:
                    pieces.append(Piece(ASSISTANT + EMPTY_THINKING))
                pieces.append(Piece((f"\n{answer}" if answer else "") + USER, answer=index))
        if add_generation_prompt:
            pieces.append(Piece(ASSISTANT + ("" if thinking else EMPTY_THINKING)))
        return pieces

    def messages(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        messages = super().messages(row)
        for index, message in enumerate(messages):
            if message["role"] not in ("system", "user", "assistant"):
                raise row_error(
                    row, f"messages[{index}]: the glm4-moe template writes system, user and assistant turns"
                )
        return messages


def _split_reasoning(content: str) -> tuple[str, str]:
    """(reasoning, answer) as the published template splits an assistant message at its ``</think>``."""
    if "</think>" not in content:
        return "", content.strip()
    before, after = content.split("</think>")[0], content.split("</think>")[-1]
    return before.rstrip("\n").split("<think>")[-1].lstrip("\n").strip(), after.lstrip("\n").strip()
