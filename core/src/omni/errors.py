"""Errors that mean "the user asked for something wrong": the CLI prints them as one line."""

from __future__ import annotations

import importlib
import os
import sys
import traceback


class OmniError(Exception):
    """A user-facing error: bad input, a missing plugin, a bad flag. Printed without a traceback."""


class MissingCapabilityError(OmniError):
    """A name was asked for in a kind where no installed plugin registered it."""


class PluginLoadError(OmniError):
    """A plugin failed to load and `OMNI_STRICT_PLUGINS=1` asked for that to be fatal."""


class DataError(OmniError):
    """A dataset row is malformed. The message starts with `file:line:` (or `file:row N:`)."""

    def __init__(self, source: str, location: int | str | None, problem: str) -> None:
        self.source = source
        self.location = location
        self.problem = problem
        where = f"{source}:{location}" if location is not None else source
        super().__init__(f"{where}: {problem}")


class ImplementationError(OmniError):
    """A spec's ``impl`` reference could not be imported. The message names the spec, the reference, the
    problem and where it happened; `registration` (set by whoever knows it) adds the plugin that registered it."""

    def __init__(self, spec: object, problem: str, where: str | None) -> None:
        self.spec = spec
        self.problem = problem
        self.where = where
        self.registration: object | None = None
        super().__init__(problem)

    def __str__(self) -> str:
        from omni.registry import singular

        spec = self.spec
        label = f"{singular(getattr(spec, 'kind', 'specs'))} {getattr(spec, 'name', '?')!r}"
        by = ""
        if self.registration is not None:
            dist = self.registration.distribution
            origin = f", registered at {self.registration.origin}" if self.registration.origin else ""
            by = f" (plugin {dist.name} {dist.version}{origin})"
        at = f" at {self.where}" if self.where else ""
        return f"{label}{by}: impl {getattr(spec, 'impl', '?')!r} cannot be loaded{at}: {self.problem}"


_CORE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep


def raised_at(exc: BaseException, *, within: str | None = None) -> str | None:
    """``file:line`` to show for `exc`: the innermost frame under the folder `within` when there is one, else the
    innermost frame outside omni-core, pluggy and Python's import machinery (where a plugin's own code went wrong);
    None when every frame is omni's own."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    if within:
        inside = [f for f in frames if os.path.abspath(f.filename).startswith(within)]
        if inside:
            return f"{inside[-1].filename}:{inside[-1].lineno}"
    machinery = [_CORE_DIR, _IMPORTLIB_DIR]
    pluggy = sys.modules.get("pluggy")
    if pluggy is not None and pluggy.__file__:
        machinery.append(os.path.dirname(pluggy.__file__) + os.sep)
    outside = [
        f
        for f in frames
        if not f.filename.startswith("<frozen") and not os.path.abspath(f.filename).startswith(tuple(machinery))
    ]
    return f"{outside[-1].filename}:{outside[-1].lineno}" if outside else None
