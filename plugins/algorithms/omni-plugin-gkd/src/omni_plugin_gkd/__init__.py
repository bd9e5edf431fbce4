"""omni-plugin-gkd: `omni rlhf --algo gkd --teacher-model PATH`, on-policy distillation on TRL's GKDTrainer.

Registering imports nothing heavy: TRL loads when a run starts.
"""

from __future__ import annotations

from omni.api import AlgorithmSpec, hookimpl

from omni_plugin_gkd.options import GkdOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_algorithms(register):
    """Register `gkd` for `omni rlhf`."""
    register(
        AlgorithmSpec(
            name="gkd",
            command="rlhf",
            description="Generalized Knowledge Distillation: the student matches a teacher's token distributions "
            "on its own samples (--lmbda), the dataset's answers, or the teacher's (--seq-kd)",
            impl="omni_plugin_gkd.run:run_gkd",
            options=GkdOptions,
        )
    )
