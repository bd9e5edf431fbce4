"""`omni serve` on the vllm engine, over real HTTP with the official `openai` client."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from omni.api import GenerationConfig, InferRequest
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

from tests.helpers import start_serving

from .conftest import ADAPTERS

KEY = "sk-vllm"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def url(vllm_engine) -> Iterator[str]:
    app = create_app(vllm_engine, ServedModels("tiny", ADAPTERS), api_key=KEY, default_max_tokens=16)
    with serving(app) as base_url:
        yield base_url


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def ask(client: openai.OpenAI, model: str = "tiny", **kwargs):
    return client.chat.completions.create(
        model=model, messages=QUESTION, **{"max_tokens": 12, "temperature": 0, **kwargs}
    )


def test_chat_answers_are_the_pt_engines_for_the_model_and_each_adapter(client, pt_engine) -> None:
    for model in ("tiny", *ADAPTERS):
        answer = ask(client, model)
        request = InferRequest(
            {"messages": QUESTION}, GenerationConfig(max_new_tokens=12), None if model == "tiny" else model
        )
        expected = pt_engine.generate([request])[0]
        assert answer.choices[0].message.content == expected.choices[0].text
        assert answer.usage.completion_tokens == expected.completion_tokens
        assert answer.model == model


def test_streaming_adds_up_to_the_whole_answer(client) -> None:
    whole = ask(client, "beta")
    chunks = list(ask(client, "beta", stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.choices[0].finish_reason
    ]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_api_key_is_required(url: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    assert httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": QUESTION}).status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ('{"model": "tiny", "messages": [', None),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_p": 0}', "top_p"),
    ],
)
def test_invalid_requests_get_400_and_the_next_one_is_answered(url, client, body: str, param: str | None) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(f"{url}/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert ask(client).choices[0].message.content


def test_a_prompt_vllm_rejects_is_a_400(client) -> None:
    with pytest.raises(openai.BadRequestError, match="vLLM rejected the request"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "word " * 5000}])
    assert ask(client).choices[0].message.content


def test_64_concurrent_streams_all_complete(url: str) -> None:
    async def main() -> list[str]:
        concurrent = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=300)

        async def one(index: int) -> str:
            model = ("tiny", *ADAPTERS)[index % 3]
            messages = [{"role": "user", "content": f"Count to {index}."}]
            stream = await concurrent.chat.completions.create(
                model=model, messages=messages, max_tokens=16, temperature=0, stream=True
            )
            finishes, text = [], ""
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finishes += [chunk.choices[0].finish_reason] if chunk.choices[0].finish_reason else []
            assert len(finishes) == 1
            return text

        try:
            return await asyncio.gather(*(one(i) for i in range(64)))
        finally:
            await concurrent.close()

    texts = asyncio.run(main())
    assert len(texts) == 64 and all(texts)


@pytest.mark.slow
def test_omni_serve_cli_with_the_vllm_backend(tiny_model: Path, adapters: dict[str, str]) -> None:
    command = [sys.executable, "-m", "omni.cli.main", "serve", "--infer-backend", "vllm", "--model", str(tiny_model)]
    command += ["--served-model-name", "tiny", "--port", "0", "--api-key", KEY, "--max-new-tokens", "12"]
    command += ["--adapters", *(f"{name}={folder}" for name, folder in adapters.items())]
    command += ["--enforce-eager", "--vllm_gpu_memory_utilization", "0.1"]  # ms-swift's spelling works too
    process, url, log = start_serving(command)
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny", *ADAPTERS]
        answers = {model: ask(client, model).choices[0].message.content for model in ("tiny", *ADAPTERS)}
        assert len(set(answers.values())) == 3
        streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, "alpha", stream=True) if c.choices)
        assert streamed == answers["alpha"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
