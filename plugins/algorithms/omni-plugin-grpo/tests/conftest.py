"""Fixtures for the GRPO family's training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.token_task import write_task


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 checkpoint (its chat template and special tokens are the real family's)."""
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def token_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(prompts.jsonl, band_reward.py) of the token-band task."""
    return write_task(tmp_path_factory.mktemp("token-task"))
