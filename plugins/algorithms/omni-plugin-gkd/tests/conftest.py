"""Fixtures for GKD's tests: a student (the tiny random Qwen3) and a teacher (the same model after a quick SFT)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omni.cli.main import main


@pytest.fixture(scope="session")
def student(tiny_qwen3: Path) -> Path:
    """The root conftest's tiny random Qwen3 (its chat template and special tokens are the real family's)."""
    return tiny_qwen3


@pytest.fixture(scope="session")
def teacher(student: Path, colors: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The student's starting point fully fine-tuned on the colour task (a fixed colour per object): its answers
    are far from the random model's distributions."""
    out = tmp_path_factory.mktemp("teacher")
    argv = ["sft", "--model", str(student), "--dataset", str(colors), "--tuner", "full", "--output-dir", str(out)]
    argv += ["--num-train-epochs", "20", "--learning-rate", "5e-3", "--per-device-train-batch-size", "8"]
    argv += ["--save-strategy", "no", "--logging-steps", "10", "--gradient-checkpointing", "false"]
    assert main(argv) == 0
    return out
