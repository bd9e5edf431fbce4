"""TRL trainer classes that take omni-encoded features instead of tokenizing text themselves.

TRL's DPO and KTO trainers tokenize in `_prepare_dataset`; its CPO and ORPO trainers in `tokenize_row`.
Overriding just that step lets every method train on ids from omni's template, unchanged.

DPO also trains on rows with images, audio or video (Qwen3-Omni, the vision-language families):
`MediaPreferenceCollator` adds the prompt's modality tensors and each sequence's own per-token inputs
(multimodal position ids, token types, Mllama's cross-attention mask) to TRL's concatenated
[chosen..., rejected...] batch, and `log_probs_from_logits` serves TRL's fused-LM-head call for models
whose forward must run whole (the multimodal merge happens there, not in a separable backbone).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from omni.api import IGNORE_INDEX, TOKEN_TYPE_KEYS, OmniError, import_ref, merge_extras

from omni_plugin_dpo.encoding import SEQUENCE_KEYS, TOKEN_KEYS, has_media

_SIDES = ("chosen", "rejected")


def _rotate_completions(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    # KTO estimates its KL term from mismatched (prompt, completion) pairs within a batch, as TRL builds them.
    batch["KL_completion_ids"] = [batch["completion_ids"][-1], *batch["completion_ids"][:-1]]
    return batch


class EncodedDatasetMixin:
    """For trainers that tokenize in `_prepare_dataset` (DPO, KTO): the features are used as they are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # These trainers batch prompt+answer as `input_ids`, so the Trainer can count tokens for omni's tokens/s.
        kwargs["args"].include_num_input_tokens_seen = "non_padding"
        super().__init__(*args, **kwargs)

        if has_media(next(iter(kwargs["train_dataset"]))):  # DPO on rows with images, audio or video
            self.data_collator = MediaPreferenceCollator(self.data_collator)
            # A model whose backbone TRL's fused LM head cannot call on its own gets the equivalent from logits.
            for model in (self.model, self.ref_model):
                if model is not None:
                    _serve_fused_calls_from_logits(
                        model.get_base_model() if hasattr(model, "get_base_model") else model
                    )

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if getattr(self, "calculate_KL", False):
            dataset = dataset.map(_rotate_completions, batched=True, batch_size=args.per_device_train_batch_size)
        return dataset


@dataclass
class MediaPreferenceCollator:
    """TRL's preference batch plus what a multimodal model needs beside the token ids.

    `tokens` (TRL's `DataCollatorForPreference`) lays out the batch as the chosen sequences of every row,
    then the rejected ones. Both halves see the same prompts, so the modality tensors are joined twice in
    that order (each placeholder run is paired with its image or clip). The `SEQUENCE_KEYS` inputs are each
    sequence's own, cut as TRL cuts the tokens and right-padded with zeros: position ids (..., length), and token
    types and per-token media inputs (1, length, ...), whose other axes are zero-padded to the batch's largest.
    """

    tokens: Any

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = self.tokens([{k: v for k, v in f.items() if k in TOKEN_KEYS} for f in features])
        width = batch["input_ids"].shape[1]
        keep = slice(-width, None) if self.tokens.truncation_mode == "keep_end" else slice(None, width)
        for key in SEQUENCE_KEYS:
            if not any(f"{side}_{key}" in f for f in features for side in _SIDES):
                continue
            rows = [_sequence_input(f, side, key) for side in _SIDES for f in features]
            batch[key] = _positions(rows, width, keep) if key == "position_ids" else _per_token(rows, width, keep)
        skip = {*TOKEN_KEYS, *(f"{side}_{key}" for side in _SIDES for key in SEQUENCE_KEYS)}
        batch.update(merge_extras([*features, *features], skip=skip))
        return batch


def _sequence_input(feature: dict[str, Any], side: str, key: str) -> torch.Tensor:
    """One sequence's `key` input; for a row without media in a batch with some, its token types (all text)."""
    value = feature.get(f"{side}_{key}")
    if value is not None:
        return torch.as_tensor(value)
    if key in TOKEN_TYPE_KEYS:
        return torch.zeros((1, len(feature["prompt_ids"]) + len(feature[f"{side}_ids"])), dtype=torch.long)
    raise OmniError(
        f"a batch mixes rows with and without images, and this model's {key} needs images in every row of a "
        "batch; give every row an image, or use --per-device-train-batch-size 1"
    )


def _positions(rows: list[torch.Tensor], width: int, keep: slice) -> torch.Tensor:
    """Position ids of shape (..., length) per sequence as one (..., sequences, width) tensor."""
    positions = torch.zeros((*rows[0].shape[:-1], len(rows), width), dtype=rows[0].dtype)
    for i, row in enumerate(rows):
        row = row[..., keep]
        positions[..., i, : row.shape[-1]] = row
    return positions


def _per_token(rows: list[torch.Tensor], width: int, keep: slice) -> torch.Tensor:
    """Per-token inputs of shape (1, length, ...) per sequence as one (sequences, width, ...) tensor."""
    rows = [row[0, keep] for row in rows]
    trailing = [max(row.shape[d] for row in rows) for d in range(1, rows[0].dim())]
    batch = rows[0].new_zeros((len(rows), width, *trailing))
    for i, row in enumerate(rows):
        batch[(i, *(slice(0, n) for n in row.shape))] = row
    return batch


def _serve_fused_calls_from_logits(model: Any) -> None:
    """Make `model(..., labels=, fused_lm_head=True)` work where TRL's fused head cannot.

    TRL's head runs ``model.base_model`` for hidden states and projects them itself. Qwen3-Omni's thinker
    (``base_model_prefix`` names no submodule, so its base model is itself) merges image, audio and video
    features inside its own forward, which also projects to logits. Its calls are answered from those
    logits: the same per-token fields TRL's kernel returns (log-probs, entropy, mean logit, top-1 hit,
    log-sum of squared probabilities), zero where the label is -100.
    """
    if model.base_model is not model or not getattr(model.forward, "__wrapped__", None):
        return
    from trl.trainer.utils import FusedCausalLMOutput

    whole_forward = type(model).forward

    @functools.wraps(whole_forward)
    def forward(self: Any, *args: Any, fused_lm_head: bool = False, labels: Any = None, **kwargs: Any) -> Any:
        if not fused_lm_head:
            return whole_forward(self, *args, labels=labels, **kwargs)
        kwargs.pop("num_items_in_batch", None)
        outputs = whole_forward(self, *args, **kwargs)
        fields = log_probs_from_logits(outputs.logits[:, :-1], labels[:, 1:])
        mask = fields.pop("label_mask")
        loss = -fields["log_probs"].sum() / mask.sum().clamp(min=1)
        return FusedCausalLMOutput(loss=loss, label_mask=mask, aux_loss=getattr(outputs, "aux_loss", None), **fields)

    model.forward = types.MethodType(forward, model)


def log_probs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """TRL's fused-head per-token fields for next-token `labels` (already shifted) from full `logits`."""
    mask = labels != IGNORE_INDEX
    logits = logits.float()
    logps = logits.log_softmax(-1)
    target = logps.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return {
        "log_probs": target.masked_fill(~mask, 0),
        "entropy": -(logps.exp() * logps).sum(-1).masked_fill(~mask, 0),
        "log_sum_sq_probs": torch.logsumexp(2 * logps, -1).detach().masked_fill(~mask, 0),
        "mean_logits": logits.mean(-1).detach().masked_fill(~mask, 0),
        "is_top1": (logits.argmax(-1) == labels) & mask,
        "label_mask": mask,
    }


class EncodedRowMixin:
    """For trainers that tokenize in `tokenize_row` (CPO, ORPO): rows become their padded-collator fields."""

    def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, list[int]]:
        prompt = feature["prompt_ids"]
        row = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
        for side in ("chosen", "rejected"):
            answer = feature[f"{side}_ids"]
            row[f"{side}_input_ids"] = prompt + answer
            row[f"{side}_attention_mask"] = [1] * (len(prompt) + len(answer))
            row[f"{side}_labels"] = [IGNORE_INDEX] * len(prompt) + answer
        return row


@functools.cache
def encoded_trainer(trainer_ref: str) -> type:
    """The TRL trainer `trainer_ref` ("module:Class") made to train on omni-encoded features."""
    base = import_ref(trainer_ref)
    mixin = EncodedRowMixin if hasattr(base, "tokenize_row") else EncodedDatasetMixin
    return type(f"Omni{base.__name__}", (mixin, base), {"__module__": __name__})
