"""Rows for quantized export: calibration batches encoded with the model's template, and held-out perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from omni.registry import Registry

# Collator outputs that are not model inputs.
_NOT_MODEL_INPUTS = ("loss_positions", "num_tokens")


def encoded_batches(
    loaded: Any, datasets: Sequence[str], *, n_samples: int, max_length: int, registry: Registry
) -> list[dict[str, Any]]:
    """The first `n_samples` rows of `datasets` (files or registered names, as `--dataset` takes them), each
    encoded with the model's chat template into a one-row batch of model inputs, with labels.

    `loaded` is the `LoadedModel` whose template, tokenizer and modalities apply; rows over `max_length`
    tokens are truncated.
    """
    from omni.data.loading import load_datasets
    from omni.data.options import DataOptions
    from omni.template.base import TemplateOptions
    from omni.template.resolve import get_template
    from omni.train.collators import PaddingCollator
    from omni.train.encoding import RowEncoder

    rows = load_datasets(
        DataOptions(dataset=list(datasets)), registry, require_answer=False, modalities=loaded.spec.modalities
    ).train[:n_samples]
    template = get_template(
        None, loaded.processor, TemplateOptions(max_length=max_length), model_spec=loaded.spec, registry=registry
    )
    encode = RowEncoder(template, max_length=max_length)
    collate = PaddingCollator(loaded.tokenizer.pad_token_id)
    batches = []
    for row in rows:
        for feature in encode(row):
            batch = collate([feature])
            batches.append({key: value for key, value in batch.items() if key not in _NOT_MODEL_INPUTS})
    return batches


def perplexity(model: Any, batches: Sequence[dict[str, Any]]) -> float:
    """exp of the mean negative log-likelihood of every labelled token in `batches` (from `encoded_batches`)."""
    import torch

    from omni.template.base import IGNORE_INDEX

    total_loss = 0.0
    total_tokens = 0
    with torch.no_grad():
        for batch in batches:
            targets = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())  # the model shifts labels by one
            total_loss += float(model(**batch).loss) * targets
            total_tokens += targets
    return math.exp(total_loss / total_tokens)
