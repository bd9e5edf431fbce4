"""Adapters for inference: naming them from `--adapters`, finding the tuner that saved one, loading them once.

Core never imports a tuner's library (peft ...): each registered tuner says whether a folder holds
what it saved (`Tuner.is_saved_here`) and applies it (`Tuner.load`, `Tuner.set_active`, `Tuner.merge`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni import plugin_index
from omni.data.rows import row_error
from omni.errors import OmniError
from omni.infer.recorded import recorded_adapter_name
from omni.registry import Registry
from omni.train.tuner import Tuner

ADAPTER_COLUMN = "adapter"  # a row's own choice of adapter in `omni infer --input` files


def parse_adapters(values: Iterable[str]) -> dict[str, str]:
    """`--adapters` values (`DIR` or `NAME=DIR`) as {name: folder}.

    A bare DIR takes the name its training run recorded (`omni sft --adapter-name`), else the folder's name.
    """
    adapters: dict[str, str] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            folder = value
            name = recorded_adapter_name(Path(folder)) or Path(value.rstrip("/\\")).name
        if not name or not folder:
            raise OmniError(f"--adapters {value!r}: expected DIR or NAME=DIR")
        if name in adapters:
            raise OmniError(f"two adapters are named {name!r}; name them apart with NAME=DIR")
        adapters[name] = folder
    return adapters


def find_tuner(path: Path, registry: Registry) -> type[Tuner]:
    """The tuner class that recognises `path` as something it saved, or an `OmniError` saying what to install."""
    if not path.is_dir():
        raise OmniError(f"adapter folder {path} does not exist")
    for reg in registry.all("tuners"):
        tuner_cls = reg.spec.load()
        if tuner_cls.is_saved_here(path):
            return tuner_cls
    installed = ", ".join(registry.names("tuners")) or "none"
    published = "; ".join(f"{dist} ({', '.join(names)})" for dist, names in plugin_index.providers("tuners").items())
    raise OmniError(
        f"no installed tuner recognises the adapter folder {path} (installed tuners: {installed}); install the "
        f"tuner plugin that saved it{': ' + published if published else ''}"
    )


class AdapterSet:
    """Adapters loaded once onto one base model, each switched on per request by name."""

    def __init__(self) -> None:
        self._tuners: dict[str, type[Tuner]] = {}

    def load(self, model: Any, adapters: dict[str, str], registry: Registry) -> Any:
        """Apply every {name: folder} onto `model`; returns the model to use from now on (it may be wrapped)."""
        for name, folder in adapters.items():
            tuner_cls = find_tuner(Path(folder), registry)
            model = tuner_cls.load(model, Path(folder), name=name)
            self._tuners[name] = tuner_cls
        return model

    def activate(self, model: Any, name: str | None) -> None:
        """Route the next forward passes through adapter `name`, or the bare base model when None."""
        if name is not None and name not in self._tuners:
            loaded = ", ".join(self._tuners) or "none"
            raise OmniError(f"adapter {name!r} is not loaded (loaded adapters: {loaded})")
        for tuner_cls in dict.fromkeys(self._tuners.values()):
            mine = name is not None and self._tuners[name] is tuner_cls
            tuner_cls.set_active(model, name if mine else None)


def parse_routes(values: Iterable[str]) -> dict[str, str]:
    """`--routes` values (`VALUE=ADAPTER`) as {column value: adapter name}."""
    routes: dict[str, str] = {}
    for value in values:
        key, sep, name = value.partition("=")
        if not sep or not key or not name:
            raise OmniError(f"--routes {value!r}: expected VALUE=ADAPTER (e.g. math=math-lora)")
        if key in routes:
            raise OmniError(f"--routes: the value {key!r} is routed twice")
        routes[key] = name
    return routes


@dataclass(frozen=True)
class AdapterRouter:
    """Which loaded adapter answers each row of `omni infer --input`.

    In order: the row's own ``adapter`` column; else, with `column` (``--route-by``), the row's value in
    that column, mapped through `routes` (``--routes VALUE=ADAPTER``) or, without routes, taken as the
    adapter's name; else `default`. An unknown adapter, a missing column or an unrouted value is an
    error naming the row, never a silent fall-back to another adapter.
    """

    loaded: tuple[str, ...]
    default: str | None = None
    column: str | None = None
    routes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for value, name in self.routes.items():
            if name not in self.loaded:
                raise OmniError(f"--routes {value}={name}: {name!r} {self._not_loaded()}")
        if self.routes and self.column is None:
            raise OmniError("--routes needs --route-by COLUMN: the column whose values they map")

    @property
    def routing(self) -> bool:
        """Whether rows may pick different adapters (more than one is loaded)."""
        return len(self.loaded) > 1

    def adapter_for(self, row: dict[str, Any]) -> str | None:
        """The adapter that answers `row`; raises `DataError` naming the row when its choice is not loaded."""
        own = row.get(ADAPTER_COLUMN)
        if own is not None:
            if own not in self.loaded:
                raise row_error(row, f"adapter {own!r} {self._not_loaded()}")
            return str(own)
        if self.column is None:
            return self.default
        if self.column not in row or row[self.column] is None:
            raise row_error(row, f"no {self.column!r} column to route by (--route-by {self.column})")
        value = str(row[self.column])
        name = self.routes.get(value) if self.routes else value
        if name is None:
            raise row_error(row, f"{self.column} {value!r} has no route; --routes maps {', '.join(self.routes)}")
        if name not in self.loaded:
            raise row_error(row, f"{self.column} {value!r} names adapter {name!r}, which {self._not_loaded()}")
        return name

    def _not_loaded(self) -> str:
        return f"is not loaded (--adapters loaded: {', '.join(self.loaded) or 'none'})"
