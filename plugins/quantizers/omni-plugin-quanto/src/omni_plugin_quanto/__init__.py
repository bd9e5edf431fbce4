"""omni-plugin-quanto: the `quanto` quantizer (optimum-quanto int8/int4 weights) for `omni export`."""

from __future__ import annotations

from omni.api import QuantizerSpec, hookimpl

from omni_plugin_quanto.options import QuantoOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_quantizers(register):
    register(
        QuantizerSpec(
            name="quanto",
            description="optimum-quanto: int8 or int4 weights (optionally int8 activations) that run on CPU",
            impl="omni_plugin_quanto.quantizer:QuantoQuantizer",
            options=QuantoOptions,
            exported_marker="quanto_qmap.json",
        )
    )
