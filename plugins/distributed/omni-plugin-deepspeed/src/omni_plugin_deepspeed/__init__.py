"""omni-plugin-deepspeed: the `deepspeed` strategy (ZeRO stages 0-3, with or without CPU offload).

Registering imports nothing heavy: the strategy lives in `omni_plugin_deepspeed.strategy` and loads on use.
"""

from __future__ import annotations

from omni.api import StrategySpec, hookimpl

from omni_plugin_deepspeed.options import DeepSpeedOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_strategies(register):
    register(
        StrategySpec(
            name="deepspeed",
            description="DeepSpeed ZeRO: optimizer state, gradients (ZeRO-2) and parameters (ZeRO-3) partitioned",
            impl="omni_plugin_deepspeed.strategy:DeepSpeedStrategy",
            options=DeepSpeedOptions,
            switch="deepspeed",
        )
    )
