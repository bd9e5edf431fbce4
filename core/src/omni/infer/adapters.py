"""Adapters for inference: naming them from `--adapters`, finding the tuner that saved one, loading them once.

Core never imports a tuner's library (peft ...): each registered tuner says whether a folder holds
what it saved (`Tuner.is_saved_here`) and applies it (`Tuner.load`, `Tuner.set_active`, `Tuner.merge`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.registry import KNOWN_PROVIDERS, Registry
from omni.train.tuner import Tuner


def parse_adapters(values: Iterable[str]) -> dict[str, str]:
    """`--adapters` values (`DIR` or `NAME=DIR`) as {name: folder}; a bare DIR is named after the folder."""
    adapters: dict[str, str] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            name, folder = Path(value.rstrip("/\\")).name, value
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
    raise OmniError(
        f"no installed tuner recognises the adapter folder {path} (installed tuners: {installed}); "
        f"LoRA adapters need pip install {KNOWN_PROVIDERS[('tuners', 'lora')]}"
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
