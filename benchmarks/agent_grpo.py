"""Multi-turn GRPO with the calculator environment: does the share of right final answers on held-out questions rise?

The task needs the tool: products of a 3-digit and a 2-digit number ("What is 347 * 28?"), which the embedded
SmolLM2-135M-Instruct gets wrong by mental arithmetic but right by calling `calculate` with the question's
expression and repeating the result. A brief LoRA SFT on a few exchanges (question, call, result, answer) teaches
the format on some questions only; GRPO then trains on other questions through the calculator environment with the
reward of a right final number alone. Every model is scored greedily, through the same environment, on held-out
questions.

The reward is this script's `exact_number` (the final answer's last number is the product), not the built-in
`accuracy`: math-verify evaluates expressions, so `accuracy` also credits an answer that restates the question
("122 * 35"), which this model does without the tool.

    .venv/bin/python benchmarks/agent_grpo.py [--sft-steps 2] [--grpo-steps 16] [--work DIR]

Prints one row per model (untrained, SFT warm start, after GRPO): right answers and tool calls on the held-out
questions, and the time each stage took. Runs on CPU (45-70 s per GRPO step on 2 cores; about 13 min in all).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

TEMPLATE = "qwen2.5"  # SmolLM2's own chat template has no tool format; Qwen2.5's (Hermes tool calls) does
REWARD = """
import re


def exact_number(prompts, completions, final_answer, solution, **columns):
    numbers = [re.findall(r"-?\\d+", answer.replace(",", "")) for answer in final_answer]
    return [float(bool(found) and found[-1] == right) for found, right in zip(numbers, solution)]
"""


def load_reward(folder: Path):
    """The reward file GRPO is given, imported for scoring the held-out answers the same way."""
    import importlib.util

    path = folder / "exact_reward.py"
    path.write_text(REWARD)
    spec = importlib.util.spec_from_file_location("exact_reward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module.exact_number


def question(a: int, b: int) -> dict:
    return {"role": "user", "content": f"What is {a} * {b}?"}


def write_rows(folder: Path, seed: int, sft: int, rl: int, held_out: int) -> tuple[Path, Path, list[dict]]:
    from omni_plugin_grpo.environments.calculator import CALCULATOR_TOOLS

    rng = random.Random(seed)
    pairs = list(
        dict.fromkeys((rng.randrange(100, 1000), rng.randrange(11, 100)) for _ in range(4 * (sft + rl + held_out)))
    )
    pairs = pairs[: sft + rl + held_out]
    sft_rows = []
    for a, b in pairs[:sft]:
        call = {"type": "function", "function": {"name": "calculate", "arguments": {"expression": f"{a} * {b}"}}}
        sft_rows.append(
            {
                "tools": CALCULATOR_TOOLS,
                "messages": [
                    question(a, b),
                    {"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "content": str(a * b)},
                    {"role": "assistant", "content": str(a * b)},
                ],
            }
        )
    rl_rows = [{"messages": [question(a, b)], "solution": str(a * b)} for a, b in pairs[sft : sft + rl]]
    held = [{"messages": [question(a, b)], "solution": str(a * b)} for a, b in pairs[sft + rl :]]
    for name, rows in (("sft", sft_rows), ("questions", rl_rows)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "sft.jsonl", folder / "questions.jsonl", held


def held_out_score(model_dir: str, adapter: Path | None, rows: list[dict], reward) -> tuple[int, int]:
    """(right final answers, episodes that called the tool) over `rows`, greedy, up to 2 model turns."""
    import torch
    from omni.api import PtEngine
    from omni.template import get_template
    from omni_plugin_grpo.environments.calculator import Calculator
    from omni_plugin_grpo.multiturn import EnvironmentRollout, with_tools
    from omni_plugin_grpo.options import GrpoOptions
    from omni_plugin_grpo.rollout import EngineRollout, encode_prompts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    template = get_template(TEMPLATE, tokenizer)
    rows = [with_tools(r, Calculator.tools) for r in rows]
    prompts, _ = encode_prompts(template, rows)
    options = GrpoOptions(max_completion_length=96, temperature=0.0)
    single = EngineRollout(
        PtEngine.from_model(model.eval(), tokenizer, template),
        prompts,
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        options,
    )
    rollout = EnvironmentRollout(single, template, Calculator, max_turns=2, decode=tokenizer.decode)
    out = rollout.generate(list(range(len(rows))), rows)
    answers = out.extras["final_answer"]
    rewards = reward(prompts, answers, final_answer=answers, solution=[r["solution"] for r in rows])
    calls = sum(0 in mask for mask in out.extras["env_mask"])  # an observation means the tool was called
    return int(sum(rewards)), calls


def main() -> None:
    from omni.cli.main import main as omni
    from omni.models.embedded import smollm2_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=2)
    parser.add_argument("--sft-learning-rate", type=float, default=8.5e-4)
    parser.add_argument("--grpo-steps", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the GRPO rollouts")
    parser.add_argument("--skip-untrained", action="store_true", help="leave out the untrained model's row")
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="agent-grpo-"))
    work.mkdir(parents=True, exist_ok=True)
    sft_data, questions, held = write_rows(work, args.seed, sft=32, rl=64, held_out=args.held_out)
    base = str(smollm2_path())
    reward_file, reward = load_reward(work)
    rows: list[tuple[str, int, int, float]] = []

    def score(name: str, model_dir: str, adapter: Path | None, seconds: float) -> None:
        right, calls = held_out_score(model_dir, adapter, held, reward)
        rows.append((name, right, calls, seconds))
        print(f"{name}: {right}/{len(held)} right, {calls} tool calls", flush=True)

    if not args.skip_untrained:
        score("untrained", base, None, 0.0)
    common = ["--model", base, "--template", TEMPLATE, "--tuner", "lora", "--seed", str(args.seed)]
    common += ["--gradient-checkpointing", "false", "--save-strategy", "no", "--logging-steps", "1"]
    start = time.perf_counter()
    sft_out = work / "sft"
    assert omni(["sft", *common, "--dataset", str(sft_data), "--output-dir", str(sft_out),
                 "--max-steps", str(args.sft_steps), "--learning-rate", str(args.sft_learning_rate),
                 "--lr-scheduler-type", "constant", "--warmup-ratio", "0",
                 "--per-device-train-batch-size", "4"]) == 0  # fmt: skip
    merged = work / "sft-merged"
    assert omni(["export", "--adapters", str(sft_out), "--merge-lora", "--output-dir", str(merged)]) == 0
    score(f"SFT warm start ({args.sft_steps} steps)", str(merged), None, time.perf_counter() - start)

    start = time.perf_counter()
    grpo_out = work / "grpo"
    grpo = ["rlhf", "--algo", "grpo", *common[2:], "--model", str(merged), "--dataset", str(questions)]
    grpo += ["--output-dir", str(grpo_out), "--environment", "calculator", "--max-turns", "2"]
    grpo += [
        "--reward-funcs",
        f"{reward_file}:exact_number",
        "--num-generations",
        "4",
        "--per-device-train-batch-size",
        "8",
    ]
    grpo += ["--max-completion-length", "96", "--temperature", str(args.temperature), "--learning-rate", "5e-4"]
    grpo += ["--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--max-steps", str(args.grpo_steps)]
    assert omni(grpo) == 0
    score(f"GRPO ({args.grpo_steps} steps)", str(merged), grpo_out, time.perf_counter() - start)
    curve = [
        r["rewards/exact_number/mean"] for r in map(json.loads, (grpo_out / "logging.jsonl").open()) if "reward" in r
    ]
    print(f"\nheld-out questions: {len(held)}; sampled accuracy by GRPO step: {[round(c, 2) for c in curve]}")
    print(f"{'model':32} {'right':>6} {'calls':>6} {'stage s':>8}")
    for name, right, calls, seconds in rows:
        print(f"{name:32} {right:>6} {calls:>6} {seconds:>8.0f}")


if __name__ == "__main__":
    main()
