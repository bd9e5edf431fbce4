"""What users asked for, exactly: a fresh virtual environment holding only the omni-core and omni-plugin-grpo
wheels (plus their dependencies, pinned by constraints.txt) runs `omni rlhf --algo grpo` and the model learns.

No other omni plugin is there: the tiny Qwen3 checkpoint loads through core's transformers loader, and the
run tunes every parameter (`--tuner full`; LoRA is omni-plugin-lora's). Installing torch, transformers and
TRL takes minutes, so this test is slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.plugins.grpo.token_task import reward_curve, write_task

PROJECTS = [REPO / "core", REPO / "plugins" / "algorithms" / "omni-plugin-grpo"]


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "VIRTUAL_ENV", "PYTHONPATH"))}
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, f"{args[:3]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.mark.slow
def test_omni_rlhf_grpo_trains_in_a_fresh_environment_with_only_core_and_the_plugin(tmp_path):
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, *PROJECTS)
    for project in PROJECTS:  # setuptools leaves a build/ copy of the sources behind
        shutil.rmtree(project / "build", ignore_errors=True)
    names = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert names == ["omni_core", "omni_plugin_grpo"]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python, omni = venv / "bin" / "python", venv / "bin" / "omni"
    run(python, "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt", *wheels.glob("*.whl"))
    distributions = run(python, "-m", "pip", "list", "--format", "freeze").stdout
    assert sorted(d.split("==")[0] for d in distributions.split() if d.startswith("omni")) == [
        "omni-core",
        "omni-plugin-grpo",
    ]

    model = tmp_path / "model"
    run(python, "-c", f"from omni.testing.models import build_tiny_model; build_tiny_model('qwen3', {str(model)!r})")
    data, rewards = write_task(tmp_path / "task")
    out = tmp_path / "out"
    run(
        omni,
        "rlhf",
        "--algo",
        "grpo",
        "--model",
        model,
        "--dataset",
        data,
        "--tuner",
        "full",
        "--reward-funcs",
        f"{rewards}:band_share",
        "--num-generations",
        "8",
        "--max-completion-length",
        "8",
        "--per-device-train-batch-size",
        "16",
        "--learning-rate",
        "5e-3",
        "--lr-scheduler-type",
        "constant",
        "--warmup-ratio",
        "0",
        "--gradient-checkpointing",
        "false",
        "--max-steps",
        "60",
        "--logging-steps",
        "5",
        "--save-strategy",
        "no",
        "--seed",
        "0",
        "--output-dir",
        out,
    )
    curve = reward_curve(out)
    assert curve[0][1] < 0.2 and max(r for _, r in curve) >= 0.8, curve
    assert (out / "model.safetensors").is_file() and (out / "completions.jsonl").is_file()
