"""`load_datasets`: the `--dataset` flags to validated rows of the messages format, for the trainers."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from omni.data.convert import parse_columns, rename_columns, to_messages_row
from omni.data.options import DataOptions
from omni.data.resolve import DatasetSource, resolve_dataset
from omni.data.rows import Row, RowProblem
from omni.data.sampling import parse_count, sample, split
from omni.data.validate import media_problem, validate_row
from omni.errors import DataError, OmniError
from omni.registry import Registry


@dataclass
class SkippedRows:
    """Rows dropped by ``--skip-bad-rows``: how many, and the first few reasons as ``file:line: problem``."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, error: DataError) -> None:
        """Count one skipped row, keeping its reason if it is among the first few."""
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(str(error))

    def summary(self) -> str:
        """One line for logs, e.g. ``skipped 2 bad rows (a.jsonl:3: ...; a.jsonl:9: ...)``."""
        if not self.count:
            return "skipped no rows"
        return f"skipped {self.count} bad row(s) ({'; '.join(self.examples)}{' ...' if self.count > 5 else ''})"


@dataclass(frozen=True)
class _RowChecks:
    """What every row must pass besides being a conversation: an answer (training), media the model takes."""

    require_answer: bool
    modalities: Collection[str] | None


@dataclass(frozen=True)
class _Reading:
    """How rows are read: the data flags, the registry, and each registered dataset's own options by name."""

    options: DataOptions
    registry: Registry
    dataset_options: Mapping[str, Any]

    def spec_options(self, source: DatasetSource) -> Any:
        """The options a registered dataset's loader gets: the parsed flags, else its spec's defaults."""
        if source.spec is None:
            return None
        if source.spec.name in self.dataset_options:
            return self.dataset_options[source.spec.name]
        return source.spec.default_options()


class StreamingRows:
    """Rows read lazily from the datasets each time it is iterated (``--streaming``); never held in memory."""

    def __init__(self, reading: _Reading, checks: _RowChecks, skipped: SkippedRows) -> None:
        self._reading, self._checks, self._skipped = reading, checks, skipped

    def __iter__(self) -> Iterator[Row]:
        for value in self._reading.options.dataset:
            name, count = parse_count(value)
            rows = _rows(name, self._reading, self._checks, self._skipped)
            # Streams cannot be shuffled ahead of time: NAME#N takes the first N rows.
            yield from rows if count is None else itertools.islice(rows, count)


@dataclass
class LoadedData:
    """What `load_datasets` returns.

    `train` is a list of rows, or with ``--streaming`` a re-iterable `StreamingRows`; `val` is a list or
    None; `skipped` counts rows dropped by ``--skip-bad-rows`` (with streaming it grows while `train` is
    read). Every row is a `Row`: a dict in the messages format that also knows its ``file:line``.
    """

    train: list[Row] | StreamingRows
    val: list[Row] | None
    skipped_rows: SkippedRows

    @property
    def skipped(self) -> int:
        """How many rows ``--skip-bad-rows`` dropped so far."""
        return self.skipped_rows.count


def load_datasets(
    options: DataOptions,
    registry: Registry | None = None,
    *,
    dataset_options: Mapping[str, Any] | None = None,
    require_answer: bool = True,
    modalities: Collection[str] | None = None,
) -> LoadedData:
    """Resolve, read, convert and validate ``--dataset``/``--val-dataset``, then sample and split.

    Each value is a registered dataset name, a local file or folder, or an id a dataset family claims,
    optionally with ``#N`` (N rows drawn with ``--data-seed``; more than the set repeats it). A bad row
    raises `DataError` (``file:line: problem``) unless ``--skip-bad-rows``, which counts it instead.
    `require_answer` (training) requires an assistant turn in every row; RL prompt sets pass False.
    `modalities` (the model spec's, e.g. ``("text",)``) makes a row with media the model cannot take a bad
    row, unless ``--media-as-text``. `dataset_options` maps a registered dataset's name to its spec's options
    instance (the training commands parse them from flags and YAML); a dataset not in it gets its defaults.
    Needs no model or tokenizer: run it before the model loads. With ``--streaming`` each dataset's first
    record is read here, so a bad dataset option or an unreadable file fails before the model loads too.
    """
    if registry is None:
        from omni.plugins import get_registry

        registry = get_registry()
    if not options.dataset:
        raise OmniError("no training data: pass --dataset FILE_OR_NAME (see docs/data.md)")
    skipped = SkippedRows()
    reading = _Reading(options, registry, dataset_options or {})
    checks = _RowChecks(require_answer, None if options.media_as_text else modalities)
    val = _load_all(options.val_dataset, reading, checks, skipped) if options.val_dataset else None
    if options.streaming:
        if options.val_split_ratio and val is None:
            raise OmniError("--val-split-ratio needs the whole dataset in memory; with --streaming pass --val-dataset")
        for value in options.dataset:
            source = resolve_dataset(parse_count(value)[0], registry)
            next(source.records(reading.spec_options(source), streaming=True), None)
        return LoadedData(StreamingRows(reading, checks, skipped), val, skipped)
    train = _load_all(options.dataset, reading, checks, skipped)
    if val is None and options.val_split_ratio:
        train, val = split(train, options.val_split_ratio, options.data_seed)
    if not train:
        raise OmniError(f"no training rows left in {', '.join(options.dataset)} ({skipped.summary()})")
    return LoadedData(train, val, skipped)


def _load_all(values: list[str], reading: _Reading, checks: _RowChecks, skipped: SkippedRows) -> list[Row]:
    rows: list[Row] = []
    for value in values:
        name, count = parse_count(value)
        loaded = list(_rows(name, reading, checks, skipped))
        rows += loaded if count is None else sample(loaded, count, reading.options.data_seed)
    return rows


def _rows(name: str, reading: _Reading, checks: _RowChecks, skipped: SkippedRows) -> Iterable[Row]:
    options = reading.options
    source = resolve_dataset(name, reading.registry)
    columns = parse_columns(options.columns)
    for record in source.records(reading.spec_options(source), streaming=options.streaming):
        try:
            if record.problem is not None:
                raise RowProblem(record.problem)
            data = to_messages_row(rename_columns(record.data, columns))
            validate_row(data, require_answer=checks.require_answer)
            unfit = None if checks.modalities is None else media_problem(data, checks.modalities)
            if unfit is not None:
                raise RowProblem(f"{unfit}; use a model that takes them, or --media-as-text to train the tags as text")
        except RowProblem as problem:
            error = DataError(source.source, record.location, str(problem))
            if not options.skip_bad_rows:
                raise error from None
            skipped.add(error)
            continue
        yield Row(data, source.source, record.location)
