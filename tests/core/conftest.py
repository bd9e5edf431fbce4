"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from omni.infer.pt_engine import PtEngine


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 checkpoint whose greedy answers vary from prompt to prompt.

    The default init (std 0.02) makes a 64-wide random model repeat one token whatever the prompt;
    a wider init gives distinct answers, so batching, adapters and stop strings have something to compare.
    """
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"), initializer_range=0.3)


@pytest.fixture(scope="module")
def engine(tiny_chat_model: Path) -> Iterator[PtEngine]:
    """The pt engine of `tiny_chat_model`, one per test module (a module may change its weights)."""
    from omni.infer.pt_engine import PtEngine

    engine = PtEngine(str(tiny_chat_model))
    yield engine
    engine.close()
