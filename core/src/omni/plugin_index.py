"""The plugin index: which published distribution provides a capability nobody installed.

Core knows no plugin by name. When a user asks for a tuner, an algorithm, a model family or a switch such as
``--deepspeed`` that no installed plugin registered, omni looks the name up in plugin indexes — data, not code —
to say which distribution to ``pip install``:

- ``omni/plugin_index.json``, shipped with omni-core: what the plugins published from omni's own repository
  register. ``scripts/plugin_index.py --write`` regenerates it from those plugins, and
  ``tests/core/test_plugin_index.py`` fails when it no longer matches what they register.
- any installed distribution's index, declared in the ``omni.plugin_index`` entry-point group as a
  ``"module:attr"`` naming a dict in the same format (an enterprise's catalogue of its private plugins).

The format: ``{"distributions": {"omni-plugin-lora": {"tuners": ["lora"], "switches": []}, ...}}`` — for each
distribution, the names (and aliases) it registers by kind, and under ``switches`` the options that turn on its
strategies and callbacks.
"""

from __future__ import annotations

import functools
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omni.plugins import PluginHost

INDEX_FILE = Path(__file__).with_name("plugin_index.json")
ENTRY_POINT_GROUP = "omni.plugin_index"
SWITCHES = "switches"


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


@functools.cache
def distributions() -> dict[str, dict[str, list[str]]]:
    """Every indexed distribution with what it provides: omni-core's index, then installed ones (later win)."""
    merged: dict[str, dict[str, list[str]]] = dict(json.loads(INDEX_FILE.read_text(encoding="utf-8"))["distributions"])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            merged.update(ep.load()["distributions"])
        except Exception:  # a broken catalogue must not hide the error the user is about to see
            continue
    return merged


def provider_of(kind: str, name: str) -> str | None:
    """The distribution that provides `name` of `kind` (`kind` ``"switches"``: an option), or None."""
    key = _normalise(name)
    for distribution, provides in distributions().items():
        if key in map(_normalise, provides.get(kind, ())):
            return distribution
    return None


def providers(kind: str) -> dict[str, list[str]]:
    """{distribution: names} of every indexed distribution providing something of `kind`."""
    return {dist: names for dist, provides in distributions().items() if (names := provides.get(kind))}


def index_of(host: PluginHost, distribution_names: set[str]) -> dict[str, Any]:
    """The index entries of the named distributions, from what their plugins registered in `host`."""
    found: dict[str, dict[str, list[str]]] = {}
    for plugin in host.plugins:
        if plugin.distribution.name not in distribution_names or plugin.error:
            continue
        provides = found.setdefault(plugin.distribution.name, {SWITCHES: []})
        for kind, names in plugin.registered.items():
            for name in names:
                registration = host.registry.entries[kind][name]
                provides.setdefault(kind, []).extend([name, *registration.spec.aliases])
                switch = getattr(registration.spec, "switch", None)
                if switch:
                    provides[SWITCHES].append(switch)
    return {
        "distributions": {
            dist: {kind: sorted(set(names)) for kind, names in sorted(provides.items())}
            for dist, provides in sorted(found.items())
        }
    }
