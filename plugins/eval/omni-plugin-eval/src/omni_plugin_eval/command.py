"""`omni eval`: score a model, its adapters, or a served model on benchmarks, and write the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from omni.api import (
    EMBEDDED_MODEL,
    OmniError,
    Registry,
    RemoteEngine,
    open_engine,
    parse_adapters,
    with_training_defaults,
)

from omni_plugin_eval.evaluate import Benchmark, resolve_benchmarks, score, summarize
from omni_plugin_eval.options import EvalOptions
from omni_plugin_eval.report import write_report


def run(invocation: Any) -> int:
    """Run `omni eval` with the parsed flags; returns the exit status."""
    options: EvalOptions = invocation.options
    adapters = parse_adapters(options.adapters)
    if adapters and not options.eval_url:
        options = with_training_defaults(options, Path(next(iter(adapters.values()))))
    if options.eval_backend == "evalscope":
        from omni_plugin_eval.evalscope_backend import run_evalscope

        return run_evalscope(invocation, options, adapters)
    # The rows are read before any model loads: a missing file or bad row costs nothing.
    benchmarks = resolve_benchmarks(
        options.eval_dataset, invocation.registry, data_dir=options.eval_data_dir, limit=options.eval_limit
    )
    engine = (
        remote_engine(options, adapters, invocation.registry) if options.eval_url else open_engine(invocation, adapters)
    )
    try:
        check_modalities(engine, benchmarks)
        model = engine.served_model if options.eval_url else options.model or EMBEDDED_MODEL
        runs: dict[str, str | None] = {}
        if options.eval_base or not adapters:
            runs["base" if adapters else Path(model).name or model] = None
        runs.update({name: name for name in adapters})
        started = time.perf_counter()
        results = score(engine, benchmarks, runs, options.generation_config(), max_new_tokens=options.max_new_tokens)
        elapsed = time.perf_counter() - started
    finally:
        engine.close()
    summary = summarize(results)
    output_dir = Path(options.eval_output_dir or default_output_dir(model))
    meta = {
        "model": model,
        "adapters": adapters,
        "engine": "openai-api " + options.eval_url if options.eval_url else options.infer_backend,
        "generation": {"temperature": options.temperature, "max_new_tokens": options.max_new_tokens},
        "seconds": round(elapsed, 2),
    }
    print_report(summary, write_report(output_dir, results, summary, meta))
    return 0


def default_output_dir(model: str) -> Path:
    """eval_output/MODEL/TIMESTAMP, where a report goes without --eval-output-dir."""
    return Path("eval_output") / Path(model).name / time.strftime("%Y%m%d-%H%M%S")


def remote_engine(options: EvalOptions, adapters: dict[str, str], registry: Registry) -> RemoteEngine:
    """An engine over the OpenAI-compatible server at `--eval-url`; the model is `--model`, else the server's first."""
    url = options.eval_url.rstrip("/")
    headers = {"Authorization": f"Bearer {options.eval_api_key}"} if options.eval_api_key else {}
    served = options.model
    if served is None:
        try:
            listed = httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json().get("data") or []
        except (httpx.HTTPError, ValueError) as exc:
            raise OmniError(
                f"--eval-url {url}: could not list its models at /v1/models ({exc}); pass --model"
            ) from None
        if not listed:
            raise OmniError(f"--eval-url {url}: the server lists no models; pass --model")
        served = listed[0]["id"]
    return RemoteEngine(
        served, url=url, served_model=served, api_key=options.eval_api_key, adapters=adapters, registry=registry
    )


def check_modalities(engine: Any, benchmarks: list[Benchmark]) -> None:
    """A benchmark asking about images or sounds needs a model that takes them (when the engine says what it takes)."""
    takes = engine.modalities
    if takes is None:
        return
    for benchmark in benchmarks:
        for column, modality in (("images", "image"), ("audios", "audio")):
            if modality not in takes and any(column in prompt for prompt in benchmark.prompts):
                raise OmniError(
                    f"benchmark {benchmark.label} asks about {column} ({benchmark.path}); the model takes "
                    f"{', '.join(takes)} only"
                )


def print_report(summary: dict[str, Any], written: dict[str, Path]) -> None:
    """The summary's lines, then where the report's files are."""
    print_summary(summary)
    print(
        f"report: {written['page']} (chart {written['chart']}, summary {written['summary']}, answers {written['answers']})"
    )


def print_summary(summary: dict[str, Any]) -> None:
    """One line per run and benchmark (and subset): score, correct/count."""
    for run, by_benchmark in summary.items():
        for label, entry in by_benchmark.items():
            print(f"{run}  {label}  {entry['metric']} {entry['score']:.4f}  ({entry['correct']:g}/{entry['count']})")
            if len(entry["subsets"]) > 1:
                for subset, part in entry["subsets"].items():
                    print(f"    {subset:<30} {part['score']:.4f}  ({part['count']})")
