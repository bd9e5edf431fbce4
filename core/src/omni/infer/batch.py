"""`omni infer --input ROWS --output OUT`: answer every row of a dataset and write them with a `response` column."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.data.loading import load_datasets
from omni.data.options import DataOptions
from omni.data.rows import Row
from omni.infer.adapters import AdapterRouter
from omni.infer.engine import Engine, GenerationConfig, InferRequest
from omni.models.atomic import atomic_text_file
from omni.registry import Registry

# Rows handed to the engine at a time: the engine batches within them, and progress is reported between them.
ROWS_PER_CALL = 64


@dataclass
class RoutedRows:
    """The rows of an `--input` file and the adapter each one is answered by (None: the base model)."""

    rows: list[dict[str, Any]]
    adapters: list[str | None]
    label: bool  # whether output lines name their adapter (several were loaded)


def read_rows(source: str, router: AdapterRouter, registry: Registry) -> RoutedRows:
    """Read `source` (a file, or a dataset name in `registry`) and pick each row's adapter; a bad choice fails
    here, on its row."""
    rows = list(load_datasets(DataOptions(dataset=[source]), registry, require_answer=False).train)
    return RoutedRows(rows, [router.adapter_for(row) for row in rows], router.routing)


def answer_file(engine: Engine, routed: RoutedRows, target: Path, config: GenerationConfig) -> None:
    """Answer the rows and write `target` as JSONL, all at once.

    Each output line is the input row in the messages format plus ``response`` (and, for a row with ``tools``,
    the ``tool_calls`` the template's parser reads in it: ``[{"name", "arguments"}]``); a row ending with an
    assistant turn (a labelled set) is prompted without that turn, which stays in the row for comparison.
    With several adapters loaded, each line also names the ``adapter`` that answered it. Rows for
    different adapters go to the engine together; it batches only rows that share an adapter.
    """
    rows = routed.rows
    parser = engine.template.tool_parser if engine.template is not None else None
    with atomic_text_file(target) as handle:
        for start in range(0, len(rows), ROWS_PER_CALL):
            chunk = rows[start : start + ROWS_PER_CALL]
            picked = routed.adapters[start : start + ROWS_PER_CALL]
            requests = [InferRequest(prompt_row(row), config, name) for row, name in zip(chunk, picked, strict=True)]
            responses = engine.generate(requests)
            for row, name, response in zip(chunk, picked, responses, strict=True):
                line = {**row, "response": response.choices[0].text}
                if row.get("tools") and parser is not None:
                    calls = parser.parse(line["response"]).tool_calls
                    line["tool_calls"] = [{"name": call.name, "arguments": call.arguments} for call in calls]
                if routed.label:
                    line["adapter"] = name
                handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            print(f"answered {start + len(chunk)}/{len(rows)} rows", file=sys.stderr, flush=True)
    print(f"wrote {len(rows)} answers to {target}")


def prompt_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its final assistant turn, if it has one: what the model should answer."""
    messages = row["messages"]
    if messages and messages[-1]["role"] == "assistant":
        prompt = {**row, "messages": messages[:-1]}
        # Keep the row's file and line: its relative media paths resolve against that file's folder.
        return Row(prompt, row.source, row.location) if isinstance(row, Row) else prompt
    return row
