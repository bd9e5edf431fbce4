"""Exact chat templates of Llama 3.1+ and SmolLM2, as their published tokenizers render them."""

from __future__ import annotations

import json
from typing import Any

from omni.api import ChatMLTemplate, Piece, PieceTemplate

BOS, EOT = "<|begin_of_text|>", "<|eot_id|>"


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

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> list[Piece]:
        has_system = bool(messages) and messages[0]["role"] == "system"
        system = messages[0]["content"].strip() if has_system else ""
        dates = f"Cutting Knowledge Date: December 2023\nToday Date: {self.date_string}\n\n"
        pieces = [Piece(f"{BOS}{_header('system')}{dates}{system}{EOT}")]
        for index in range(1 if has_system else 0, len(messages)):
            role, content = messages[index]["role"], messages[index]["content"]
            if role == "assistant":
                pieces += [Piece(_header("assistant")), Piece(content.strip() + EOT, answer=index)]
            elif role == "tool":  # tool results go in ipython turns, JSON-encoded as the template does
                pieces.append(Piece(_header("ipython") + json.dumps(content, ensure_ascii=False) + EOT))
            else:
                pieces.append(Piece(_header(role) + content.strip() + EOT))
        if add_generation_prompt:
            pieces.append(Piece(_header("assistant")))
        return pieces


class SmolLM2Template(ChatMLTemplate):
    """SmolLM2 instruct: ChatML; conversations without a system message get SmolLM's default one."""

    default_system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
