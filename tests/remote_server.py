"""Fixtures for the server-mode tests of the sglang and lmdeploy plugins: `omni serve` on the pt engine, tiny Qwen3 + 2 adapters.

SGLang and LMDeploy do not run on this machine; their engines' server mode speaks the OpenAI API, which
`omni serve` speaks too, so attaching to it exercises the whole client side for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

KEY = "sk-remote"
ADAPTERS = ("alpha", "beta")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"), initializer_range=0.3)


@pytest.fixture(scope="session")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = {}
    for seed, name in enumerate(ADAPTERS, 1):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_model)
        config = LoraConfig(r=4, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        folder = tmp_path_factory.mktemp(f"lora-{name}")
        get_peft_model(model, config).save_pretrained(folder)
        folders[name] = str(folder)
    return folders


@pytest.fixture(scope="session")
def pt_engine(tiny_model: Path, adapters: dict[str, str]) -> Iterator[PtEngine]:
    engine = PtEngine(str(tiny_model), adapters=adapters)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def server_url(pt_engine: PtEngine) -> Iterator[str]:
    with serving(create_app(pt_engine, ServedModels("tiny", ADAPTERS), api_key=KEY)) as url:
        yield url
