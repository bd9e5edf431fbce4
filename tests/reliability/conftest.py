"""Fixtures of the reliability tests: one tiny chat engine shared by servers with different limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from omni.infer.pt_engine import PtEngine

from tests.core.conftest import tiny_chat_model  # noqa: F401  (the same session-wide checkpoint)

KEY = "sk-reliability"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "tiny"
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="session")
def chat_engine(tiny_chat_model: Path) -> Iterator[PtEngine]:  # noqa: F811
    """The pt engine on the tiny Qwen3 checkpoint (context: 2048 tokens); text only."""
    engine = PtEngine(str(tiny_chat_model))
    yield engine
    engine.close()
