"""omni-plugin-lisa: the `lisa` tuner (layer-wise importance sampling, Pan et al. 2024).

Registering imports nothing heavy: the tuner class lives in `omni_plugin_lisa.tuner` and loads on use.
"""

from __future__ import annotations

from omni.api import TunerSpec, hookimpl

from omni_plugin_lisa.options import LisaOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_tuners(register):
    register(
        TunerSpec(
            name="lisa",
            description="LISA: full tuning of embeddings, head and a few random decoder layers, switched every N steps",
            impl="omni_plugin_lisa.tuner:LisaTuner",
            options=LisaOptions,
        )
    )
