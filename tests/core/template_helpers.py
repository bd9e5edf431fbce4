"""Helpers for template tests: conversations to encode, and what an encoding trains."""

from __future__ import annotations

from typing import Any

from omni.template import IGNORE_INDEX, Encoded

SINGLE = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}]
WITH_SYSTEM = [{"role": "system", "content": "Be brief."}, *SINGLE]
MULTI_TURN = [
    *WITH_SYSTEM,
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "6"},
]
TOOL = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
    {"role": "tool", "content": '{"sky": "sunny"}'},
    {"role": "assistant", "content": "It is sunny in Paris."},
]
CONVERSATIONS = {"single": SINGLE, "system": WITH_SYSTEM, "multi-turn": MULTI_TURN, "tool": TOOL}


def reference_ids(tokenizer: Any, messages: list[dict[str, Any]], **kwargs: Any) -> list[int]:
    """What the tokenizer's own chat template gives."""
    return list(tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)["input_ids"])


def trained_text(tokenizer: Any, encoded: Encoded) -> str:
    """The decoded trained tokens, after checking that labels copy the ids where they train."""
    assert len(encoded.labels) == len(encoded.input_ids)
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert all(label in (IGNORE_INDEX, t) for t, label in zip(encoded.input_ids, encoded.labels, strict=True))
    return tokenizer.decode(trained)


def answers(messages: list[dict[str, Any]], end: str, *, strip: bool = False) -> str:
    """Every assistant content followed by the end-of-turn token, as a template should train them."""
    return "".join(
        (m["content"].strip() if strip else m["content"]) + end for m in messages if m["role"] == "assistant"
    )


WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def weather_call(city: str) -> dict[str, Any]:
    """An assistant turn that calls get_weather for `city` (OpenAI's shape, arguments as a dict)."""
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


# Calls, a result, an answer, and a last turn that calls again: every kind of tool turn in one row.
TOOL_CALLING = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    weather_call("Paris"),
    {"role": "tool", "content": '{"sky": "sunny"}'},
    {"role": "assistant", "content": "It is sunny in Paris."},
    {"role": "user", "content": "And in Rome?"},
    weather_call("Rome"),
]
