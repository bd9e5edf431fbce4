"""What the step-time benchmarks (dpo_step.py, grpo_step.py) share: the model they run, one process per variant."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def bench_model(name: str | None, folder: Path) -> str:
    """`--model` as given (a directory or hub id), omni's embedded SmolLM2-135M for `smollm2`, or by default a
    tiny random Qwen3 built in `folder`."""
    if name == "smollm2":
        from omni.models.embedded import smollm2_path

        return str(smollm2_path())
    if name is None:
        from omni.testing.models import build_tiny_model

        return str(build_tiny_model("qwen3", folder / "tiny-qwen3"))
    return name


def run_variant(script: str, variant: str, model: str, steps: int) -> dict[str, Any]:
    """Run `script --variant VARIANT` in its own process (so its peak memory is its own): the JSON line it
    prints last. `RuntimeError` with the end of its stderr when it fails."""
    command = [sys.executable, script, "--variant", variant, "--model", model, "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
