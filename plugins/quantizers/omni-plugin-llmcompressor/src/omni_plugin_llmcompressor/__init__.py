"""omni-plugin-llmcompressor: the `gptq` and `awq` quantizers (llm-compressor, in its own environment) for export."""

from __future__ import annotations

from omni.api import QuantizerSpec, hookimpl

from omni_plugin_llmcompressor.options import LlmCompressorOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_quantizers(register):
    register(
        QuantizerSpec(
            name="gptq",
            description="GPTQ: int4 or int8 weights in groups, rounded to minimise each layer's error on calibration "
            "rows (llm-compressor); compressed-tensors format that transformers and vLLM (CPU build too) load",
            impl="omni_plugin_llmcompressor.quantizer:GptqQuantizer",
            options=LlmCompressorOptions,
        )
    )
    register(
        QuantizerSpec(
            name="awq",
            description="AWQ: activation-aware scaling of salient channels, then int4 weights in groups with zero "
            "points (llm-compressor); compressed-tensors format that transformers and vLLM load",
            impl="omni_plugin_llmcompressor.quantizer:AwqQuantizer",
            options=LlmCompressorOptions,
        )
    )
