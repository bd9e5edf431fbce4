"""The built-in tuners choose exactly the parameters they promise."""

from __future__ import annotations

import pytest
import torch
from omni.errors import OmniError
from omni.train.options import FreezeOptions
from omni.train.tuners import FreezeTuner, FullTuner


@pytest.fixture
def model():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, tie_word_embeddings=False,
    )  # fmt: skip
    m = LlamaForCausalLM(config)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_trains_everything(model):
    FullTuner(None).prepare(model)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == model.num_parameters()


def test_freeze_with_trainable_parts_trains_only_those(model):
    FreezeTuner(FreezeOptions(trainable_parts=["lm_head", "model.layers.*.mlp.*"])).prepare(model)
    names = _trainable(model)
    assert names == {"lm_head.weight"} | {
        f"model.layers.{i}.mlp.{m}_proj.weight" for i in range(2) for m in ("gate", "up", "down")
    }
    count = sum(p.numel() for n, p in model.named_parameters() if n in names)
    assert count == 50 * 16 + 2 * 3 * 16 * 32


def test_freeze_parts_freeze_only_those_and_trainable_parts_reopen(model):
    FreezeTuner(
        FreezeOptions(freeze_parts=["model.embed_tokens", "model.layers"], trainable_parts=["model.layers.1"])
    ).prepare(model)
    names = _trainable(model)
    assert "model.embed_tokens.weight" not in names and "model.layers.0.self_attn.q_proj.weight" not in names
    assert (
        "model.layers.1.self_attn.q_proj.weight" in names and "lm_head.weight" in names and "model.norm.weight" in names
    )


def test_freeze_needs_patterns_that_match(model):
    with pytest.raises(OmniError, match="needs --trainable-parts or --freeze-parts"):
        FreezeTuner(FreezeOptions()).prepare(model)
    with pytest.raises(OmniError, match="no parameter matches"):
        FreezeTuner(FreezeOptions(trainable_parts=["nothing.here"])).prepare(model)


def test_full_output_is_a_model_not_an_adapter(tmp_path, model):
    FullTuner(None).save(model, tmp_path)
    assert FullTuner.is_saved_here(tmp_path)
    with pytest.raises(OmniError, match="use it as the model: --model"):
        FullTuner.load(model, tmp_path)
    assert torch.equal(FullTuner.merge(model).lm_head.weight, model.lm_head.weight)
