"""Reading a benchmark's local files: JSONL, JSON and CSV records with the file and line each came from."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.api import DataError

SUFFIXES = (".jsonl", ".json", ".csv")


@dataclass(frozen=True)
class Record:
    """One record of a benchmark file: its fields, and where it is (for error messages)."""

    fields: dict[str, Any]
    file: Path
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def error(self, message: str) -> DataError:
        return DataError(str(self.file), self.line, message)


def files_under(path: Path, suffixes: tuple[str, ...] = SUFFIXES, *, pattern: str = "*") -> list[Path]:
    """`path` itself when it is a file, else the files under the folder `path` matching `pattern` with one of
    `suffixes`, sorted; an error naming the folder when there are none."""
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob(pattern) if p.is_file() and p.suffix in suffixes)
    if not found:
        raise DataError(str(path), None, f"no {pattern} files ending in {', '.join(suffixes)} in this folder")
    return found


def read_records(file: Path, *, header: bool = True, columns: tuple[str, ...] = ()) -> Iterator[Record]:
    """The records of a .jsonl, .json (a list of objects) or .csv file, in order.

    A CSV without a header (`header=False`) takes its field names from `columns`."""
    if file.suffix == ".csv":
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            names = None if header else list(columns)
            for number, values in enumerate(reader, start=1):
                if names is None:
                    names = [v.strip() for v in values]
                    continue
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(names):
                    raise DataError(
                        str(file), number, f"{len(values)} columns, expected {len(names)} ({', '.join(names)})"
                    )
                yield Record(dict(zip(names, values, strict=True)), file, number)
        return
    if file.suffix == ".json":
        try:
            items = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(str(file), exc.lineno, f"not valid JSON ({exc.msg})") from None
        if not isinstance(items, list):
            raise DataError(str(file), None, "expected a JSON list of objects")
        for index, item in enumerate(items, start=1):
            yield Record(_object(item, file, index), file, index)
        return
    with file.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(str(file), number, f"not valid JSON ({exc.msg})") from None
            yield Record(_object(item, file, number), file, number)


def _object(item: Any, file: Path, line: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DataError(str(file), line, f"expected a JSON object, got {type(item).__name__}")
    return item


def subset_of(record: Record, *, several_files: bool) -> str:
    """The subset a record is reported under: its own ``subset``/``subject``/``category`` field, else its file's
    name when the benchmark reads several files, else ``default``."""
    named = next((record.fields[k] for k in ("subset", "subject", "category") if record.fields.get(k)), None)
    return str(named) if named else (record.file.stem if several_files else "default")


def required(record: Record, *names: str) -> Any:
    """The first of the fields `names` that the record has (non-empty); an error naming the file and line if none."""
    for name in names:
        value = record.fields.get(name)
        if value not in (None, ""):
            return value
    raise record.error(f"missing field {' or '.join(repr(n) for n in names)}")
