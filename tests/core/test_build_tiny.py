"""`omni.testing.build_tiny` builds a tiny checkpoint of any transformers model type that loads and runs."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from omni.testing import build_tiny
from omni.testing.tokenizers import build_tokenizer

# Decoder-only text models, vision-language models (nested text and vision configs; multimodal RoPE; an image
# token the generic tokenizer lacks) and an encoder-decoder speech model (nested sizes, decoder start token).
MODEL_TYPES = ["llama", "qwen2", "qwen3", "mistral", "gemma", "phi3", "qwen2_vl", "llava", "whisper"]


def _model_class(config):
    return getattr(transformers, config.architectures[0])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_builds_loads_and_runs_forward(model_type, tmp_path):
    path = build_tiny(model_type, tmp_path / model_type)
    config = transformers.AutoConfig.from_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = _model_class(config).from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    text = config.get_text_config(decoder=True)
    assert text.hidden_size == 64
    assert getattr(text, "head_dim", None) in (None, 32)  # heads of 32, as vLLM's CPU backend needs
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    ids = torch.tensor([tokenizer("What is 2 + 2?")["input_ids"]])
    if config.is_encoder_decoder:  # Whisper: 30 s of (silent) log-mel features in, text out
        features = torch.zeros(1, config.num_mel_bins, 2 * config.max_source_positions)
        logits = model(input_features=features, decoder_input_ids=ids).logits
    else:
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(logits).all()


def test_the_tokenizer_carries_the_family_tokens_and_chat_template(tmp_path):
    path = build_tiny("qwen2_vl", tmp_path / "vl")
    config = json.loads((path / "config.json").read_text())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    # Qwen's own image and video placeholders back the ids the config names.
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config["video_token_id"] == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert chat == build_tokenizer("qwen2.5").apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)


def test_a_token_the_tokenizer_lacks_is_added_for_the_config(tmp_path):
    path = build_tiny("llava", tmp_path / "llava")  # no omni tokenizer family: the generic ChatML one
    config = json.loads((path / "config.json").read_text())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    assert tokenizer.convert_ids_to_tokens(config["image_token_index"]) == "<|image|>"
    assert config["image_token_index"] < config["text_config"]["vocab_size"] == len(tokenizer)


def test_a_config_is_shrunk_and_overrides_apply(tmp_path):
    big = transformers.MistralConfig(hidden_size=4096, num_hidden_layers=32, vocab_size=32000)
    path = build_tiny(big, tmp_path / "acme", architectures=["AcmeForCausalLM"], num_hidden_layers=1)
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["AcmeForCausalLM"]  # what a family plugin's ModelSpec matches
    assert (config["hidden_size"], config["num_hidden_layers"], config["model_type"]) == (64, 1, "mistral")
    assert big.hidden_size == 4096  # the config passed in is left as it was
    assert transformers.AutoModelForCausalLM.from_pretrained(path).config.num_hidden_layers == 1


def dirty_the_allocator():
    """Leave freed memory holding NaN, as a long test session may: a weight left as torch.empty would get it."""
    for _ in range(4):
        torch.full((1 << 20,), float("nan"))


def test_random_model_sets_every_weight_its_class_leaves_empty_the_same_way_each_time():
    """A transformers class may leave weights its `_init_weights` misses as `torch.empty`; `random_model`
    draws them from the seed, so two builds are equal even when freed memory held NaN in between."""
    from omni.testing import random_model

    class Experts(transformers.PreTrainedModel):
        config_class = transformers.PretrainedConfig

        def __init__(self, config):
            super().__init__(config)
            self.router = torch.nn.Linear(8, 4)
            self.down_proj = torch.nn.Parameter(torch.empty(4, 8, 16))  # as Qwen3-Omni's talker experts

        def _init_weights(self, module):
            if isinstance(module, torch.nn.Linear):
                module.weight.data.normal_(0.0, 0.02)

    config = transformers.PretrainedConfig(initializer_range=0.05)
    first = random_model(lambda: Experts(config), seed=3)
    dirty_the_allocator()
    second = random_model(lambda: Experts(config), seed=3)
    for name, weight in first.state_dict().items():
        assert torch.isfinite(weight).all() and torch.equal(weight, second.state_dict()[name]), name
    assert 0.03 < first.down_proj.std().item() < 0.07
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_moe_checkpoint_has_the_same_weights_every_build(tmp_path):
    from safetensors.torch import load_file

    built = []
    for name in ("first", "second"):
        dirty_the_allocator()
        built.append(load_file(str(build_tiny("qwen3_moe", tmp_path / name) / "model.safetensors")))
    assert built[0].keys() == built[1].keys()
    assert all(torch.equal(weight, built[1][name]) for name, weight in built[0].items())
