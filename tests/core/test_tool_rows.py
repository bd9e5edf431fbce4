"""Rows with tools: OpenAI's and ms-swift's spellings read alike, bad tool rows named by file and line, and the
`default` template renders tools and calls through the tokenizer's own chat template."""

from __future__ import annotations

import json

import pytest
from omni.errors import DataError
from omni.template.default import DefaultTemplate
from omni.testing.tokenizers import build_tokenizer

from tests.core.data_helpers import load, write_jsonl
from tests.core.template_helpers import TOOL_CALLING, WEATHER_TOOLS, reference_ids, trained_text, weather_call

OPENAI_ROW = {"tools": WEATHER_TOOLS, "messages": TOOL_CALLING[1:5]}
# ms-swift's agent format: tools as JSON text, a tool_call message whose content is the call, a tool_response.
SWIFT_ROW = {
    "tools": json.dumps(WEATHER_TOOLS),
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "tool_call", "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"role": "tool_response", "content": '{"sky": "sunny"}'},
        {"role": "assistant", "content": "It is sunny in Paris."},
    ],
}
# OpenAI clients send arguments as JSON text, and bare function definitions are read too.
STRING_ARGUMENTS_ROW = {
    "tools": [WEATHER_TOOLS[0]["function"]],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "observation", "content": {"sky": "sunny"}},
        {"role": "assistant", "content": "It is sunny in Paris."},
    ],
}
SHAREGPT_ROW = {
    "tools": json.dumps(WEATHER_TOOLS),
    "conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": '{"sky": "sunny"}'},
        {"from": "gpt", "value": "It is sunny in Paris."},
    ],
}


def _without_ids(row):
    return [{k: v for k, v in m.items() if k != "tool_call_id"} for m in row["messages"]]


def test_every_spelling_reads_as_openai_shaped_tools_and_calls(tmp_path):
    rows = load(str(write_jsonl(tmp_path / "t.jsonl", [OPENAI_ROW, SWIFT_ROW, STRING_ARGUMENTS_ROW, SHAREGPT_ROW])))
    first, *others = rows.train
    assert first["tools"] == WEATHER_TOOLS
    assert first["messages"][1]["tool_calls"] == weather_call("Paris")["tool_calls"]
    for row in others:
        assert row["tools"] == WEATHER_TOOLS
        calls = [{k: v for k, v in c.items() if k != "id"} for c in row["messages"][1]["tool_calls"]]
        assert calls == weather_call("Paris")["tool_calls"]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant", "tool", "assistant"]
        assert json.loads(row["messages"][2]["content"]) == {"sky": "sunny"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**OPENAI_ROW, "tools": "[{"}, "tools is a string that is not valid JSON"),
        ({**OPENAI_ROW, "tools": [{"type": "function"}]}, r"tools\[0\] must be"),
        (
            {"tools": WEATHER_TOOLS, "messages": [TOOL_CALLING[1], {**weather_call("Paris"), "tool_calls": "x"}]},
            r"messages\[1\].tool_calls must be a list",
        ),
        (
            {
                "messages": [
                    TOOL_CALLING[1],
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{x"}}],
                    },
                ]
            },
            r"messages\[1\].tool_calls\[0\]: arguments is not valid JSON",
        ),
        (
            {"messages": [TOOL_CALLING[1], {"role": "tool_call", "content": "get_weather(Paris)"}]},
            r"messages\[1\] is a tool_call message",
        ),
        (
            {
                "tools": WEATHER_TOOLS,
                "messages": [
                    TOOL_CALLING[1],
                    weather_call("Paris")
                    | {"tool_calls": [{"type": "function", "function": {"name": "get_wether", "arguments": {}}}]},
                ],
            },
            r"calls 'get_wether', which tools does not define \(tools: get_weather\)",
        ),
        (
            {"messages": [{**TOOL_CALLING[1], "tool_calls": weather_call("Paris")["tool_calls"]}, TOOL_CALLING[4]]},
            "only assistants call tools",
        ),
    ],
)
def test_bad_tool_rows_name_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [OPENAI_ROW, row])
    with pytest.raises(DataError, match=rf"bad.jsonl:2: .*{message}"):
        load(str(path))


@pytest.mark.parametrize("family", ["qwen3", "llama"])
def test_default_template_renders_tools_through_the_tokenizers_template(family):
    tokenizer = build_tokenizer(family)
    messages = TOOL_CALLING[1:]
    encoded = DefaultTemplate(tokenizer).encode({"messages": messages, "tools": WEATHER_TOOLS})
    assert encoded.input_ids == reference_ids(tokenizer, messages, tools=WEATHER_TOOLS)
    trained = trained_text(tokenizer, encoded)
    assert trained.count("get_weather") == 2 and "It is sunny in Paris." in trained
    assert "sky" not in trained and "Weather in Paris?" not in trained  # results and questions are not trained


def test_a_template_without_a_tool_format_refuses_tool_rows(tmp_path):
    rows = load(str(write_jsonl(tmp_path / "t.jsonl", [OPENAI_ROW]))).train
    with pytest.raises(DataError, match=r"t.jsonl:1: has tools or tool calls, but the DefaultTemplate has no"):
        DefaultTemplate(build_tokenizer("smollm2")).encode(rows[0])
