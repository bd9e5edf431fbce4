"""Load a reward a user wrote in a Python file: ``--reward-funcs my_rewards.py:brevity``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from omni.api import OmniError


def is_file_reference(ref: str) -> bool:
    """Whether `ref` names a Python file (``path.py:NAME``, or ``path.py`` missing its NAME)."""
    path, sep, _ = ref.rpartition(":")
    return ref.endswith(".py") or (bool(sep) and path.endswith(".py"))


def load_from_file(ref: str) -> Any:
    """The object ``path.py:NAME`` names (a path is relative to the working directory).

    Each file is imported once per process, so several rewards from one file share its module state.
    """
    path_text, sep, attr = ref.rpartition(":")
    if not sep or not path_text.endswith(".py") or not attr:
        raise OmniError(f"reward {ref!r}: name the function in the file too, as FILE.py:FUNCTION")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise OmniError(f"reward {ref!r}: the file {path_text} does not exist (looked for {path})")
    module = _import_file(path)
    if not hasattr(module, attr):
        defined = [
            n for n, v in vars(module).items() if callable(v) and getattr(v, "__module__", None) == module.__name__
        ]
        raise OmniError(
            f"reward {ref!r}: {path_text} has no {attr!r} (it defines: {', '.join(defined) or 'nothing callable'})"
        )
    obj = getattr(module, attr)
    if not callable(obj):
        raise OmniError(f"reward {ref!r}: {attr!r} in {path_text} is a {type(obj).__name__}, not a function or class")
    return obj


def _import_file(path: Path) -> ModuleType:
    import hashlib  # here: this module loads with the plugin, on every omni start

    # A name derived from the path keeps two files called rewards.py apart.
    name = f"omni_reward_file_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # always set for a .py path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before executing, as a normal import does (dataclasses, pickling need it)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise OmniError(f"reward file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module
