"""Attention for padding-free batches that does no work across sequence boundaries.

transformers runs a padding-free row (several sequences, position ids restarting at each) through SDPA
with a block-diagonal mask over the whole row: the cost grows with the square of the row's length, and
with a mask the kernels lose their causal fast path. `packed_sdpa_attention` runs SDPA once per sequence
with ``is_causal=True`` instead, which gives the same output and gradients (tested) for the sum of the
squares of the sequence lengths. Anything else (sliding windows, a KV cache, several rows, multimodal
position ids) goes to transformers' own SDPA with the mask it built.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F

PACKED_SDPA = "omni_packed_sdpa"

# The sequence lengths of the last position-id tensor seen: every layer of one forward gets the same
# tensor, so its boundaries are read to the host once per forward rather than once per layer.
_last_lengths: tuple[weakref.ref, list[int]] | None = None


def _sequence_lengths(position_ids: torch.Tensor) -> list[int]:
    global _last_lengths
    if _last_lengths is not None and _last_lengths[0]() is position_ids:
        return _last_lengths[1]
    starts = (position_ids[0] == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    lengths = [end - start for start, end in zip(starts, [*starts[1:], position_ids.shape[1]], strict=True)]
    _last_lengths = (weakref.ref(position_ids), lengths)
    return lengths


def _per_sequence(module: Any, query: torch.Tensor, key: torch.Tensor, position_ids: Any) -> bool:
    return (
        isinstance(position_ids, torch.Tensor)
        and position_ids.dim() == 2
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2]
        and getattr(module, "is_causal", True)
        and getattr(module, "sliding_window", None) is None
    )


def packed_sdpa_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: (batch, heads, length, head dim) in, (batch, length,
    heads, head dim) out."""
    if not _per_sequence(module, query, key, position_ids):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, position_ids=position_ids,
            **kwargs,
        )  # fmt: skip
    lengths = _sequence_lengths(position_ids)
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    outputs = [
        F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scaling, enable_gqa=grouped)
        for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2), strict=True)
    ]
    return torch.cat(outputs, 2).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `PACKED_SDPA` a name transformers models accept as their attention implementation."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_SDPA, sdpa_mask)  # the fallback path needs transformers' own mask


def use_packed_attention(model: Any) -> bool:
    """Switch a text-only model that uses SDPA to `PACKED_SDPA`; returns whether it was switched.

    Models with sub-models (vision or audio towers) keep their attention: their position ids are not
    plain per-sequence positions.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is None or config.sub_configs or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    register()
    base.set_attn_implementation(PACKED_SDPA)
    return True
