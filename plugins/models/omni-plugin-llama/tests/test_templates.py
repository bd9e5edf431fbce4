"""The llama3 and smollm2 templates give apply_chat_template's ids and train exactly the answers."""

from __future__ import annotations

import pytest
from omni.plugins import load_plugins
from omni.template import TemplateOptions, get_template
from omni.template.default import DefaultTemplate
from omni.testing.tokenizers import build_tokenizer
from omni_plugin_llama.templates import Llama3Template, SmolLM2Template

from tests.core.template_helpers import CONVERSATIONS, MULTI_TURN, SINGLE, answers, reference_ids, trained_text


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_llama3_matches_tokenizer(name):
    tokenizer, messages = build_tokenizer("llama"), CONVERSATIONS[name]
    encoded = Llama3Template(tokenizer).encode({"messages": messages})
    assert encoded.input_ids == reference_ids(tokenizer, messages)
    assert trained_text(tokenizer, encoded) == answers(messages, "<|eot_id|>", strip=True)
    prompt = Llama3Template(tokenizer).encode_prompt({"messages": messages})
    assert prompt.input_ids == reference_ids(tokenizer, messages[:-1], add_generation_prompt=True)


def test_llama3_strips_contents_as_llama_does():
    tokenizer = build_tokenizer("llama")
    messages = [{"role": "user", "content": "  Hi  "}, {"role": "assistant", "content": " Hello \n"}]
    encoded = Llama3Template(tokenizer).encode({"messages": messages})
    assert encoded.input_ids == reference_ids(tokenizer, messages)
    assert trained_text(tokenizer, encoded) == "Hello<|eot_id|>"


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_smollm2_matches_the_real_tokenizer(smollm2_tokenizer, name):
    messages = CONVERSATIONS[name]
    for template in (SmolLM2Template(smollm2_tokenizer), DefaultTemplate(smollm2_tokenizer)):
        encoded = template.encode({"messages": messages})
        assert encoded.input_ids == reference_ids(smollm2_tokenizer, messages)
        assert trained_text(smollm2_tokenizer, encoded) == answers(messages, "<|im_end|>")
        prompt = template.encode_prompt({"messages": messages})
        assert prompt.input_ids == reference_ids(smollm2_tokenizer, messages[:-1], add_generation_prompt=True)


def test_smollm2_scopes_and_system_on_the_real_tokenizer(smollm2_tokenizer):
    last = SmolLM2Template(smollm2_tokenizer, TemplateOptions(loss_scope="last")).encode({"messages": MULTI_TURN})
    assert trained_text(smollm2_tokenizer, last) == "6<|im_end|>"
    system = SmolLM2Template(smollm2_tokenizer, TemplateOptions(system="You are Omni.")).encode({"messages": SINGLE})
    expected = reference_ids(smollm2_tokenizer, [{"role": "system", "content": "You are Omni."}, *SINGLE])
    assert system.input_ids == expected


def test_specs_and_template_resolution():
    registry = load_plugins({"OMNI_PLUGINS": "llama"}).registry
    smollm2 = registry.get("models", "smollm2").spec
    assert smollm2.matches_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert smollm2.impl == "omni.api:load_pretrained"
    assert "q_proj" in smollm2.lora_targets and "down_proj" in smollm2.lora_targets
    assert isinstance(
        get_template(None, build_tokenizer("smollm2"), model_spec=smollm2, registry=registry), SmolLM2Template
    )
    llama = registry.get("models", "llama").spec
    assert "LlamaForCausalLM" in llama.architectures and llama.matches_hub_id("meta-llama/Llama-3.2-1B-Instruct")
    # Llama-architecture checkpoints differ in chat format, so they keep their own chat template.
    assert isinstance(
        get_template(None, build_tokenizer("llama"), model_spec=llama, registry=registry), DefaultTemplate
    )
    assert isinstance(get_template("llama3.2", build_tokenizer("llama"), registry=registry), Llama3Template)
    assert SmolLM2Template.stop_words == ("<|im_end|>",) and "<|eot_id|>" in Llama3Template.stop_words
