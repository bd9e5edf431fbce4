"""Hub datasets: ``--dataset org/name[:subset]`` loaded through `datasets.load_dataset`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# `org/name`, optionally `:subset`; matched in full, after local paths (an existing folder wins).
HUB_ID_PATTERN = r"[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?"


def load_hub_dataset(name: str, options: None, *, streaming: bool) -> Iterable[dict[str, Any]]:
    """The train split of `name` (``org/name[:subset]`` or anything `load_dataset` accepts).

    With ``--streaming`` the rows are fetched lazily (an `IterableDataset`); otherwise the split is
    downloaded into the `datasets` cache, memory-mapped, and read row by row.
    """
    import datasets

    path, _, subset = name.partition(":")
    return datasets.load_dataset(path, subset or None, split="train", streaming=streaming)
