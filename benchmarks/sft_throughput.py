"""LoRA SFT throughput: omni (padded and padding-free) against a plain transformers Trainer + peft script.

    .venv/bin/python benchmarks/sft_throughput.py            # both sets, all three runs each (minutes)
    .venv/bin/python benchmarks/sft_throughput.py --rows 64  # a quicker, smaller mixed-length set
    .venv/bin/python benchmarks/sft_throughput.py --startup-runs 5  # start-up only: one step, runs alternated

LoRA r=8 (omni's defaults for the model family) on the embedded SmolLM2-135M, one epoch, batch 8,
max length 256, gradient checkpointing off, same seed and schedule everywhere. Two data sets: 200 rows of
omni's `identity` set (short answers) and a generated mixed-length set (answers from a few tokens to a
few hundred). The plain script trains on exactly the token ids and labels omni's template produced, with
`DataCollatorForSeq2Seq` dynamic padding and transformers' default loss, so only the training path differs.

Figures per run: useful (non-pad) tokens/s, MFU, wall time, final logged loss, and start-up time (process
start to the first training step, minus model loading); the plain script's start-up is the floor that
importing torch, transformers' Trainer, peft and datasets sets for any Trainer-based tool. `--startup-runs N`
measures start-up alone: N one-step runs of omni (padded) and of the plain script, alternated so that both see
the same load on a shared machine, and the ratio of their medians. MFU counts 4 x (linear-layer
parameters) FLOPs per useful token: forward plus the input-gradient half of backward, as LoRA leaves the
frozen weights without weight gradients (attention score FLOPs are left out); the peak is this machine's
fp32 matmul rate, measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OMNI = Path(sys.executable).with_name("omni")
SETTINGS = {"batch": 8, "max_length": 256, "lr": 1e-4, "seed": 42}

WORDS = "the model reads each token and writes a short clear answer about data training loss time".split()


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 matmul rate over a few trials (GFLOP/s), with torch's default threads."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def mixed_rows(n: int, seed: int = 0) -> list[dict]:
    """Questions with answers of 2 to ~220 words (log-uniform), so lengths vary widely within a batch."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = int(round(2 ** rng.uniform(1, 7.8)))
        answer = " ".join(rng.choice(WORDS) for _ in range(words))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}: describe it."},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def encode_for_plain(dataset: list[str], extra: list[str], out: Path) -> None:
    """Token ids and labels exactly as omni encodes them, for the plain script."""
    from omni.cli.invocation import parse_invocation
    from omni.data import load_datasets
    from omni.models.embedded import smollm2_path
    from omni.plugins import get_registry
    from omni.template import get_template
    from omni.train.encoding import RowEncoder, encode_rows
    from transformers import AutoTokenizer

    registry = get_registry()
    argv = ["--dataset", *dataset, "--max-length", str(SETTINGS["max_length"]), *extra]
    options = parse_invocation(registry.get("commands", "sft").spec, argv, registry).options
    model_spec = registry.get("models", "smollm2").spec
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    template = get_template(None, tokenizer, options.template_options(), model_spec=model_spec, registry=registry)
    encoder = RowEncoder(template, max_length=SETTINGS["max_length"])
    encoded = encode_rows(encoder, load_datasets(options, registry).train)
    out.write_text("".join(json.dumps(f) + "\n" for f in encoded.features))


def run_omni(dataset: list[str], extra: list[str], out: Path, padding_free: bool, max_steps: int = -1) -> dict:
    """One `omni sft` run in a subprocess; figures from its stderr and logging.jsonl."""
    from omni.models.embedded import smollm2_path

    argv = [str(OMNI), "sft", "--model", str(smollm2_path()), "--dataset", *dataset, *extra]
    argv += ["--tuner", "lora", "--lora-rank", "8", "--epochs", "1", "--batch-size", str(SETTINGS["batch"])]
    argv += ["--max-length", str(SETTINGS["max_length"]), "--learning-rate", str(SETTINGS["lr"])]
    argv += ["--seed", str(SETTINGS["seed"]), "--gradient-checkpointing", "false", "--logging-steps", "1"]
    argv += ["--save-strategy", "no", "--output-dir", str(out), "--padding-free", str(padding_free).lower()]
    argv += ["--max-steps", str(max_steps)]
    start = time.time()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode:
        raise SystemExit(f"omni sft failed:\n{done.stderr[-3000:]}")
    load_s = float(re.search(r"loaded in ([\d.]+) s", done.stderr).group(1))
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    begin = next(r["time"] for r in logs if r.get("event") == "train_begin")
    steps = [r for r in logs if "loss" in r]
    summary = next(r for r in logs if "train_runtime" in r)
    return {
        "tokens": steps[-1]["num_tokens_seen"],
        "train_s": summary["train_runtime"],
        "wall_s": wall,
        "final_loss": steps[-1]["loss"],
        "startup_s": begin - start - load_s,
    }


PLAIN = """
import json, sys, time, torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback
from transformers import TrainingArguments, set_seed
class BeginTime(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        self.time = time.time()
model_path, data, adapter_config, out, batch, lr, seed, max_steps = sys.argv[1:9]
set_seed(int(seed))  # before the adapter is created, as omni does, so both start from the same LoRA init
tok = AutoTokenizer.from_pretrained(model_path)
load_start = time.time()
model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
load_s = time.time() - load_start
cfg = json.load(open(adapter_config))
model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=cfg["r"], lora_alpha=cfg["lora_alpha"],
    lora_dropout=cfg["lora_dropout"], target_modules=cfg["target_modules"]))
rows = [json.loads(l) for l in open(data)]
ds = Dataset.from_list(rows)
args = TrainingArguments(out, num_train_epochs=1, max_steps=int(max_steps), per_device_train_batch_size=int(batch),
    learning_rate=float(lr),    lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.1, seed=int(seed), data_seed=int(seed),
    logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, dataloader_pin_memory=False)
begin = BeginTime()
trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[begin],
    data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
result = trainer.train()
losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
print(json.dumps({"tokens": sum(len(r["input_ids"]) for r in rows), "train_s": result.metrics["train_runtime"],
    "final_loss": losses[-1], "begin": begin.time, "load_s": load_s}))
"""


def run_plain(data: Path, adapter_config: Path, out: Path, max_steps: int = -1) -> dict:
    """The plain transformers Trainer + peft script, in a subprocess."""
    from omni.models.embedded import smollm2_path

    argv = [sys.executable, "-c", PLAIN, str(smollm2_path()), str(data), str(adapter_config), str(out)]
    argv += [str(SETTINGS["batch"]), str(SETTINGS["lr"]), str(SETTINGS["seed"]), str(max_steps)]
    start = time.time()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"plain script failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall_s": time.time() - start, "startup_s": result["begin"] - start - result["load_s"]}


def linear_params() -> int:
    """Parameters in the model's linear layers (lm_head included, embeddings excluded)."""
    import torch
    from omni.models.embedded import smollm2_path
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.float32)
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def compare_startup(runs: int, work: Path) -> None:
    """Start-up of one-step runs, omni (padded) and the plain script alternated; medians and their ratio."""
    dataset, extra = ["identity#200"], ["--model-name", "Omni Owl", "--model-author", "Acme Labs"]
    encode_for_plain(dataset, extra, work / "startup.encoded.jsonl")
    figures = {"omni": [], "plain": []}
    for run in range(runs):
        omni = run_omni(dataset, extra, work / f"startup-omni-{run}", padding_free=False, max_steps=1)
        adapter = work / f"startup-omni-{run}" / "adapter_config.json"
        plain = run_plain(work / "startup.encoded.jsonl", adapter, work / f"startup-plain-{run}", max_steps=1)
        figures["omni"].append(omni["startup_s"])
        figures["plain"].append(plain["startup_s"])
        print(f"run {run + 1}: omni {omni['startup_s']:.2f} s, plain {plain['startup_s']:.2f} s", flush=True)
    omni, plain = statistics.median(figures["omni"]), statistics.median(figures["plain"])
    print(f"\nstart-up median of {runs}: omni {omni:.2f} s, plain Trainer+peft {plain:.2f} s: {omni / plain:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200, help="rows of the mixed-length set")
    parser.add_argument("--sets", nargs="+", default=["identity", "mixed"], choices=["identity", "mixed"])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch/OpenMP threads for every run and the peak (default: torch's)"
    )
    parser.add_argument("--startup-runs", type=int, default=0, help="only compare start-up, over N alternated runs")
    args = parser.parse_args()
    if args.threads:
        # Exported before torch is imported, so the peak and the subprocess runs use the same thread count.
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.startup_runs:
        compare_startup(args.startup_runs, Path(tempfile.mkdtemp(prefix="omni-bench-")))
        return

    peak = matmul_peak_gflops()
    flops_per_token = 4 * linear_params()
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s; {flops_per_token / 1e9:.3f} GFLOP per useful token", flush=True)
    work = Path(tempfile.mkdtemp(prefix="omni-bench-"))
    mixed = work / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in mixed_rows(args.rows)))
    sets = {
        "identity": (["identity#200"], ["--model-name", "Omni Owl", "--model-author", "Acme Labs"]),
        "mixed": ([str(mixed)], []),
    }
    table = []
    for name in args.sets:
        dataset, extra = sets[name]
        results = {}
        for label, padding_free in (("omni padding-free", True), ("omni padded", False)):
            results[label] = run_omni(dataset, extra, work / f"{name}-{padding_free}", padding_free)
            print(f"{name} {label}: {results[label]}", flush=True)
        encode_for_plain(dataset, extra, work / f"{name}.encoded.jsonl")
        adapter = work / f"{name}-True" / "adapter_config.json"
        results["plain Trainer+peft"] = run_plain(work / f"{name}.encoded.jsonl", adapter, work / f"{name}-plain")
        print(f"{name} plain: {results['plain Trainer+peft']}", flush=True)
        base = results["plain Trainer+peft"]["tokens"] / results["plain Trainer+peft"]["train_s"]
        for label, r in results.items():
            tps = r["tokens"] / r["train_s"]
            mfu = tps * flops_per_token / (peak * 1e9)
            table.append((name, label, tps, tps / base, mfu, r["wall_s"], r["final_loss"], r["startup_s"]))

    print(
        f"\n{'set':<9} {'run':<19} {'useful tok/s':>12} {'vs plain':>8} {'MFU':>6} {'wall s':>7} {'final loss':>10} {'start-up s':>10}"
    )
    for name, label, tps, ratio, mfu, wall, loss, startup in table:
        print(
            f"{name:<9} {label:<19} {tps:>12.1f} {ratio:>7.2f}x {mfu:>6.1%} {wall:>7.1f} {loss:>10.4f} {startup:>10.1f}"
        )
    import torch

    print(f"\n{torch.get_num_threads()} torch threads on {os.cpu_count()} CPUs; work files in {work}")


if __name__ == "__main__":
    main()
