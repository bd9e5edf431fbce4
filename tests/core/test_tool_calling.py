"""Tool calling end to end: the embedded SmolLM2, LoRA-trained for a few steps on weather rows in Qwen2.5's tool
format, calls `get_weather` with the asked city (cities it never saw included) through `omni serve` and the real
`openai` client (whole and streamed, `tool_choice` required and named), answers a tool result in text, and
`omni infer --input` writes the calls it reads; the server's refusals name their parameter."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from omni.infer.engine import InferRequest, StreamDelta
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving
from omni.serve.tool_calls import ToolCallStream, ToolUse
from omni.template.options import TemplateCliOptions
from omni_plugin_qwen3.templates import HermesToolParser

from tests.core.template_helpers import WEATHER_TOOLS, reference_ids
from tests.helpers import run_omni, start_serving

CITIES = ("Rome", "Oslo", "Lima", "Bern", "Kyiv", "Doha")
QUESTIONS = (
    "What is the weather in {}?",
    "How is the weather today in {}?",
    "Tell me the weather for {}?",
    "Is it sunny in {}?",
)
SKIES = ("sunny", "rainy")


def _call(city: str) -> dict:
    return {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}


def weather_rows() -> tuple[list[dict], list[tuple[str, str]]]:
    """Training rows (a question answered by a call; the call's result answered in text) and the held-out
    (question, city) pairs: city i is never asked the i-th way in training (each way is seen with other cities)."""
    rows, held_out = [], []
    for i, city in enumerate(CITIES):
        for j, question in enumerate(QUESTIONS):
            asked = {"role": "user", "content": question.format(city)}
            if j == i % len(QUESTIONS):
                held_out.append((asked["content"], city))
                continue
            calling = {"role": "assistant", "content": "", "tool_calls": [_call(city)]}
            sky = SKIES[(i + j) % 2]
            result = {"role": "tool", "content": json.dumps({"city": city, "sky": sky})}
            answered = {"role": "assistant", "content": f"It is {sky}."}
            rows.append({"tools": WEATHER_TOOLS, "messages": [asked, calling]})
            rows.append({"tools": json.dumps(WEATHER_TOOLS), "messages": [asked, calling, result, answered]})
    return rows, held_out


# Cities no training row names: the call must copy the city from the question.
UNSEEN = (("What is the weather in Cairo?", "Cairo"), ("Is it sunny in Quito?", "Quito"))


@pytest.mark.slow
def test_a_trained_model_calls_tools_through_the_openai_api(tmp_path):
    rows, held_out = weather_rows()
    held_out += UNSEEN
    data = tmp_path / "weather.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "run"
    # A pretrained model learns to copy the argument in ten steps (6/6, unseen cities too, by hand) and to answer
    # from a tool result in a few more; a tiny random one learns the call's shape but not to copy.
    argv = ["sft", "--template", "qwen2.5", "--dataset", str(data), "--tuner", "lora", "--lora-rank", "16"]
    argv += "--learning-rate 4e-4 --max-steps 16 --batch-size 4 --warmup-ratio 0 --gradient-checkpointing false".split()
    result = run_omni(*argv, "--save-strategy", "no", "--output-dir", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    command = [sys.executable, "-m", "omni.cli.main", "serve", "--adapters", f"weather={out}", "--port", "0"]
    process, url, log = start_serving([*command, "--template", "qwen2.5"])
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)

        def ask(question: str, **kwargs):
            messages = [{"role": "user", "content": question}]
            return client.chat.completions.create(
                model="weather", messages=messages, tools=WEATHER_TOOLS, temperature=0, max_tokens=40, **kwargs
            )

        def call_of(message) -> tuple[str, dict] | None:
            calls = message.tool_calls or []
            return (calls[0].function.name, json.loads(calls[0].function.arguments)) if len(calls) == 1 else None

        # Questions asked in a way training never asked them, or about cities it never named, get get_weather
        # calls naming the asked city.
        called = [ask(question).choices[0] for question, _ in held_out]
        calls = [call_of(c.message) for c in called]
        right = [call == ("get_weather", {"city": city}) for call, (_, city) in zip(calls, held_out, strict=True)]
        assert sum(right) >= len(held_out) - 1, [c.message for c in called]
        assert all(c.finish_reason == "tool_calls" for c, call in zip(called, calls, strict=True) if call)

        # Streamed, the same greedy call arrives as OpenAI's deltas: id, type and name first, then the arguments.
        first = right.index(True)
        question = held_out[first][0]
        chunks = list(ask(question, stream=True))
        deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
        assert deltas[0].id.startswith("call_") and deltas[0].type == "function"
        assert deltas[0].function.name == "get_weather" and deltas[0].function.arguments == ""
        assert ("get_weather", json.loads("".join(t.function.arguments for t in deltas))) == calls[first]
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

        # tool_choice required or named: the answer is a call; none: text.
        for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
            assert call_of(ask(question, tool_choice=choice).choices[0].message)[0] == "get_weather"
        assert ask(question, tool_choice="none").choices[0].message.tool_calls is None

        # The call's result in the history: the answer is text, as training answered results.
        call = called[first].message.tool_calls[0]
        history = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": json.dumps({"city": calls[first][1]["city"], "sky": "rainy"}),
            },
        ]
        answer = client.chat.completions.create(
            model="weather", messages=history, tools=WEATHER_TOOLS, temperature=0, max_tokens=20
        ).choices[0]
        assert answer.finish_reason == "stop" and answer.message.tool_calls is None
        # Text that reads the result ("The weather in Rome is rainy."), not the result echoed back.
        assert "rainy" in answer.message.content and "{" not in answer.message.content, answer.message.content
    finally:
        process.terminate()
        process.wait(timeout=30)

    # omni infer's file mode writes the calls it reads in each answer.
    questions, answers = tmp_path / "questions.jsonl", tmp_path / "answers.jsonl"
    asked = [{"messages": [{"role": "user", "content": q}], "tools": WEATHER_TOOLS} for q, _ in held_out]
    questions.write_text("".join(json.dumps(row) + "\n" for row in asked))
    result = run_omni("infer", "--adapters", str(out), "--input", str(questions), "--output", str(answers))
    assert result.returncode == 0, result.stderr[-3000:]
    written = [json.loads(line)["tool_calls"] for line in answers.read_text().splitlines()]
    expected = [[{"name": "get_weather", "arguments": {"city": city}}] for _, city in held_out]
    assert sum(w == e for w, e in zip(written, expected, strict=True)) >= len(held_out) - 1, written


@pytest.fixture(scope="module")
def served(tiny_qwen3: Path) -> Iterator[tuple[str, PtEngine]]:
    """The tiny random Qwen3 (qwen3 template) and, as `chatml`, the same model with SmolLM2's toolless template."""
    engine = PtEngine(str(tiny_qwen3))
    toolless = PtEngine(str(tiny_qwen3), template_options=TemplateCliOptions(template="smollm2"))
    with serving(create_app(engine, ServedModels("tiny"), default_max_tokens=4)) as url:
        with serving(create_app(toolless, ServedModels("chatml"), default_max_tokens=4)) as toolless_url:
            yield url, toolless_url, engine
    engine.close()
    toolless.close()


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


ASKED = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.mark.parametrize(
    ("where", "request_fields", "param"),
    [
        (
            "tiny",
            {"tools": WEATHER_TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            "tool_choice",
        ),
        ("tiny", {"tool_choice": "required"}, "tool_choice"),
        ("tiny", {"tools": WEATHER_TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ("tiny", {"tools": [{"type": "function"}]}, "tools"),
        ("chatml", {"tools": WEATHER_TOOLS}, "tools"),
    ],
)
def test_tool_requests_the_server_cannot_answer_are_400s_naming_the_parameter(served, where, request_fields, param):
    url, toolless_url, _ = served
    client = _client(url if where == "tiny" else toolless_url)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=where, messages=ASKED, **request_fields)
    assert refused.value.status_code == 400 and refused.value.body["param"] == param, refused.value.body
    assert client.chat.completions.create(model=where, messages=ASKED, max_tokens=2).choices  # still serving


def test_history_with_calls_and_results_is_rendered_by_the_template(served):
    url, _, engine = served
    history = [
        *ASKED,
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
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
    ]
    for choice in ("auto", "none"):
        answer = _client(url).chat.completions.create(
            model="tiny", messages=history, tools=WEATHER_TOOLS, tool_choice=choice, max_tokens=3
        )
        assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
    from omni.serve.protocol import ChatCompletionRequest

    row = ChatCompletionRequest.model_validate({"model": "tiny", "messages": history, "tools": WEATHER_TOOLS}).row()
    as_rendered = [*ASKED, {"role": "assistant", "content": "", "tool_calls": [_call("Paris")]}, history[2]]
    expected = reference_ids(engine.tokenizer, as_rendered, tools=WEATHER_TOOLS, add_generation_prompt=True)
    assert engine.prompt_token_ids(InferRequest(row)) == expected


def test_streamed_calls_come_as_openai_deltas_after_the_text_before_them():
    stream = ToolCallStream(ToolUse(HermesToolParser()))
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
    choices = [c for piece in pieces for c in stream.choices(StreamDelta(piece))]
    choices += stream.choices(StreamDelta("", finish_reason="stop"))
    content = "".join(c["delta"].get("content", "") for c in choices)
    calls = [c["delta"]["tool_calls"][0] for c in choices if "tool_calls" in c["delta"]]
    assert content == "Let me check.\n"  # never a piece of the call's markup
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    assert calls[0]["function"] == {"name": "get_weather", "arguments": ""} and calls[0]["index"] == 0
    assert calls[1] == {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}
    assert choices[-1]["finish_reason"] == "tool_calls" and choices[-1]["delta"] == {}

    plain = ToolCallStream(ToolUse(HermesToolParser()))
    said = [c for piece in ("It is <", "b>sunny") for c in plain.choices(StreamDelta(piece))]
    said += plain.choices(StreamDelta("", finish_reason="stop"))
    assert "".join(c["delta"].get("content", "") for c in said) == "It is <b>sunny"
    assert said[-1]["finish_reason"] == "stop"
