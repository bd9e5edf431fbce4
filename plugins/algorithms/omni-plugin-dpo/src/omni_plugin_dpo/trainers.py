"""TRL trainer classes that take omni-encoded features instead of tokenizing text themselves.

TRL's DPO and KTO trainers tokenize in `_prepare_dataset`; its CPO and ORPO trainers in `tokenize_row`.
Overriding just that step lets every method train on ids from omni's template, unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

from omni.registry import import_ref
from omni.template.base import IGNORE_INDEX


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

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if getattr(self, "calculate_KL", False):
            dataset = dataset.map(_rotate_completions, batched=True, batch_size=args.per_device_train_batch_size)
        return dataset


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
