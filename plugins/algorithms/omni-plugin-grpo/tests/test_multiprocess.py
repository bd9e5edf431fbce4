"""Runs of two processes (`omni rlhf --nproc-per-node 2`): DAPO's dynamic sampling and PPO's value model.

These tests first used `accelerate launch --cpu --num_processes 2`, which on a machine without GPUs starts one
process without a process group: they passed without ever running two. Each now checks the run's own line that it
trains on two processes.

DAPO: half the prompts can never score differently (their reward is a constant), so every batch has flat groups
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


def run_two_processes(*argv: str) -> subprocess.CompletedProcess:
    """`omni rlhf ARGV --nproc-per-node 2`, checked to have trained on two processes."""
    omni = Path(sys.executable).parent / "omni"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(omni), "rlhf", *argv, "--nproc-per-node", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes: data parallel (DDP)" in result.stderr, result.stderr[-3000:]
    return result


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
    run_two_processes(
        "--algo", "dapo", "--model", str(tiny_model), "--dataset", str(data), "--output-dir", str(out),
        "--reward-funcs", f"{tmp_path / 'rewards.py'}:band_or_flat", "--num-generations", "4",
        "--max-completion-length", str(LENGTH), "--per-device-train-batch-size", "8", "--tuner", "full",
        "--learning-rate", "5e-3", "--max-steps", "3", "--logging-steps", "1", "--save-strategy", "no", "--seed", "0",
    )  # fmt: skip
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    steps = [r for r in records if "dynamic_sampling/flat_groups" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    # 16 completions (two processes x 8) = 4 groups per batch, about half of them flat prompts: most are swapped.
    flat = sum(r["dynamic_sampling/flat_groups"] for r in steps)
    assert 0 < flat and sum(r["dynamic_sampling/flat_groups_left"] for r in steps) < flat, steps


@pytest.mark.slow
def test_ppo_keeps_one_value_model_across_two_processes(tiny_model, token_task, tmp_path):
    # The value model starts from the policy with a fresh (random) head: the main process's is broadcast, and its
    # gradients are averaged like the policy's. Each checkpoint and the final save compare the processes' copies
    # and fail the run if they parted (checked: without the averaging, the first checkpoint fails the run).
    data, rewards = token_task
    out = tmp_path / "out"
    run_two_processes(
        "--algo", "ppo", "--model", str(tiny_model), "--dataset", str(data), "--output-dir", str(out),
        "--reward-funcs", f"{rewards}:band_share", "--max-completion-length", str(LENGTH),
        "--per-device-train-batch-size", "4", "--tuner", "full", "--learning-rate", "5e-3", "--num-ppo-epochs", "2",
        "--max-steps", "4", "--save-steps", "2", "--logging-steps", "1", "--seed", "0",
    )  # fmt: skip
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "ppo/value_loss" in r] == [1, 2, 3, 4]
    for folder in (out / "checkpoint-2", out / "checkpoint-4", out):
        assert (folder / "value_model" / "model.safetensors").is_file(), folder
