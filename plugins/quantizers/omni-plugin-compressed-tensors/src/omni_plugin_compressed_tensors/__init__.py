"""omni-plugin-compressed-tensors: the `compressed-tensors` quantizer (int8 W8A8, round to nearest) for export."""

from __future__ import annotations

from omni.api import QuantizerSpec, hookimpl

OMNI_PLUGIN_API = 1


@hookimpl
def register_quantizers(register):
    register(
        QuantizerSpec(
            name="compressed-tensors",
            description="int8 weights per channel and int8 activations per token at run time (W8A8), saved in the "
            "compressed-tensors format that vLLM serves, its CPU build included",
            impl="omni_plugin_compressed_tensors.quantizer:CompressedTensorsQuantizer",
            aliases=("w8a8",),
        )
    )
