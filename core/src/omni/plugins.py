"""Plugin discovery, loading, isolation and listing.

Built-in plugins (`omni.builtin`) register first through the same hooks as installed ones, which are
found through the ``omni`` entry-point group. A plugin that fails to import, declares a plugin API this core
does not provide, implements a hook omni does not have, or raises while registering is recorded with its error
(the hook and the ``file:line`` where it went wrong) and skipped; everything else keeps working. Environment
switches:

- ``OMNI_STRICT_PLUGINS=1``: any load error or name collision is fatal (`PluginLoadError`).
- ``OMNI_PLUGINS=a,b``: load only these installed plugins (entry-point or distribution names);
  set but empty means built-ins only.
- ``OMNI_DISABLE_PLUGINS=x,y``: never load these.

A name in either list that no installed plugin has is warned about, with the closest installed name.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from omni import __version__, hookspecs
from omni.api import API_VERSION
from omni.errors import PluginLoadError, raised_at
from omni.registry import SPEC_TYPES, Distribution, Registration, Registry, Spec, package_dir

ENTRY_POINT_GROUP = "omni"
CORE_DISTRIBUTION = Distribution("omni-core", __version__)
HOOK_KINDS: dict[str, str] = {f"register_{kind}": kind for kind in SPEC_TYPES}
HOOK_NAMES: tuple[str, ...] = tuple(
    sorted(name for name, fn in vars(hookspecs).items() if hasattr(fn, f"{ENTRY_POINT_GROUP}_spec"))
)


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
    traceback: str | None = None  # of the exception behind `error`, shown with --debug

    @property
    def label(self) -> str:
        """How messages name the plugin: its name and, for installed ones, distribution and version."""
        origin = "built-in" if self.builtin else f"{self.distribution.name} {self.distribution.version}"
        return f"plugin {self.name!r} ({origin})"

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
            "traceback": self.traceback,
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
        declared = getattr(plugin, "OMNI_PLUGIN_API", API_VERSION)
        refused = _api_refusal(declared)
        if refused:
            return self.record_failure(info, refused)
        problem = _hook_problem(plugin)
        if problem:
            return self.record_failure(info, problem)
        try:
            self.manager.register(plugin, name=name)
        except Exception as exc:  # a plugin's bad hook signature must not take omni down
            return self.record_failure(info, _one_line(exc), exc)
        staged: list[Registration] = []
        for caller in self.manager.get_hookcallers(plugin) or []:
            kind = HOOK_KINDS.get(caller.name)
            if kind is None:
                continue  # not a contribution hook
            info.hooks.append(caller.name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    impl.function(register=_register_callback(kind, staged, distribution))
                except Exception as exc:
                    self.manager.unregister(plugin)
                    where = raised_at(exc, within=_folder_of(plugin)) or _defined_at(impl.function)
                    return self.record_failure(info, f"hook {caller.name} raised at {where}: {_one_line(exc)}", exc)
        for registration in staged:
            clash = self.registry.add(registration)
            if clash:
                self._warn(clash)
            info.registered.setdefault(registration.spec.kind, []).append(registration.spec.name)
        return info

    def record_failure(self, info: PluginInfo, error: str, exc: BaseException | None = None) -> PluginInfo:
        """Mark a plugin as not loaded with `error` (and the traceback of `exc`), and warn (or raise, in strict mode)."""
        info.error = error
        if exc is not None:
            info.traceback = "".join(traceback.format_exception(exc))
        self._warn(f"{info.label} not loaded: {error}", cause=exc)
        return info

    def _warn(self, message: str, cause: BaseException | None = None) -> None:
        if self.strict:
            raise PluginLoadError(message) from cause
        warnings.warn(message, PluginWarning, stacklevel=3)

    @property
    def errors(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]


def _register_callback(kind: str, staged: list[Registration], distribution: Distribution) -> Callable[[Spec], None]:
    spec_type = SPEC_TYPES[kind]

    def register(spec: Spec) -> None:
        if not isinstance(spec, spec_type):
            raise TypeError(f"register_{kind} expects {spec_type.__name__} records, got {type(spec).__name__}")
        caller = sys._getframe(1)  # the plugin's line that registered the spec, for messages about it later
        staged.append(Registration(spec, distribution, f"{caller.f_code.co_filename}:{caller.f_lineno}"))

    return register


def _api_refusal(declared: object) -> str | None:
    """Why a plugin declaring `OMNI_PLUGIN_API = declared` cannot load here, or None when it can.

    ``1`` means any 1.x; ``"1.2"`` means 1.2 or a later 1.x (it uses names added in 1.2)."""
    provided = tuple(int(part) for part in API_VERSION.split("."))
    try:
        wanted = (declared, 0) if isinstance(declared, int) else tuple(int(p) for p in str(declared).split("."))
    except ValueError:
        return f'OMNI_PLUGIN_API = {declared!r} is not a version like 1 or "1.0"'
    if wanted[0] != provided[0] or wanted[1:2] > provided[1:2]:
        return (
            f"written for plugin API {declared}, this omni-core {__version__} provides API {API_VERSION}; "
            "install a version of the plugin made for it"
        )
    return None


def _hook_problem(plugin: object) -> str | None:
    """A hook implementation omni cannot call, described with its file:line (None when all are fine).

    pluggy accepts implementations of hooks nobody declared and would only fail when called: a misspelled hook
    name would register nothing without a word."""
    for attr in dir(plugin):
        function = getattr(plugin, attr, None)
        opts = getattr(function, f"{ENTRY_POINT_GROUP}_impl", None)
        if not callable(function) or not isinstance(opts, dict):
            continue
        hook = opts.get("specname") or attr
        where = _defined_at(function)
        if hook not in HOOK_NAMES:
            close = difflib.get_close_matches(hook, HOOK_NAMES, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; omni's hooks: {', '.join(HOOK_NAMES)}"
            return f"unknown hook {hook} at {where}{hint}"
        accepted = set(inspect.signature(getattr(hookspecs, hook)).parameters)
        extra = [p for p in inspect.signature(function).parameters if p not in accepted]
        if extra:
            return f"hook {hook} at {where} takes {', '.join(extra)}; omni passes only {', '.join(sorted(accepted))}"
    return None


def _defined_at(function: Callable[..., Any]) -> str:
    code = getattr(inspect.unwrap(function), "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else repr(function)


def _folder_of(plugin: object) -> str | None:
    """The folder of a module plugin's package, where its own code lives."""
    path = getattr(plugin, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {n.strip().lower() for n in value.split(",") if n.strip()}


def _warn_unknown_names(variable: str, names: set[str] | None, installed: set[str]) -> None:
    for name in sorted((names or set()) - installed):
        close = difflib.get_close_matches(name, sorted(installed), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        available = ", ".join(sorted(installed)) or "none"
        warnings.warn(
            f"{variable} names {name!r}, which is not an installed plugin{hint} (installed: {available})",
            PluginWarning,
            stacklevel=3,
        )


def strict_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OMNI_STRICT_PLUGINS`` asks for plugin problems to be fatal."""
    env = os.environ if environ is None else environ
    return env.get("OMNI_STRICT_PLUGINS", "") not in ("", "0", "false")


def load_plugins(environ: Mapping[str, str] | None = None, *, strict: bool | None = None) -> PluginHost:
    """Build a host with the built-in plugins and every installed plugin the environment allows.

    `strict` overrides ``OMNI_STRICT_PLUGINS`` (the diagnostic command `omni plugins` loads leniently)."""
    from omni.builtin import BUILTIN_PLUGINS

    env = os.environ if environ is None else environ
    host = PluginHost(strict=strict_requested(env) if strict is None else strict)
    for module_name in BUILTIN_PLUGINS:
        host.add(importlib.import_module(module_name), name=module_name, distribution=CORE_DISTRIBUTION, builtin=True)

    allowed = _names(env.get("OMNI_PLUGINS"))
    denied = _names(env.get("OMNI_DISABLE_PLUGINS")) or set()
    installed = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    labels_of = {ep.name: {ep.name.lower(), (ep.dist.name if ep.dist else ep.name).lower()} for ep in installed}
    every_label = set().union(*labels_of.values())
    _warn_unknown_names("OMNI_PLUGINS", allowed, every_label)
    _warn_unknown_names("OMNI_DISABLE_PLUGINS", denied, every_label)
    for ep in installed:
        dist = Distribution(ep.dist.name, ep.dist.version) if ep.dist else Distribution(ep.name, "unknown")
        labels = labels_of[ep.name]
        if labels & denied or (allowed is not None and not labels & allowed):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin is reported, not fatal
            info = PluginInfo(ep.name, ep.value, dist)
            host.plugins.append(info)
            where = raised_at(exc, within=package_dir(ep.module))
            host.record_failure(info, f"importing {ep.value} failed at {where}: {_one_line(exc)}", exc)
            continue
        host.add(plugin, name=ep.name, distribution=dist)
    return host


_current: PluginHost | None = None


def get_host(*, lenient: bool = False) -> PluginHost:
    """The process-wide plugin host, loaded on first use (with `lenient`, never in strict mode)."""
    global _current
    if _current is None:
        _current = load_plugins(strict=False if lenient else None)
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
