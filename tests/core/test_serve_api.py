"""`omni serve`'s OpenAI API, over real HTTP with the official `openai` client, on the pt engine.

The server runs a tiny random Qwen3 checkpoint with two real peft LoRA adapters (different random
weights), loaded through the LoRA plugin's `Tuner.load` as the engine does for `--adapters`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving
from omni.serve.protocol import ChatCompletionRequest

KEY = "sk-test"
BASE = "tiny"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def adapters(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two LoRA adapters with different random (non-zero) weights, saved as peft writes them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = {}
    for name, seed in (("alpha", 1), ("beta", 2)):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_chat_model)
        config = LoraConfig(r=8, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
        folder = tmp_path_factory.mktemp(f"lora-{name}")
        get_peft_model(model, config).save_pretrained(folder)
        folders[name] = str(folder)
    return folders


@pytest.fixture(scope="module")
def engine(tiny_chat_model: Path, adapters: dict[str, str]) -> Iterator[PtEngine]:
    engine = PtEngine(str(tiny_chat_model), adapters=adapters)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def url(engine: PtEngine, adapters: dict[str, str]) -> Iterator[str]:
    app = create_app(engine, ServedModels(BASE, tuple(adapters)), api_key=KEY, default_max_tokens=16)
    with serving(app) as base_url:
        yield base_url


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def ask(client: openai.OpenAI, model: str = BASE, **kwargs) -> openai.types.chat.ChatCompletion:
    settings = {"max_tokens": 12, "temperature": 0, **kwargs}
    return client.chat.completions.create(model=model, messages=QUESTION, **settings)


def test_models_lists_the_base_model_and_each_adapter(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == [BASE, "alpha", "beta"]


def test_chat_completion_answers_with_usage(client: openai.OpenAI) -> None:
    answer = ask(client)
    assert answer.object == "chat.completion"
    assert answer.model == BASE
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streamed_chunks_add_up_to_the_whole_greedy_answer(client: openai.OpenAI) -> None:
    whole = ask(client)
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_is_server_sent_events_ending_with_done(url: str) -> None:
    body = {"model": BASE, "messages": QUESTION, "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0][len("data: ") :])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_stop_strings_end_the_answer_before_them(client: openai.OpenAI) -> None:
    text = ask(client).choices[0].message.content
    stop = text[len(text) // 2 :][:3]
    expected = text[: text.index(stop)]
    stopped = ask(client, stop=[stop])
    assert stopped.choices[0].message.content == expected
    assert stopped.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, stop=stop, stream=True) if c.choices)
    assert streamed == expected


def test_completions_continue_plain_text_without_the_chat_template(client: openai.OpenAI, engine: PtEngine) -> None:
    prompt = "Once upon a time"
    whole = client.completions.create(model=BASE, prompt=prompt, max_tokens=8, temperature=0)
    assert whole.object == "text_completion"
    assert whole.usage.prompt_tokens == len(engine.tokenizer(prompt)["input_ids"])
    streamed = client.completions.create(model=BASE, prompt=prompt, max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text


def test_adapters_are_picked_by_model_name(client: openai.OpenAI) -> None:
    answers = {name: ask(client, model=name).choices[0].message.content for name in (BASE, "alpha", "beta")}
    assert len(set(answers.values())) == 3, answers
    assert ask(client, model="alpha").choices[0].message.content == answers["alpha"]  # and switch back cleanly


def test_concurrent_requests_for_different_adapters_each_get_their_own(url: str, client: openai.OpenAI) -> None:
    names = [BASE, "alpha", "beta"] * 3
    expected = {name: ask(client, model=name).choices[0].message.content for name in names[:3]}

    async def main() -> list[str]:
        concurrent = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        answers = await asyncio.gather(
            *(
                concurrent.chat.completions.create(model=name, messages=QUESTION, max_tokens=12, temperature=0)
                for name in names
            )
        )
        await concurrent.close()
        return [a.choices[0].message.content for a in answers]

    assert asyncio.run(main()) == [expected[name] for name in names]


def test_n_choices_and_logprobs(client: openai.OpenAI) -> None:
    answer = ask(client, n=2, logprobs=True)
    assert [c.index for c in answer.choices] == [0, 1]
    assert answer.choices[0].message.content == answer.choices[1].message.content  # greedy: the same answer
    entries = answer.choices[0].logprobs.content
    assert len(entries) == answer.usage.completion_tokens // 2
    assert all(entry.logprob <= 0 for entry in entries)


def test_sampled_choices_stream_side_by_side(client: openai.OpenAI) -> None:
    texts = {0: "", 1: ""}
    finishes = {}
    for chunk in ask(client, n=2, temperature=1.0, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert set(finishes) == {0, 1}
    assert all(texts.values())


def test_sampling_with_a_seed_is_reproducible(client: openai.OpenAI) -> None:
    texts = {ask(client, temperature=1.0, seed=7).choices[0].message.content for _ in range(2)}
    assert len(texts) == 1


def test_unknown_model_is_an_openai_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, model="no-such-model")
    assert caught.value.body["code"] == "model_not_found"
    assert caught.value.body["param"] == "model"


def test_api_key_is_required_on_v1_routes(url: str) -> None:
    for key in ("wrong-key", ""):
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=f"{url}/v1", api_key=key or "x", max_retries=0).models.list()
        assert caught.value.status_code == 401
    missing = httpx.get(f"{url}/v1/models")
    assert missing.status_code == 401
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ('{"model": "tiny", "messages": [', None),  # malformed JSON
        ('{"model": "tiny"}', "messages"),
        ('{"model": "tiny", "messages": []}', "messages"),
        ('{"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}', "messages.0.role"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 3}', "temperature"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": "2"}', "n"),
        ('{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "hologram"}]}]}', "messages"),
        ('["not", "an", "object"]', None),
    ],
)
def test_invalid_requests_get_400_and_the_server_keeps_serving(
    url: str, client: openai.OpenAI, body: str, param: str | None
) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(f"{url}/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    assert ask(client).choices[0].message.content


def test_null_parameters_mean_their_defaults(url: str) -> None:
    body = {"model": BASE, "messages": QUESTION, "max_tokens": 4, "temperature": None, "stop": None, "n": None}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["choices"]) == 1


def test_content_parts_become_media_columns_of_the_row() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    parts = [{"type": "text", "text": "Hear and see: "}, audio, image]
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": parts}]
    row = ChatCompletionRequest.model_validate({"model": BASE, "messages": messages}).row()
    assert row["messages"][0] == {"role": "system", "content": "Be brief."}
    assert row["messages"][1]["content"] == "Hear and see: <audio><image>"
    assert row["images"] == ["data:image/png;base64,AAAA"]
    assert row["audios"] == ["data:audio/wav;base64,UklGRg=="]
