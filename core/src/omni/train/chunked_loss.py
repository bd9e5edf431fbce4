"""Cross-entropy from the last hidden states, a chunk of tokens at a time: the [tokens x vocabulary] logits
are never held whole.

The model runs as usual, but its output projection (``lm_head``) is handed an empty slice of the hidden
states, which are kept aside (`HeadInputs`). `chunked_cross_entropy` then projects `chunk_tokens` tokens at a
time under activation checkpointing: each chunk's logits live only while its loss is computed, and again while
its gradient is (they are recomputed in backward). The head is called as a module, so an adapter on it (LoRA
on ``lm_head``) trains as usual. Written here because transformers' own fused loss (liger-kernel's) needs
Triton on CUDA; this runs on every device.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from omni.errors import OmniError
from omni.template.base import IGNORE_INDEX

# Config fields of models that change the logits after the output projection (Gemma's soft-capping, Cohere's
# and Granite's scales): a loss from the projection alone would differ, so those models take the plain loss.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


class HeadInputs:
    """While active, the model's output projection receives an empty slice of its input and `hidden` keeps
    the whole input (the hidden states at the positions the model was asked logits for)."""

    def __init__(self, model: Any) -> None:
        self.head = output_projection(model)
        self.hidden: torch.Tensor | None = None
        self._handle: Any = None

    def _capture(self, module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        self.hidden = args[0]
        return (args[0][..., :0, :], *args[1:])

    def __enter__(self) -> HeadInputs:
        self._handle = self.head.register_forward_pre_hook(self._capture)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()
        if exc[0] is None and self.hidden is None:
            raise OmniError(
                "--loss-chunk-tokens: the model computed its logits without calling its output embeddings; "
                "train it with --loss-chunk-tokens 0"
            )


def output_projection(model: Any) -> torch.nn.Module:
    """The module mapping hidden states to vocabulary logits; a one-line error for models the chunked loss
    cannot take (no such module, or logits transformed after it)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise OmniError(
            f"--loss-chunk-tokens: {type(model).__name__} has no output embeddings to project chunks with; "
            "use --loss-chunk-tokens 0"
        )
    config = getattr(model, "config", None)
    configs = [config, *(getattr(config, name, None) for name in getattr(config, "sub_configs", {}) or {})]
    for field in _LOGIT_TRANSFORMS:
        if any(getattr(c, field, None) not in (None, 1, 1.0) for c in configs if c is not None):
            raise OmniError(
                f"--loss-chunk-tokens: this model transforms its logits after the projection ({field}); "
                "use --loss-chunk-tokens 0"
            )
    return head


def _chunk_loss_sum(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return F.cross_entropy(logits, targets, reduction="sum")


def chunked_cross_entropy(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk_tokens: int
) -> torch.Tensor:
    """The summed cross-entropy of ``head(hidden)`` against `targets` (`IGNORE_INDEX` skipped), in float32.

    `hidden` is (..., tokens, width) and `targets` (..., tokens). At most `chunk_tokens` rows of logits exist at
    once, in forward and in backward; gradients reach `hidden` and the head's trainable parameters.
    """
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1).to(hidden.device)
    keep = targets != IGNORE_INDEX
    hidden, targets = hidden[keep], targets[keep]
    if targets.numel() <= chunk_tokens:  # one chunk: nothing to save by recomputing its logits in backward
        return _chunk_loss_sum(head, hidden, targets)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk_tokens):
        end = start + chunk_tokens
        # Reentrant=False recomputes the chunk's logits in backward with the same dropout draws (LoRA dropout).
        total = total + checkpoint(_chunk_loss_sum, head, hidden[start:end], targets[start:end], use_reentrant=False)
    return total
