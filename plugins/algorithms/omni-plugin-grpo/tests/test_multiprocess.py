"""DAPO's dynamic sampling in a run of two processes (`accelerate launch --cpu --num_processes 2`).

Half the prompts can never score differently (their reward is a constant), so every batch has flat groups
that dynamic sampling swaps for fresh groups. The processes decide together: a disagreement on how many
batches to score would leave one waiting in a collective (the run would time out), and one on which groups
to swap would break the per-group counts checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.token_task import LENGTH, TARGET_IDS

REWARD_FILE = f"""
TARGET_IDS = frozenset(range({min(TARGET_IDS)}, {max(TARGET_IDS) + 1}))


def band_or_flat(prompts, completions, completion_ids, solution, **columns):
    # A "flat" prompt scores 0.5 whatever is written: its group never carries a signal.
    return [0.5 if s == "flat" else sum(t in TARGET_IDS for t in ids[:{LENGTH}]) / {LENGTH}
            for ids, s in zip(completion_ids, solution)]
"""


@pytest.mark.slow
def test_dynamic_sampling_across_two_processes(tiny_model, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"write something, number {i}"}], "solution": kind}
        for i in range(32)
        for kind in [("flat", "band")[i % 2]]
    ]
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "rewards.py").write_text(REWARD_FILE)
    out = tmp_path / "out"
    launcher = Path(sys.executable).parent / "accelerate"
    omni = Path(sys.executable).parent / "omni"
    argv = [
        "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", str(omni),
        "rlhf", "--algo", "dapo", "--model", str(tiny_model), "--dataset", str(data), "--output-dir", str(out),
        "--reward-funcs", f"{tmp_path / 'rewards.py'}:band_or_flat", "--num-generations", "4",
        "--max-completion-length", str(LENGTH), "--per-device-train-batch-size", "8", "--tuner", "full",
        "--learning-rate", "5e-3", "--max-steps", "3", "--logging-steps", "1", "--save-strategy", "no", "--seed", "0",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(launcher), *argv], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    steps = [r for r in records if "dynamic_sampling/flat_groups" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    # 16 completions (two processes x 8) = 4 groups per batch, about half of them flat prompts: most are swapped.
    flat = sum(r["dynamic_sampling/flat_groups"] for r in steps)
    assert 0 < flat and sum(r["dynamic_sampling/flat_groups_left"] for r in steps) < flat, steps
