"""`QuantoQuantizer`: optimum-quanto quantization of a loaded model, saved in quanto's own format and reloaded
through it (transformers cannot save quanto-quantized models)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from omni.api import OmniError, Quantizer

from omni_plugin_quanto.options import QuantoOptions

QMAP_FILE = "quanto_qmap.json"  # quanto's record of each quantized module's types; marks the format


class QuantoQuantizer(Quantizer):
    """int8 or int4 weights (per-channel int8, group-wise int4), optionally int8 activations after calibration."""

    options: QuantoOptions

    def __init__(self, options: QuantoOptions | None = None) -> None:
        super().__init__(options or QuantoOptions())

    def quantization_config(self, bits: int, *, torch_dtype: str, keep_modules: tuple[str, ...] = ()) -> None:
        """None: quanto quantizes the loaded model (`quantize`). Raises `OmniError` unless 4 or 8 bits."""
        if bits not in (4, 8):
            raise OmniError(f"--quant-method quanto supports --quant-bits 4 or 8, not {bits}")
        return None

    def prepare_for_training(self, model: Any, *, gradient_checkpointing: bool) -> Any:
        raise OmniError("--quant-method quanto quantizes for export (omni export); for QLoRA use --quant-method bnb")

    def needs_calibration(self) -> bool:
        """Only quantized activations need calibration: their scales come from the rows' activation ranges."""
        return self.options.quanto_activations != "none"

    def quantize(
        self, model: Any, *, bits: int, keep_modules: tuple[str, ...], calibration: list[dict[str, Any]] | None
    ) -> Any:
        """Quantize every Linear layer but the output head and `keep_modules`, calibrate, and freeze."""
        import torch
        from optimum.quanto import Calibration, freeze, qint4, qint8, quantize

        # quanto matches these fnmatch patterns against module names; the output head keeps its tie to the
        # input embeddings (and its precision, as bitsandbytes and ms-swift do).
        exclude = ["lm_head", *keep_modules, *(f"{prefix}.*" for prefix in keep_modules)]
        activations = qint8 if self.needs_calibration() else None
        quantize(model, weights=qint4 if bits == 4 else qint8, activations=activations, exclude=exclude)
        if calibration:
            with torch.no_grad(), Calibration():
                for batch in calibration:
                    model(**batch)
        freeze(model)
        return model

    def save_quantized(self, model: Any, output_dir: Path) -> None:
        """transformers' weights and config plus quanto's map of quantized modules (`quanto_qmap.json`)."""
        from optimum.quanto import quantization_map

        model.save_pretrained(output_dir)
        (output_dir / QMAP_FILE).write_text(json.dumps(quantization_map(model), indent=1), encoding="utf-8")

    def load_exported(self, path: str, *, model_options: Any, load_options: Any) -> tuple[Any, Any]:
        """The quantized causal LM (through optimum-quanto's loader) and its processor or tokenizer."""
        from optimum.quanto import QuantizedModelForCausalLM
        from transformers import AutoProcessor

        if load_options.for_training:
            raise OmniError(
                f"{path} holds quanto-quantized weights, which omni does not train; export a model to train"
            )
        try:
            model = QuantizedModelForCausalLM.from_pretrained(path)._wrapped
        except ValueError as exc:  # optimum-quanto reloads causal language models only
            raise OmniError(f"cannot load the quanto export {path}: {exc}") from exc
        if load_options.device_map not in (None, "cpu"):
            model.to(load_options.device_map)
        _run_outside_inference_mode(model)
        return model, AutoProcessor.from_pretrained(path)


def _run_outside_inference_mode(model: Any) -> None:
    """Make `model`'s forward run under plain no-grad even when called in `torch.inference_mode`.

    quanto's packed int4 weights take a transposed view in every matmul, which inference mode refuses
    ("Cannot set version_counter for inference tensor"); engines generate in inference mode.
    """
    import torch

    forward = model.forward

    @functools.wraps(forward)
    def forward_with_grad_mode_off(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.no_grad():
            return forward(*args, **kwargs)

    model.forward = forward_with_grad_mode_off
