"""A token that starts in the prompt and ends in an answer (a space written before the answer, joined to its first
word by byte-level tokenizers) trains with the answer."""

from __future__ import annotations

from typing import Any

from omni.template.base import IGNORE_INDEX
from omni.template.pieces import Piece, PieceTemplate
from omni.testing.tokenizers import build_tokenizer


class SpaceBeforeAnswer(PieceTemplate):
    """LLaVA-1.5 style: the prompt ends with "ASSISTANT: " and the answer follows the space."""

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> list[Piece]:
        pieces = [Piece(f"USER: {messages[0]['content']} ASSISTANT: ")]
        if not add_generation_prompt:
            pieces.append(Piece(messages[1]["content"] + "<|im_end|>", answer=1))
        return pieces


def test_the_answers_first_word_trains_with_the_space_before_it():
    tokenizer = build_tokenizer("generic")
    row = {"messages": [{"role": "user", "content": "What colour?"}, {"role": "assistant", "content": "red"}]}
    encoded = SpaceBeforeAnswer(tokenizer).encode(row)
    assert " red" in tokenizer.convert_ids_to_tokens(encoded.input_ids)[-2].replace("Ġ", " ")  # one token
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == " red<|im_end|>"
