"""`OmniTrainer`: the transformers Trainer with the tuner's parameter groups and a lean causal-LM loss."""

from __future__ import annotations

import resource
import sys
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments

from omni.errors import OmniError
from omni.template.base import IGNORE_INDEX
from omni.train.chunked_loss import HeadInputs, chunked_cross_entropy
from omni.train.options import TrainingOptions
from omni.train.tuner import Tuner


def training_arguments(
    options: TrainingOptions, output_dir: str, *, has_eval: bool, model_dtype: torch.dtype | None = None
) -> TrainingArguments:
    """transformers `TrainingArguments` for these options (omni does its own progress bar and log file).

    On a GPU that computes in bfloat16, bfloat16 and float32 weights (`model_dtype`) train under bfloat16
    autocast (mixed precision); float16 weights keep their own dtype.
    """
    eval_steps = options.eval_steps or options.save_steps
    return TrainingArguments(
        bf16=torch.cuda.is_available()
        and torch.cuda.is_bf16_supported()
        and model_dtype in (torch.bfloat16, torch.float32),
        # Several processes on a machine without a GPU talk over gloo (accelerate's multi-CPU mode).
        use_cpu=not torch.cuda.is_available(),
        output_dir=output_dir,
        num_train_epochs=options.num_train_epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.per_device_train_batch_size,
        per_device_eval_batch_size=options.per_device_eval_batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        max_grad_norm=options.max_grad_norm,
        lr_scheduler_type=options.lr_scheduler_type,
        warmup_steps=options.warmup_steps if options.warmup_steps > 0 else options.warmup_ratio,
        **checkpointing_arguments(options.gradient_checkpointing),
        seed=options.seed,
        data_seed=options.seed,
        logging_steps=options.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        metric_for_best_model=options.metric_for_best_model,
        greater_is_better=options.greater_is_better,
        save_strategy=options.save_strategy,
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        report_to=[r for r in options.report_to if r != "none"] or "none",
        dataloader_num_workers=options.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,  # rows are already tensors-to-be; the collator decides what is kept
        disable_tqdm=True,  # omni.train.progress draws the bar
        prediction_loss_only=True,
        use_liger_kernel=options.use_liger_kernel,
        torch_compile=options.torch_compile,
    )


def checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """The `TrainingArguments` fields that switch activation checkpointing on or off, under the installed
    transformers' names: `activation_checkpointing*` since it renamed them, `gradient_checkpointing*` before."""
    fields = TrainingArguments.__dataclass_fields__
    prefix = "activation" if "activation_checkpointing" in fields else "gradient"
    # Non-reentrant checkpointing back-propagates into frozen embeddings' outputs (LoRA, freeze).
    kwargs = {"use_reentrant": False} if enabled else None
    return {f"{prefix}_checkpointing": enabled, f"{prefix}_checkpointing_kwargs": kwargs}


class OmniTrainer(Trainer):
    """A `Trainer` whose loss is summed over target tokens and divided by the targets in the whole
    optimizer step (``num_items_in_batch``), so gradient accumulation and padding-free batches weigh
    every token the same as one big padded batch would.

    The model is asked for logits only at ``loss_positions`` (see `omni.train.collators`): for SFT most
    positions are prompt, and the vocabulary projection is the largest single matmul of a small model.
    Batches of more than `loss_chunk_tokens` target positions project and score them that many at a time
    (`omni.train.chunked_loss`); 0 always projects them at once.
    """

    def __init__(self, *args: Any, tuner: Tuner, loss_chunk_tokens: int = 0, **kwargs: Any) -> None:
        self.tuner = tuner
        self.loss_chunk_tokens = loss_chunk_tokens
        super().__init__(*args, **kwargs)
        # compute_loss below honours num_items_in_batch; this makes the Trainer count and pass it.
        self.model_accepts_loss_kwargs = True

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """AdamW over the tuner's parameter groups (e.g. LoRA+'s faster B matrices) when it has some."""
        if self.optimizer is None:
            groups = self.tuner.optimizer_param_groups(self.model, self.args.learning_rate)
            if groups is not None:
                optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                if {"params", "model", "optimizer_dict"} & set(optimizer_kwargs):  # e.g. GaLore, LOMO
                    raise OmniError(
                        f"optimizer {getattr(self.args.optim, 'value', self.args.optim)} builds its own parameter groups; "
                        f"it cannot take tuner {type(self.tuner).__name__}'s (e.g. --lora-plus-lr-ratio)"
                    )
                for group in groups:
                    group.setdefault("weight_decay", self.args.weight_decay)
                self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return super().create_optimizer(model)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """`causal_lm_loss` of the batch; also counts its real tokens for throughput figures."""
        num_tokens = inputs.pop("num_tokens", None)
        if model.training and num_tokens is not None:
            # Counted on the host by the collator: throughput without a per-step device sync. It lives in
            # the TrainerState, so it is checkpointed and survives --resume-from-checkpoint.
            self.state.num_input_tokens_seen += num_tokens
        if "shift_labels" in inputs:  # this process's shard of rows split across processes (sequence parallel)
            decoder = self.model.get_decoder() if inputs.get("whole_rows") is not None else None
            loss, outputs = sequence_shard_loss(
                model,
                inputs,
                data_parallel=self._data_parallel_size(),
                decoder=decoder,
                chunk_tokens=self.loss_chunk_tokens,
            )
            return (loss, outputs) if return_outputs else loss
        if "row_columns" in inputs:  # a sequence-parallel run's validation rows: evaluated whole (Ulysses is off)
            whole = inputs.pop("whole_rows")
            inputs.pop("row_columns")
            inputs = {**whole, "labels": inputs["labels"]} if whole is not None else inputs
        loss, outputs = causal_lm_loss(model, inputs, num_items_in_batch, chunk_tokens=self.loss_chunk_tokens)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # The divisor counts every process's targets (transformers divides it by the processes sharing a row)
            # and data parallelism averages the gradients over the groups of processes training on different
            # rows: scaling back by their number gives the gradient (and logged loss) of one global batch.
            loss = loss * self._data_parallel_size()
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Training logs also carry ``peak_memory_gib`` (`peak_memory_gib`), in the log file, the progress bar
        and trainer_state.json's log history."""
        if "loss" in logs:
            logs["peak_memory_gib"] = round(peak_memory_gib(), 3)
        super().log(logs, *args, **kwargs)

    def _data_parallel_size(self) -> int:
        """What the strategy divides the summed gradients by: the groups of processes training on different rows
        (all processes, less those that share a row) under DeepSpeed's Ulysses, which adds up the gradients of a
        row's processes; every process under context parallel, as FSDP2 averages over all of them."""
        config = getattr(self.accelerator, "parallelism_config", None)
        shards = config.sp_size if config is not None and config.sp_enabled else 1
        return self.accelerator.num_processes // shards


def peak_memory_gib() -> float:
    """Peak memory of this process in GiB: on a GPU the most its tensors held since the previous call (torch's
    allocator counter, reset here), else the most resident memory the process has had (the OS's, never reset)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        return peak / 2**30
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20  # macOS counts bytes, Linux KiB


# The labels of the batch the model is forwarding inside `causal_lm_loss`, None elsewhere. The model never
# receives labels (the loss is computed here); hooks that act on prompt tokens only (ReFT's interventions)
# read them from here to tell each row's prompt from its answer.
current_labels: ContextVar[torch.Tensor | None] = ContextVar("omni_current_labels", default=None)


def causal_lm_loss(
    model: Any,
    batch: dict[str, Any],
    num_items_in_batch: torch.Tensor | int | None = None,
    *,
    chunk_tokens: int = 0,
) -> tuple[torch.Tensor, Any]:
    """Next-token cross-entropy summed over the batch's targets, divided by `num_items_in_batch`.

    `batch` is a collator's output (``labels`` and optionally ``loss_positions`` are taken out of it);
    without `num_items_in_batch` the divisor is this batch's own target count (a plain mean).
    Returns (loss, model outputs); the outputs' logits cover only the target positions, and are empty when
    more than `chunk_tokens` (> 0) target positions were scored in chunks (see `summed_target_loss`).
    """
    labels = batch.pop("labels")
    positions = batch.pop("loss_positions", None)
    if positions is None:
        positions = torch.arange(labels.shape[1] - 1, device=labels.device)
    targets = labels[:, positions + 1]

    def forward() -> Any:
        token = current_labels.set(labels)
        try:
            return model(**batch, logits_to_keep=positions, use_cache=False)
        finally:
            current_labels.reset(token)

    loss, outputs = summed_target_loss(model, forward, positions, targets, chunk_tokens)
    if num_items_in_batch is None:
        num_items_in_batch = (targets != IGNORE_INDEX).sum().clamp(min=1)
    return loss / num_items_in_batch, outputs


def summed_target_loss(
    model: Any, forward: Any, positions: torch.Tensor, targets: torch.Tensor, chunk_tokens: int
) -> tuple[torch.Tensor, Any]:
    """(cross-entropy summed over `targets`, the model's outputs) for the logits `forward()` asks `model` for at
    `positions` (`targets` is rows x positions, `IGNORE_INDEX` where nothing is learnt).

    With more than `chunk_tokens` (> 0) target positions, the logits are not materialised whole: the model's
    hidden states at `positions` are projected and scored `chunk_tokens` at a time (`chunked_cross_entropy`),
    and the outputs' logits are empty. The count is known on the host, so the choice costs no device sync.
    """
    if chunk_tokens > 0 and targets.numel() > chunk_tokens:
        with HeadInputs(unwrapped(model)) as captured:
            outputs = forward()
        hidden = captured.hidden
        if hidden.shape[-2] != positions.numel():  # models that ignore logits_to_keep (e.g. Qwen3-Omni's thinker)
            hidden = hidden[:, positions.to(hidden.device)]
        return chunked_cross_entropy(captured.head, hidden, targets, chunk_tokens), outputs
    outputs = forward()
    logits = outputs.logits.float()
    if logits.shape[1] != positions.numel():
        logits = logits[:, positions.to(logits.device)]
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss, outputs


def unwrapped(model: Any) -> Any:
    """`model` without the data-parallel wrappers (DDP's ``module``) that hide its output embeddings."""
    while not hasattr(model, "get_output_embeddings") and hasattr(model, "module"):
        model = model.module
    return model


def sequence_shard_loss(
    model: Any,
    batch: dict[str, Any],
    *,
    data_parallel: int,
    decoder: torch.nn.Module | None = None,
    chunk_tokens: int = 0,
) -> tuple[torch.Tensor, Any]:
    """The loss of one process's shard of rows split across processes (sequence parallel).

    The strategy cut each row into shards and shifted its labels (``shift_labels``: the next token of
    every position of this shard). Targets are counted over every process, so each token weighs the same
    as in one process. The gradient flows through this shard's own sum only (the strategy adds up the
    shards' gradients and averages over the `data_parallel` groups); the value returned is the whole
    step's loss, so every process logs the same figure.

    Rows with media come whole (``whole_rows``, see `omni.train.collators.SequenceShardCollator`): the model
    runs its towers on them, and `decoder` (the model's language model) takes only this shard's
    ``row_columns`` of its inputs.
    """
    targets = batch.pop("shift_labels")
    batch.pop("labels", None)
    positions = (targets != IGNORE_INDEX).any(dim=0).nonzero().flatten()
    if positions.numel() == 0:
        # No target here: still forward one position so backward runs the collective ops every shard joins.
        positions = torch.tensor([targets.shape[1] - 1], device=targets.device)
    whole = batch.pop("whole_rows", None)
    columns = batch.pop("row_columns", None)
    if whole is not None and (decoder is None or columns is None):
        raise ValueError("sequence_shard_loss: rows with media need `decoder` and their `row_columns` to cut them")

    def forward() -> Any:
        if whole is None:
            return model(**batch, logits_to_keep=positions, use_cache=False)
        handle = decoder.register_forward_pre_hook(
            lambda module, args, kwargs: (args, split_decoder_inputs(kwargs, columns[0])), with_kwargs=True
        )
        try:
            return model(**whole, logits_to_keep=positions, use_cache=False)
        finally:
            handle.remove()

    shard_sum, outputs = summed_target_loss(model, forward, positions, targets[:, positions], chunk_tokens)
    totals = torch.stack([shard_sum.detach(), (targets != IGNORE_INDEX).sum().to(shard_sum.dtype)])
    torch.distributed.all_reduce(totals)
    count = totals[1].clamp(min=1)
    own = shard_sum / count * data_parallel
    return own + (totals[0] / count - own).detach(), outputs


def split_decoder_inputs(inputs: dict[str, Any], columns: torch.Tensor) -> dict[str, Any]:
    """A language model's keyword inputs for whole rows, cut to this process's `columns` of the sequence.

    Cut: ``inputs_embeds`` (rows, length, width) and every other tensor whose first two axes are (rows, length),
    such as per-token masks; ``position_ids`` on their last axis (multimodal rotary ones carry channels first).
    A list of tensors with one entry per True token of a boolean mask among them (transformers' deepstack
    features, one tensor per layer, paired with ``visual_pos_masks``) keeps the entries of this shard's tokens.
    Anything else passes unchanged; a padding ``attention_mask`` is refused (split rows attend causally).
    """
    embeds = inputs["inputs_embeds"]
    rows, length = embeds.shape[:2]
    if inputs.get("attention_mask") is not None:
        raise OmniError("rows split across processes take no attention mask (they attend causally over the row)")
    if inputs.get("position_ids") is None:
        raise OmniError(
            "rows split across processes need their position ids: the decoder would count each shard from 0"
        )
    columns = columns.to(embeds.device)
    out = dict(inputs)
    masks = []
    for key, value in inputs.items():
        if key == "position_ids" and torch.is_tensor(value):
            out[key] = value[..., columns]
        elif torch.is_tensor(value) and value.dim() >= 2 and tuple(value.shape[:2]) == (rows, length):
            out[key] = value[:, columns]
            if value.dtype == torch.bool and value.dim() == 2:
                masks.append(value)
    for key, value in inputs.items():
        if isinstance(value, (list, tuple)) and value and all(torch.is_tensor(v) for v in value):
            owners = [mask for mask in masks if all(v.shape[0] == int(mask.sum()) for v in value)]
            if len(owners) != 1:
                raise OmniError(
                    f"cannot split the decoder input {key!r} across processes: no single token mask owns it"
                )
            in_shard = torch.zeros_like(owners[0])
            in_shard[:, columns] = True
            keep = in_shard[owners[0]]
            out[key] = type(value)(v[keep.to(v.device)] for v in value)
    return out
