"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 checkpoint whose greedy answers vary from prompt to prompt.

    The default init (std 0.02) makes a 64-wide random model repeat one token whatever the prompt;
    a wider init gives distinct answers, so batching, adapters and stop strings have something to compare.
    """
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"), initializer_range=0.3)


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
