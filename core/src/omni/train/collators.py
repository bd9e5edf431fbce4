"""Batch encoded rows for causal-LM training: dynamic padding, or padding-free concatenation.

Every collator also returns ``num_tokens``, the batch's real (non-pad) token count as a Python int for
throughput figures, and ``loss_positions``: the sequence positions whose next token is a training
target. `omni.train.trainer.OmniTrainer` asks the model for logits only there (``logits_to_keep``), so the
vocabulary projection is never computed for prompt or padding positions. It is computed here, on the
host, so the training step needs no device-to-host sync to find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from omni.errors import OmniError
from omni.template.base import IGNORE_INDEX

Feature = dict[str, Any]


def _loss_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions p (over the sequence axis) where some row has a target at p + 1."""
    has_target = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return has_target.nonzero().flatten()


def _stack_extras(features: Sequence[Feature], skip: set[str]) -> dict[str, Any]:
    """Modality tensors (pixel_values, input_features ...) joined along their first axis."""
    keys = [k for k in features[0] if k not in skip]
    return {k: torch.cat([torch.as_tensor(f[k]) for f in features]) for k in keys}


_TOKEN_KEYS = {"input_ids", "labels", "position_ids"}
BATCH_INFO_KEYS = ("num_tokens", "loss_positions")  # for the trainer, not for the model's forward


@dataclass
class PaddingCollator:
    """Right-pads each batch to its longest row (labels with -100); returns an attention mask."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[Feature]) -> dict[str, torch.Tensor]:
        """Collate rows of ``input_ids``/``labels`` (lists or tensors) into padded tensors."""
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[i, :n] = torch.as_tensor(f["input_ids"])
            labels[i, :n] = torch.as_tensor(f["labels"])
            attention_mask[i, :n] = 1
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            "loss_positions": _loss_positions(labels),
            "num_tokens": int(attention_mask.sum()),
            **_stack_extras(features, _TOKEN_KEYS),
        }


@dataclass
class PaddingFreeCollator:
    """Concatenates a batch into one row with no padding; ``position_ids`` restart at every sequence.

    transformers detects the restarts (`masking_utils.find_packed_sequence_indices`) and builds a
    block-diagonal causal mask, so no token attends across sequences. The first label of every sequence
    is masked: in the concatenated row it would be "predicted" from the previous sequence's last token,
    which an unpacked batch never does. Rows already packed by `pack_rows` carry their own position_ids.
    """

    def __call__(self, features: Sequence[Feature]) -> dict[str, torch.Tensor]:
        """Collate rows into tensors of shape (1, total tokens)."""
        ids, labels, positions = [], [], []
        for f in features:
            row_ids = torch.as_tensor(f["input_ids"], dtype=torch.long)
            row_labels = torch.as_tensor(f["labels"], dtype=torch.long).clone()
            if "position_ids" in f:
                row_pos = torch.as_tensor(f["position_ids"], dtype=torch.long)
            else:
                row_pos = torch.arange(len(row_ids))
            row_labels[row_pos == 0] = IGNORE_INDEX
            ids.append(row_ids)
            labels.append(row_labels)
            positions.append(row_pos)
        flat_labels = torch.cat(labels)[None]
        return {
            "input_ids": torch.cat(ids)[None],
            "labels": flat_labels,
            "position_ids": torch.cat(positions)[None],
            "loss_positions": _loss_positions(flat_labels),
            "num_tokens": flat_labels.shape[1],
            **_stack_extras(features, _TOKEN_KEYS),
        }


def pack_rows(rows: Sequence[Feature], max_length: int) -> list[Feature]:
    """Bin-pack encoded rows into rows of at most `max_length` tokens (first fit, in data order).

    Each packed row holds ``input_ids``, ``labels`` and ``position_ids`` restarting per original row,
    ready for `PaddingFreeCollator`. The order of the input is kept (no sort by length), so a packed
    epoch sees the data in the order the sampler would have. Rows carrying modality tensors are not
    packable (their tensors cannot be split back per row) and raise `OmniError`, as do rows over `max_length`.
    """
    bins: list[list[Feature]] = []
    room: list[int] = []
    for row in rows:
        if set(row) - _TOKEN_KEYS:
            raise OmniError("--packing works on text rows only; use --padding-free for multimodal data")
        n = len(row["input_ids"])
        if n > max_length:
            raise OmniError(f"a row of {n} tokens is longer than the packing length {max_length}; raise --max-length")
        slot = next((i for i, free in enumerate(room) if free >= n), None)
        if slot is None:
            bins.append([row])
            room.append(max_length - n)
        else:
            bins[slot].append(row)
            room[slot] -= n
    return [
        {
            "input_ids": [t for r in group for t in r["input_ids"]],
            "labels": [t for r in group for t in r["labels"]],
            "position_ids": [p for r in group for p in range(len(r["input_ids"]))],
        }
        for group in bins
    ]
