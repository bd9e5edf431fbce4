"""omni-plugin-reft: the `reft` tuner (LoReFT, NoReFT): low-rank interventions on hidden states at prompt positions.

Registering imports nothing heavy: the tuner class lives in `omni_plugin_reft.tuner` and loads on use.
"""

from __future__ import annotations

from omni.api import TunerSpec, hookimpl

from omni_plugin_reft.options import ReftOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_tuners(register):
    register(
        TunerSpec(
            name="reft",
            description="representation fine-tuning: LoReFT/NoReFT edits of chosen layers' hidden states at prompt "
            "positions (--reft-rank, --reft-layers, --reft-positions)",
            impl="omni_plugin_reft.tuner:ReftTuner",
            options=ReftOptions,
            # only omni's own loss tells each row's prompt (the positions edited) from its answer
            algorithms=("sft", "pt"),
            # interventions are saved from the model's own (whole) parameters
            shardable=False,
        )
    )
