"""Built-in commands for inspecting and authoring plugins."""

from __future__ import annotations

from dataclasses import dataclass

from omni import hookimpl
from omni.options import option
from omni.registry import KINDS, CommandSpec
from omni.scaffold import ScaffoldKind


@dataclass
class PluginsOptions:
    json: bool = option(False, help="print machine-readable JSON")


@dataclass
class ListOptions:
    kind: str = option(help=f"what to list: {', '.join(KINDS)} (singular accepted)", positional=True)
    json: bool = option(False, help="print machine-readable JSON")


@dataclass
class NewPluginOptions:
    kind: ScaffoldKind = option(help="the kind of capability the plugin registers", positional=True)
    name: str = option(help="the plugin name; the distribution is omni-plugin-NAME", positional=True)
    output_dir: str = option(".", help="where to create the omni-plugin-NAME folder")


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="plugins",
            description="list installed plugins, the hooks they implement, what they registered, load errors",
            impl="omni.cli.plugins_cmd:run",
            options=PluginsOptions,
        )
    )
    register(
        CommandSpec(
            name="list",
            description="list the registered models, tuners, algorithms, engines ... with their options",
            impl="omni.cli.list_cmd:run",
            options=ListOptions,
        )
    )
    register(
        CommandSpec(
            name="new-plugin",
            description="create a complete, installable plugin distribution to start from",
            impl="omni.cli.new_plugin:run",
            options=NewPluginOptions,
        )
    )
