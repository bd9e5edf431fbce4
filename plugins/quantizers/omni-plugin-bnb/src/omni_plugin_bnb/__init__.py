"""omni-plugin-bnb: the `bnb` quantizer (bitsandbytes NF4/FP4 4-bit and LLM.int8 8-bit) for QLoRA."""

from __future__ import annotations

from omni.api import QuantizerSpec, hookimpl

from omni_plugin_bnb.options import BnbOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_quantizers(register):
    register(
        QuantizerSpec(
            name="bnb",
            description="bitsandbytes: load the base model in 4-bit NF4 or 8-bit for QLoRA",
            impl="omni_plugin_bnb.quantizer:BnbQuantizer",
            options=BnbOptions,
            aliases=("bitsandbytes",),
        )
    )
