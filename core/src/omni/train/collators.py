"""Batch encoded rows for causal-LM training: dynamic padding, or padding-free concatenation.

Every collator also returns ``num_tokens``, the batch's real (non-pad) token count as a Python int for
throughput figures, and ``loss_positions``: the sequence positions whose next token is a training
target. `omni.train.trainer.OmniTrainer` asks the model for logits only there (``logits_to_keep``), so the
vocabulary projection is never computed for prompt or padding positions. It is computed here, on the
host, so the training step needs no device-to-host sync to find it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from omni.errors import OmniError
from omni.template.base import IGNORE_INDEX, TOKEN_AXIS_KEYS, TOKEN_TYPE_KEYS

Feature = dict[str, Any]


def _loss_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions p (over the sequence axis) where some row has a target at p + 1."""
    has_target = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return has_target.nonzero().flatten()


def merge_extras(features: Sequence[Feature], skip: set[str], *, length: int | None = None) -> dict[str, Any]:
    """Modality tensors (pixel_values, image_grid_thw, input_features ...) of several rows as one batch's.

    Each tensor's first axis lists items (image patches, audio clips, grids), so rows are joined along it
    in row order: the model pairs items with placeholder tokens in the same order. Rows without a key
    add nothing to it. Where later axes differ (audio features of different lengths) they are zero-padded
    at the end, and a mask padded with zeros marks what is padding.

    Per-token inputs (`TOKEN_AXIS_KEYS`, (1, tokens, ...) per row) are batched by row: their token axis is
    zero-padded to `length` (the padded ids' length) where given, so a pad attends to nothing. A model taking
    them (Mllama) takes its images by batch row too, so a batch mixing rows without them is refused.
    """
    keys = list(dict.fromkeys(k for f in features for k in f if k not in skip))
    by_row = [k for k in keys if k in TOKEN_AXIS_KEYS]
    if by_row and not all(by_row[0] in f for f in features):
        raise OmniError(
            f"a batch mixes rows with and without images, and this model's {by_row[0]} needs images in every row "
            "of a batch (its processor refuses such batches too); give every row an image, or use batches of 1"
        )
    merged = {}
    for key in keys:
        parts = [torch.as_tensor(f[key]) for f in features if key in f]
        if parts[0].dim() == 0:
            raise OmniError(f"modality value {key!r} is a scalar; collators join tensors with an item axis")
        trailing = [max(p.shape[d] for p in parts) for d in range(1, parts[0].dim())]
        if key in by_row and length is not None:
            trailing[0] = length
        padded = []
        for p in parts:
            widths = [w for d in reversed(range(1, p.dim())) for w in (0, trailing[d - 1] - p.shape[d])]
            padded.append(torch.nn.functional.pad(p, widths) if any(widths) else p)
        merged[key] = torch.cat(padded)
    return merged


def _positions(feature: Feature) -> torch.Tensor:
    """A row's position ids: (length,) for text models, (channels, length) for multimodal rotary positions
    (channel 0 the plain text positions), or ``arange`` when the row has none."""
    if "position_ids" in feature:
        positions = torch.as_tensor(feature["position_ids"])
        return positions if positions.is_floating_point() or positions.dim() > 1 else positions.long()
    return torch.arange(len(feature["input_ids"]))


def _text_positions(positions: torch.Tensor) -> torch.Tensor:
    return positions[0] if positions.dim() > 1 else positions


_TOKEN_KEYS = {"input_ids", "labels", "position_ids", *TOKEN_TYPE_KEYS}


def _token_types(features: Sequence[Feature], length: int | None) -> dict[str, torch.Tensor]:
    """The batch's per-token modality ids: (rows, length) right-padded, or (1, total) when `length` is None;
    zero (text) for padding and for rows without them."""
    out = {}
    for key in TOKEN_TYPE_KEYS:
        if not any(key in f for f in features):
            continue
        rows = [
            torch.as_tensor(f[key]).flatten() if key in f else torch.zeros(len(f["input_ids"]), dtype=torch.long)
            for f in features
        ]
        if length is None:
            out[key] = torch.cat(rows)[None]
        else:
            out[key] = torch.zeros((len(rows), length), dtype=torch.long)
            for i, row in enumerate(rows):
                out[key][i, : len(row)] = row
    return out


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
        # Rows whose template computed their positions (multimodal rotary ones) keep them; pads take zeros.
        positions = {"position_ids": _padded_positions(features, longest)} if "position_ids" in features[0] else {}
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            **positions,
            **_token_types(features, longest),
            "loss_positions": _loss_positions(labels),
            "num_tokens": int(attention_mask.sum()),
            **merge_extras(features, _TOKEN_KEYS, length=longest),
        }


def _padded_positions(features: Sequence[Feature], longest: int) -> torch.Tensor:
    """Each row's position ids right-padded with zeros: (rows, longest), or (channels, rows, longest)."""
    rows = [_positions(f) for f in features]
    out = torch.zeros((*rows[0].shape[:-1], len(rows), longest), dtype=rows[0].dtype)
    for i, positions in enumerate(rows):
        out[..., i, : positions.shape[-1]] = positions
    return out


@dataclass
class PaddingFreeCollator:
    """Concatenates a batch into one row with no padding; ``position_ids`` restart at every sequence.

    transformers detects the restarts (`masking_utils.find_packed_sequence_indices`) and builds a
    block-diagonal causal mask, so no token attends across sequences. The first label of every sequence
    is masked: in the concatenated row it would be "predicted" from the previous sequence's last token,
    which an unpacked batch never does. Rows already packed by `pack_rows` carry their own position_ids.

    Qwen2-VL-style models compute their 3-D rotary positions (M-RoPE) from each whole row; concatenated, the
    rows would get text positions instead. `rope_index` (see `multimodal_rope_index`) gives each such row its
    positions, as (4, length): the text positions, which mark where a sequence restarts, then the model's three.
    """

    rope_index: Callable[[Feature], torch.Tensor] | None = None

    def __call__(self, features: Sequence[Feature]) -> dict[str, torch.Tensor]:
        """Collate rows into tensors of shape (1, total tokens)."""
        ids, labels, positions = [], [], []
        needs_rope_index = any("mm_token_type_ids" in f and "position_ids" not in f for f in features)
        if needs_rope_index and self.rope_index is None:
            raise OmniError(
                "--padding-free/--packing: this vision-language model computes its multimodal rotary positions "
                "(M-RoPE) from each whole row, which concatenating rows would break; train it without them"
            )
        per_token_media = next((key for f in features for key in TOKEN_AXIS_KEYS if key in f), None)
        if per_token_media:
            raise OmniError(
                f"--padding-free/--packing: this vision-language model's {per_token_media} pairs each row's tokens "
                "with that row's images, which concatenating rows would break; train it without them"
            )
        for f in features:
            row_ids = torch.as_tensor(f["input_ids"], dtype=torch.long)
            row_labels = torch.as_tensor(f["labels"], dtype=torch.long).clone()
            row_pos = self.rope_index(f) if needs_rope_index and self.rope_index else _positions(f)
            row_labels[_text_positions(row_pos) == 0] = IGNORE_INDEX
            ids.append(row_ids)
            labels.append(row_labels)
            positions.append(row_pos)
        flat_labels = torch.cat(labels)[None]
        # Multimodal positions (channels, length) become (channels, 1, total), as the model takes them.
        flat_positions = torch.cat(positions, dim=-1).unsqueeze(-2)
        return {
            "input_ids": torch.cat(ids)[None],
            "labels": flat_labels,
            "position_ids": flat_positions,
            **_token_types(features, None),
            "loss_positions": _loss_positions(flat_labels),
            "num_tokens": flat_labels.shape[1],
            **merge_extras(features, _TOKEN_KEYS),
        }


def multimodal_rope_index(model: Any) -> Callable[[Feature], torch.Tensor] | None:
    """For a model with multimodal rotary positions (a module with transformers' ``get_rope_index``: Qwen2-VL,
    Qwen2.5-VL, Qwen3-VL), the function giving one encoded row its padding-free positions, (4, length): the text
    positions, then the 3-D ones the model computes for the whole row. None for other models."""
    get_rope_index = next((m.get_rope_index for m in model.modules() if hasattr(m, "get_rope_index")), None)
    if get_rope_index is None:
        return None

    def rope_index(feature: Feature) -> torch.Tensor:
        ids = torch.as_tensor(feature["input_ids"], dtype=torch.long)[None]
        text = torch.arange(ids.shape[1])
        grids = {key: feature[key] for key in ("image_grid_thw", "video_grid_thw") if feature.get(key) is not None}
        if not grids:  # a text row: every channel counts like the text
            return text.expand(4, -1)
        types = torch.as_tensor(feature["mm_token_type_ids"]).reshape(1, -1)
        with torch.no_grad():
            spatial, _ = get_rope_index(ids, mm_token_type_ids=types, attention_mask=torch.ones_like(ids), **grids)
        return torch.cat([text[None], spatial[:, 0].cpu()])

    return rope_index


@dataclass
class SequenceShardCollator:
    """Batches for rows split across `shards` processes (sequence parallel, see `Strategy.sequence_parallel_size`).

    The wrapped collator's batch is padded at the end to a length divisible by `shards`, with
    ``position_ids`` (each shard keeps its tokens' positions in the whole row; pads continue their row's
    positions). ``attention_mask`` is dropped: pads only follow a row's last token, which causal attention
    never lets earlier tokens see. ``loss_positions`` is dropped: the strategy cuts the sequence, so the
    trainer finds each shard's own.

    Rows with media (or multimodal rotary positions) cannot be cut on their token ids: the model puts the
    towers' features at the placeholder tokens and lays out the positions over the whole row. Their batch keeps
    the plain text positions as ``position_ids`` and fills ``whole_rows``, a plain dict (not a tensor, so the
    strategy hands it whole to every process of the row) with the model's inputs for the whole rows; the
    strategy cuts ``row_columns``, each token's column, like the tokens. Each process then runs the towers on
    the whole rows and `omni.train.trainer.split_decoder_inputs` keeps its columns before the decoder layers.
    Text batches carry both keys too (``whole_rows`` None): the processes of a row exchange each batch key by
    key, so every batch has the same keys whichever rows it holds. Per-token media inputs (`TOKEN_AXIS_KEYS`:
    Mllama's cross_attention_mask) would need cutting inside the model too: they are refused.
    """

    collator: Any
    shards: int
    pad_token_id: int

    def __call__(self, features: Sequence[Feature]) -> dict[str, Any]:
        """Collate with the wrapped collator, then make the batch divisible into `shards` shards."""
        batch = self.collator(features)
        per_token_media = next((key for key in TOKEN_AXIS_KEYS if key in batch), None)
        if per_token_media:
            raise OmniError(
                f"sequence parallelism: this vision-language model's {per_token_media} pairs every token with image "
                "tiles, which cutting the sequence between processes would break; train it with sequence parallel size 1"
            )
        batch.pop("loss_positions", None)
        real = batch.pop("attention_mask", None)
        input_ids, labels = batch["input_ids"], batch["labels"]
        rows, length = input_ids.shape
        positions = batch.pop("position_ids", None)
        if positions is None:
            positions = torch.arange(length).expand(rows, length)
        media = {key: batch.pop(key) for key in list(batch) if key not in _TOKEN_KEYS and key not in BATCH_INFO_KEYS}
        pad = -length % self.shards
        input_ids = torch.nn.functional.pad(input_ids, (0, pad), value=self.pad_token_id)
        labels = torch.nn.functional.pad(labels, (0, pad), value=IGNORE_INDEX)
        lengths = real.sum(1).tolist() if real is not None else [length] * rows
        positions = _continued_positions(positions, lengths, length + pad)
        text = positions[0] if positions.dim() == 3 else positions  # (channels, rows, length): channel 0
        # Text rows' multimodal positions repeat the text positions on every channel: the model expands those.
        whole = bool(media) or (positions.dim() > 2 and not bool((positions == text).all()))
        return {
            **batch,
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": text.contiguous(),
            "whole_rows": {"input_ids": input_ids, "position_ids": positions, **media} if whole else None,
            "row_columns": torch.arange(length + pad).expand(rows, -1).contiguous(),
        }


def _continued_positions(positions: torch.Tensor, lengths: list[int], total: int) -> torch.Tensor:
    """(…, rows, total) positions whose every row goes on counting past its last real token (pads included):
    a restart inside a row would read as a second sequence packed into it."""
    out = torch.nn.functional.pad(positions, (0, total - positions.shape[-1]))
    for row, n in enumerate(lengths):
        out[..., row, n:] = out[..., row, n - 1 : n] + torch.arange(1, total - n + 1, dtype=out.dtype)
    return out


def pack_rows(rows: Iterable[Feature], max_length: int, *, open_bins: int | None = None) -> Iterator[Feature]:
    """Bin-pack encoded rows into rows of at most `max_length` tokens (first fit, in data order).

    Each packed row holds ``input_ids``, ``labels`` and ``position_ids`` restarting per original row,
    ready for `PaddingFreeCollator`. The order of the input is kept (no sort by length), so a packed
    epoch sees the data in the order the sampler would have. With `open_bins` (streaming), at most that
    many bins stay open and the fullest is yielded when another is needed; without it every bin stays open
    until the rows run out. Rows carrying modality tensors are not packable (their tensors cannot be split
    back per row) and raise `OmniError`, as do rows over `max_length`.
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
            if open_bins is not None and len(bins) >= open_bins:
                fullest = min(range(len(room)), key=room.__getitem__)
                yield _packed(bins.pop(fullest))
                room.pop(fullest)
            bins.append([row])
            room.append(max_length - n)
        else:
            bins[slot].append(row)
            room[slot] -= n
    for group in bins:
        yield _packed(group)


def _packed(group: list[Feature]) -> Feature:
    return {
        "input_ids": [t for r in group for t in r["input_ids"]],
        "labels": [t for r in group for t in r["labels"]],
        "position_ids": [p for r in group for p in range(len(r["input_ids"]))],
    }
