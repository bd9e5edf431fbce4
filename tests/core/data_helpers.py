"""Helpers for the data tests: write rows in each file format, load them through `load_datasets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omni.data import DataOptions, LoadedData, load_datasets
from omni.plugins import load_plugins

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """One JSON document per line; a str row is written as it is (to make broken lines)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


def load(*datasets: str, **options: Any) -> LoadedData:
    """`load_datasets` over built-ins only (no installed dataset plugins), with these flags."""
    registry = load_plugins({"OMNI_PLUGINS": ""}).registry
    return load_datasets(DataOptions(dataset=list(datasets), **options), registry)
