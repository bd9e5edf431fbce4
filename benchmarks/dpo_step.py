"""LoRA DPO step time and peak memory: `omni rlhf --algo dpo` against TRL's DPOTrainer used directly.

    .venv/bin/python benchmarks/dpo_step.py                         # a tiny random Qwen3 (seconds)
    .venv/bin/python benchmarks/dpo_step.py --model smollm2 --steps 10  # the embedded SmolLM2-135M

TRL runs twice: with a peft LoraConfig (it then shares the base as the reference, as omni does), and
with an explicit reference model beside the LoRA policy (a second copy of the weights in memory).

Both runs train the same model on the same 64 synthetic preference pairs: LoRA r=8, alpha 32, dropout 0.05
on all linear layers, batch 8, lr 5e-6, constant schedule, gradient checkpointing off, seed 42. omni
encodes the rows with its template; the TRL script hands DPOTrainer the same conversations to template
itself. Each run is its own process, so its peak RSS (getrusage ru_maxrss) is its own; step time is the
median gap between logged steps after the first (warm-up) step.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.step_runs import bench_model, run_variant  # noqa: E402
from tests.preference_task import preference_rows, write_jsonl  # noqa: E402

NAMES = {
    "omni": "omni rlhf --algo dpo",
    "trl": "TRL DPOTrainer (peft, shared ref)",
    "trl-ref-copy": "TRL DPOTrainer (peft + ref model)",
}
SETTINGS = {"batch": 8, "lr": 5e-6, "seed": 42, "rank": 8, "alpha": 32, "dropout": 0.05}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_omni(model: str, data: Path, out: Path, steps: int) -> list[float]:
    """Train with `omni rlhf --algo dpo`; the step end times come from its logging.jsonl."""
    from omni.cli.main import main

    argv = ["rlhf", "--algo", "dpo", "--model", model, "--dataset", str(data), "--output-dir", str(out)]
    argv += ["--tuner", "lora", "--lora-rank", str(SETTINGS["rank"]), "--lora-alpha", str(SETTINGS["alpha"])]
    argv += ["--max-steps", str(steps), "--per-device-train-batch-size", str(SETTINGS["batch"])]
    argv += ["--learning-rate", str(SETTINGS["lr"]), "--lr-scheduler-type", "constant", "--warmup-ratio", "0"]
    argv += ["--gradient-checkpointing", "false", "--logging-steps", "1", "--save-strategy", "no"]
    argv += ["--seed", str(SETTINGS["seed"])]
    if main(argv) != 0:
        raise SystemExit("omni rlhf failed")
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    return [r["time"] for r in records if "loss" in r]


def run_trl(model_dir: str, rows: list[dict], out: Path, steps: int, ref_copy: bool) -> list[float]:
    """Train with TRL's DPOTrainer and a peft LoraConfig, as a TRL user would (`ref_copy`: plus a reference model)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, *args, **kwargs) -> None:
            self.times.append(time.time())

    pairs = Dataset.from_list(
        [
            {
                "prompt": r["messages"][:-1],
                "chosen": [r["messages"][-1]],
                "rejected": [{"role": "assistant", "content": r["rejected_response"]}],
            }
            for r in rows
        ]
    )
    config = DPOConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=SETTINGS["batch"],
        learning_rate=SETTINGS["lr"],
        lr_scheduler_type="constant",
        gradient_checkpointing=False,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=SETTINGS["seed"],
    )
    lora = LoraConfig(
        r=SETTINGS["rank"],
        lora_alpha=SETTINGS["alpha"],
        lora_dropout=SETTINGS["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    timer = StepTimes()
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=config,
        train_dataset=pairs,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=lora,
        ref_model=AutoModelForCausalLM.from_pretrained(model_dir) if ref_copy else None,
        callbacks=[timer],
    )
    trainer.train()
    return timer.times


def child(variant: str, model: str, steps: int) -> None:
    """Run one variant and print its figures as one JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = preference_rows(64, seed=0)
        start = time.time()
        if variant == "omni":
            times = run_omni(model, write_jsonl(rows, Path(tmp) / "pairs.jsonl"), Path(tmp) / "out", steps)
        else:
            times = run_trl(model, rows, Path(tmp) / "out", steps, ref_copy=variant == "trl-ref-copy")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    print(
        json.dumps(
            {
                "variant": variant,
                "steps": len(times),
                "step_s": statistics.median(gaps) if gaps else float("nan"),
                "wall_s": time.time() - start,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or `smollm2` (default: a tiny random Qwen3)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--variant", choices=list(NAMES), help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.variant:
        child(args.variant, args.model, args.steps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = bench_model(args.model, Path(tmp))
        try:
            results = [run_variant(__file__, variant, model, args.steps) for variant in NAMES]
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
    print(f"LoRA DPO on {args.model or 'a tiny random Qwen3'}, batch {SETTINGS['batch']}, {args.steps} steps")
    print(f"{'run':<34}{'step (s)':>10}{'vs TRL':>8}{'wall (s)':>10}{'peak RSS (MiB)':>16}")
    trl_step = next(r["step_s"] for r in results if r["variant"] == "trl")
    for r in results:
        ratio = r["step_s"] / trl_step
        print(
            f"{NAMES[r['variant']]:<34}{r['step_s']:>10.3f}{ratio:>7.2f}x{r['wall_s']:>10.1f}{r['peak_rss_mib']:>16.0f}"
        )


if __name__ == "__main__":
    main()
