"""The embedded SmolLM2-135M-Instruct learns an answer format by GRPO with LoRA, from the CLI.

Simple sums, each asking the reply to end with "The answer is N.": the untrained model mostly writes
something else ("15 + 3 = 4.", "The answer is N.", stories), so the `format` reward (the reply ends with
"The answer is <number>") starts low; the `accuracy` reward (math-verify against the row's `solution`)
rides along. Measured (LoRA r=8, lr 1e-3, 8 completions of <= 24 tokens per step, 16 steps, about 5 min
on 2 CPU cores): format 0.38 at step 1, 1.0 from step 10 on. Accuracy fell from 0.12-0.38 to 0: the 135M
model learns the format faster than sums and settles on "The answer is <a number from the question>", a
known reward-hacking pattern when format and accuracy weigh the same; this test checks the format only.
"""

from __future__ import annotations

import json
import random
import statistics

import pytest

from tests.helpers import run_omni

STEPS = 16
WINDOW = 4  # steps averaged at the end


def arithmetic_rows(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        question = f"What is {a} + {b}? End your reply with: The answer is N."
        rows.append({"messages": [{"role": "user", "content": question}], "solution": str(a + b)})
    return rows


@pytest.mark.slow
def test_format_reward_rises_with_lora_on_the_embedded_model(tmp_path):
    pytest.importorskip("omni_plugin_lora")
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in arithmetic_rows(64)))
    out = tmp_path / "out"
    result = run_omni(
        "rlhf", "--algo", "grpo", "--dataset", str(data), "--output-dir", str(out),
        "--reward-funcs", "format,accuracy", "--format-pattern=.*[Tt]he answer is [0-9]+\\.?",
        "--num-generations", "4", "--per-device-train-batch-size", "8", "--max-completion-length", "24",
        "--temperature", "0.8", "--learning-rate", "1e-3", "--lr-scheduler-type", "constant", "--warmup-ratio", "0",
        "--gradient-checkpointing", "false", "--max-steps", str(STEPS), "--logging-steps", "1",
        "--save-strategy", "no", "--seed", "0",
        env={"OMP_NUM_THREADS": "1"}, timeout=3000,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    fmt = [r["rewards/format/mean"] for r in records if "rewards/format/mean" in r]
    assert len(fmt) == STEPS
    # Step 1's completions come from the untrained model: that is where the format reward starts.
    start, end = fmt[0], statistics.mean(fmt[-WINDOW:])
    assert start <= 0.5, fmt
    assert end >= start + 0.3, fmt
    assert (out / "adapter_config.json").is_file()
