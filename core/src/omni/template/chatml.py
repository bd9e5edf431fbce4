"""ChatML (``<|im_start|>role ... <|im_end|>``), the turn format SmolLM2, Qwen and many others share.

Family templates subclass `ChatMLTemplate` and change only what their published chat template does
differently: a default system prompt, how tool results or an assistant turn are written.
"""

from __future__ import annotations

from typing import Any

from omni.template.pieces import Piece, PieceTemplate

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


class ChatMLTemplate(PieceTemplate):
    """Plain ChatML: every message is a turn; an answer is its content plus ``<|im_end|>``."""

    stop_words = (IM_END,)
    default_system: str | None = None  # written when the conversation has no system message

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> list[Piece]:
        pieces: list[Piece] = []
        if self.default_system is not None and messages and messages[0]["role"] != "system":
            pieces.append(Piece(turn("system", self.default_system)))
        for index in range(len(messages)):
            pieces += self.render_message(messages, index)
        if add_generation_prompt:
            pieces.append(Piece(self.generation_prompt()))
        return pieces

    def render_message(self, messages: list[dict[str, Any]], index: int) -> list[Piece]:
        """The pieces of message `index` (the whole conversation is given for context-dependent formats)."""
        message = messages[index]
        if message["role"] == "assistant":
            return answer_turn(index, message["content"])
        return [Piece(turn(message["role"], message["content"]))]

    def generation_prompt(self) -> str:
        """The text that opens the assistant's next turn."""
        return f"{IM_START}assistant\n"


def turn(role: str, content: str) -> str:
    """A whole untrained ChatML turn."""
    return f"{IM_START}{role}\n{content}{IM_END}\n"


def answer_turn(index: int, content: str, *, opening: str = "") -> list[Piece]:
    """An assistant turn: header (plus `opening`, untrained), then content and ``<|im_end|>`` as the answer."""
    return [Piece(f"{IM_START}assistant\n{opening}"), Piece(content + IM_END, answer=index), Piece("\n")]
