"""`BnbQuantizer`: bitsandbytes configs for loading, and peft's k-bit preparation for training."""

from __future__ import annotations

from typing import Any

import torch
from omni.api import OmniError, Quantizer, transformers_skip_patterns
from peft import prepare_model_for_kbit_training
from transformers import BitsAndBytesConfig

from omni_plugin_bnb.options import BnbOptions


class BnbQuantizer(Quantizer):
    """4-bit (NF4/FP4, optional double quantization) or 8-bit weights through transformers' bnb support."""

    options: BnbOptions

    def __init__(self, options: BnbOptions | None = None) -> None:
        super().__init__(options or BnbOptions())

    def quantization_config(
        self, bits: int, *, torch_dtype: str, keep_modules: tuple[str, ...] = ()
    ) -> BitsAndBytesConfig:
        """A `BitsAndBytesConfig` for 4 or 8 bits; the compute dtype defaults to `torch_dtype`.

        `keep_modules` (e.g. a multimodal model's towers) stay unquantized, and so does the output head.
        """
        skip = transformers_skip_patterns(keep_modules)
        if bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
        if bits != 4:
            raise OmniError(f"--quant-method bnb supports --quant-bits 4 or 8, not {bits}")
        compute = self.options.bnb_4bit_compute_dtype or torch_dtype
        if compute == "auto":
            compute = "float32"
        dtype = getattr(torch, compute, None)
        if not isinstance(dtype, torch.dtype):
            raise OmniError(f"--bnb-4bit-compute-dtype {compute!r} is not a torch dtype (float32, bfloat16, float16)")
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.options.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=self.options.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=skip,
        )

    def prepare_for_training(self, model: Any, *, gradient_checkpointing: bool) -> Any:
        """peft's `prepare_model_for_kbit_training`: fp32 norms, input gradients, optional checkpointing."""
        return prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
