"""The qwen3 and qwen2.5 templates: apply_chat_template's ids, exact masks, thinking on and off."""

from __future__ import annotations

import pytest
from omni.plugins import load_plugins
from omni.template import TemplateOptions, get_template
from omni.testing.tokenizers import build_tokenizer
from omni_plugin_qwen3.templates import Qwen3Template, Qwen25Template

from tests.core.template_helpers import CONVERSATIONS, SINGLE, answers, reference_ids, trained_text

THOUGHTFUL = [
    {"role": "system", "content": "Think."},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
    {"role": "user", "content": "3+3?"},
    {"role": "assistant", "content": "6", "reasoning_content": "add again"},
]


@pytest.mark.parametrize("family", ["qwen3", "qwen3-omni"])
@pytest.mark.parametrize("name", CONVERSATIONS)
def test_qwen3_matches_tokenizer_and_skips_the_empty_think_block(family, name):
    tokenizer, messages = build_tokenizer(family), CONVERSATIONS[name]
    encoded = Qwen3Template(tokenizer).encode({"messages": messages})
    assert encoded.input_ids == reference_ids(tokenizer, messages)
    assert "<think>\n\n</think>" in tokenizer.decode(encoded.input_ids)
    assert trained_text(tokenizer, encoded) == answers(messages, "<|im_end|>")


def test_qwen3_trains_reasoning_of_the_last_answer_only():
    tokenizer = build_tokenizer("qwen3")
    encoded = Qwen3Template(tokenizer).encode({"messages": THOUGHTFUL})
    assert encoded.input_ids == reference_ids(tokenizer, THOUGHTFUL)
    # The earlier answer is written without its thinking, as Qwen3's template does.
    assert trained_text(tokenizer, encoded) == "4<|im_end|><think>\nadd again\n</think>\n\n6<|im_end|>"


@pytest.mark.parametrize("thinking", [None, True, False])
def test_qwen3_generation_prompt_thinking_switch(thinking):
    tokenizer = build_tokenizer("qwen3")
    template = Qwen3Template(tokenizer, TemplateOptions(enable_thinking=thinking))
    prompt = template.encode_prompt({"messages": THOUGHTFUL})
    kwargs = {} if thinking is None else {"enable_thinking": thinking}
    assert prompt.input_ids == reference_ids(tokenizer, THOUGHTFUL[:-1], add_generation_prompt=True, **kwargs)
    opens_empty = tokenizer.decode(prompt.input_ids).endswith("<think>\n\n</think>\n\n")
    assert opens_empty is (thinking is False)


@pytest.mark.parametrize("name", [*CONVERSATIONS, "thoughtful"])
def test_qwen25_matches_tokenizer(name):
    tokenizer = build_tokenizer("qwen2.5")
    messages = THOUGHTFUL if name == "thoughtful" else CONVERSATIONS[name]
    encoded = Qwen25Template(tokenizer).encode({"messages": messages})
    assert encoded.input_ids == reference_ids(tokenizer, messages)
    assert "You are Qwen" in tokenizer.decode(encoded.input_ids) or messages[0]["role"] == "system"
    assert trained_text(tokenizer, encoded) == answers(messages, "<|im_end|>")


def test_consecutive_tool_results_share_one_user_turn():
    tokenizer = build_tokenizer("qwen3")
    messages = [
        *SINGLE,
        {"role": "tool", "content": "a"},
        {"role": "tool", "content": "b"},
        {"role": "assistant", "content": "ok"},
    ]
    encoded = Qwen3Template(tokenizer).encode({"messages": messages})
    assert encoded.input_ids == reference_ids(tokenizer, messages)
    assert tokenizer.decode(encoded.input_ids).count("<|im_start|>user") == 2


def test_specs_resolve_their_templates():
    registry = load_plugins({"OMNI_PLUGINS": "qwen3"}).registry
    tokenizer = build_tokenizer("qwen3")
    for model, architecture, template in (
        ("qwen3", "Qwen3ForCausalLM", Qwen3Template),
        ("qwen3-moe", "Qwen3MoeForCausalLM", Qwen3Template),
        ("qwen2.5", "Qwen2ForCausalLM", Qwen25Template),
    ):
        spec = registry.get("models", model).spec
        assert architecture in spec.architectures and spec.impl == "omni.api:load_pretrained"
        assert type(get_template(None, tokenizer, model_spec=spec, registry=registry)) is template
    assert registry.get("models", "qwen3").spec.matches_hub_id("Qwen/Qwen3-0.6B")
    assert registry.get("models", "qwen3").spec.lora_targets[-1] == "down_proj"


def test_hub_ids_pick_dense_or_moe():
    from omni.models.resolve import match_hub_id

    registry = load_plugins({"OMNI_PLUGINS": "qwen3"}).registry
    assert match_hub_id("Qwen/Qwen3-0.6B", registry).spec.name == "qwen3"
    assert match_hub_id("Qwen/Qwen3-30B-A3B-Instruct-2507", registry).spec.name == "qwen3-moe"
    assert match_hub_id("Qwen/Qwen2.5-7B-Instruct", registry).spec.name == "qwen2.5"
