"""The built-in algorithms `sft` and `pt`: next-token cross-entropy on the transformers Trainer.

They differ only in which tokens are targets (the answers, or everything), which the job's template
options already decide; both are ``run(job) -> TrainResult`` as every algorithm is.
"""

from __future__ import annotations

from omni.train.collators import (
    PaddingCollator,
    PaddingFreeCollator,
    SequenceShardCollator,
    multimodal_rope_index,
    pack_rows,
)
from omni.train.encoding import EncodedSet, EncodedStream, RowEncoder, encode_rows
from omni.train.job import TrainingJob, TrainResult, log_line
from omni.train.packed_attention import use_packed_attention
from omni.train.trainer import OmniTrainer

DEFAULT_PACKING_LENGTH = 2048  # tokens per packed row when --packing is used without --max-length


def _describe(name: str, encoded: EncodedSet) -> str:
    dropped = f" ({encoded.dropped} dropped: too long, or nothing left to train)" if encoded.dropped else ""
    return f"{name}: {len(encoded.features)} rows, {encoded.num_tokens:,} tokens{dropped}"


def run_sft(job: TrainingJob) -> TrainResult:
    """Supervised fine-tuning (loss on the answers, or on all tokens for `pt`)."""
    options = job.options
    encoder = RowEncoder(
        job.template,
        max_length=options.max_length,
        plain_text=job.command == "pt",
        skip_too_long=options.skip_bad_rows,
    )
    packing_length = (options.max_length or DEFAULT_PACKING_LENGTH) if options.packing else None
    val = encode_rows(encoder, job.val_rows) if job.val_rows else None
    streaming_overrides = {}
    if isinstance(job.train_rows, list):
        train = encode_rows(encoder, job.train_rows)
        log_line(_describe("train", train))
        train_features = train.features
        if packing_length:
            train_features = list(pack_rows(train_features, packing_length))
            log_line(f"packing: {len(train.features)} rows into {len(train_features)} rows")
    else:
        train_features = EncodedStream(job.train_rows, encoder, packing_length)
        # Every process reads its own share of the stream; dispatching would also cut `loss_positions`.
        streaming_overrides = {"accelerator_config": {"dispatch_batches": False}}
        log_line(
            "train: streaming, rows encoded" + (" and packed" if packing_length else "") + " as training reads them"
        )
    if val is not None:
        log_line(_describe("validation", val))
    if options.padding_free or options.packing:
        collator = PaddingFreeCollator(rope_index=multimodal_rope_index(job.model))
        if use_packed_attention(job.model):
            log_line("padding-free: attention runs per sequence")
    else:
        collator = PaddingCollator(pad_token_id=job.tokenizer.pad_token_id)
    if job.strategy and job.strategy.sequence_parallel_size() > 1:
        shards = job.strategy.sequence_length_multiple()
        collator = SequenceShardCollator(collator, shards=shards, pad_token_id=job.tokenizer.pad_token_id)
    has_eval = bool(val and val.features)
    trainer = OmniTrainer(
        model=job.model,
        args=job.training_arguments(has_eval=has_eval, **streaming_overrides),
        train_dataset=train_features,
        eval_dataset=val.features if has_eval else None,
        data_collator=collator,
        processing_class=job.tokenizer,
        callbacks=job.callbacks(),
        tuner=job.tuner,
        loss_chunk_tokens=job.loss_chunk_tokens(),
    )
    return job.train(trainer)


run_pt = run_sft  # the job's options make pt's loss cover every token (loss_scope all)
