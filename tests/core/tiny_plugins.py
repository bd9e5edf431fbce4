"""A set of small, realistic plugin distributions written straight into a site folder (a dist-info directory with
the entry point beside each module, as pip leaves them), for start-up tests and benchmarks/cli_startup.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

ENTRY_MODULE = """
from dataclasses import dataclass

from omni.api import CommandSpec, RewardSpec, TunerSpec, hookimpl, option

OMNI_PLUGIN_API = 1


@dataclass
class {cls}Options:
    {name}_rank: int = option(8, help="rank of the {name} update")
    {name}_layers: list[str] = option(default_factory=list, help="layers {name} trains")


@dataclass
class {cls}ReportOptions:
    {name}_report_json: bool = option(False, help="print {name}'s report as JSON")


@hookimpl
def register_tuners(register):
    register(TunerSpec(name="{name}", description="{name} tuner", impl="{module}.impl:Tuner", options={cls}Options))


@hookimpl
def register_rewards(register):
    register(RewardSpec(name="{name}-reward", description="{name} reward", impl="{module}.impl:reward"))


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="{name}-report", description="{name}'s report", impl="{module}.impl:run", options={cls}ReportOptions
        )
    )
"""


def plugin_names(count: int) -> list[str]:
    return [f"tiny{i:02d}" for i in range(count)]


def write_tiny_plugins(site: Path, count: int) -> list[str]:
    """Write `count` plugin distributions (``omni-plugin-tinyNN``: a tuner, a reward and a command each, with
    options) into `site`, a folder to put on PYTHONPATH; returns their entry-point names."""
    names = plugin_names(count)
    for name in names:
        module = f"omni_plugin_{name}"
        (site / module).mkdir(parents=True, exist_ok=True)
        source = ENTRY_MODULE.format(name=name, module=module, cls=name.capitalize())
        (site / module / "__init__.py").write_text(textwrap.dedent(source).lstrip())
        info = site / f"omni_plugin_{name}-0.1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: omni-plugin-{name}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[omni]\n{name} = {module}\n")
    return names
