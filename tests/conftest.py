"""Shared test setup. omni's own pytest plugin (omni.testing) is loaded through its pytest11 entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OMNI = Path(sys.executable).with_name("omni")


def run_omni(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess:
    """Run the installed `omni` console script in a subprocess; OMNI_* variables come only from `env`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_") or k == "OMNI_CACHE"}
    full_env = {**inherited, **(env or {})}
    return subprocess.run([str(OMNI), *args], capture_output=True, text=True, env=full_env, timeout=timeout, **kwargs)


@pytest.fixture
def omni_cli():
    return run_omni


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 checkpoint, built once per session."""
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def colors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable task: a fixed colour per object, asked four ways (tests/helpers.py)."""
    from tests.helpers import write_color_task

    return write_color_task(tmp_path_factory.mktemp("data") / "colors.jsonl")
