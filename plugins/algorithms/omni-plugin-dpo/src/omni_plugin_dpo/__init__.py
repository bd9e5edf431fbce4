"""omni-plugin-dpo: `omni rlhf --algo dpo|kto|simpo|orpo|cpo|rm` on TRL's preference trainers.

Registering imports nothing heavy: TRL loads when a run starts.
"""

from __future__ import annotations

from omni.api import AlgorithmSpec, hookimpl

from omni_plugin_dpo.methods import METHODS

OMNI_PLUGIN_API = "1.8"


@hookimpl
def register_algorithms(register):
    """Register one `rlhf` algorithm per preference method."""
    for method in METHODS:
        register(
            AlgorithmSpec(
                name=method.name,
                command="rlhf",
                description=method.description,
                impl="omni_plugin_dpo.run:run_preference",
                options=method.options,
                model_head=method.model_head,
            )
        )
