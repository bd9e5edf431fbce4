"""Fixtures for the preference-alignment plugin's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.preference_task import preference_rows


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 checkpoint (its chat template and special tokens are the real family's)."""
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def train_pairs() -> list[dict]:
    return preference_rows(64, seed=0)


@pytest.fixture(scope="session")
def held_out_pairs() -> list[dict]:
    return preference_rows(32, seed=1)
