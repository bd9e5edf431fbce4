"""Helpers and pytest fixtures for testing omni and omni plugins (installed as a pytest plugin).

What a plugin's tests use, besides the fixtures of `omni.testing.pytest_plugin`:

- `build_tiny(config_or_model_type, path, ...)`: a tiny random checkpoint of any transformers model type.
- `random_model(construct, seed=...)`: a model built from a config with the same weights every time, including
  any its transformers class leaves uninitialized.
- `build_tokenizer(family)`: a tiny tokenizer with a family's special tokens and chat template; `FamilyTokens`
  describes a family omni does not list (its published special tokens and chat template).
- `installed_registry()`: what the installed plugins registered, as omni's commands see it.
- `run_omni(*args)`: run an `omni` command in this process; returns its exit status.

Importing this package is light: torch and transformers load only when a model or tokenizer is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omni.registry import Registry
    from omni.testing.tiny import build_tiny, random_model
    from omni.testing.tokenizers import FamilyTokens, build_tokenizer

__all__ = ["FamilyTokens", "build_tiny", "build_tokenizer", "installed_registry", "random_model", "run_omni"]


def installed_registry() -> Registry:
    """The registry of omni's built-ins and the installed plugins (the `omni_host` fixture's, inside its tests)."""
    from omni.plugins import get_registry

    return get_registry()


def run_omni(*args: str) -> int:
    """Run ``omni ARGS...`` in this process and return its exit status (0 success, 2 a user error).

    Output goes to this process's stdout and stderr (pytest's `capsys` reads them)."""
    from omni.cli.main import main

    return main(list(args))


def __getattr__(name: str) -> Any:
    if name in ("build_tiny", "random_model"):
        from omni.testing import tiny

        return getattr(tiny, name)
    if name == "build_tokenizer":
        from omni.testing.tokenizers import build_tokenizer

        return build_tokenizer
    if name == "FamilyTokens":
        from omni.testing.tokenizers import FamilyTokens

        return FamilyTokens
    raise AttributeError(f"module 'omni.testing' has no attribute {name!r}")
