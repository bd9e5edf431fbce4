"""Fixtures shared by every test folder: tests/ (core, reliability, end to end) and each plugin's own tests/.

omni's own pytest plugin (omni.testing) is loaded through its pytest11 entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_omni


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


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine a second one mostly waits for the first."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
