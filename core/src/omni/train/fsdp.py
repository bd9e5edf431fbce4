"""The built-in `fsdp` strategy: PyTorch FSDP2 (``fully_shard``) through accelerate and the Trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.options import load_config
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
        return f"FSDP2 ({self.options.fsdp})"

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

    def check(self, options: Any, *, tuner: str) -> None:
        if options.quant_method or options.quant_bits:
            raise OmniError("--fsdp does not shard quantized weights; QLoRA runs with --deepspeed zero2 or one process")
        self.config()

    def training_arguments(self, options: Any, *, model: Any, model_spec: Any) -> dict[str, Any]:
        config = {"version": 2, **self.config()}
        config.setdefault("transformer_layer_cls_to_wrap", layer_classes(model, model_spec))
        # FSDP checkpoints each wrapped layer itself; the Trainer refuses both kinds at once.
        config.setdefault("activation_checkpointing", options.gradient_checkpointing)
        # Checkpoints hold each process's shard (torch.distributed.checkpoint); the final save gathers them.
        config.setdefault("state_dict_type", "SHARDED_STATE_DICT")
        from omni.train.trainer import checkpointing_arguments

        return {"fsdp": True, "fsdp_config": config, **checkpointing_arguments(False)}

    def prepare_trainer(self, trainer: Any) -> None:
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
