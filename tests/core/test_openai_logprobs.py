"""`omni serve`'s completions as scoring clients use them, over real HTTP with the official `openai` client on
the pt engine: prompt lists and token-id prompts batched by the engine, `echo` with prompt log-probabilities,
top log-probabilities, `max_tokens` 0, vLLM's `prompt_logprobs`, chat `top_logprobs` (streamed too),
`/tokenize` and `/detokenize`, and a 400 naming the parameter from an engine that lacks a feature."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import openai
import pytest
import torch
from omni.infer import pt_engine as pt_engine_module
from omni.infer.pt_engine import PtEngine
from omni.infer.remote import RemoteEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

KEY = "sk-logprobs"
BASE = "tiny"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROMPTS = ["The capital of France is", "One, two, three,", "Roses are red and violets"]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def url(engine: PtEngine) -> Iterator[str]:
    with serving(create_app(engine, ServedModels(BASE), api_key=KEY, default_max_tokens=16)) as base_url:
        yield base_url


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def forward_logprobs(engine: PtEngine, ids: list[int]) -> list[float]:
    """Each token's log-probability after the ones before it, from one plain transformers forward pass."""
    with torch.inference_mode():
        steps = engine.model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
    return steps.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1).tolist()


def test_prompt_list_echo_scores_every_prompt_in_one_batch(client: openai.OpenAI, engine: PtEngine) -> None:
    largest_before = engine.stats()["largest"]
    scored = client.completions.create(model=BASE, prompt=PROMPTS, echo=True, logprobs=5, max_tokens=0)
    assert [c.index for c in scored.choices] == [0, 1, 2]
    assert engine.stats()["largest"] >= max(largest_before, len(PROMPTS))  # the prompts went in one batch
    for choice, prompt in zip(scored.choices, PROMPTS, strict=True):
        ids = engine.tokenizer(prompt)["input_ids"]
        logprobs = choice.logprobs
        assert choice.text == prompt and choice.finish_reason == "length"
        assert logprobs.tokens == [engine.tokenizer.decode([t]) for t in ids]
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        assert logprobs.token_logprobs[1:] == pytest.approx(forward_logprobs(engine, ids), abs=1e-4)
        for token, logprob, top in zip(
            logprobs.tokens[1:], logprobs.token_logprobs[1:], logprobs.top_logprobs[1:], strict=True
        ):
            assert top[token] == logprob and 5 <= len(top) <= 6  # the five likeliest, and the token itself
            assert max(top.values()) >= logprob
        assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(ids))]
    assert scored.usage.prompt_tokens == sum(len(engine.tokenizer(p)["input_ids"]) for p in PROMPTS)
    assert scored.usage.completion_tokens == 0


def test_prompts_scored_in_groups_score_as_together(
    client: openai.OpenAI, engine: PtEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    together = client.completions.create(model=BASE, prompt=PROMPTS, echo=True, logprobs=0, max_tokens=0)
    # A bound on the logits of one forward pass that holds one prompt at a time.
    monkeypatch.setattr(pt_engine_module, "_SCORED_LOGITS", 1)
    apart = client.completions.create(model=BASE, prompt=PROMPTS, echo=True, logprobs=0, max_tokens=0)
    for one, other in zip(together.choices, apart.choices, strict=True):
        assert one.logprobs.tokens == other.logprobs.tokens
        assert one.logprobs.token_logprobs[1:] == pytest.approx(other.logprobs.token_logprobs[1:], abs=1e-5)


def test_token_id_prompts_answer_as_their_text_with_n_choices_each(client: openai.OpenAI, engine: PtEngine) -> None:
    ids = [engine.tokenizer(p)["input_ids"] for p in PROMPTS[:2]]
    by_ids = client.completions.create(model=BASE, prompt=ids, max_tokens=5, temperature=0, n=2)
    by_text = client.completions.create(model=BASE, prompt=PROMPTS[:2], max_tokens=5, temperature=0, n=2)
    assert [c.index for c in by_ids.choices] == [0, 1, 2, 3]
    assert [c.text for c in by_ids.choices] == [c.text for c in by_text.choices]
    single = client.completions.create(model=BASE, prompt=ids[1], max_tokens=5, temperature=0)
    assert single.choices[0].text == by_ids.choices[2].text


def test_echo_with_generation_logs_prompt_and_answer_tokens(client: openai.OpenAI, engine: PtEngine) -> None:
    answer = client.completions.create(
        model=BASE, prompt=PROMPTS[0], echo=True, logprobs=2, max_tokens=3, temperature=0
    )
    plain = client.completions.create(model=BASE, prompt=PROMPTS[0], max_tokens=3, temperature=0, logprobs=0)
    choice = answer.choices[0]
    assert choice.text == PROMPTS[0] + plain.choices[0].text
    prompt_tokens = answer.usage.prompt_tokens
    assert len(choice.logprobs.tokens) == prompt_tokens + answer.usage.completion_tokens
    assert choice.logprobs.token_logprobs[prompt_tokens:] == pytest.approx(plain.choices[0].logprobs.token_logprobs)
    assert all(len(top) == 1 for top in plain.choices[0].logprobs.top_logprobs)  # logprobs 0: the token alone
    # Greedy: each answer token is the likeliest of its step.
    for token, top in zip(
        choice.logprobs.tokens[prompt_tokens:], choice.logprobs.top_logprobs[prompt_tokens:], strict=True
    ):
        assert max(top, key=top.get) == token


def test_vllm_prompt_logprobs_rank_each_prompt_token(url: str, engine: PtEngine) -> None:
    body = {"model": BASE, "prompt": PROMPTS[1], "max_tokens": 1, "temperature": 0, "prompt_logprobs": 3}
    choice = httpx.post(f"{url}/v1/completions", json=body, headers=AUTH).json()["choices"][0]
    ids = engine.tokenizer(PROMPTS[1])["input_ids"]
    expected = forward_logprobs(engine, ids)
    assert choice["prompt_logprobs"][0] is None and len(choice["prompt_logprobs"]) == len(ids)
    for token, logprob, entries in zip(ids[1:], expected, choice["prompt_logprobs"][1:], strict=True):
        assert entries[str(token)]["logprob"] == pytest.approx(logprob, abs=1e-4)
        assert entries[str(token)]["decoded_token"] == engine.tokenizer.decode([token])
        ranks = sorted(entry["rank"] for entry in entries.values())
        assert ranks[:3] == [1, 2, 3] and 3 <= len(entries) <= 4


def test_chat_top_logprobs_whole_and_streamed(client: openai.OpenAI) -> None:
    settings = {"model": BASE, "messages": QUESTION, "max_tokens": 6, "temperature": 0, "logprobs": True}
    whole = client.chat.completions.create(**settings, top_logprobs=5).choices[0]
    entries = whole.logprobs.content
    assert len(entries) == 6 and "".join(e.token for e in entries).startswith(whole.message.content[:3])
    for entry in entries:
        assert len(entry.top_logprobs) == 5 and entry.top_logprobs[0].token == entry.token  # greedy
        assert [t.logprob for t in entry.top_logprobs] == sorted((t.logprob for t in entry.top_logprobs), reverse=True)
        assert math.isclose(entry.top_logprobs[0].logprob, entry.logprob)
    chunks = list(client.chat.completions.create(**settings, top_logprobs=5, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.message.content
    assert [e.token for e in streamed] == [e.token for e in entries]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in entries], abs=1e-4)
    assert [[t.token for t in e.top_logprobs] for e in streamed] == [[t.token for t in e.top_logprobs] for e in entries]


def test_tokenize_and_detokenize_as_vllm(url: str, engine: PtEngine) -> None:
    tokens = httpx.post(f"{url}/tokenize", json={"prompt": PROMPTS[0], "return_token_strs": True}, headers=AUTH).json()
    assert tokens["tokens"] == engine.tokenizer(PROMPTS[0])["input_ids"] and tokens["count"] == len(tokens["tokens"])
    assert tokens["max_model_len"] == engine.max_model_len
    assert tokens["token_strs"] == engine.tokenizer.convert_ids_to_tokens(tokens["tokens"])
    text = httpx.post(f"{url}/detokenize", json={"model": BASE, "tokens": tokens["tokens"]}, headers=AUTH).json()
    assert text == {"prompt": PROMPTS[0]}
    chat = httpx.post(f"{url}/tokenize", json={"model": BASE, "messages": QUESTION}, headers=AUTH).json()
    assert chat["tokens"] == engine.template.encode_prompt({"messages": QUESTION}).input_ids
    assert httpx.get(f"{url}/tokenizer_info", headers=AUTH).status_code == 404  # only when asked for
    with serving(create_app(engine, ServedModels(BASE), tokenizer_info=True)) as shown:
        info = httpx.get(f"{shown}/tokenizer_info").json()
    assert info["eos_token"] == engine.tokenizer.eos_token
    assert info["tokenizer_class"] == type(engine.tokenizer).__name__


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/completions", {"prompt": "Hi", "logprobs": 6}, "logprobs"),
        ("/v1/completions", {"prompt": "Hi", "max_tokens": 0}, None),  # 0 only with echo
        ("/v1/completions", {"prompt": [[1, 2], [10**9]]}, "prompt"),  # outside the vocabulary
        ("/v1/completions", {"prompt": [[]]}, "prompt"),
        ("/v1/completions", {"prompt": ["Hi"] * 257}, "prompt"),
        ("/v1/completions", {"prompt": ["a", "b"], "stream": True}, "prompt"),
        ("/v1/completions", {"prompt": "Hi", "echo": True, "stream": True}, "echo"),
        ("/v1/completions", {"prompt": "Hi", "prompt_logprobs": 21}, "prompt_logprobs"),
        ("/v1/chat/completions", {"messages": QUESTION, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/v1/chat/completions", {"messages": QUESTION, "top_logprobs": 2}, None),  # needs logprobs
        ("/detokenize", {"tokens": [10**9]}, "tokens"),
        ("/tokenize", {"prompt": "Hi", "messages": QUESTION}, None),
        ("/tokenize", {"messages": [], "prompt": None}, "messages"),  # was a 500, found by the API fuzz test in CI
    ],
)
def test_bad_requests_are_400s_naming_the_parameter(url: str, route: str, body: dict, param: str | None) -> None:
    response = httpx.post(f"{url}{route}", json={"model": BASE, **body}, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_an_engine_without_a_feature_refuses_it_by_name(url: str) -> None:
    # RemoteEngine (the sglang and lmdeploy server modes) forwards text requests but computes no log-probabilities.
    remote = RemoteEngine(BASE, url=url, api_key=KEY)
    try:
        with serving(create_app(remote, ServedModels(BASE))) as front:
            cases = [
                ("/v1/completions", {"prompt": "Hi", "echo": True, "logprobs": 1, "max_tokens": 1}, "logprobs"),
                ("/v1/completions", {"prompt": [1, 2, 3]}, "prompt"),
                ("/v1/completions", {"prompt": "Hi", "prompt_logprobs": 0}, "prompt_logprobs"),
                ("/v1/chat/completions", {"messages": QUESTION, "logprobs": True, "top_logprobs": 2}, "top_logprobs"),
            ]
            for route, body, param in cases:
                response = httpx.post(f"{front}{route}", json={"model": BASE, **body})
                assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
                assert "does not support" in response.json()["error"]["message"]
            plain = httpx.post(f"{front}/v1/completions", json={"model": BASE, "prompt": "Hi", "max_tokens": 2})
            assert plain.status_code == 200 and plain.json()["choices"][0]["text"] is not None
    finally:
        remote.close()
