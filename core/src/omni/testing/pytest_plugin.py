"""pytest fixtures for omni plugin authors, loaded automatically through the `pytest11` entry point.

- `omni_host`: a fresh plugin host with omni's built-ins, made the process-wide host for one test.
- `register_plugin`: add a plugin object (a module, a class instance) to that host as if installed.
- `tiny_tokenizer`: a small byte-level BPE tokenizer with a real family's chat template.
- `tiny_model_dir`: a tiny random model saved as a checkpoint directory, loadable by path.
- `make_lora_adapter`: save a real PEFT LoRA adapter with random non-zero weights for a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omni.plugins import PluginHost, PluginInfo, load_plugins, using_host
from omni.registry import Distribution


@pytest.fixture
def omni_host() -> Iterator[PluginHost]:
    """A plugin host with only omni's built-in plugins, used by everything omni does during the test."""
    with using_host(load_plugins({"OMNI_PLUGINS": ""})) as host:
        yield host


@pytest.fixture
def register_plugin(omni_host: PluginHost) -> Callable[..., PluginInfo]:
    """`register_plugin(obj, name="x", distribution="omni-plugin-x", version="0")` adds a plugin for this test."""

    def register(
        plugin: object, name: str | None = None, distribution: str | None = None, version: str = "0"
    ) -> PluginInfo:
        label = name or getattr(plugin, "__name__", type(plugin).__name__)
        return omni_host.add(plugin, name=label, distribution=Distribution(distribution or label, version))

    return register


@pytest.fixture(params=["llama"])
def tiny_tokenizer(request: pytest.FixtureRequest) -> Any:
    """A tiny tokenizer of a real family (parametrize indirectly with a family name to pick another)."""
    from omni.testing.tokenizers import build_tokenizer

    return build_tokenizer(request.param)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama-family checkpoint directory (config, safetensors, tokenizer), built once per session."""
    from omni.testing.models import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def make_lora_adapter() -> Callable[[Path, Path, int], Path]:
    """`make_lora_adapter(base, out, seed)`: a real PEFT LoRA adapter with random non-zero weights, saved to `out`.

    Training would leave one like it; random B matrices make the adapter change every answer.
    """

    def make(base: Path, out: Path, seed: int) -> Path:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base)
        config = LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"
        )
        peft_model = get_peft_model(model, config)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_" in name:
                    param.normal_(0, 0.5)
        peft_model.save_pretrained(out)
        return out

    return make
