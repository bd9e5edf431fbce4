"""The LoRA tuner on a tiny model: trainable parameters, variants (DoRA, rsLoRA, PiSSA, LoRA+), save/load/switch/merge."""

from __future__ import annotations

import math

import pytest
import torch
from omni.api import ModelSpec
from omni_plugin_lora.options import LoraOptions
from omni_plugin_lora.tuner import LoraTuner

TOL = 1e-5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from omni.testing.models import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def base(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def _logits(model, ids=None):
    ids = torch.arange(3, 19)[None] if ids is None else ids
    model.eval()  # adapters' dropout layers are created in training mode
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


def _linear_shapes(model, names):
    return [
        (m.in_features, m.out_features)
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in names
    ]


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _perturb_adapters(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(0.05 * torch.randn_like(p))


def test_default_targets_all_linear_and_counts_rank_times_fan(base):
    shapes = _linear_shapes(base, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    model = LoraTuner(LoraOptions(lora_rank=4)).prepare(base)
    assert _trainable(model) == sum(4 * (i + o) for i, o in shapes)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_model_family_targets_are_the_default(base):
    spec = ModelSpec(name="x", description="", impl="m:f", lora_targets=("q_proj", "v_proj"))
    shapes = _linear_shapes(base, {"q_proj", "v_proj"})
    model = LoraTuner(LoraOptions(lora_rank=2), model_spec=spec).prepare(base)
    assert _trainable(model) == sum(2 * (i + o) for i, o in shapes)
    assert LoraTuner(LoraOptions(target_modules=["o_proj"]), model_spec=spec).config(base).target_modules == {"o_proj"}


def test_dora_adds_magnitude_vectors(base):
    model = LoraTuner(LoraOptions(use_dora=True)).prepare(base)
    assert model.peft_config["default"].use_dora
    magnitudes = [n for n, p in model.named_parameters() if "lora_magnitude_vector" in n and p.requires_grad]
    assert len(magnitudes) == 7 * 2  # every targeted linear of both layers


def test_rslora_scales_by_alpha_over_sqrt_rank(base):
    model = LoraTuner(LoraOptions(lora_rank=16, lora_alpha=32, use_rslora=True)).prepare(base)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == pytest.approx(32 / math.sqrt(16))


def test_pissa_starts_at_the_base_and_saves_an_adapter_for_the_untouched_base(base, model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    before = _logits(base)
    tuner = LoraTuner(LoraOptions(init_weights="pissa", lora_rank=4))
    model = tuner.prepare(base)
    assert model.peft_config["default"].init_lora_weights == "pissa"
    torch.testing.assert_close(_logits(model), before, atol=1e-4, rtol=0)  # W = residual + B A at start
    assert model.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight.abs().sum() > 0
    _perturb_adapters(model)
    trained = _logits(model)
    tuner.save(model, tmp_path)
    fresh = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    torch.testing.assert_close(_logits(LoraTuner.load(fresh, tmp_path)), trained, atol=1e-4, rtol=0)


def test_lora_plus_gives_b_matrices_their_own_learning_rate(base):
    tuner = LoraTuner(LoraOptions(lora_plus_lr_ratio=16))
    model = tuner.prepare(base)
    slow, fast = tuner.optimizer_param_groups(model, 1e-4)
    assert slow["lr"] == 1e-4 and fast["lr"] == pytest.approx(16e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("lora_B" in names[id(p)] for p in fast["params"])
    assert all("lora_A" in names[id(p)] for p in slow["params"])
    assert len(slow["params"]) + len(fast["params"]) == sum(p.requires_grad for p in model.parameters())
    assert LoraTuner(LoraOptions()).optimizer_param_groups(model, 1e-4) is None


def test_save_load_two_adapters_switch_and_merge(base, model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base_logits = _logits(base)
    outputs = {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        fresh = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        tuner = LoraTuner(LoraOptions(init_weights="gaussian"))
        model = tuner.prepare(fresh)
        _perturb_adapters(model)
        tuner.save(model, tmp_path / name)
        assert LoraTuner.is_saved_here(tmp_path / name)
        assert (tmp_path / name / "adapter_model.safetensors").is_file()
        outputs[name] = _logits(model)
    assert not LoraTuner.is_saved_here(model_dir)

    served = LoraTuner.load(base, tmp_path / "a", name="a")
    served = LoraTuner.load(served, tmp_path / "b", name="b")
    for name in ("a", "b", None, "a"):
        LoraTuner.set_active(served, name)
        torch.testing.assert_close(_logits(served), base_logits if name is None else outputs[name], atol=TOL, rtol=0)
    LoraTuner.set_active(served, "b")
    merged = LoraTuner.merge(served)
    assert type(merged).__name__ == "LlamaForCausalLM"
    torch.testing.assert_close(_logits(merged), outputs["b"], atol=1e-4, rtol=0)
