"""Shared test setup. omni's own pytest plugin (omni.testing) is loaded through its pytest11 entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OMNI = Path(sys.executable).with_name("omni")


def run_omni(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `omni` console script in a subprocess; OMNI_* variables come only from `env`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_") or k == "OMNI_CACHE"}
    full_env = {**inherited, **(env or {})}
    return subprocess.run([str(OMNI), *args], capture_output=True, text=True, env=full_env, timeout=timeout, **kwargs)


@pytest.fixture
def omni_cli():
    return run_omni
