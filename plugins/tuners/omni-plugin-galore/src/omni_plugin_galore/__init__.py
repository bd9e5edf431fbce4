"""omni-plugin-galore: the `galore` tuner (GaLore, Zhao et al. 2024) on galore-torch through transformers' Trainer.

Registering imports nothing heavy: the tuner class lives in `omni_plugin_galore.tuner` and loads on use.
"""

from __future__ import annotations

from omni.api import TunerSpec, hookimpl

from omni_plugin_galore.options import GaloreOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_tuners(register):
    register(
        TunerSpec(
            name="galore",
            description="GaLore: full tuning with low-rank projected optimizer states (--galore-rank, --galore-optim)",
            impl="omni_plugin_galore.tuner:GaloreTuner",
            options=GaloreOptions,
        )
    )
