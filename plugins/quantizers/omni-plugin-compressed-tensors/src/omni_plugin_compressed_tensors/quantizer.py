"""`CompressedTensorsQuantizer`: compressed-tensors' W8A8 scheme applied to a loaded model, weights rounded to
the nearest int8 step of each output channel, saved compressed with the config vLLM and transformers read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omni.api import OmniError, Quantizer

SCHEME = "W8A8"  # compressed-tensors' preset: int8 symmetric weights per channel, int8 dynamic per-token inputs


class CompressedTensorsQuantizer(Quantizer):
    """Round-to-nearest int8 W8A8: no calibration (activation scales are computed per token while running)."""

    def quantization_config(self, bits: int, *, torch_dtype: str, keep_modules: tuple[str, ...] = ()) -> None:
        """None: the loaded model is quantized (`quantize`). Raises `OmniError` unless 8 bits."""
        if bits != 8:
            raise OmniError(f"--quant-method compressed-tensors supports --quant-bits 8 (W8A8), not {bits}")
        return None

    def prepare_for_training(self, model: Any, *, gradient_checkpointing: bool) -> Any:
        raise OmniError(
            "--quant-method compressed-tensors quantizes for export (omni export); for QLoRA use --quant-method bnb"
        )

    def quantize(
        self, model: Any, *, bits: int, keep_modules: tuple[str, ...], calibration: list[dict[str, Any]] | None
    ) -> Any:
        """Attach the W8A8 scheme to every Linear layer but the output head and `keep_modules`, and set each
        weight's scale from its channel's range (llm-compressor's minmax observer does the same)."""
        import torch
        from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config, preset_name_to_scheme
        from compressed_tensors.quantization.utils import calculate_qparams

        ignore = ["lm_head", *(f"re:^(.+\\.)?{prefix}\\..*" for prefix in keep_modules)]
        config = QuantizationConfig(config_groups={"group_0": preset_name_to_scheme(SCHEME, ["Linear"])}, ignore=ignore)
        apply_quantization_config(model, config)
        with torch.no_grad():
            for module in model.modules():
                scheme = getattr(module, "quantization_scheme", None)
                if scheme is None or scheme.weights is None:
                    continue
                weight = module.weight
                scale, zero_point = calculate_qparams(
                    weight.amin(dim=1, keepdim=True), weight.amax(dim=1, keepdim=True), scheme.weights
                )
                module.weight_scale.copy_(scale.reshape(module.weight_scale.shape))
                module.weight_zero_point.copy_(zero_point.reshape(module.weight_zero_point.shape))
        return model

    def save_quantized(self, model: Any, output_dir: Path) -> None:
        """Compressed int8 weights and their scales, with the compressed-tensors `quantization_config`."""
        from compressed_tensors.compressors import ModelCompressor

        compressor = ModelCompressor.from_pretrained_model(model, quantization_format="int-quantized")
        compressor.compress_model(model)
        model.save_pretrained(output_dir)
        compressor.update_config(output_dir)
