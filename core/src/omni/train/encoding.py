"""Turn dataset rows into training features (token ids and labels) before training starts.

Encoding once up front keeps the data loader trivial (the collator only concatenates or pads lists), so
no worker processes are needed and every step's time goes to the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from omni.template.base import IGNORE_INDEX, RowTooLongError, Template

Feature = dict[str, Any]


@dataclass
class EncodedSet:
    """Encoded rows plus how many rows were dropped because nothing in them is trained."""

    features: list[Feature] = field(default_factory=list)
    dropped: int = 0

    @property
    def num_tokens(self) -> int:
        """Tokens over all encoded rows."""
        return sum(len(f["input_ids"]) for f in self.features)


def encode_text(tokenizer: Any, text: str, max_length: int | None) -> list[Feature]:
    """A plain-text row for pre-training: every token is a target; text over `max_length` is chunked."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    step = max_length or len(ids)
    return [
        {"input_ids": chunk, "labels": list(chunk)} for chunk in (ids[i : i + step] for i in range(0, len(ids), step))
    ]


def _plain_text(row: dict[str, Any]) -> str | None:
    """The text of a pre-training row (``{"text": ...}``, loaded as a single assistant message), else None."""
    messages = row.get("messages")
    if messages is None:
        return row.get("text") if isinstance(row.get("text"), str) else None
    if len(messages) == 1 and messages[0].get("role") == "assistant" and isinstance(messages[0].get("content"), str):
        return messages[0]["content"]
    return None


def encode_rows(
    template: Template,
    rows: Iterable[dict[str, Any]],
    *,
    max_length: int | None = None,
    plain_text: bool = False,
    skip_too_long: bool = False,
) -> EncodedSet:
    """Encode rows with `template`; with `plain_text` (pre-training), text-only rows bypass the chat format.

    A row whose labels are all ignored teaches nothing and is dropped and counted, rather than diluting
    the loss normalisation; so is a row over `max_length` when `skip_too_long` (``--skip-bad-rows``).
    """
    out = EncodedSet()
    for row in rows:
        text = _plain_text(row) if plain_text else None
        if text is not None:
            out.features.extend(encode_text(template.tokenizer, text, max_length))
            continue
        try:
            encoded = template.encode(row)
        except RowTooLongError:
            if not skip_too_long:
                raise
            out.dropped += 1
            continue
        if all(label == IGNORE_INDEX for label in encoded.labels[1:]):
            out.dropped += 1
            continue
        out.features.append({"input_ids": list(encoded.input_ids), "labels": list(encoded.labels), **encoded.extras})
    return out
