"""A row of the messages format that remembers where it was read from."""

from __future__ import annotations

from typing import Any

from omni.errors import DataError


class Row(dict[str, Any]):
    """A dict row plus its origin (`source` file or dataset name, `location` line or ``row N``).

    It behaves as a plain dict everywhere (columns reach reward functions unchanged); the origin is kept
    as attributes so later stages (templates, collators) can say where a bad row came from.
    """

    def __init__(self, data: dict[str, Any], source: str, location: int | str | None) -> None:
        super().__init__(data)
        self.source = source
        self.location = location

    def __reduce__(self) -> tuple[Any, ...]:
        return (Row, (dict(self), self.source, self.location))


def with_origin(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """`new` carrying `old`'s file and line when `old` is a `Row`, so errors about it still name the row."""
    return Row(new, old.source, old.location) if isinstance(old, Row) else new


def row_error(row: dict[str, Any], problem: str, error_type: type[DataError] = DataError) -> DataError:
    """An error of `error_type` naming the row's origin (``file:line``) when it is a `Row`."""
    if isinstance(row, Row):
        return error_type(row.source, row.location, problem)
    return error_type("row", None, problem)


class RowProblem(Exception):
    """What is wrong with one raw row; the loader adds the file and line, or skips and counts the row."""
