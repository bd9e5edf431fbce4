"""omni-plugin-lora: the `lora` tuner (LoRA, DoRA, rsLoRA, LoRA+, PiSSA) on peft.

Registering imports nothing heavy: the tuner class lives in `omni_plugin_lora.tuner` and loads on use.
"""

from __future__ import annotations

from omni.api import TunerSpec, hookimpl

from omni_plugin_lora.options import LoraOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_tuners(register):
    register(
        TunerSpec(
            name="lora",
            description="low-rank adapters (LoRA; --use-dora, --use-rslora, --lora-plus-lr-ratio, --init-weights pissa)",
            impl="omni_plugin_lora.tuner:LoraTuner",
            options=LoraOptions,
        )
    )
