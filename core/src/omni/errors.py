"""Errors that mean "the user asked for something wrong": the CLI prints them as one line."""

from __future__ import annotations


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
