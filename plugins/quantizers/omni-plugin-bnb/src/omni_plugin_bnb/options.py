"""Flags of the `bnb` quantizer (light: no bitsandbytes import), named as in transformers and ms-swift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.api import option


@dataclass
class BnbOptions:
    """How bitsandbytes stores and computes the quantized weights."""

    bnb_4bit_quant_type: Literal["nf4", "fp4"] = option("nf4", help="4-bit data type (NF4 is QLoRA's)")
    bnb_4bit_use_double_quant: bool = option(
        True, help="also quantize the quantization constants (saves ~0.4 bit/param)"
    )
    bnb_4bit_compute_dtype: str | None = option(
        None, help="dtype of the de-quantized matmuls (default: --torch-dtype's resolved dtype)"
    )
