"""Flags of the `gptq` and `awq` quantizers (light: no llm-compressor import), named as in ms-swift."""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import option


@dataclass
class LlmCompressorOptions:
    """How the weights are grouped, and which Python runs llm-compressor."""

    group_size: int = option(
        128, help="weights per quantization scale along each input row (must divide every quantized layer's width)"
    )
    quant_python: str | None = option(
        None,
        help="Python of llm-compressor's own environment (default: $OMNI_QUANT_PYTHON, else .venv-quant/bin/python "
        "in the current folder or a parent; scripts/setup.sh makes it)",
        metavar="PATH",
    )
