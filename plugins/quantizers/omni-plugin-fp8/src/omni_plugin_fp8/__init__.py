"""omni-plugin-fp8: the `fp8` quantizer (FP8 E4M3 weights in blocks, dynamic activation scales) for `omni export`."""

from __future__ import annotations

from omni.api import QuantizerSpec, hookimpl

OMNI_PLUGIN_API = 1


@hookimpl
def register_quantizers(register):
    register(
        QuantizerSpec(
            name="fp8",
            description="FP8 (E4M3) weights in 128x128 blocks, activations scaled per token at run time (W8A8 "
            "dynamic), through transformers' fine-grained FP8: served by vLLM; needs a CUDA GPU",
            impl="omni_plugin_fp8.quantizer:Fp8Quantizer",
        )
    )
