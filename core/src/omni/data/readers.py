"""Read dataset files lazily, record by record, with each record's line or row number.

JSONL and CSV records carry their file line; JSON arrays, Parquet and `datasets` folders carry
``row N`` (0-based, as ``dataset[N]``). A record that cannot even be parsed is yielded with its
problem, so the loader can stop with ``file:line`` or skip and count it. A text file that is not UTF-8
(a binary file under a .jsonl name, another encoding) is no row's problem: it raises `DataError` with the
line and byte offset, with or without ``--skip-bad-rows``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.errors import DataError

_BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark some editors and exports write; skipped


@dataclass(frozen=True)
class Record:
    """One raw row (`data`) or, when it could not be parsed, what was wrong (`problem`)."""

    location: int | str
    data: Any = None
    problem: str | None = None


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file with their 1-based numbers (only ``\\n`` ends a line; endings kept).

    Raises `DataError` naming the line and the byte offset in the file of the first byte that is not
    UTF-8 text, or of a NUL byte (which text files do not hold and binary ones do).
    """
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            start = len(_BOM) if number == 1 and raw.startswith(_BOM) else 0
            nul = raw.find(b"\x00", start)
            try:
                text = raw[start : nul if nul >= 0 else len(raw)].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_text(path, number, offset + start + exc.start, raw[start + exc.start]) from None
            if nul >= 0:
                raise _not_text(path, number, offset + nul, 0)
            offset += len(raw)
            yield number, text


def _not_text(path: Path, line: int, offset: int, byte: int) -> DataError:
    return DataError(
        str(path),
        line,
        f"byte {byte:#04x} at byte offset {offset} is not UTF-8 text; is this a binary file? "
        "Dataset files must be UTF-8 (convert it, e.g. with iconv)",
    )


def read_jsonl(path: Path) -> Iterator[Record]:
    """One record per non-blank line; the location is the 1-based line number."""
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            yield Record(number, json.loads(line))
        except json.JSONDecodeError as exc:
            yield Record(number, problem=f"not valid JSON ({exc.msg} at column {exc.colno})")


def read_json(path: Path) -> Iterator[Record]:
    """A JSON array of rows (``row N``), or JSON Lines saved under a .json name."""
    with path.open("rb") as f:
        head = f.read(1024).removeprefix(_BOM).lstrip()
    if not head.startswith(b"["):
        yield from read_jsonl(path)
        return
    try:
        rows = json.loads("".join(line for _, line in text_lines(path)))
    except json.JSONDecodeError as exc:
        raise DataError(
            str(path), exc.lineno, f"not valid JSON ({exc.msg}); fix the file or save it as JSON Lines"
        ) from None
    for index, row in enumerate(rows):
        yield Record(f"row {index}", row)


def read_csv(path: Path) -> Iterator[Record]:
    """One record per CSV row, keyed by the header; the location is the row's first file line."""
    reader = csv.reader(line for _, line in text_lines(path))
    header = next(reader, None)
    if header is None:
        return
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(line, problem=f"not valid CSV ({exc})")
            return
        if not any(cells):
            continue
        if len(cells) != len(header):
            yield Record(line, problem=f"has {len(cells)} fields but the header has {len(header)}")
            continue
        yield Record(line, dict(zip(header, cells, strict=True)))


def read_parquet(path: Path) -> Iterator[Record]:
    """Rows of a Parquet file, read one record batch at a time."""
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield Record(f"row {index}", row)
            index += 1


def read_saved_dataset(path: Path) -> Iterator[Record]:
    """Rows of a folder written by `datasets` ``save_to_disk`` (its ``train`` split for a DatasetDict)."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded and len(loaded) != 1:
            raise DataError(str(path), None, f"has splits {', '.join(loaded)} but no train split; save one split")
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    for index, row in enumerate(loaded):  # memory-mapped Arrow: iterating does not load it all
        yield Record(f"row {index}", row)


READERS: dict[str, Callable[[Path], Iterator[Record]]] = {
    ".jsonl": read_jsonl,
    ".json": read_json,
    ".csv": read_csv,
    ".parquet": read_parquet,
}


def is_saved_dataset(path: Path) -> bool:
    """Whether `path` is a folder `datasets` wrote with ``save_to_disk``."""
    return path.is_dir() and any((path / marker).exists() for marker in ("dataset_info.json", "dataset_dict.json"))


def read_path(path: Path) -> Iterator[Record]:
    """Records of a local dataset file or ``save_to_disk`` folder, by its suffix or layout."""
    if is_saved_dataset(path):
        return read_saved_dataset(path)
    if path.is_dir():
        raise DataError(str(path), None, "is a folder but not a datasets save_to_disk one; pass the data files in it")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        kinds = ", ".join(READERS)
        raise DataError(
            str(path), None, f"unsupported dataset file type; use {kinds} or a datasets save_to_disk folder"
        )
    return reader(path)
