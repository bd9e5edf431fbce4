"""Resolve `--eval-dataset` values to benchmarks with their rows, and score runs on them through an engine.

Every question of a benchmark goes to the engine in large batches (`ROWS_PER_CALL`), never one prompt at a time:
the pt engine generates them in batches of its --max-batch-size, vLLM schedules them all, a remote server gets
them concurrently and batches them itself.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni.api import GenerationConfig, InferRequest, OmniError, Registry

from omni_plugin_eval.benchmarks.files import SUFFIXES, read_records

ROWS_PER_CALL = 256  # rows handed to the engine at once; progress is reported between calls
DEFAULT_MAX_NEW_TOKENS = 512


@dataclass
class Benchmark:
    """A benchmark ready to score: its label in the report, its spec, the instance, and its rows and prompts."""

    label: str
    spec: Any
    instance: Any
    path: Path
    rows: list[dict[str, Any]]
    prompts: list[dict[str, Any]]

    @property
    def max_new_tokens(self) -> int:
        return int(getattr(self.instance, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS))


@dataclass
class Answer:
    """One scored answer."""

    index: int
    subset: str
    answer: str
    extracted: Any
    metrics: dict[str, float]


@dataclass
class Results:
    """Answers by run label, then by benchmark label; `benchmarks` in the order given."""

    benchmarks: list[Benchmark]
    answers: dict[str, dict[str, list[Answer]]] = field(default_factory=dict)


def resolve_benchmarks(values: list[str], registry: Registry, *, data_dir: str, limit: int | None) -> list[Benchmark]:
    """The benchmarks `--eval-dataset` names, each with its rows (the first `limit`) read and prompted.

    Raises `OmniError` naming the value, and where its data was looked for, when it cannot be read."""
    if not values:
        raise OmniError(
            "--eval-dataset is empty; name a benchmark: NAME=PATH, NAME or FILE (see `omni list benchmarks`)"
        )
    resolved = [_locate(value, registry, Path(data_dir)) for value in values]
    labels = [name for name, _, _ in resolved]
    benchmarks = []
    for (name, spec, path), value in zip(resolved, values, strict=True):
        label = name if labels.count(name) == 1 else f"{name}:{path.stem}"
        instance = spec.load()(spec.default_options())
        rows = []
        for row in instance.load(path):
            if limit is not None and len(rows) >= limit:
                break
            rows.append(row)
        if not rows:
            raise OmniError(f"--eval-dataset {value}: {path} has no rows")
        benchmarks.append(Benchmark(label, spec, instance, path, rows, [instance.prompt(row) for row in rows]))
    return benchmarks


def _locate(value: str, registry: Registry, data_dir: Path) -> tuple[str, Any, Path]:
    """(benchmark name, spec, data path) for one `--eval-dataset` value."""
    name, sep, given = value.partition("=")
    if sep:
        registration = registry.get("benchmarks", name)
        path = Path(given).expanduser()
        if not path.exists():
            raise OmniError(
                f"--eval-dataset {value}: {path} does not exist; benchmark {registration.spec.name!r} reads "
                f"{registration.spec.layout}"
            )
        return registration.spec.name, registration.spec, path
    registration = registry.find("benchmarks", value)
    if registration is not None:
        path = data_dir / registration.spec.name
        if not path.exists():
            raise OmniError(
                f"benchmark {registration.spec.name!r}: no data at {path} (looked for that file or folder; there is no "
                f"hub here); pass --eval-dataset {registration.spec.name}=PATH or --eval-data-dir, with "
                f"{registration.spec.layout}"
            )
        return registration.spec.name, registration.spec, path
    path = Path(value).expanduser()
    if path.is_file():
        name = guess_benchmark(path)
        return name, registry.get("benchmarks", name).spec, path
    raise OmniError(
        f"--eval-dataset {value}: neither a benchmark (installed: {', '.join(registry.names('benchmarks'))}) nor a file"
    )


def guess_benchmark(file: Path) -> str:
    """The built-in benchmark a lone FILE is read with, from the fields of its first record."""
    if file.suffix not in SUFFIXES:
        raise OmniError(f"--eval-dataset {file}: write NAME={file} (a lone file must be .jsonl, .json or .csv)")
    first = next(iter(read_records(file)), None)
    if first is None:
        raise OmniError(f"--eval-dataset {file}: the file has no rows")
    keys = set(first.fields)
    if isinstance(first.fields.get("question"), dict):
        return "arc"
    if keys & {"image", "images", "audio", "audios"}:
        return "media-mcq"
    if "choices" in keys or {"A", "B"} <= keys:
        return "mcq"
    if "####" in str(first.fields.get("answer", "")) or "solution" in keys:
        return "gsm8k"
    if "answers" in keys or "answer" in keys:
        return "qa"
    raise OmniError(
        f"--eval-dataset {file}: cannot tell which benchmark reads it (fields: {', '.join(sorted(keys))}); "
        f"write NAME={file} (see `omni list benchmarks`)"
    )


def score(
    engine: Any,
    benchmarks: list[Benchmark],
    runs: dict[str, str | None],
    generation: GenerationConfig,
    *,
    max_new_tokens: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Results:
    """Answer every benchmark's prompts for each run (label -> adapter name, None: the base model) and score them.

    `max_new_tokens` overrides each benchmark's own answer length."""
    say = progress or (lambda line: print(f"[omni] {line}", file=sys.stderr, flush=True))
    results = Results(benchmarks)
    for label, adapter in runs.items():
        for benchmark in benchmarks:
            config = dataclasses.replace(generation, max_new_tokens=max_new_tokens or benchmark.max_new_tokens)
            answers: list[Answer] = []
            for start in range(0, len(benchmark.prompts), ROWS_PER_CALL):
                chunk = benchmark.prompts[start : start + ROWS_PER_CALL]
                responses = engine.generate([InferRequest(prompt, config, adapter) for prompt in chunk])
                for offset, response in enumerate(responses):
                    index = start + offset
                    row = benchmark.rows[index]
                    text = response.choices[0].text
                    metrics = dict(benchmark.instance.score(text, row))
                    extracted = metrics.pop("extracted", None)
                    answers.append(Answer(index, str(row.get("subset", "default")), text, extracted, metrics))
                say(f"eval {label}: {benchmark.label} {len(answers)}/{len(benchmark.rows)}")
            results.answers.setdefault(label, {})[benchmark.label] = answers
    return results


def summarize(results: Results) -> dict[str, Any]:
    """Per run and benchmark: the headline metric, every metric's mean, the count, and the same per subset."""

    def means(answers: list[Answer]) -> dict[str, float]:
        names = list(dict.fromkeys(name for a in answers for name in a.metrics))
        return {name: sum(a.metrics.get(name, 0.0) for a in answers) / len(answers) for name in names}

    summary: dict[str, Any] = {}
    for run, by_benchmark in results.answers.items():
        for benchmark in results.benchmarks:
            answers = by_benchmark[benchmark.label]
            subsets: dict[str, list[Answer]] = {}
            for answer in answers:
                subsets.setdefault(answer.subset, []).append(answer)
            overall = means(answers)
            summary.setdefault(run, {})[benchmark.label] = {
                "benchmark": benchmark.spec.name,
                "data": str(benchmark.path),
                "metric": benchmark.spec.metric,
                "score": overall.get(benchmark.spec.metric, 0.0),
                "correct": sum(a.metrics.get(benchmark.spec.metric, 0.0) for a in answers),
                "count": len(answers),
                "metrics": overall,
                "subsets": {
                    name: {
                        "count": len(group),
                        "score": means(group).get(benchmark.spec.metric, 0.0),
                        "metrics": means(group),
                    }
                    for name, group in sorted(subsets.items())
                },
            }
    return summary
