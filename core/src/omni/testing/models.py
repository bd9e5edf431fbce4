"""Tiny random models saved as real checkpoint folders, loadable by path exactly like a downloaded model.

`build_tiny_model("qwen3", path)` is `omni.testing.build_tiny` (any model type) for the two families omni's own
tests train most: config.json, model.safetensors, generation_config.json and the family's tiny tokenizer with
its real chat template and special tokens, a few hundred thousand parameters (2 layers, width 64, heads of 32,
which vLLM's CPU backend needs), small enough to train in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

TinyFamily = Literal["llama", "qwen3"]

# Whether input and output embeddings are tied, as the families publish them (the configs' defaults differ).
_TIED: dict[str, bool] = {"llama": False, "qwen3": True}


def build_tiny_model(family: TinyFamily, path: str | Path, *, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny random `family` checkpoint into `path` (created if missing) and return it.

    `build_tiny` with the family's published embedding tying; `overrides` replace config fields (e.g.
    ``num_hidden_layers=1``, ``tie_word_embeddings=False``); `seed` makes the random weights reproducible.
    """
    from omni.testing.tiny import build_tiny

    if family not in _TIED:
        raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(_TIED)}")
    return build_tiny(family, path, seed=seed, **{"tie_word_embeddings": _TIED[family], **overrides})
