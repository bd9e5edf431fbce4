"""Llama 3's tool format: ids equal the published Llama 3.1 chat template's with tools, calls train, results do not;
the JSON parser reads the calls back."""

from __future__ import annotations

import pytest
from omni.api import DataError, ToolCall
from omni.testing.tokenizers import build_tokenizer
from omni_plugin_llama.templates import Llama3JsonToolParser, Llama3Template

from tests.core.template_helpers import TOOL_CALLING, WEATHER_TOOLS, reference_ids, trained_text, weather_call


def _call_text(city: str) -> str:
    return f'{{"name": "get_weather", "parameters": {{"city": "{city}"}}}}'


@pytest.mark.parametrize("system", [True, False])
def test_tool_rows_match_the_published_template_and_train_the_calls(system):
    tokenizer = build_tokenizer("llama")
    messages = TOOL_CALLING if system else TOOL_CALLING[1:]
    template = Llama3Template(tokenizer)
    encoded = template.encode({"messages": messages, "tools": WEATHER_TOOLS})
    assert encoded.input_ids == reference_ids(tokenizer, messages, tools=WEATHER_TOOLS)
    assert "Environment: ipython" in tokenizer.decode(encoded.input_ids)
    expected = f"{_call_text('Paris')}<|eot_id|>It is sunny in Paris.<|eot_id|>{_call_text('Rome')}<|eot_id|>"
    assert trained_text(tokenizer, encoded) == expected
    prompt = template.encode_prompt({"messages": messages[:-1], "tools": WEATHER_TOOLS})
    assert prompt.input_ids == reference_ids(tokenizer, messages[:-1], tools=WEATHER_TOOLS, add_generation_prompt=True)


def test_history_calls_without_tools_and_two_calls_refused():
    tokenizer = build_tokenizer("llama")
    template = Llama3Template(tokenizer)
    history = TOOL_CALLING[:5]
    assert template.encode({"messages": history}).input_ids == reference_ids(tokenizer, history)
    both = weather_call("Paris")
    both["tool_calls"] *= 2
    with pytest.raises(DataError, match=r"messages\[2\]: Llama 3 writes one tool call per assistant turn"):
        template.encode({"messages": [*TOOL_CALLING[:2], both]})


def test_json_parser_reads_calls_and_keeps_text_answers():
    parser = Llama3JsonToolParser()
    assert parser.parse(" " + _call_text("Paris")).tool_calls == (ToolCall("get_weather", {"city": "Paris"}),)
    two = parser.parse(f"<|python_tag|>{_call_text('Paris')}; {_call_text('Rome')}")
    assert [c.arguments["city"] for c in two.tool_calls] == ["Paris", "Rome"] and two.content == ""
    assert parser.parse("It is sunny {really}.").content == "It is sunny {really}."
    assert parser.parse('{"name": "get_weather", "param').tool_calls == ()
    assert parser.content_end("  {") == 0 and parser.content_end("It is") == len("It is")
    assert parser.parse(parser.call_opening("get_weather") + ' {"city": "Oslo"}}').tool_calls[0].arguments == {
        "city": "Oslo"
    }
