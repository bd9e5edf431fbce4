"""`run_preference(job)`: train the `--algo` preference method on the prepared job with its TRL trainer."""

from __future__ import annotations

import dataclasses
from typing import Any

from omni.api import OmniError, TrainingJob, TrainResult, import_ref, log_line

from omni_plugin_dpo.encoding import TOKEN_KEYS, encode_preference_rows, has_media
from omni_plugin_dpo.methods import BY_OPTIONS, Method
from omni_plugin_dpo.progress import with_rewards_on_bar
from omni_plugin_dpo.reference import DropReferenceAdapter, drop_reference_copy_if_exact, reference_model


def _config(method: Method, job: TrainingJob, options: Any, has_eval: bool) -> Any:
    """The method's TRL config: omni's training arguments plus the method's own options."""
    args = job.training_arguments(has_eval=has_eval)
    base = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init}
    return import_ref(method.config)(**{**base, **options.trl_config(), **method.fixed})


def _dataset(features: list[dict[str, Any]], media: bool) -> Any:
    """The features as a `datasets.Dataset` (TRL takes no other); modality tensors come back as tensors."""
    from datasets import Dataset

    dataset = Dataset.from_list(features)
    if not media:
        return dataset
    tensors = [name for name in dataset.column_names if name not in TOKEN_KEYS]
    return dataset.with_format("torch", columns=tensors, output_all_columns=True)


def run_preference(job: TrainingJob) -> TrainResult:
    """Train DPO, KTO, SimPO, ORPO, CPO or a reward model (whichever `--algo` names) and write omni's usual outputs."""
    from omni_plugin_dpo.trainers import encoded_trainer

    options = job.algorithm_options
    method = BY_OPTIONS[type(options)]  # each method has its own options class; `--algo` may be spelt `DPO`
    shape = method.shape
    train = encode_preference_rows(job.template, job.train_rows, method=method.name, shape=shape)
    val = encode_preference_rows(job.template, job.val_rows, method=method.name, shape=shape) if job.val_rows else []
    log_line(f"{method.name}: {len(train)} training rows, {len(val)} validation rows")
    media = any(has_media(f) for f in (*train, *val))
    if media and method.name != "dpo":
        raise OmniError(f"--algo {method.name} trains on text rows only; rows with images, audio or video need dpo")
    extra: dict[str, Any] = {}
    if method.reference:
        extra["ref_model"] = reference_model(job, getattr(options, "ref_model", None))
    trainer = encoded_trainer(method.trainer)(
        model=job.model,
        args=_config(method, job, options, has_eval=bool(val)),
        train_dataset=_dataset(train, media),
        eval_dataset=_dataset(val, media) if val else None,
        processing_class=job.tokenizer,
        callbacks=[*with_rewards_on_bar(job.callbacks()), DropReferenceAdapter()],
        **extra,
    )
    if method.reference and drop_reference_copy_if_exact(trainer.model):
        log_line(f"{method.name}: reference = the base model with the fresh adapter disabled")
    return job.train(trainer)
