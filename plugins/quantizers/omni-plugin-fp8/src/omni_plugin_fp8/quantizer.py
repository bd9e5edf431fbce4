"""`Fp8Quantizer`: transformers' `FineGrainedFP8Config`, which quantizes while loading and saves a checkpoint
whose config.json vLLM and transformers read."""

from __future__ import annotations

from typing import Any

from omni.api import OmniError, Quantizer, transformers_skip_patterns


class Fp8Quantizer(Quantizer):
    """8-bit floating-point weights with a scale per 128x128 block; activations quantized per token on the fly."""

    def quantization_config(self, bits: int, *, torch_dtype: str, keep_modules: tuple[str, ...] = ()) -> Any:
        """A `FineGrainedFP8Config`; raises `OmniError` for bits other than 8 or without a CUDA GPU."""
        import torch
        from transformers import FineGrainedFP8Config

        if bits != 8:
            raise OmniError(f"--quant-method fp8 supports --quant-bits 8, not {bits}")
        if not torch.cuda.is_available():
            raise OmniError(
                "--quant-method fp8 needs a CUDA GPU (FP8 weights are made and run by GPU kernels); "
                "on CPU use --quant-method quanto or bnb"
            )
        return FineGrainedFP8Config(modules_to_not_convert=transformers_skip_patterns(keep_modules))

    def prepare_for_training(self, model: Any, *, gradient_checkpointing: bool) -> Any:
        raise OmniError("--quant-method fp8 quantizes for export (omni export); for QLoRA use --quant-method bnb")
