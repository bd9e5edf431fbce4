"""Turn dataset rows into training features (token ids and labels).

Rows in memory are encoded once before training starts: the data loader stays trivial (the collator
only concatenates or pads lists), so no worker processes are needed and every step's time goes to the
model. ``--streaming`` rows are encoded as training reads them (`EncodedStream`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from omni.template.base import IGNORE_INDEX, RowTooLongError, Template
from omni.train.collators import pack_rows

Feature = dict[str, Any]
STREAM_OPEN_BINS = 64  # bins a streamed packing keeps open: near first-fit density, bounded memory


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


class RowEncoder:
    """Encodes one row into training features with `template`, counting the rows it drops.

    With `plain_text` (pre-training), text-only rows bypass the chat format. A row whose labels are all
    ignored teaches nothing and is dropped and counted, rather than diluting the loss normalisation; so
    is a row over `max_length` when `skip_too_long` (``--skip-bad-rows``).
    """

    def __init__(
        self,
        template: Template,
        *,
        max_length: int | None = None,
        plain_text: bool = False,
        skip_too_long: bool = False,
    ) -> None:
        self.template = template
        self.max_length = max_length
        self.plain_text = plain_text
        self.skip_too_long = skip_too_long
        self.dropped = 0

    def __call__(self, row: dict[str, Any]) -> list[Feature]:
        """The row's features: one, several (long plain text is chunked), or none (dropped)."""
        text = _plain_text(row) if self.plain_text else None
        if text is not None:
            return encode_text(self.template.tokenizer, text, self.max_length)
        try:
            encoded = self.template.encode(row)
        except RowTooLongError:
            if not self.skip_too_long:
                raise
            self.dropped += 1
            return []
        if all(label == IGNORE_INDEX for label in encoded.labels[1:]):
            self.dropped += 1
            return []
        return [{"input_ids": list(encoded.input_ids), "labels": list(encoded.labels), **encoded.extras}]


def encode_rows(encoder: RowEncoder, rows: Iterable[dict[str, Any]]) -> EncodedSet:
    """Every row encoded up front, with the count of rows `encoder` dropped."""
    dropped_before = encoder.dropped
    features = [feature for row in rows for feature in encoder(row)]
    return EncodedSet(features, encoder.dropped - dropped_before)


class EncodedStream(IterableDataset):
    """Rows encoded (and packed) while training reads them, for ``--streaming``: nothing is held in memory.

    Every iteration reads `rows` again from the start, in order, so an epoch (and a resumed run's skipped
    batches) sees the same features. Each training process, and each data-loader worker in it, takes every
    n-th row: every process reads its own stream, so the Trainer must not dispatch batches from one.
    """

    def __init__(self, rows: Iterable[dict[str, Any]], encoder: RowEncoder, packing_length: int | None) -> None:
        self.rows = rows
        self.encoder = encoder
        self.packing_length = packing_length

    def __iter__(self) -> Iterator[Feature]:
        shard, num_shards = _shard()
        rows = itertools.islice(self.rows, shard, None, num_shards)
        features = (feature for row in rows for feature in self.encoder(row))
        if self.packing_length:
            return pack_rows(features, self.packing_length, open_bins=STREAM_OPEN_BINS)
        return features


def _shard() -> tuple[int, int]:
    """(this reader's index, readers in all): one per data-loader worker in every training process."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    worker = get_worker_info()
    workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
    return rank * workers + worker_id, world * workers
