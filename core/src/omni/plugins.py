"""Plugin discovery, loading, isolation and listing.

Built-in plugins (`omni.builtin`) register first through the same hooks as installed ones, which are
found through the ``omni`` entry-point group. A plugin that fails to import, declares another plugin-API
major, or raises while registering is recorded with its error and skipped; everything else keeps
working. Environment switches:

- ``OMNI_STRICT_PLUGINS=1``: any load error or name collision is fatal (`PluginLoadError`).
- ``OMNI_PLUGINS=a,b``: load only these installed plugins (entry-point or distribution names);
  set but empty means built-ins only.
- ``OMNI_DISABLE_PLUGINS=x,y``: never load these.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from omni import PLUGIN_API_VERSION, __version__, hookspecs
from omni.errors import PluginLoadError
from omni.registry import SPEC_TYPES, Distribution, Registration, Registry, Spec

ENTRY_POINT_GROUP = "omni"
CORE_DISTRIBUTION = Distribution("omni-core", __version__)
HOOK_KINDS: dict[str, str] = {f"register_{kind}": kind for kind in SPEC_TYPES}


class PluginWarning(UserWarning):
    """A plugin could not be loaded or collided with another; omni goes on without it."""


@dataclass
class PluginInfo:
    """What one plugin is and what it did while loading."""

    name: str
    module: str
    distribution: Distribution
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution.name,
            "version": self.distribution.version,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "registered": self.registered,
            "error": self.error,
        }


class PluginHost:
    """A pluggy manager plus the registry its plugins filled and a record of every plugin."""

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: list[PluginInfo] = []

    def add(self, plugin: object, *, name: str, distribution: Distribution, builtin: bool = False) -> PluginInfo:
        """Register a plugin object (usually a module) and run its contribution hooks.

        Everything the plugin registers is committed together, or nothing is when one of its hooks raises.
        """
        info = PluginInfo(name, getattr(plugin, "__name__", repr(plugin)), distribution, builtin)
        self.plugins.append(info)
        api = getattr(plugin, "OMNI_PLUGIN_API", PLUGIN_API_VERSION)
        if api != PLUGIN_API_VERSION:
            return self.record_failure(
                info, f"written for plugin API {api}, this omni-core {__version__} provides API {PLUGIN_API_VERSION}"
            )
        try:
            self.manager.register(plugin, name=name)
        except Exception as exc:  # a plugin's bad hook signature must not take omni down
            return self.record_failure(info, _describe(exc))
        staged: list[Spec] = []
        try:
            for caller in self.manager.get_hookcallers(plugin) or []:
                kind = HOOK_KINDS[caller.name]
                info.hooks.append(caller.name)
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin:
                        impl.function(register=_register_callback(kind, staged))
        except Exception as exc:
            self.manager.unregister(plugin)
            return self.record_failure(info, _describe(exc))
        for spec in staged:
            clash = self.registry.add(Registration(spec, distribution))
            if clash:
                self._warn(clash)
            info.registered.setdefault(spec.kind, []).append(spec.name)
        return info

    def record_failure(self, info: PluginInfo, error: str) -> PluginInfo:
        """Mark a plugin as not loaded with `error`, and warn (or raise, in strict mode)."""
        info.error = error
        self._warn(f"plugin {info.name!r} ({info.distribution.name} {info.distribution.version}) not loaded: {error}")
        return info

    def _warn(self, message: str) -> None:
        if self.strict:
            raise PluginLoadError(message)
        warnings.warn(message, PluginWarning, stacklevel=3)

    @property
    def errors(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]


def _register_callback(kind: str, staged: list[Spec]) -> Callable[[Spec], None]:
    spec_type = SPEC_TYPES[kind]

    def register(spec: Spec) -> None:
        if not isinstance(spec, spec_type):
            raise TypeError(f"register_{kind} expects {spec_type.__name__} records, got {type(spec).__name__}")
        staged.append(spec)

    return register


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {n.strip().lower() for n in value.split(",") if n.strip()}


def load_plugins(environ: Mapping[str, str] | None = None) -> PluginHost:
    """Build a host with the built-in plugins and every installed plugin the environment allows."""
    from omni.builtin import BUILTIN_PLUGINS

    env = os.environ if environ is None else environ
    host = PluginHost(strict=env.get("OMNI_STRICT_PLUGINS", "") not in ("", "0", "false"))
    for module_name in BUILTIN_PLUGINS:
        host.add(importlib.import_module(module_name), name=module_name, distribution=CORE_DISTRIBUTION, builtin=True)

    allowed = _names(env.get("OMNI_PLUGINS"))
    denied = _names(env.get("OMNI_DISABLE_PLUGINS")) or set()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = Distribution(ep.dist.name, ep.dist.version) if ep.dist else Distribution(ep.name, "unknown")
        labels = {ep.name.lower(), dist.name.lower()}
        if labels & denied or (allowed is not None and not labels & allowed):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin is reported, not fatal
            info = PluginInfo(ep.name, ep.value, dist)
            host.plugins.append(info)
            host.record_failure(info, _describe(exc))
            continue
        host.add(plugin, name=ep.name, distribution=dist)
    return host


_current: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _current
    if _current is None:
        _current = load_plugins()
    return _current


def get_registry() -> Registry:
    """The registry of the process-wide plugin host."""
    return get_host().registry


@contextlib.contextmanager
def using_host(host: PluginHost) -> Iterator[PluginHost]:
    """Make `host` the process-wide host inside the block (tests, embedding omni in a program)."""
    global _current
    previous, _current = _current, host
    try:
        yield host
    finally:
        _current = previous
