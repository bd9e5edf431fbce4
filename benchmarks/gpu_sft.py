"""SFT on a CUDA GPU: omni against a plain transformers Trainer + peft script, on the same mixed-length rows.

    .venv/bin/python benchmarks/gpu_sft.py                      # 0.5b and 4b, lora and full (a GPU machine)
    .venv/bin/python benchmarks/gpu_sft.py --sizes 0.5b --tuners lora --omni-args "--use-liger-kernel"
    .venv/bin/python benchmarks/gpu_sft.py --dry-run            # every piece on a tiny config, on this CPU

Models are random-weight Qwen3 checkpoints of the published shapes (0.5b: Qwen3-0.6B's, 4b: Qwen3-4B's, vocabulary
151,936) with omni's tiny Qwen3 tokenizer, in bfloat16 on the GPU. Rows: benchmarks/sft_throughput.py's
mixed-length set (answers of 2 to ~220 words). omni trains them padding-free (flash attention as variable-length
sequences when flash-attn is installed, else SDPA); the plain script trains exactly the token ids and labels omni's
template produced, padded per batch, with transformers' default loss. One epoch, same batch, seed and schedule.

Figures per run: useful (non-pad) tokens/s over the Trainer's train_runtime, MFU, and peak memory (omni: the
largest ``peak_memory_gib`` of its logs; plain: torch.cuda.max_memory_allocated).
MFU = FLOPs / (train_runtime x peak), FLOPs = k x P x T + 6 x L x H x sum(n^2):
P the parameters of the linear layers (lm_head included, embeddings not), T the useful tokens, k = 6 for full
tuning (forward 2, backward 4) and 4 for LoRA (frozen weights get no weight gradient; LoRA's own matmuls are
left out); the attention term counts QK^T and AV over the causal half of each row of n tokens, forward and
backward, with L layers and H = heads x head dimension. Peak: the GPU's dense bf16 rate (table below, or
--peak-tflops); on --dry-run, this CPU's measured fp32 matmul rate.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sft_throughput import OMNI, matmul_peak_gflops, mixed_rows  # noqa: E402

# Qwen3 shapes (config.json of the published checkpoints), built with random weights.
SHAPES = {
    "0.5b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128, vocab_size=151936),
    "4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, vocab_size=151936),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=4096),
}  # fmt: skip
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, by device-name substring.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}
SETTINGS = {"batch": 8, "max_length": 1024, "lr": 1e-4, "seed": 42}


def build_checkpoint(size: str, path: Path, *, on_gpu: bool) -> Path:
    """A random-weight Qwen3 of `size`'s shape with omni's tiny Qwen3 tokenizer (bfloat16 on a GPU)."""
    import torch
    from omni.testing.models import build_tiny_model
    from transformers import AutoConfig, Qwen3Config, Qwen3ForCausalLM

    build_tiny_model("qwen3", path)  # the tokenizer, chat template and special ids
    fields = AutoConfig.from_pretrained(path).to_dict()
    fields.pop("layer_types", None)  # derived again from the new layer count
    config = Qwen3Config(**{**fields, **SHAPES[size]})
    dtype = torch.bfloat16 if on_gpu else torch.float32
    with torch.device("cuda" if on_gpu else "cpu"):
        model = Qwen3ForCausalLM._from_config(config, dtype=dtype)
    model.save_pretrained(path)
    return path


def encode_for_plain(model: Path, rows_file: Path, out: Path) -> list[int]:
    """omni's token ids and labels for the rows (written to `out` for the plain script); returns row lengths."""
    from omni.cli.invocation import parse_invocation
    from omni.data import load_datasets
    from omni.models.resolve import resolve_model
    from omni.plugins import get_registry
    from omni.template import get_template
    from omni.train.encoding import RowEncoder, encode_rows
    from transformers import AutoTokenizer

    registry = get_registry()
    argv = ["--model", str(model), "--dataset", str(rows_file), "--max-length", str(SETTINGS["max_length"])]
    options = parse_invocation(registry.get("commands", "sft").spec, argv, registry).options
    spec = resolve_model(str(model), registry).spec
    template = get_template(None, AutoTokenizer.from_pretrained(model), options.template_options(), model_spec=spec)
    encoded = encode_rows(
        RowEncoder(template, max_length=SETTINGS["max_length"]), load_datasets(options, registry).train
    )
    out.write_text("".join(json.dumps(f) + "\n" for f in encoded.features))
    return [len(f["input_ids"]) for f in encoded.features]


def attention(on_gpu: bool) -> str:
    import importlib.util

    return "flash_attention_2" if on_gpu and importlib.util.find_spec("flash_attn") else "sdpa"


def run_omni(model: Path, rows_file: Path, tuner: str, out: Path, on_gpu: bool, extra: list[str]) -> dict:
    """`omni sft` padding-free in a subprocess; figures from its logging.jsonl."""
    argv = [str(OMNI), "sft", "--model", str(model), "--dataset", str(rows_file), "--tuner", tuner, "--epochs", "1"]
    argv += ["--batch-size", str(SETTINGS["batch"]), "--max-length", str(SETTINGS["max_length"])]
    argv += ["--learning-rate", str(SETTINGS["lr"]), "--seed", str(SETTINGS["seed"]), "--padding-free"]
    argv += ["--gradient-checkpointing", "false", "--logging-steps", "1", "--save-strategy", "no"]
    argv += ["--attn-impl", attention(on_gpu), "--output-dir", str(out), *extra]
    argv += ["--target-modules", "all-linear"] if tuner == "lora" else []  # as the plain script's LoRA
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"omni sft failed:\n{done.stderr[-3000:]}")
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    summary = next(r for r in logs if "train_runtime" in r)
    steps = [r for r in logs if "loss" in r]
    return {
        "train_s": summary["train_runtime"],
        "peak_gib": max(r["peak_memory_gib"] for r in steps),
        "final_loss": steps[-1]["loss"],
    }


PLAIN = """
import json, sys, torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments
from transformers import set_seed
model_path, data, tuner, out, batch, lr, seed, attn = sys.argv[1:9]
set_seed(int(seed))
on_gpu = torch.cuda.is_available()
tok = AutoTokenizer.from_pretrained(model_path)
model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if on_gpu else torch.float32,
    attn_implementation=attn)
if tuner == "lora":  # omni's LoRA defaults: rank 8, alpha 32, all linear layers of the language model
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=32, lora_dropout=0.05,
        target_modules="all-linear"))
rows = [json.loads(l) for l in open(data)]
args = TrainingArguments(out, num_train_epochs=1, per_device_train_batch_size=int(batch), learning_rate=float(lr),
    lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.1, seed=int(seed), data_seed=int(seed),
    logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, bf16=on_gpu, use_cpu=not on_gpu,
    gradient_checkpointing=False)
trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
    data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
result = trainer.train()
losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
import resource
peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"train_s": result.metrics["train_runtime"], "peak_gib": peak, "final_loss": losses[-1]}))
"""


def run_plain(model: Path, encoded: Path, tuner: str, out: Path, on_gpu: bool) -> dict:
    """The plain transformers Trainer (+ peft for LoRA) script, in a subprocess."""
    argv = [sys.executable, "-c", PLAIN, str(model), str(encoded), tuner, str(out), str(SETTINGS["batch"])]
    argv += [str(SETTINGS["lr"]), str(SETTINGS["seed"]), attention(on_gpu)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"plain script failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def training_flops(size: str, tuner: str, lengths: list[int]) -> float:
    """FLOPs of one epoch over rows of `lengths` tokens (the formula in this module's docstring)."""
    shape = SHAPES[size]
    hidden, layers, attn = (
        shape["hidden_size"],
        shape["num_hidden_layers"],
        shape["num_attention_heads"] * shape["head_dim"],
    )
    kv = shape["num_key_value_heads"] * shape["head_dim"]
    per_layer = hidden * attn * 2 + hidden * kv * 2 + 3 * hidden * shape["intermediate_size"]  # q,o + k,v + MLP
    linear = layers * per_layer + hidden * shape["vocab_size"]  # + lm_head
    k = 6 if tuner == "full" else 4
    return k * linear * sum(lengths) + 6 * layers * attn * sum(n * n for n in lengths)


def peak_flops(on_gpu: bool, given_tflops: float | None) -> tuple[float, str]:
    """(peak FLOP/s, where it came from)."""
    if given_tflops:
        return given_tflops * 1e12, "--peak-tflops"
    if not on_gpu:
        return matmul_peak_gflops() * 1e9, "this CPU's measured fp32 matmul rate"
    import torch

    name = torch.cuda.get_device_name()
    for key, tflops in BF16_PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12, f"{name}'s dense bf16 rate"
    raise SystemExit(f"no bf16 peak known for {name}: give --peak-tflops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["0.5b", "4b"], choices=["0.5b", "4b"])
    parser.add_argument("--tuners", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--rows", type=int, default=256, help="rows of the mixed-length set")
    parser.add_argument("--omni-args", default="", help="extra omni sft flags, e.g. '--use-liger-kernel'")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the accelerator's peak (default: table)")
    parser.add_argument("--dry-run", action="store_true", help="a tiny config on this CPU: checks every piece")
    args = parser.parse_args()
    import torch

    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.dry_run:
        print("gpu_sft: no CUDA GPU here; skipped (--dry-run runs a tiny config on the CPU)")
        return
    sizes = ["tiny"] if args.dry_run else args.sizes
    rows = 24 if args.dry_run else args.rows
    if args.dry_run:
        SETTINGS.update(batch=4)
    peak, peak_source = peak_flops(on_gpu, args.peak_tflops)
    work = Path(tempfile.mkdtemp(prefix="omni-gpu-sft-"))
    rows_file = work / "mixed.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in mixed_rows(rows)))
    print(f"peak {peak / 1e12:.2f} TFLOP/s ({peak_source}); attention {attention(on_gpu)}; work files in {work}")
    table = []
    for size in sizes:
        started = time.perf_counter()
        model = build_checkpoint(size, work / size, on_gpu=on_gpu)
        lengths = encode_for_plain(model, rows_file, work / f"{size}.encoded.jsonl")
        print(f"{size}: built in {time.perf_counter() - started:.0f} s; {len(lengths)} rows, {sum(lengths):,} tokens")
        for tuner in args.tuners:
            flops = training_flops(size, tuner, lengths)
            runs = {
                "omni": run_omni(model, rows_file, tuner, work / f"{size}-{tuner}-omni", on_gpu, shlex.split(args.omni_args)),
                "plain Trainer+peft": run_plain(model, work / f"{size}.encoded.jsonl", tuner, work / f"{size}-{tuner}-plain", on_gpu),
            }  # fmt: skip
            for label, r in runs.items():
                tps = sum(lengths) / r["train_s"]
                table.append((size, tuner, label, tps, flops / r["train_s"] / peak, r["peak_gib"], r["final_loss"]))
                print(f"{size} {tuner} {label}: {r}", flush=True)
    print(f"\n{'size':<5} {'tuner':<5} {'run':<19} {'tok/s':>10} {'MFU':>6} {'peak GiB':>9} {'final loss':>10}")
    for size, tuner, label, tps, mfu, mem, loss in table:
        print(f"{size:<5} {tuner:<5} {label:<19} {tps:>10.1f} {mfu:>6.1%} {mem:>9.2f} {loss:>10.4f}")


if __name__ == "__main__":
    main()
