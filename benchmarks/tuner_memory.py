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
GaLore (its defaults: rank 128, all attention and MLP matrices) and LISA (2 layers, switched every 2 steps).
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


def _state_bytes(optimizer, names: dict[int, str]) -> tuple[int, int]:
    """(all optimizer-state bytes, the part for the attention/MLP weight matrices)."""
    import torch

    inner = getattr(optimizer, "optimizer", optimizer)
    optimizers = list(getattr(inner, "optimizer_dict", {}).values()) or [inner]  # layer-wise: one per parameter
    total = matrices = 0
    for opt in optimizers:
        for param, state in opt.state.items():
            size = 0
            for value in state.values():
                if torch.is_tensor(value):
                    size += value.nbytes
                elif hasattr(value, "ortho_matrix") and torch.is_tensor(value.ortho_matrix):  # GaLore's projector
                    size += value.ortho_matrix.nbytes
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
        f"{'tuner':<10} {'trainable':>13} {'%':>7} {'optim state':>12} {'attn+MLP state':>15} "
        f"{'peak RSS':>10} {'training':>10} {'1st step':>9} {'step':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['tuner']:<10} {r['trainable']:>13,} {100 * r['trainable'] / r['total']:>6.2f}% "
            f"{r['optimizer_bytes'] / 2**20:>8.1f} MiB {r['matrix_state_bytes'] / 2**20:>11.1f} MiB "
            f"{r['peak_rss_mib']:>6.0f} MiB {r['training_rss_mib']:>6.0f} MiB {r['first_step_s']:>8.2f}s "
            f"{r['step_s']:>7.2f}s"
        )
    by = {r["tuner"]: r for r in results}
    if "full" in by and "galore" in by:
        ratio = by["galore"]["matrix_state_bytes"] / by["full"]["matrix_state_bytes"]
        print(f"\nGaLore optimizer state for the attention+MLP matrices: {ratio:.2f} x full AdamW's (target <= 0.5)")
    if "reft" in by and "lora r=8" in by:
        ratio = by["lora r=8"]["trainable"] / by["reft"]["trainable"]
        print(f"ReFT trains {ratio:.1f}x fewer parameters than LoRA r=8 (target >= 10x)")
    if args.json:
        for r in results:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
