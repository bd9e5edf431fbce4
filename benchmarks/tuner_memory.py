"""Memory and speed of each tuner on SmolLM2-135M: trainable parameters, optimizer state, peak RSS, step time.

    .venv/bin/python benchmarks/tuner_memory.py                      # the embedded SmolLM2, a few minutes
    .venv/bin/python benchmarks/tuner_memory.py --steps 4 --batch 2 --seq 64 --only full,galore

Every tuner trains the same model on the same batches (synthetic rows: a prompt half with no loss, an answer
half with loss), with omni's training arguments and `OmniTrainer`, fp32, no gradient checkpointing, AdamW at
lr 1e-5, constant schedule. Each tuner runs in its own process, so its peak RSS (getrusage ru_maxrss) is its
own; "training" is that peak minus the peak right after the model was loaded and prepared.

- trainable: parameters with gradients at an optimizer step (for LISA: at every step only the embeddings,
  head and the active layers have them; the most seen at one step is shown).
- optimizer state: bytes of every tensor in the optimizer's state after the last step (GaLore's projection
  matrices included), and the part of it for the attention and MLP weight matrices (GaLore's targets).
- step time: the first step (warm-up; GaLore computes its projections there, and again every
  `--galore-update-proj-gap` steps) and the median over the steps after it.

The tuners are whatever is installed: full, LoRA r=8, DoRA r=8, ReFT (omni-plugin-reft, its defaults),
GaLore (its defaults: rank 128, all attention and MLP matrices; with 32-bit AdamW, with 8-bit AdamW states, and as
Q-GaLore: INT8 weights, INT4 projections, 8-bit states) and LISA (2 layers, switched every 2 steps).
- weights: bytes of the model's parameters and buffers while training (Q-GaLore keeps the targeted ones as INT8
  codes plus per-group scales).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# name -> (tuner, options)
TUNERS: dict[str, tuple[str, dict]] = {
    "full": ("full", {}),
    "lora r=8": ("lora", {"lora_rank": 8}),
    "dora r=8": ("lora", {"lora_rank": 8, "use_dora": True}),
    "reft": ("reft", {}),
    "galore": ("galore", {}),
    "galore 8bit": ("galore", {"galore_optim": "adamw_8bit"}),
    "q-galore": ("galore", {"galore_quantization": True}),
    "lisa": ("lisa", {"lisa_activated_layers": 2, "lisa_step_interval": 2}),
}
MATRICES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rows(tokenizer_size: int, count: int, seq: int) -> list[dict]:
    import torch

    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(count):
        ids = torch.randint(10, tokenizer_size, (seq,), generator=generator)
        labels = ids.clone()
        labels[: seq // 2] = -100  # the prompt half: no loss (ReFT edits prompt positions)
        rows.append({"input_ids": ids, "labels": labels, "attention_mask": torch.ones(seq, dtype=torch.long)})
    return rows


def _tensor_bytes(value, seen: set[int]) -> int:
    """Bytes of the tensors in an optimizer-state value (a tensor, or a GaLore projector object holding its
    projection matrices), each storage counted once (bitsandbytes shares its quantization maps)."""
    import torch

    tensors = [value] if torch.is_tensor(value) else [v for v in vars(value).values() if torch.is_tensor(v)]
    if not torch.is_tensor(value) and isinstance(getattr(value, "ortho_matrix", None), list):  # proj_type full
        tensors += value.ortho_matrix
    size = 0
    for t in tensors:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            size += t.nbytes
    return size


def _state_bytes(optimizer, names: dict[int, str]) -> tuple[int, int]:
    """(all optimizer-state bytes, the part for the attention/MLP weight matrices)."""
    inner = getattr(optimizer, "optimizer", optimizer)
    optimizers = list(getattr(inner, "optimizer_dict", {}).values()) or [inner]  # layer-wise: one per parameter
    total = matrices = 0
    seen: set[int] = set()
    for opt in optimizers:
        for param, state in opt.state.items():
            size = sum(_tensor_bytes(value, seen) for value in state.values() if not isinstance(value, int | float))
            total += size
            name = names.get(id(param), "")
            if name.endswith(".weight") and name.split(".")[-2] in MATRICES:
                matrices += size
    return total, matrices


def worker(label: str, model_dir: str, steps: int, batch: int, seq: int, threads: int) -> dict:
    """Train `steps` steps with one tuner in this process; returns its figures."""
    import torch

    torch.set_num_threads(threads)
    from omni.plugins import load_plugins
    from omni.train.options import TrainingOptions
    from omni.train.trainer import OmniTrainer, training_arguments
    from transformers import AutoModelForCausalLM, TrainerCallback

    torch.manual_seed(0)
    tuner_name, values = TUNERS[label]
    spec = load_plugins(os.environ).registry.get("tuners", tuner_name).spec
    options = spec.options(**values) if spec.options else None
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tuner = spec.load()(options)
    model = tuner.prepare(model)
    loaded_rss = peak_rss_mib()
    names = {id(p): n for n, p in model.named_parameters()}

    class Probe(TrainerCallback):
        def __init__(self) -> None:
            self.trainable = 0
            self.begins: list[float] = []
            self.ends: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.begins.append(time.perf_counter())

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            with_grad = sum(p.numel() for p in model.parameters() if p.grad is not None)
            # Q-GaLore's INT8 weights have no .grad: their layers hold the float gradient the optimizer reads
            with_grad += sum(m.weight.numel() for m in model.modules() if getattr(m, "weight_grad", None) is not None)
            self.trainable = max(self.trainable, with_grad)

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    probe = Probe()
    with tempfile.TemporaryDirectory() as out:
        train_options = TrainingOptions(
            tuner=tuner_name, max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-5,
            lr_scheduler_type="constant", warmup_ratio=0.0, gradient_checkpointing=False, save_strategy="no",
            logging_steps=steps,
        )  # fmt: skip
        args = training_arguments(train_options, out, has_eval=False, model_dtype=torch.float32)
        args = dataclasses.replace(args, **tuner.training_arguments())  # as TrainingJob.training_arguments does
        trainer = OmniTrainer(
            model=model,
            args=args,
            train_dataset=_rows(model.config.vocab_size, steps * batch, seq),
            callbacks=[*tuner.callbacks(), probe],
            tuner=tuner,
        )
        trainer.optimizer = tuner.create_optimizer(model, args)  # as TrainingJob.train does (None: args.optim's)
        trainer.train()
    total, matrices = _state_bytes(trainer.optimizer, names)
    if probe.trainable == 0:  # layer-wise optimizers step and free each gradient inside backward
        probe.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    durations = [end - begin for begin, end in zip(probe.begins, probe.ends, strict=True)]
    return {
        "tuner": label,
        "trainable": probe.trainable,
        "total": sum(p.numel() for p in model.parameters()),
        "optimizer_bytes": total,
        "weight_bytes": sum(t.nbytes for t in [*model.parameters(), *model.buffers()]),
        "matrix_state_bytes": matrices,
        "peak_rss_mib": peak_rss_mib(),
        "training_rss_mib": peak_rss_mib() - loaded_rss,
        "first_step_s": durations[0],
        "step_s": statistics.median(durations[1:]) if len(durations) > 1 else float("nan"),
    }


def _installed(tuner: str) -> bool:
    from omni.plugins import load_plugins

    return tuner in load_plugins(os.environ).registry.names("tuners")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per tuner (the first is warm-up)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128, help="tokens per row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (more oversubscribe a busy CPU)")
    parser.add_argument("--only", help="comma-separated tuner labels to run (e.g. full,galore)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON lines too")
    args = parser.parse_args()
    if args.model is None:
        from omni.models.embedded import smollm2_path

        args.model = str(smollm2_path())
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.model, args.steps, args.batch, args.seq, args.threads)))
        return

    labels = args.only.split(",") if args.only else list(TUNERS)
    results = []
    for label in labels:
        if not _installed(TUNERS[label][0]):
            print(f"{label}: tuner {TUNERS[label][0]!r} is not installed, skipped", file=sys.stderr)
            continue
        command = [sys.executable, __file__, "--worker", label, "--model", args.model, "--steps", str(args.steps)]
        command += ["--batch", str(args.batch), "--seq", str(args.seq), "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            print(f"{label}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(line[len("RESULT ") :]))
        print(f"{label}: done", file=sys.stderr, flush=True)

    print(f"\nmodel {args.model}; {args.steps} steps of {args.batch} x {args.seq} tokens; fp32, lr 1e-5, ", end="")
    print(f"{args.threads} thread(s)\n")
    header = (
        f"{'tuner':<12} {'trainable':>13} {'%':>7} {'optim state':>12} {'attn+MLP state':>15} {'weights':>10} "
        f"{'peak RSS':>10} {'training':>10} {'1st step':>9} {'step':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['tuner']:<12} {r['trainable']:>13,} {100 * r['trainable'] / r['total']:>6.2f}% "
            f"{r['optimizer_bytes'] / 2**20:>8.1f} MiB {r['matrix_state_bytes'] / 2**20:>11.1f} MiB "
            f"{r['weight_bytes'] / 2**20:>6.1f} MiB "
            f"{r['peak_rss_mib']:>6.0f} MiB {r['training_rss_mib']:>6.0f} MiB {r['first_step_s']:>8.2f}s "
            f"{r['step_s']:>7.2f}s"
        )
    by = {r["tuner"]: r for r in results}
    print()
    for label in ("galore", "galore 8bit", "q-galore"):
        if "full" in by and label in by:
            ratio = by[label]["matrix_state_bytes"] / by["full"]["matrix_state_bytes"]
            print(f"{label} optimizer state for the attention+MLP matrices: {ratio:.3f} x full AdamW's (target <= 0.5)")
    if "reft" in by and "lora r=8" in by:
        ratio = by["lora r=8"]["trainable"] / by["reft"]["trainable"]
        print(f"ReFT trains {ratio:.1f}x fewer parameters than LoRA r=8 (target >= 10x)")
    if args.json:
        for r in results:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
