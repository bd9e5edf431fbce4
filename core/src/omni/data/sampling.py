"""`NAME#N` sampling and the train/validation split, both reproducible from a seed."""

from __future__ import annotations

import random
import re
from typing import TypeVar

from omni.errors import OmniError

T = TypeVar("T")

_COUNT = re.compile(r"^(?P<name>.+)#(?P<count>\d+)$")


def parse_count(value: str) -> tuple[str, int | None]:
    """``"a.jsonl#500"`` -> ``("a.jsonl", 500)``; without a ``#N`` suffix the count is None."""
    match = _COUNT.match(value)
    if match is None:
        return value, None
    return match["name"], int(match["count"])


def sample(rows: list[T], count: int, seed: int) -> list[T]:
    """`count` rows drawn with `seed`: a random subset, or, when `count` exceeds the rows, every row
    repeated as many whole times as fit plus a random subset for the rest (as ms-swift does)."""
    if not rows:
        return []
    rng = random.Random(seed)
    repeats, rest = divmod(count, len(rows))
    return rows * repeats + rng.sample(rows, rest)


def split(rows: list[T], ratio: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, validation): a shuffled `ratio` of the rows, at least one, held out for validation."""
    if not 0.0 < ratio < 1.0:
        raise OmniError(f"--val-split-ratio must be between 0 and 1, got {ratio}")
    if len(rows) < 2:
        raise OmniError(f"cannot hold out a validation split from {len(rows)} row(s); pass --val-dataset instead")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = max(1, round(len(rows) * ratio))
    held_out = set(order[:held])
    return [r for i, r in enumerate(rows) if i not in held_out], [rows[i] for i in order[:held]]
