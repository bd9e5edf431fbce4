"""Resolve a `--dataset` value to where its raw records come from.

Order: a registered dataset name, then an existing local path (read by `omni.data.readers`), then the
regex `pattern` of registered dataset families (hub ids, for instance).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.data.readers import READERS, Record, read_path
from omni.errors import OmniError
from omni.registry import DatasetSpec, Registry


@dataclass(frozen=True)
class DatasetSource:
    """A resolved dataset: `source` names it in messages; `records(...)` reads it lazily."""

    source: str
    spec: DatasetSpec | None = None  # None: a local file or folder

    def records(self, spec_options: Any, *, streaming: bool) -> Iterator[Record]:
        """The raw records, read lazily; a plugin's rows are located as ``row N``.

        A registered dataset's loader is called as ``load(name, spec_options, streaming=streaming)``, where
        `spec_options` is its spec's options instance (None when the spec declares none)."""
        if self.spec is None:
            yield from read_path(Path(self.source))
            return
        rows: Iterable[Any] = self.spec.load()(self.source, spec_options, streaming=streaming)
        for index, row in enumerate(rows):
            yield Record(f"row {index}", row)


def resolve_dataset(name: str, registry: Registry) -> DatasetSource:
    """The source a `--dataset` value names, or an `OmniError` listing what is registered."""
    named = registry.find("datasets", name)
    if named is not None and isinstance(named.spec, DatasetSpec) and named.spec.pattern is None:
        return DatasetSource(name, named.spec)
    local = Path(name).expanduser()
    if local.exists():
        return DatasetSource(str(local))
    for registration in registry.all("datasets"):
        spec = registration.spec
        if isinstance(spec, DatasetSpec) and spec.pattern is not None and re.fullmatch(spec.pattern, name):
            return DatasetSource(name, spec)
    raise OmniError(unknown_dataset_message(name, registry))


def unknown_dataset_message(name: str, registry: Registry) -> str:
    """Why `name` resolves to nothing, with the registered names and id patterns."""
    offered = [
        f"{r.spec.name} ({r.spec.pattern})" if isinstance(r.spec, DatasetSpec) and r.spec.pattern else r.spec.name
        for r in registry.all("datasets")
    ]
    looks_like_file = Path(name).suffix.lower() in READERS
    what = "no such file" if looks_like_file else "neither an existing file nor a registered dataset"
    registered = ", ".join(offered) or "none (pip install omni-plugin-datasets for identity and hub ids)"
    return f"dataset {name!r}: {what}; registered datasets: {registered}"
