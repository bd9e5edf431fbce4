"""omni-plugin-init: `omni init`, a terminal wizard that writes a training config.

Light: the wizard's module is imported only when `omni init` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import CommandSpec, hookimpl, option

OMNI_PLUGIN_API = "1.3"  # command_options


@dataclass
class InitOptions:
    output: str = option("run.yaml", help="the YAML config file the wizard writes (it asks before replacing one)")


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="init",
            description="a terminal wizard: task, model, data, tuner, a few settings -> a YAML config to train with",
            impl="omni_plugin_init.wizard:run",
            options=InitOptions,
        )
    )
