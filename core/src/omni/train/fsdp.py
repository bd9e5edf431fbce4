"""The built-in `fsdp` strategy: PyTorch FSDP2 (``fully_shard``) through accelerate and the Trainer, and context
parallel (torch's ring attention, `--context-parallel-size`) through accelerate's `ParallelismConfig`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.options import load_config
from omni.train.launch import current_processes
from omni.train.options import FsdpOptions
from omni.train.strategy import Strategy

# ms-swift's --fsdp words, in FSDP2's terms: shard_grad_op keeps parameters gathered between forward and backward.
PRESETS: dict[str, dict[str, Any]] = {
    "full_shard": {"reshard_after_forward": True},
    "shard_grad_op": {"reshard_after_forward": False},
    "offload": {"reshard_after_forward": True, "cpu_offload": True},
}


def read_config(path: str, flag: str) -> dict[str, Any]:
    """The fsdp_config keys in the JSON or YAML file `path` (``fsdp_`` prefixes dropped), or an error naming
    `flag` and the file."""
    if not Path(path).is_file():
        raise OmniError(f"{flag} {path}: no such file (or use one of: {', '.join(PRESETS)})")
    return {key.removeprefix("fsdp_"): value for key, value in load_config(path).items()}


def layer_classes(model: Any, model_spec: Any) -> list[str]:
    """The module classes each FSDP unit wraps: the model spec's `layer_classes`, else the model's own
    `_no_split_modules` (transformers' list of its decoder and encoder layers)."""
    if model_spec is not None and model_spec.layer_classes:
        return list(model_spec.layer_classes)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return sorted(getattr(base, "_no_split_modules", None) or [])


class FsdpStrategy(Strategy):
    """FSDP2: parameters, gradients and optimizer state sharded over the processes, one unit per layer."""

    options: FsdpOptions

    def describe(self) -> str:
        size = self.options.context_parallel_size
        split = f", each row split across {size} processes (ring attention)" if size > 1 else ""
        return f"FSDP2{split} ({self.options.fsdp})"

    def config(self) -> dict[str, Any]:
        """The fsdp_config the Trainer gets: the preset (or file) named by --fsdp, then --fsdp-config over it."""
        value = self.options.fsdp or ""
        config = dict(PRESETS[value]) if value in PRESETS else read_config(value, "--fsdp")
        if self.options.fsdp_config:
            config.update(read_config(self.options.fsdp_config, "--fsdp-config"))
        if int(config.get("version", 2)) != 2:
            raise OmniError("--fsdp: omni runs FSDP2 only (fsdp_config version 2)")
        return config

    def shards_parameters(self) -> bool:
        return True

    def sequence_parallel_size(self) -> int:
        return self.options.context_parallel_size

    def sequence_length_multiple(self) -> int:
        # torch balances the causal work (each process a chunk from the head and one from the tail of the row)
        # only when the row divides into two chunks per process; otherwise the last process works the most.
        return 2 * self.options.context_parallel_size

    def check(self, options: Any, *, tuner: str) -> None:
        if options.quant_method or options.quant_bits:
            raise OmniError("--fsdp does not shard quantized weights; QLoRA runs with --deepspeed zero2 or one process")
        self.config()
        self._check_context_parallel(options)

    def _check_context_parallel(self, options: Any) -> None:
        size = self.options.context_parallel_size
        if size < 1:
            raise OmniError(f"--context-parallel-size {size}: must be at least 1")
        if size == 1:
            return
        processes = _run_processes(options)
        if processes % size:
            raise OmniError(
                f"--context-parallel-size {size} does not divide the run's {processes} processes: each row is split "
                "across that many of them"
            )
        if options.padding_free or options.packing:
            raise OmniError(
                "--padding-free and --packing cannot run with --context-parallel-size: ring attention is causal over "
                "the whole row, so the sequences packed into it would see each other"
            )
        if options.attn_impl != "sdpa":
            raise OmniError(
                f"--attn-impl {options.attn_impl} cannot run with --context-parallel-size: torch's ring attention "
                "takes the place of sdpa (--attn-impl sdpa)"
            )
        import torch

        if not torch.cuda.is_available():
            raise OmniError(
                "--context-parallel-size needs CUDA GPUs: torch's ring attention runs only CUDA's sdpa kernels "
                "(flash, memory-efficient, cuDNN); without a GPU, split rows with --deepspeed zero2 "
                "--sequence-parallel-size (omni-plugin-deepspeed)"
            )

    def training_arguments(self, options: Any, *, model: Any, model_spec: Any) -> dict[str, Any]:
        config = {"version": 2, **self.config()}
        config.setdefault("transformer_layer_cls_to_wrap", layer_classes(model, model_spec))
        # FSDP checkpoints each wrapped layer itself; the Trainer refuses both kinds at once.
        config.setdefault("activation_checkpointing", options.gradient_checkpointing)
        # Checkpoints hold each process's shard (torch.distributed.checkpoint); the final save gathers them.
        config.setdefault("state_dict_type", "SHARDED_STATE_DICT")
        from omni.train.trainer import checkpointing_arguments

        arguments = {"fsdp": True, "fsdp_config": config, **checkpointing_arguments(False)}
        size = self.options.context_parallel_size
        if size > 1:
            arguments["parallelism_config"] = context_parallel_config(size, model_spec)
        return arguments

    def prepare_trainer(self, trainer: Any) -> None:
        if self.options.context_parallel_size > 1:
            # The loss of split rows is each micro-batch's own (`omni.train.trainer.sequence_shard_loss`): the Trainer
            # divides it by the accumulation steps, as it does by itself under DeepSpeed's Ulysses.
            trainer.loss_is_scaled_for_ga = False
        if trainer.is_fsdp_enabled:
            return
        # accelerate turns FSDP on only for accelerator devices; torch's fully_shard also runs on CPU over gloo,
        # which is how FSDP2 runs (and is tested) on machines without a GPU.
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        state = trainer.accelerator.state
        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
        trainer.is_fsdp_enabled = True

    def full_state_dict(self, trainer: Any) -> dict[str, Any] | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if trainer.accelerator.is_main_process else None


def context_parallel_config(size: int, model_spec: Any) -> Any:
    """accelerate's `ParallelismConfig` for rows split across `size` processes: the Trainer shards each batch's
    tokens, labels and positions with torch's ``context_parallel`` and FSDP2 shards the model over every process
    (the groups of `size` times the groups training on different rows)."""
    modalities = set(model_spec.modalities) - {"text"} if model_spec is not None else set()
    if modalities:
        raise OmniError(
            f"--context-parallel-size splits text rows only, not a model with {', '.join(sorted(modalities))} "
            "inputs: split its rows with --deepspeed zero2 --sequence-parallel-size (omni-plugin-deepspeed)"
        )
    from accelerate import ParallelismConfig

    return ParallelismConfig(dp_shard_size=current_processes().world_size // size, cp_size=size)


def _run_processes(options: Any) -> int:
    """The run's number of processes: from the launcher inside one of them, else from the flags that start them."""
    processes = current_processes().world_size
    if processes == 1:
        asked = options.resolved(os.environ)
        processes = asked.nproc_per_node * asked.nnodes
    return processes
