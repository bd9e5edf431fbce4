"""The local tasks' rows, loaded from the JSON Lines files beside this module (no hub access needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

HERE = Path(__file__).parent


def capitals(**kwargs: Any) -> datasets.DatasetDict:
    return datasets.load_dataset("json", data_files={"test": str(HERE / "capitals.jsonl")})


def sequences(**kwargs: Any) -> datasets.DatasetDict:
    return datasets.load_dataset("json", data_files={"test": str(HERE / "sequences.jsonl")})
