"""Qwen3's and Qwen2.5's tool format: ids equal the published chat template's with tools, calls train, results do not; the
Hermes parser reads the calls back."""

from __future__ import annotations

import pytest
from omni.api import ToolCall
from omni.testing.tokenizers import build_tokenizer
from omni_plugin_qwen3.templates import HermesToolParser, Qwen3Template, Qwen25Template

from tests.core.template_helpers import TOOL_CALLING, WEATHER_TOOLS, reference_ids, trained_text, weather_call


def _call_text(city: str) -> str:
    return f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}\n</tool_call>'


TEMPLATES = {"qwen3": Qwen3Template, "qwen2.5": Qwen25Template}


@pytest.mark.parametrize("family", TEMPLATES)
@pytest.mark.parametrize("system", [True, False])
def test_tool_rows_match_the_published_template_and_train_the_calls(family, system):
    tokenizer = build_tokenizer(family)
    messages = TOOL_CALLING if system else TOOL_CALLING[1:]
    encoded = TEMPLATES[family](tokenizer).encode({"messages": messages, "tools": WEATHER_TOOLS})
    assert encoded.input_ids == reference_ids(tokenizer, messages, tools=WEATHER_TOOLS)
    assert '"name": "get_weather"' in tokenizer.decode(encoded.input_ids).split("<|im_end|>")[0]
    expected = f"{_call_text('Paris')}<|im_end|>It is sunny in Paris.<|im_end|>{_call_text('Rome')}<|im_end|>"
    assert trained_text(tokenizer, encoded) == expected  # the tool result and the tools prompt are not trained


@pytest.mark.parametrize("family", TEMPLATES)
def test_text_beside_two_calls_and_two_results(family):
    tokenizer = build_tokenizer(family)
    both = weather_call("Paris")
    both["content"] = "Let me check both."
    both["tool_calls"] = [*both["tool_calls"], *weather_call("Rome")["tool_calls"]]
    messages = [
        {"role": "user", "content": "Paris and Rome?"},
        both,
        {"role": "tool", "content": "sunny"},
        {"role": "tool", "content": "rainy"},
        {"role": "assistant", "content": "Sunny, then rainy."},
    ]
    template = TEMPLATES[family](tokenizer)
    encoded = template.encode({"messages": messages, "tools": WEATHER_TOOLS})
    assert encoded.input_ids == reference_ids(tokenizer, messages, tools=WEATHER_TOOLS)
    prompt = template.encode_prompt({"messages": messages[:4], "tools": WEATHER_TOOLS})
    assert prompt.input_ids == reference_ids(tokenizer, messages[:4], tools=WEATHER_TOOLS, add_generation_prompt=True)
    first_turn = f"Let me check both.\n{_call_text('Paris')}\n{_call_text('Rome')}<|im_end|>"
    assert trained_text(tokenizer, encoded).startswith(first_turn)


def test_hermes_parser_reads_calls_and_keeps_the_rest():
    parser = HermesToolParser()
    text = f"Checking.\n{_call_text('Paris')}\n{_call_text('Rome')}"
    parsed = parser.parse(text)
    assert parsed.content == "Checking."
    assert parsed.tool_calls == (ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_weather", {"city": "Rome"}))
    assert parser.parse("no calls <tool_call>{broken</tool_call>").tool_calls == ()
    assert parser.parse("cut off <tool_call>\n{").content == "cut off <tool_call>\n{"
    assert parser.content_end("Sure.<tool_") == len("Sure.")  # a call may be starting: held back
    assert parser.content_end("Sure. <b>") == len("Sure. <b>")
    opening = parser.call_opening("get_weather")
    assert parser.parse(opening + ' {"city": "Oslo"}}\n</tool_call>').tool_calls == (
        ToolCall("get_weather", {"city": "Oslo"}),
    )
