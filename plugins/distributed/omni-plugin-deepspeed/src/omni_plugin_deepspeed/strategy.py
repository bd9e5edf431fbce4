"""The `deepspeed` strategy: the Trainer's DeepSpeed integration with a ZeRO preset or the user's JSON."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.train.strategy import Strategy

from omni_plugin_deepspeed.options import PRESETS, DeepSpeedOptions


def load_config(value: str) -> dict[str, Any]:
    """The DeepSpeed config `--deepspeed` names: a preset (zero0 ... zero3_offload) or a JSON file."""
    if value in PRESETS:
        return json.loads(resources.files("omni_plugin_deepspeed").joinpath(f"presets/{value}.json").read_text())
    path = Path(value)
    if not path.is_file():
        raise OmniError(f"--deepspeed {value}: not a preset ({', '.join(PRESETS)}) and no such file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OmniError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict) or not isinstance(config.get("zero_optimization", {}), dict):
        raise OmniError(f"{path}: a DeepSpeed config is a JSON object (zero_optimization a mapping)")
    return config


class DeepSpeedStrategy(Strategy):
    """DeepSpeed ZeRO through transformers' integration: "auto" values are filled from omni's options."""

    options: DeepSpeedOptions

    def __init__(self, options: DeepSpeedOptions) -> None:
        super().__init__(options)
        self.config = load_config(options.deepspeed or "")
        zero = self.config.setdefault("zero_optimization", {})
        self.stage = int(zero.get("stage", 0))
        if self.stage == 3:
            # The final save (and `omni export`) needs whole weights that load without DeepSpeed.
            zero.setdefault("stage3_gather_16bit_weights_on_model_save", True)

    def describe(self) -> str:
        offload = [k.removeprefix("offload_") for k, v in self.zero.items() if k.startswith("offload_") and _on(v)]
        where = f", {' and '.join(offload)} offloaded to CPU" if offload else ""
        return f"DeepSpeed ZeRO-{self.stage}{where} ({self.options.deepspeed})"

    @property
    def zero(self) -> dict[str, Any]:
        return self.config["zero_optimization"]

    def shards_parameters(self) -> bool:
        return self.stage == 3

    def check(self, options: Any, *, tuner: str) -> None:
        if self.stage == 3 and (options.quant_method or options.quant_bits):
            raise OmniError("--deepspeed ZeRO-3 cannot partition quantized weights: use zero2 for QLoRA")
        if self.stage == 3 and not self.zero.get("stage3_gather_16bit_weights_on_model_save"):
            raise OmniError(
                f"--deepspeed {self.options.deepspeed}: stage3_gather_16bit_weights_on_model_save is false, so the "
                "final weights could not be saved whole; set it to true"
            )

    def training_arguments(self, options: Any, *, model: Any, model_spec: Any) -> dict[str, Any]:
        import torch

        config = json.loads(json.dumps(self.config))  # the Trainer fills in "auto" values in place
        if not torch.cuda.is_available():
            for key in ("offload_optimizer", "offload_param"):
                if isinstance(config["zero_optimization"].get(key), dict):
                    config["zero_optimization"][key]["pin_memory"] = False  # pinning needs a CUDA device
        return {"deepspeed": config}


def _on(offload: Any) -> bool:
    return isinstance(offload, dict) and offload.get("device", "none") != "none"
