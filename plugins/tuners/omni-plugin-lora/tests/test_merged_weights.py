"""`omni.infer.weights.merged_weights` asks the LoRA plugin to merge a training model's adapters (core knows no peft)."""

from __future__ import annotations

import copy

import pytest
import torch
from omni.api import OmniError, merged_weights
from omni.plugins import load_plugins
from peft import LoraConfig, get_peft_model


@pytest.fixture(scope="module")
def registry():
    return load_plugins({"OMNI_PLUGINS": "lora"}).registry


@pytest.fixture
def base(tmp_path_factory):
    from omni.testing.models import build_tiny_model
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _with_lora(model, **config):
    torch.manual_seed(0)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, **config)
    )
    return peft_model


def test_lora_deltas_are_merged_into_checkpoint_names_without_touching_the_model(base, registry):
    plain = {name: p.detach().clone() for name, p in base.named_parameters()}
    model = _with_lora(base)
    weights = merged_weights(model, registry)
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    assert set(weights) == set(plain)
    changed = [name for name in weights if not torch.equal(weights[name], plain[name])]
    assert changed and all("q_proj" in name or "v_proj" in name for name in changed)
    for name, tensor in weights.items():
        torch.testing.assert_close(tensor, expected[name])
    assert any("lora_A" in name for name, _ in model.named_parameters())  # still the training model


def test_a_model_without_adapters_gives_its_own_weights(base, registry):
    weights = merged_weights(base, registry)
    assert set(weights) == {name for name, _ in base.named_parameters()}
    assert all(torch.equal(weights[name], p) for name, p in base.named_parameters())


def test_dora_cannot_be_merged_on_the_fly(base, registry):
    with pytest.raises(OmniError, match="DoRA adapters cannot be merged"):
        merged_weights(_with_lora(base, use_dora=True), registry)
