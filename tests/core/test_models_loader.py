"""Loading a checkpoint through its model spec: dtype, attention, padding, processor."""

from __future__ import annotations

import warnings

import pytest
import torch
from omni.models.loader import load_model
from omni.models.options import ModelOptions
from omni.testing.models import build_tiny_model


def test_tiny_models_are_real_small_checkpoints(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for family, architecture in (("llama", "LlamaForCausalLM"), ("qwen3", "Qwen3ForCausalLM")):
        folder = build_tiny_model(family, tmp_path / family)
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= names
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert type(model).__name__ == architecture
        assert 100_000 < model.num_parameters() < 1_000_000
        assert model.config.head_dim >= 32  # vLLM's CPU backend needs it
        assert model.config.vocab_size == len(tokenizer)
        assert model.generation_config.eos_token_id == tokenizer.eos_token_id
        assert tokenizer.chat_template


def test_load_model_on_cpu(omni_host, tiny_chat_model):
    loaded = load_model(ModelOptions(model=str(tiny_chat_model)), omni_host.registry)
    assert loaded.spec.name == "causal-lm"  # no model plugin is loaded in this test
    assert loaded.path == str(tiny_chat_model)
    assert loaded.model.dtype == torch.float32  # auto means float32 on CPU
    assert loaded.model.config._attn_implementation == "sdpa"
    assert loaded.tokenizer is loaded.processor  # a text model's processor is its tokenizer
    assert not loaded.model.training


def test_dtype_and_attention_flags(omni_host, tiny_chat_model):
    options = ModelOptions(model=str(tiny_chat_model), torch_dtype="bfloat16", attn_impl="eager")
    loaded = load_model(options, omni_host.registry)
    assert loaded.model.dtype == torch.bfloat16
    assert loaded.model.config._attn_implementation == "eager"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on machines without a GPU")
def test_flash_attention_falls_back_without_a_gpu(omni_host, tiny_chat_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_model(ModelOptions(model=str(tiny_chat_model), attn_impl="flash_attention_2"), omni_host.registry)
    assert loaded.model.config._attn_implementation == "sdpa"
    assert any("flash_attention_2 needs a CUDA GPU" in str(w.message) for w in caught)


def test_a_pad_token_is_set_when_the_tokenizer_has_none(omni_host, tmp_path):
    from transformers import AutoTokenizer

    folder = build_tiny_model("llama", tmp_path / "nopad", pad_token_id=None)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    loaded = load_model(ModelOptions(model=str(folder)), omni_host.registry)
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token
    assert loaded.model.generation_config.pad_token_id == loaded.tokenizer.eos_token_id


def test_training_loads_leave_the_kv_cache_off(omni_host, tiny_chat_model):
    loaded = load_model(ModelOptions(model=str(tiny_chat_model)), omni_host.registry, for_training=True)
    assert loaded.model.config.use_cache is False
