"""GRPO step time, split into generation and training: omni's GRPO (pt engine, and vLLM when omni-plugin-vllm
is installed: colocated in the training process, and as an `omni rollout` server in another process) against
TRL's own GRPOTrainer, on the same model, prompts and reward.

    .venv/bin/python benchmarks/grpo_step.py                          # a tiny random Qwen3 (about a minute)
    .venv/bin/python benchmarks/grpo_step.py --model smollm2 --steps 6  # the embedded SmolLM2-135M

Every run: LoRA r=8, alpha 32, dropout 0.05 on all linear layers; 16 completions per step (2 prompts x 8),
up to 32 new tokens, temperature 1.0, lr 1e-4, gradient checkpointing off, seed 42; the reward is the token
band of tests/token_task.py (any reward would do: scoring is not what is timed). Generation is
the rollout call (omni: the engine's `generate`; TRL: its `_generate_single_turn`); training is the rest of
the optimizer step (rewards, log-probs, forward and backward). Figures are medians over the steps after the
first. Completion lengths are sampled, so the mean length is printed beside the times. Each run is its own
process, so the runs do not share caches or threads; the server row's `omni rollout` is one more process, started
(and loaded) before the run, its generation time including the upload of the merged weights every step, as the
colocated vLLM row's includes loading them. With `--async-generate`, a step's generation time is what is left of
waiting for its rollouts (started during the step before) plus the upload.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.step_runs import bench_model, run_variant  # noqa: E402
from tests.token_task import band_share, prompt_rows, write_task  # noqa: E402

NAMES = {
    "omni": "omni grpo, pt engine",
    "trl": "TRL GRPOTrainer (transformers)",
    "omni-vllm": "omni grpo, vLLM colocated",
    "omni-server": "omni grpo, vLLM omni rollout server",
    "omni-server-async": "  the same, --async-generate",
}
SETTINGS = {"generations": 8, "batch": 16, "length": 32, "lr": 1e-4, "seed": 42, "rank": 8, "alpha": 32}


def run_omni(model: str, tmp: Path, steps: int, engine: str, *extra: str) -> dict[str, list[float]]:
    from omni.cli.main import main

    data, rewards = write_task(tmp / "task")
    out = tmp / "out"
    argv = ["rlhf", "--algo", "grpo", "--model", model, "--dataset", str(data), "--output-dir", str(out)]
    argv += ["--reward-funcs", f"{rewards}:band_share", "--rollout-engine", engine, *extra]
    argv += ["--num-generations", str(SETTINGS["generations"]), "--max-completion-length", str(SETTINGS["length"])]
    argv += ["--per-device-train-batch-size", str(SETTINGS["batch"]), "--learning-rate", str(SETTINGS["lr"])]
    argv += ["--tuner", "lora", "--lora-rank", str(SETTINGS["rank"]), "--lora-alpha", str(SETTINGS["alpha"])]
    argv += ["--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--gradient-checkpointing", "false"]
    argv += [
        "--max-steps",
        str(steps),
        "--logging-steps",
        "1",
        "--save-strategy",
        "no",
        "--seed",
        str(SETTINGS["seed"]),
    ]
    if main(argv) != 0:
        raise SystemExit("omni rlhf failed")
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    records = [r for r in records if "time/generation" in r]
    return {
        "generation": [r["time/generation"] for r in records],
        "training": [r["time/training"] for r in records],
        "length": [r["completions/mean_length"] for r in records],
    }


def run_omni_server(model: str, tmp: Path, steps: int, *extra: str) -> dict[str, list[float]]:
    """omni's GRPO with its rollouts from `omni rollout` (vLLM) in another process on this machine, its context
    sized as the colocated engine's is (the task's prompts are short: 512 tokens hold prompt and completion)."""
    omni = Path(sys.executable).with_name("omni")
    command = [str(omni), "rollout", "--model", model, "--port", "0", "--max-model-len", "512"]
    # Its output (vLLM logs on stdout too) is read here, so that this run's stdout ends with its JSON line.
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        log = []
        for line in server.stdout:
            log.append(line)
            found = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if found:
                break
        else:
            raise SystemExit("omni rollout exited before listening:\n" + "".join(log[-20:]))
        threading.Thread(target=server.stdout.read, daemon=True).start()  # keep its pipe from filling up
        return run_omni(model, tmp, steps, "server", "--rollout-server-url", found.group(1), *extra)
    finally:
        server.terminate()
        server.wait(timeout=60)


def run_trl(model_dir: str, tmp: Path, steps: int) -> dict[str, list[float]]:
    """TRL's GRPOTrainer as a TRL user would run it: conversational prompts, a peft LoraConfig."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    class Timed(GRPOTrainer):
        generation = 0.0
        times: dict[str, list[float]] = {"generation": [], "training": [], "length": []}

        def _generate_single_turn(self, *args, **kwargs):
            start = time.perf_counter()
            out = super()._generate_single_turn(*args, **kwargs)
            self.generation += time.perf_counter() - start
            self.times["length"].append(statistics.mean(len(ids) for ids in out[0]))
            return out

        def training_step(self, *args, **kwargs):
            before, start = self.generation, time.perf_counter()
            loss = super().training_step(*args, **kwargs)
            generated = self.generation - before
            self.times["generation"].append(generated)
            self.times["training"].append(time.perf_counter() - start - generated)
            return loss

    prompts = Dataset.from_list([{"prompt": r["messages"]} for r in prompt_rows(32)])
    config = GRPOConfig(
        output_dir=str(tmp / "out"),
        max_steps=steps,
        per_device_train_batch_size=SETTINGS["batch"],
        num_generations=SETTINGS["generations"],
        max_completion_length=SETTINGS["length"],
        learning_rate=SETTINGS["lr"],
        lr_scheduler_type="constant",
        gradient_checkpointing=False,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=SETTINGS["seed"],
        loss_type="grpo",
        beta=0.0,
    )
    lora = LoraConfig(
        r=SETTINGS["rank"],
        lora_alpha=SETTINGS["alpha"],
        lora_dropout=0.05,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = Timed(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        reward_funcs=band_share,
        args=config,
        train_dataset=prompts,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=lora,
    )
    trainer.train()
    return Timed.times


def child(variant: str, model: str, steps: int) -> None:
    """Run one variant and print its per-step figures as one JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        if variant == "trl":
            times = run_trl(model, Path(tmp), steps)
        elif variant.startswith("omni-server"):
            times = run_omni_server(model, Path(tmp), steps, *(["--async-generate"] if "async" in variant else []))
        else:
            times = run_omni(model, Path(tmp), steps, "vllm" if variant == "omni-vllm" else "pt")
    print(json.dumps({"variant": variant, **times}))


def median_after_first(values: list[float]) -> float:
    return statistics.median(values[1:] or values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or `smollm2` (default: a tiny random Qwen3)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--variant", choices=list(NAMES), help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.variant:
        child(args.variant, args.model, args.steps)
        return
    variants = ["omni", "trl"]
    if importlib.util.find_spec("omni_plugin_vllm") is not None:
        variants += ["omni-vllm", "omni-server", "omni-server-async"]
    with tempfile.TemporaryDirectory() as tmp:
        model = bench_model(args.model, Path(tmp))
        results = []
        for variant in variants:
            try:
                results.append(run_variant(__file__, variant, model, args.steps))
            except RuntimeError as exc:
                print(f"{NAMES[variant]}: {exc}", file=sys.stderr)
    print(
        f"LoRA GRPO on {args.model or 'a tiny random Qwen3'}: {SETTINGS['batch']} completions/step, "
        f"<= {SETTINGS['length']} tokens, {args.steps} steps (medians after the first)"
    )
    print(f"{'run':<38}{'generation (s)':>15}{'training (s)':>14}{'step (s)':>10}{'vs TRL':>8}{'mean length':>13}")
    steps = {
        r["variant"]: median_after_first([g + t for g, t in zip(r["generation"], r["training"], strict=True)])
        for r in results
    }
    for r in results:
        ratio = f"{steps[r['variant']] / steps['trl']:.2f}x" if "trl" in steps else "-"
        print(
            f"{NAMES[r['variant']]:<38}{median_after_first(r['generation']):>15.3f}"
            f"{median_after_first(r['training']):>14.3f}{steps[r['variant']]:>10.3f}{ratio:>8}"
            f"{statistics.mean(r['length']):>13.1f}"
        )


if __name__ == "__main__":
    main()
