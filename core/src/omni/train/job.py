"""`TrainingJob`: everything an algorithm needs, loaded once by the `sft`/`pt`/`rlhf` commands.

An algorithm (`AlgorithmSpec.impl`) is ``run(job: TrainingJob) -> TrainResult``. It builds its trainer
from the job's model, template and rows, passes it `job.training_arguments()` and `job.callbacks()`, and
ends with `job.train(trainer)`, which resumes if asked, trains, and writes the outputs. SFT is one such
algorithm (`omni.train.sft`); a DPO or GRPO plugin reuses the same job with its own trainer class.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni import __version__
from omni.errors import OmniError
from omni.models.options import ModelHead
from omni.registry import Registry, Selected, selected_one
from omni.template.base import Template
from omni.train import launch, outputs
from omni.train.callback import TrainingCallback
from omni.train.options import TrainOptions
from omni.train.parts import apply_part_freezing, requested_parts
from omni.train.strategy import Strategy
from omni.train.tuner import Tuner


def log_line(message: str) -> None:
    """One line of run information for the person at the terminal (stderr, so stdout stays clean).

    In a run of several processes only the main one speaks."""
    if launch.current_processes().is_main:
        print(f"[omni] {message}", file=sys.stderr, flush=True)


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    global_step: int
    metrics: dict[str, float] = field(default_factory=dict)
    saved: list[str] = field(default_factory=list)


@dataclass
class TrainingJob:
    """A loaded training run: the prepared model, its processor and template, the rows, and the options.

    `model` is already wrapped by `tuner` (and quantized when asked); `train_rows`/`val_rows` are rows in
    the messages format, not yet encoded (each algorithm encodes what it needs: SFT labels, DPO pairs ...).
    `algorithm_options` are the selected algorithm's own flags (e.g. a DPO beta), parsed by the CLI.
    """

    command: str
    options: TrainOptions
    registry: Registry
    model: Any
    processor: Any
    tokenizer: Any
    template: Template
    tuner: Tuner
    model_spec: Any
    model_path: str
    train_rows: Any
    val_rows: Any
    output_dir: Path
    resume_from: str | None = None
    algorithm_options: Any = None  # the `--algo` spec's options (rlhf), None for sft/pt
    # Every spec the command line selected, by selecting option (e.g. an algorithm's `reward_funcs`), with its options.
    selected: dict[str, list[Selected]] = field(default_factory=dict)
    strategy: Strategy | None = None  # the distributed strategy switched on (--deepspeed, --fsdp), if any
    extra_callbacks: list[Any] = field(default_factory=list)  # added by a program driving the job (benchmarks)
    # Callback plugins switched on for this run (`register_callbacks`), e.g. benchmark scores at each evaluation.
    plugin_callbacks: list[TrainingCallback] = field(default_factory=list)

    def training_arguments(self, *, has_eval: bool, **overrides: Any) -> Any:
        """transformers `TrainingArguments` from the options, then the tuner's fields (`Tuner.training_arguments`,
        e.g. GaLore's optimizer), then the strategy's (`Strategy.training_arguments`, e.g. ``deepspeed``), then the
        callback plugins' (`TrainingCallback.training_arguments`), then `overrides`, which lets an algorithm add its
        own."""
        from omni.train.trainer import training_arguments

        dtype = getattr(self.model, "dtype", None)
        args = training_arguments(self.options, str(self.output_dir), has_eval=has_eval, model_dtype=dtype)
        from_tuner = self.tuner.training_arguments()
        unknown = sorted(set(from_tuner) - {f.name for f in dataclasses.fields(args) if f.init})
        if unknown:
            raise OmniError(f"tuner {type(self.tuner).__name__} sets unknown TrainingArguments fields: {unknown}")
        from_strategy = (
            self.strategy.training_arguments(self.options, model=self.model, model_spec=self.model_spec)
            if self.strategy
            else {}
        )
        # Text models use every trainable parameter in each forward; multimodal ones may leave a tower unused.
        own = {"ddp_find_unused_parameters": False} if self.model_spec is None or self.model_spec.parts is None else {}
        from_callbacks = {k: v for c in self.plugin_callbacks for k, v in c.training_arguments(self.options).items()}
        fields = {**own, **from_tuner, **from_strategy, **from_callbacks, **overrides}
        return dataclasses.replace(args, **fields) if fields else args

    def loss_chunk_tokens(self) -> int:
        """--loss-chunk-tokens, or 0 (the logits in one piece) under a strategy that shards parameters: the chunked
        loss calls the output projection again after the model's forward, which FSDP's and ZeRO-3's gathering of
        the weights around that forward does not cover."""
        if self.strategy is not None and self.strategy.shards_parameters():
            return 0
        return self.options.loss_chunk_tokens

    def callbacks(self) -> list[Any]:
        """The callbacks every omni run uses: throughput, logging.jsonl, the progress bar (in that order),
        then the tuner's own (`Tuner.callbacks`, e.g. LISA's layer switching), then the callback plugins'
        (`TrainingCallback.trainer_callbacks`), then `extra_callbacks`, then the one marking each checkpoint complete."""
        from omni.train.progress import ProgressBarCallback, ThroughputCallback

        own = [ThroughputCallback(), outputs.JsonlLogCallback(self.output_dir), ProgressBarCallback()]
        # Last: a checkpoint is marked complete only after every other callback has seen it saved.
        from_plugins = [c for plugin in self.plugin_callbacks for c in plugin.trainer_callbacks(self)]
        return [
            *own,
            *self.tuner.callbacks(),
            *from_plugins,
            *self.extra_callbacks,
            outputs.CheckpointCompleteCallback(),
        ]

    def train(self, trainer: Any) -> TrainResult:
        """Train (resuming when asked), then write the final model, the loss plot and the metrics."""
        from transformers import PrinterCallback, ProgressCallback

        # omni's own bar and log file replace the Trainer's dict prints and bar.
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        optimizer = self.tuner.create_optimizer(trainer.model, trainer.args)
        if optimizer is not None:
            if trainer.optimizer is not None:
                raise OmniError(f"tuner {type(self.tuner).__name__} builds the optimizer, but the trainer has one")
            trainer.optimizer = optimizer  # Trainer.create_optimizer keeps an optimizer that is already set
        if self.strategy is not None:
            self.strategy.prepare_trainer(trainer)
        for plugin in self.plugin_callbacks:
            plugin.prepare_trainer(trainer)
        resumed_at = 0
        if self.resume_from:
            log_line(f"resuming from {self.resume_from}")
            # Read now: the checkpoint may be rotated away while training goes on.
            resumed_at = json.loads((Path(self.resume_from) / "trainer_state.json").read_text())["global_step"]
        result = trainer.train(resume_from_checkpoint=self.resume_from)
        metrics = dict(result.metrics)
        step = trainer.state.global_step
        if resumed_at and "train_loss" in metrics:
            metrics["train_loss"] = outputs.whole_run_train_loss(
                trainer.state.log_history, resumed_at, step, metrics["train_loss"]
            )
        last_eval = next((r for r in reversed(trainer.state.log_history) if "eval_loss" in r), None)
        if trainer.eval_dataset is not None and (last_eval is None or last_eval["step"] != step):
            last_eval = trainer.evaluate()  # the final model's held-out loss, unless the last step just did it
        if last_eval is not None:
            metrics.update({k: v for k, v in last_eval.items() if k.startswith("eval_")})
        # Sharded weights are gathered by every process together; the main process alone writes the outputs.
        state_dict = self.strategy.full_state_dict(trainer) if self.strategy is not None else None
        saved: list[str] = []
        if trainer.is_world_process_zero():
            model = trainer.accelerator.unwrap_model(trainer.model)
            saved = outputs.save_final(self.tuner, model, self.processor, self.output_dir, state_dict=state_dict)
            beside = [name for plugin in self.plugin_callbacks for name in plugin.plotted_metrics()]
            plot = outputs.plot_loss(trainer.state.log_history, self.output_dir / outputs.LOSS_PLOT, metrics=beside)
            trainer.save_metrics("all", metrics, combined=False)
            kind = "model" if "config.json" in saved else "adapter"  # a whole model carries its config
            log_line(f"trained {step} steps; final {kind} in {self.output_dir}")
            if plot:
                log_line(f"loss curve: {plot}")
        trainer.accelerator.wait_for_everyone()  # no process exits while the main one still writes
        return TrainResult(self.output_dir, step, metrics, saved)


def _quantization(options: TrainOptions, registry: Registry, selected: Mapping[str, list[Selected]]) -> tuple[Any, Any]:
    """(quantizer, transformers quantization config), or (None, None) without quantization."""
    method = options.quant_method
    if method is None:
        return None, None
    if not options.quant_bits:
        raise OmniError(f"--quant-method {method} needs --quant-bits (4 or 8)")
    chosen = selected_one(selected, "quant_method")
    registration = chosen.registration if chosen else registry.get("quantizers", method)
    quant_options = chosen.options if chosen else registration.spec.default_options()
    quantizer = registration.spec.load()(quant_options)
    return quantizer, quantizer.quantization_config(options.quant_bits, torch_dtype=options.torch_dtype)


def _count_parameters(model: Any) -> tuple[int, int]:
    trainable = total = 0
    for p in model.parameters():
        n = getattr(p, "ds_numel", None) or p.numel()  # a parameter DeepSpeed partitioned holds only its shard
        n *= 2 if p.__class__.__name__ == "Params4bit" else 1  # 4-bit weights pack 2 per element
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def _write_args(
    command: str,
    options: TrainOptions,
    loaded: Any,
    tuner: Selected,
    plugin_options: dict,
    output_dir: Path,
    head: str,
) -> None:
    outputs.write_args(
        output_dir,
        {
            "omni_version": __version__,
            "command": command,
            **dataclasses.asdict(options),
            "model": loaded.path,  # the resolved base, so `omni infer --adapters DIR` finds it
            "model_type": loaded.spec.name,
            "model_head": head,  # so export and inference load the trained head again
            "tuner": tuner.spec.name,
            "plugin_options": {
                opt: [dataclasses.asdict(o) if o is not None else None for o in chosen]
                for opt, chosen in plugin_options.items()
            },
        },
    )


def check_fast_path(options: TrainOptions) -> None:
    """The speed flags' needs, checked before anything loads: a one-line error naming what is missing."""
    import importlib.util

    import torch

    if options.loss_chunk_tokens < 0:
        raise OmniError(f"--loss-chunk-tokens {options.loss_chunk_tokens}: give a number of tokens, or 0 for off")
    if options.use_liger_kernel:
        if importlib.util.find_spec("liger_kernel") is None:
            raise OmniError("--use-liger-kernel needs liger-kernel: pip install 'omni-core[liger]'")
        if not torch.cuda.is_available():
            raise OmniError("--use-liger-kernel needs a CUDA GPU (liger-kernel's kernels are written in Triton)")


def active_strategy(options: Any, selected: Mapping[str, list[Selected]]) -> Strategy | None:
    """The distributed strategy whose switch option is set (``--deepspeed``, ``--fsdp``), built; None without.

    `options` are the command's, `selected` the run's chosen specs by option (the installed strategies under
    ``"strategies"``). More than one switched on is an error naming them."""
    installed = selected.get("strategies", [])
    chosen = [s for s in installed if getattr(s.options, s.spec.switch, None)]
    for idle in (s for s in installed if s not in chosen):
        defaults = idle.spec.default_options()
        changed = [
            f.name
            for f in dataclasses.fields(idle.options)
            if getattr(idle.options, f.name) != getattr(defaults, f.name)
        ]
        if changed:
            switch = idle.spec.switch.replace("_", "-")
            raise OmniError(
                f"--{changed[0].replace('_', '-')} is an option of the {idle.spec.name} strategy, which is off: "
                f"switch it on with --{switch}"
            )
    if len(chosen) > 1:
        flags = " and ".join(f"--{s.spec.switch.replace('_', '-')}" for s in chosen)
        raise OmniError(f"{flags} cannot be combined: choose one distributed strategy")
    if not chosen:
        return None
    strategy: Strategy = chosen[0].spec.load()(chosen[0].options)
    tuner = selected_one(selected, "tuner")
    if tuner is not None and not tuner.spec.shardable and strategy.shards_parameters():
        raise OmniError(
            f"--tuner {tuner.spec.name} does not train with sharded parameters ({strategy.describe()}); "
            "use data parallel (no strategy) or a strategy that keeps whole parameters on each process"
        )
    strategy.check(options, tuner=tuner.spec.name if tuner else "")
    return strategy


def prepare_job(
    command: str,
    options: TrainOptions,
    registry: Registry,
    selected: Mapping[str, list[Selected]],
    *,
    strategy: Strategy | None = None,
    plugin_callbacks: list[TrainingCallback] | None = None,
    model_head: ModelHead = "causal_lm",
) -> TrainingJob:
    """Load the model (quantized if asked), apply the tuner, load the rows and the template.

    `command` is the training command (``sft``, ``pt``, ``rlhf``), `options` its options, `registry` the specs
    the run resolves names in, `selected` the specs chosen for the run by option, with their options (the
    ``tuner``, ``algo``, ``quant_method``, the installed ``datasets`` ...). `strategy`: the distributed strategy
    the run uses (see `active_strategy`), already checked; `plugin_callbacks`: the switched-on training callbacks,
    already checked; `model_head`: the head the algorithm trains (`AlgorithmSpec.model_head`)."""
    import transformers

    from omni.data import load_datasets
    from omni.models.loader import load_model
    from omni.models.resolve import resolve_model
    from omni.template import get_template

    transformers.logging.set_verbosity_warning()
    if command == "pt":  # pre-training learns every token, not just the answers
        options = dataclasses.replace(options, loss_scope="all")
    if options.quant_bits and not options.quant_method:  # ms-swift's rule: bits alone mean bitsandbytes
        options = dataclasses.replace(options, quant_method="bnb")
    transformers.set_seed(options.seed)

    tuner_sel = selected_one(selected, "tuner")
    if tuner_sel is None:
        raise OmniError("--tuner is empty; choose one of: " + ", ".join(registry.names("tuners")))
    quantizer, quantization_config = _quantization(options, registry, selected)

    # The rows are read and checked before the model loads: a bad row costs seconds, not a model load. The
    # model's spec (from its config.json alone) says which media it takes.
    resolved = resolve_model(options.model, registry, model_type=options.model_type, use_hf=options.use_hf)
    # RL prompt sets (GRPO) have no answers; each rlhf algorithm checks the columns it needs (DPO: its pair).
    data = load_datasets(
        options,
        registry,
        dataset_options={s.spec.name: s.options for s in selected.get("datasets", [])},
        require_answer=command != "rlhf",
        modalities=resolved.spec.modalities,
    )
    skipped = f"; {data.skipped_rows.summary()}" if data.skipped else ""
    train_rows = f"{len(data.train)} training rows" if isinstance(data.train, list) else "training rows streamed"
    log_line(f"data: {train_rows}, {len(data.val or [])} validation rows{skipped}")

    if not launch.current_processes().is_main:  # one set of loading bars, not one per process
        transformers.utils.logging.disable_progress_bar()
    started = time.perf_counter()
    if strategy is not None:
        strategy.before_model_load(options, model_path=resolved.path_or_id)
    loaded = load_model(
        options,
        registry,
        quantization_config=quantization_config,
        for_training=True,
        resolved=resolved,
        head=model_head,
    )
    log_line(f"model {loaded.spec.name} from {loaded.path} (loaded in {time.perf_counter() - started:.1f} s)")
    model = loaded.model
    if quantizer is not None:
        model = quantizer.prepare_for_training(model, gradient_checkpointing=options.gradient_checkpointing)
    tuner: Tuner = tuner_sel.spec.load()(tuner_sel.options, model_spec=loaded.spec)
    part_flags = tuner.take_part_flags(requested_parts(options))
    model = tuner.prepare(model)
    apply_part_freezing(model, loaded.spec, part_flags)
    # Checkpoint saves would each draw a "Writing model shards" bar under omni's training bar.
    transformers.utils.logging.disable_progress_bar()
    trainable, total = _count_parameters(model)
    log_line(
        f"tuner {tuner_sel.spec.name}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.4f}%)"
    )

    template = get_template(
        options.template, loaded.processor, options.template_options(), model_spec=loaded.spec, registry=registry
    )

    if options.output_dir is None and options.resume_from_checkpoint not in (None, "last"):
        output_dir = Path(options.resume_from_checkpoint).parent  # keep writing into the run being resumed
    else:
        output_dir = outputs.resolve_output_dir(options.output_dir, options.model or loaded.spec.name)
    resume_from = outputs.resolve_checkpoint(options.resume_from_checkpoint, output_dir)
    plugin_options = {opt: [s.options for s in chosen] for opt, chosen in selected.items()}
    processes = launch.current_processes()
    if processes.is_main:
        _write_args(command, options, loaded, tuner_sel, plugin_options, output_dir, model_head)
    log_line(f"outputs: {output_dir}")
    if processes.world_size > 1:
        how = strategy.describe() if strategy else "data parallel (DDP)"
        log_line(f"{processes.world_size} processes: {how}")
    return TrainingJob(
        command=command,
        options=options,
        registry=registry,
        model=model,
        processor=loaded.processor,
        tokenizer=loaded.tokenizer,
        template=template,
        tuner=tuner,
        model_spec=loaded.spec,
        model_path=loaded.path,
        train_rows=data.train,
        val_rows=data.val,
        output_dir=output_dir,
        resume_from=resume_from,
        algorithm_options=algo.options if (algo := selected_one(selected, "algo")) else None,
        selected=dict(selected),
        strategy=strategy,
        plugin_callbacks=list(plugin_callbacks or []),
    )
