"""`run_gkd(job)`: distil `--teacher-model` into the prepared student with TRL's GKDTrainer.

omni encodes the rows with its template (the same ids `omni sft` trains on); TRL's ChatML collator takes them
as they are (`input_ids` with a `completion_mask` marking the answer), pads them and gives the prompts the
student and teacher sample from. TRL samples, computes the generalized JSD and trains.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omni.api import DataError, OmniError, Template, TrainingJob, TrainResult, log_line

from omni_plugin_gkd.options import GkdOptions


def _problem(row: Any, message: str) -> DataError:
    return DataError(getattr(row, "source", "<rows>"), getattr(row, "location", None), message)


def encode_row(template: Template, row: Any) -> dict[str, Any]:
    """``input_ids`` (prompt and answer) and ``completion_mask`` (1 on the answer) for a row ending with an answer."""
    messages = row.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        raise _problem(row, "gkd needs `messages` ending with an assistant answer (trained on when not sampling)")
    prompt = template.encode_prompt(row)
    full = template.encode(row)
    if full.extras:
        raise _problem(row, "gkd trains on text rows only; this row has images, audio or video")
    ids = list(full.input_ids)
    start = 0
    for a, b in zip(prompt.input_ids, ids, strict=False):  # the answer starts where the two renderings diverge
        if a != b:
            break
        start += 1
    if start == 0 or start == len(ids):
        raise _problem(row, "the row has no prompt tokens or no answer tokens after its prompt")
    return {"input_ids": ids, "completion_mask": [0] * start + [1] * (len(ids) - start), "prompt": ""}


def load_teacher(job: TrainingJob, options: GkdOptions) -> Any:
    """The teacher, loaded as omni loads models (same dtype and attention flags), frozen."""
    from omni.api import load_model

    if not options.teacher_model:
        raise OmniError("--algo gkd needs --teacher-model: the model to distil from (name, folder or hub id)")
    teacher = load_model(dataclasses.replace(job.options, model=options.teacher_model), job.registry, for_training=True)
    student_vocab = job.model.config.get_text_config().vocab_size
    teacher_vocab = teacher.model.config.get_text_config().vocab_size
    if student_vocab != teacher_vocab:
        raise OmniError(
            f"--teacher-model {options.teacher_model} has a vocabulary of {teacher_vocab} tokens, the student "
            f"{student_vocab}; GKD compares their next-token distributions, so they must share one tokenizer"
        )
    log_line(f"gkd: teacher {teacher.spec.name} from {teacher.path}")
    return teacher.model.eval().requires_grad_(False)


def _config(job: TrainingJob, options: GkdOptions, has_eval: bool) -> Any:
    from trl.experimental.gkd import GKDConfig

    args = job.training_arguments(has_eval=has_eval)
    base = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init}
    own = {
        "lmbda": options.lmbda,
        "beta": options.beta,
        "seq_kd": options.seq_kd,
        "temperature": options.temperature,
        "max_new_tokens": options.max_completion_length,
        "max_length": job.options.max_length,
    }
    return GKDConfig(**base, **own)


def run_gkd(job: TrainingJob) -> TrainResult:
    """Distil the teacher into the job's model and write omni's usual outputs."""
    import os

    from datasets import Dataset

    # TRL warns on every import from trl.experimental; omni's docs say GKD runs on its experimental trainer.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.gkd import GKDTrainer

    options: GkdOptions = job.algorithm_options
    for name in ("lmbda", "beta"):
        value = getattr(options, name)
        if not 0.0 <= value <= 1.0:
            raise OmniError(f"--{name} must be between 0 and 1, got {value}")
    train = [encode_row(job.template, row) for row in job.train_rows]
    val = [encode_row(job.template, row) for row in job.val_rows or []]
    teacher = load_teacher(job, options)
    log_line(f"gkd: {len(train)} training rows, {len(val)} validation rows")
    trainer = GKDTrainer(
        model=job.model,
        teacher_model=teacher,
        args=_config(job, options, has_eval=bool(val)),
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(val) if val else None,
        processing_class=job.tokenizer,
        callbacks=job.callbacks(),
    )
    return job.train(trainer)
