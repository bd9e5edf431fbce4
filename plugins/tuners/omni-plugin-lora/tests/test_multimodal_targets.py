"""LoRA targets on a model whose spec names its parts (the tiny Qwen3-Omni thinker): the default and `all-linear`
adapt the language model's linear layers only; `--freeze-*` flags widen or narrow them, as in ms-swift."""

from __future__ import annotations

import pytest
import torch
from omni.api import OmniError, get_registry
from omni_plugin_lora.options import LoraOptions
from omni_plugin_lora.tuner import LoraTuner
from peft.tuners.lora import LoraLayer


@pytest.fixture(scope="module")
def omni_dir(tmp_path_factory):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    return build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"))


@pytest.fixture(scope="module")
def spec():
    return get_registry().get("models", "qwen3-omni").spec


@pytest.fixture
def thinker(omni_dir):
    import transformers

    return transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(omni_dir).thinker


def linear_layers(model, spec, part):
    """Names of `model`'s Linear layers in `part`, the output head left out."""
    head = model.get_output_embeddings()
    return {
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head and spec.parts.part_of(name) == part
    }


def adapted(model):
    return {name.removeprefix("base_model.model.") for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def prepare(thinker, spec, flags, **options):
    tuner = LoraTuner(LoraOptions(**options), model_spec=spec)
    assert tuner.take_part_flags(flags) == {}  # LoRA takes every part flag when it derives its targets
    return tuner, tuner.prepare(thinker)


def test_all_linear_adapts_every_linear_layer_of_the_language_model_and_nothing_else(thinker, spec):
    llm = linear_layers(thinker, spec, "llm")
    _, model = prepare(thinker, spec, {}, target_modules=["all-linear"])
    assert adapted(model) == llm and llm
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and spec.parts.part_of(n) == "llm" for n in trainable)


@pytest.mark.parametrize(
    ("flags", "widened"),
    [
        (
            {"vision": False, "aligner": False},
            {"vision", "aligner"},
        ),  # ms-swift's --freeze_vit false --freeze_aligner false
        ({"audio": False, "vision": True}, {"audio"}),
    ],
    ids=["vision+aligner", "audio"],
)
def test_a_part_flag_set_false_adds_that_parts_linear_layers(thinker, spec, flags, widened):
    expected = set().union(*(linear_layers(thinker, spec, part) for part in {"llm", *widened}))
    _, model = prepare(thinker, spec, flags, target_modules=["all-linear"])
    assert adapted(model) == expected
    for part in {"vision", "audio", "aligner"} - widened:
        assert not any(spec.parts.part_of(name) == part for name in adapted(model))


def test_default_targets_are_the_familys_layers_of_the_language_model(thinker, spec):
    family = {n for n in linear_layers(thinker, spec, "llm") if n.rsplit(".", 1)[-1] in spec.lora_targets}
    _, model = prepare(thinker, spec, {"vision": True})
    assert adapted(model) == family and family


def test_freeze_llm_takes_the_language_model_out(thinker, spec):
    audio = linear_layers(thinker, spec, "audio")
    _, model = prepare(thinker, spec, {"llm": True, "audio": False})
    assert adapted(model) == audio


def test_freeze_llm_alone_leaves_nothing_to_adapt(thinker, spec):
    tuner = LoraTuner(LoraOptions(), model_spec=spec)
    tuner.take_part_flags({"llm": True})
    with pytest.raises(OmniError, match="--freeze-llm leaves nothing to adapt"):
        tuner.prepare(thinker)


def test_named_target_modules_leave_the_part_flags_to_core(spec):
    tuner = LoraTuner(LoraOptions(target_modules=["q_proj"]), model_spec=spec)
    assert tuner.take_part_flags({"vision": False}) == {"vision": False}


def test_a_saved_adapter_loads_onto_the_same_layers(thinker, spec, omni_dir, tmp_path):
    tuner, model = prepare(thinker, spec, {"aligner": False}, target_modules=["all-linear"])
    tuner.save(model, tmp_path)
    import transformers

    fresh = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(omni_dir).thinker
    assert adapted(LoraTuner.load(fresh, tmp_path)) == adapted(model)
