"""Encode preference rows with omni's template into the token ids TRL's trainers consume.

Encoding here (not in TRL) keeps the chat format exactly omni's, the same as `omni sft` and `omni infer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omni.api import TOKEN_AXIS_KEYS, TOKEN_TYPE_KEYS, DataError, Row, Template

Feature = dict[str, Any]
# What TRL's own collators read; anything else in a feature is a modality tensor or a sequence's own input.
TOKEN_KEYS = frozenset({"prompt_ids", "chosen_ids", "rejected_ids", "completion_ids", "label", "margin"})
# Inputs with a value per token of the whole sequence, answer included: each sequence carries its own, as
# ``chosen_KEY`` and ``rejected_KEY`` (multimodal rotary positions, each token's modality, Mllama's
# cross_attention_mask).
SEQUENCE_KEYS = ("position_ids", *TOKEN_TYPE_KEYS, *TOKEN_AXIS_KEYS)


def _problem(row: Any, message: str) -> DataError:
    return DataError(getattr(row, "source", "<rows>"), getattr(row, "location", None), message)


def _common_prefix(*seqs: list[int]) -> int:
    n = 0
    for tokens in zip(*seqs, strict=False):
        if any(t != tokens[0] for t in tokens):
            break
        n += 1
    return n


def _answered(row: Any, method: str) -> list[dict[str, Any]]:
    """The row's messages, which must end with the assistant answer being judged."""
    messages = row.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        raise _problem(row, f"{method} needs `messages` ending with an assistant answer (the chosen one)")
    return messages


def _rejected_messages(row: Any, method: str) -> list[dict[str, Any]]:
    if row.get("rejected_messages"):
        return row["rejected_messages"]
    rejected = row.get("rejected_response")
    if rejected is None:
        raise _problem(row, f"{method} needs `rejected_response` (or `rejected_messages`): the dispreferred answer")
    return [*_answered(row, method)[:-1], {"role": "assistant", "content": rejected}]


def encode_pair(template: Template, row: Any, method: str) -> Feature:
    """``prompt_ids``, ``chosen_ids``, ``rejected_ids`` for a row with a chosen and a rejected answer."""
    _answered(row, method)
    prompt = template.encode_prompt(row).input_ids
    chosen_encoded = template.encode(row)
    rejected_encoded = template.encode(_with_messages(row, _rejected_messages(row, method)))
    chosen, rejected = chosen_encoded.input_ids, rejected_encoded.input_ids
    # The answers start where the three renderings diverge (a template may render the bare prompt differently).
    start = _common_prefix(prompt, chosen, rejected)
    if start == len(chosen) or start == len(rejected):
        raise _problem(row, "the chosen and rejected conversations have no answer tokens after the prompt")
    feature = {"prompt_ids": prompt[:start], "chosen_ids": chosen[start:], "rejected_ids": rejected[start:]}
    return {**feature, **_media(chosen_encoded.extras, rejected_encoded.extras)}


def _media(chosen: dict[str, Any], rejected: dict[str, Any]) -> Feature:
    """The prompt's modality tensors (both answers share them) and each whole sequence's own `SEQUENCE_KEYS`
    inputs; nothing for text-only templates."""
    media = {key: value for key, value in chosen.items() if key not in SEQUENCE_KEYS}
    for side, extras in (("chosen", chosen), ("rejected", rejected)):
        media.update({f"{side}_{key}": extras[key] for key in SEQUENCE_KEYS if key in extras})
    return media


def has_media(feature: Feature) -> bool:
    """Whether an encoded feature carries modality tensors (images, audio, video) beside its token ids."""
    return any(key not in TOKEN_KEYS for key in feature)


def _with_messages(row: Any, messages: list[dict[str, Any]]) -> Any:
    # Keep an `omni.data.Row`'s file and line, so a media error in the rejected conversation still names the row.
    updated = {**row, "messages": messages}
    return Row(updated, row.source, row.location) if isinstance(row, Row) else updated


def encode_unpaired(template: Template, row: Any, method: str) -> list[Feature]:
    """``prompt_ids``, ``completion_ids``, ``label`` features: one for a labelled row, two for a pair."""
    _answered(row, method)
    label = row.get("label")
    if label is None:
        if row.get("rejected_response") is None and not row.get("rejected_messages"):
            raise _problem(row, f"{method} needs a boolean `label` (desirable answer or not), or a `rejected_response`")
        pair = encode_pair(template, row, method)  # a preference pair is one desirable and one undesirable row
        return [
            {"prompt_ids": pair["prompt_ids"], "completion_ids": pair["chosen_ids"], "label": True},
            {"prompt_ids": pair["prompt_ids"], "completion_ids": pair["rejected_ids"], "label": False},
        ]
    if not isinstance(label, bool):
        raise _problem(row, f"`label` must be true or false, got {label!r}")
    prompt = template.encode_prompt(row).input_ids
    full = template.encode(row).input_ids
    start = _common_prefix(prompt, full)
    return [{"prompt_ids": prompt[:start], "completion_ids": full[start:], "label": label}]


def encode_conversations(template: Template, row: Any, method: str) -> Feature:
    """``chosen_ids`` and ``rejected_ids``, each the whole conversation (prompt and answer), as a reward model
    scores them; the row's optional numeric ``margin`` (how much better the chosen answer is) comes along."""
    pair = encode_pair(template, row, method)
    if has_media(pair):
        raise _problem(row, f"{method} trains on text rows only; this row has images, audio or video")
    feature: Feature = {side: pair["prompt_ids"] + pair[side] for side in ("chosen_ids", "rejected_ids")}
    margin = row.get("margin")
    if margin is not None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise _problem(row, f"`margin` must be a number, got {margin!r}")
        feature["margin"] = float(margin)
    return feature


def encode_preference_rows(template: Template, rows: Iterable[Any], *, method: str, shape: str) -> list[Feature]:
    """Encode every row for `method` in its data `shape` (`methods.DataShape`); a row missing what the method
    needs raises a `DataError` naming it."""
    if shape == "paired":
        return [encode_pair(template, row, method) for row in rows]
    if shape == "conversations":
        return [encode_conversations(template, row, method) for row in rows]
    return [feature for row in rows for feature in encode_unpaired(template, row, method)]
