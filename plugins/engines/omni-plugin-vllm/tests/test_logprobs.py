"""Scoring through `omni serve` on the vllm engine, as on the pt engine: prompt lists and token-id prompts,
`echo` with prompt log-probabilities, top log-probabilities (chat ones streamed), and lm-eval's
`local-completions` on a local multiple-choice task; log-probabilities within 1e-3 of the pt engine's.

The engine here serves no adapters: with LoRA enabled, vLLM's CPU build cannot score prompts (the engine
refuses, as the last test shows on the session's engine with adapters).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from omni.api import GenerationConfig, InferRequest
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

from tests.helpers import REPO

from .conftest import ADAPTERS

MODEL = "tiny"
PROMPTS = ["The capital of France is", "One, two, three,", "Roses are red and violets"]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TASKS = REPO / "tests" / "core" / "lm_eval_tasks"


@pytest.fixture(scope="module")
def plain_vllm(tiny_model: Path) -> Iterator:
    from omni_plugin_vllm.engine import VllmEngine
    from omni_plugin_vllm.options import VllmOptions

    engine = VllmEngine(str(tiny_model), options=VllmOptions(enforce_eager=True))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def url(plain_vllm) -> Iterator[str]:
    with serving(create_app(plain_vllm, ServedModels(MODEL))) as base_url:
        yield base_url


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def pt_prompt_logprobs(pt_engine, ids: list[int]) -> list[float]:
    scoring = GenerationConfig(max_new_tokens=0, prompt_logprobs=0)
    response = pt_engine.generate([InferRequest(prompt_ids=ids, generation=scoring)])[0]
    return [scored.logprob for scored in response.prompt_logprobs[1:]]


def test_echo_scores_every_prompt_as_the_pt_engine(client: openai.OpenAI, pt_engine) -> None:
    scored = client.completions.create(model=MODEL, prompt=PROMPTS, echo=True, logprobs=5, max_tokens=0)
    assert [c.index for c in scored.choices] == [0, 1, 2]
    for choice, prompt in zip(scored.choices, PROMPTS, strict=True):
        ids = pt_engine.tokenizer(prompt)["input_ids"]
        assert choice.text == prompt
        assert choice.logprobs.token_logprobs[0] is None and len(choice.logprobs.tokens) == len(ids)
        assert choice.logprobs.token_logprobs[1:] == pytest.approx(pt_prompt_logprobs(pt_engine, ids), abs=1e-3)
        for token, logprob, top in zip(
            choice.logprobs.tokens[1:],
            choice.logprobs.token_logprobs[1:],
            choice.logprobs.top_logprobs[1:],
            strict=True,
        ):
            assert top[token] == logprob and max(top.values()) >= logprob and 5 <= len(top) <= 6


def test_token_id_prompts_with_top_logprobs_answer_as_the_pt_engine(client: openai.OpenAI, pt_engine) -> None:
    ids = [pt_engine.tokenizer(p)["input_ids"] for p in PROMPTS]
    answer = client.completions.create(model=MODEL, prompt=ids, max_tokens=6, temperature=0, logprobs=3)
    config = GenerationConfig(max_new_tokens=6, logprobs=True, top_logprobs=3)
    expected = pt_engine.generate([InferRequest(prompt_ids=i, generation=config) for i in ids])
    for choice, reference in zip(answer.choices, expected, strict=True):
        assert choice.text == reference.choices[0].text
        assert choice.logprobs.token_logprobs == pytest.approx(reference.choices[0].logprobs, abs=1e-3)
        # By text, tokens that decode alike (byte pieces) share an entry: the likeliest one's is compared.
        best = [max(top.values()) for top in choice.logprobs.top_logprobs]
        assert best == pytest.approx([max(top.values()) for top in reference.choices[0].top_logprobs], abs=1e-3)


def test_chat_top_logprobs_stream_as_they_answer_whole(client: openai.OpenAI, pt_engine) -> None:
    settings = {"model": MODEL, "messages": QUESTION, "max_tokens": 6, "temperature": 0, "logprobs": True}
    whole = client.chat.completions.create(**settings, top_logprobs=5).choices[0].logprobs.content
    reference = pt_engine.generate(
        [InferRequest({"messages": QUESTION}, GenerationConfig(max_new_tokens=6, logprobs=True, top_logprobs=5))]
    )[0].choices[0]
    assert [e.logprob for e in whole] == pytest.approx(reference.logprobs, abs=1e-3)
    assert all(len(e.top_logprobs) == 5 for e in whole)
    chunks = list(client.chat.completions.create(**settings, top_logprobs=5, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in whole]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in whole], abs=1e-4)


def test_lm_eval_multiple_choice_matches_the_pt_engine(url: str, tiny_model: Path, pt_engine, monkeypatch) -> None:
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args={"model": MODEL, "base_url": f"{url}/v1/completions", "tokenizer": str(tiny_model), "batch_size": 4},
        tasks=["omni_capitals"],
        task_manager=TaskManager(include_path=str(TASKS), include_defaults=False),
        log_samples=True,
    )
    tokenizer = pt_engine.tokenizer
    samples = results["samples"]["omni_capitals"]
    assert len(samples) == 6
    for sample in samples:
        for (context, continuation), response in zip(sample["arguments"], sample["resps"], strict=True):
            context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
            ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
            expected = sum(pt_prompt_logprobs(pt_engine, ids)[len(context_ids) - 1 :])
            assert response[0][0] == pytest.approx(expected, abs=1e-3)


def test_with_adapters_on_the_cpu_scoring_is_refused_by_name(vllm_engine) -> None:
    with serving(create_app(vllm_engine, ServedModels(MODEL, ADAPTERS))) as front:
        body = {"model": MODEL, "prompt": PROMPTS[0], "echo": True, "logprobs": 1, "max_tokens": 0}
        refused = httpx.post(f"{front}/v1/completions", json=body)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "max_tokens", refused.text
        ids = vllm_engine.tokenizer(PROMPTS[0])["input_ids"]
        answer = httpx.post(
            f"{front}/v1/completions", json={"model": "alpha", "prompt": ids, "max_tokens": 2, "logprobs": 2}
        )
        assert answer.status_code == 200 and len(answer.json()["choices"][0]["logprobs"]["top_logprobs"]) == 2
