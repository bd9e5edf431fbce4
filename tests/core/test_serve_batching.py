"""Dynamic batching: the scheduler's grouping rules, and concurrent HTTP requests really sharing batches.

The first tests drive `BatchScheduler` with a recording `run_batch` (no model); the rest serve a tiny
random checkpoint on the pt engine and compare batched answers with one-at-a-time answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from omni.errors import OmniError
from omni.infer.batching import AbandonedRows, BatchScheduler, BatchStreamer, batch_key
from omni.infer.engine import Choice, GenerationConfig, InferRequest, InferResponse, StreamDelta
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving


def request(text: str, *, adapter: str | None = None, **settings) -> InferRequest:
    return InferRequest({"messages": [{"role": "user", "content": text}]}, GenerationConfig(**settings), adapter)


class RecordingEngine:
    """A `run_batch` that answers each request with its own text and remembers the batches it got."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(
        self, requests: list[InferRequest], streamer: BatchStreamer | None, abandoned: AbandonedRows
    ) -> list[InferResponse]:
        texts = [r.row["messages"][0]["content"] for r in requests]
        self.batches.append(texts)
        if self.fail_on in texts:
            raise RuntimeError(f"cannot answer {self.fail_on}")
        return [InferResponse([Choice(text, "stop")], 1, 1) for text in texts]


def scheduler(run_batch: RecordingEngine, **kwargs) -> BatchScheduler:
    return BatchScheduler(run_batch, tokenizer=None, end_token_ids=(), **kwargs)


def test_concurrent_requests_are_batched_up_to_the_maximum() -> None:
    engine = RecordingEngine()
    batching = scheduler(engine, max_batch_size=4, max_wait_ms=50)

    async def main() -> list[InferResponse]:
        return await asyncio.gather(*(batching.generate(request(f"q{i}")) for i in range(10)))

    answers = asyncio.run(main())
    assert [a.choices[0].text for a in answers] == [f"q{i}" for i in range(10)]
    assert [len(b) for b in engine.batches] == [4, 4, 2]
    assert batching.stats.batches == 3 and batching.stats.largest == 4 and batching.stats.requests == 10


def test_requests_that_cannot_share_a_call_go_to_separate_batches() -> None:
    engine = RecordingEngine()
    batching = scheduler(engine, max_batch_size=8, max_wait_ms=50)
    mixed = [
        request("base-1"),
        request("lora-1", adapter="lora"),
        request("base-2"),
        request("long", max_new_tokens=99),
        request("lora-2", adapter="lora"),
        request("seeded-1", temperature=0.7, seed=1),
        request("seeded-2", temperature=0.7, seed=1),
    ]

    async def main() -> None:
        await asyncio.gather(*(batching.generate(r) for r in mixed))

    asyncio.run(main())
    assert sorted(map(sorted, engine.batches)) == sorted(
        [["base-1", "base-2"], ["lora-1", "lora-2"], ["long"], ["seeded-1"], ["seeded-2"]]
    )
    assert batch_key(request("x")) == batch_key(request("y"))


def test_a_bad_request_fails_alone_not_its_whole_batch() -> None:
    engine = RecordingEngine(fail_on="bad")
    batching = scheduler(engine, max_batch_size=4)

    async def main() -> list[object]:
        return await asyncio.gather(
            batching.generate(request("bad")), batching.generate(request("good")), return_exceptions=True
        )

    failed, answered = asyncio.run(main())
    assert isinstance(failed, RuntimeError)
    assert isinstance(answered, InferResponse) and answered.choices[0].text == "good"
    assert engine.batches == [["bad", "good"], ["bad"], ["good"]]


def test_a_scheduler_keeps_working_across_event_loops() -> None:
    batching = scheduler(RecordingEngine())
    for _ in range(2):  # asyncio.run closes its loop; the next call starts a new one
        assert asyncio.run(batching.generate(request("again"))).choices[0].text == "again"


def test_invalid_batching_knobs_are_refused() -> None:
    with pytest.raises(OmniError, match="max_batch_size"):
        scheduler(RecordingEngine(), max_batch_size=0)


@pytest.fixture(scope="module")
def url(engine: PtEngine) -> Iterator[str]:
    with serving(create_app(engine, ServedModels("tiny"))) as base_url:
        yield base_url


QUESTIONS = [f"Question number {i}: {'why ' * i}is the sky blue?" for i in range(8)]


def test_concurrent_http_requests_share_batches_and_answer_as_one_by_one(engine: PtEngine, url: str) -> None:
    alone = [engine.generate([request(q, max_new_tokens=10)])[0].choices[0].text for q in QUESTIONS]
    before = engine.scheduler.stats.batches

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        messages = [[{"role": "user", "content": q}] for q in QUESTIONS]
        answers = await asyncio.gather(
            *(client.chat.completions.create(model="tiny", messages=m, max_tokens=10, temperature=0) for m in messages)
        )
        await client.close()
        return [a.choices[0].message.content for a in answers]

    batched = asyncio.run(main())
    assert batched == alone  # left padding and batching do not change greedy answers
    assert engine.scheduler.stats.batches - before < len(QUESTIONS)
    assert engine.scheduler.stats.largest > 1


def test_64_concurrent_streams_all_complete(engine: PtEngine, url: str) -> None:
    """A bounded loopback load test: every stream ends with a finish reason and no errors."""

    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            max_tokens=8,
            temperature=0,
            stream=True,
        )
        text, finish = "", None
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        return text, finish

    async def main() -> list[tuple[str, str | None]]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
        results = await asyncio.gather(*(one(client, i) for i in range(64)))
        await client.close()
        return results

    results = asyncio.run(main())
    assert len(results) == 64
    assert all(finish in ("stop", "length") for _, finish in results)
    # Greedy: the same question streams the same answer whichever batch it rode in.
    by_question = {i % len(QUESTIONS): set() for i in range(64)}
    for i, (text, _) in enumerate(results):
        by_question[i % len(QUESTIONS)].add(text)
    assert all(len(texts) == 1 for texts in by_question.values())


def test_streamer_sends_each_rows_text_to_its_own_request(engine: PtEngine) -> None:
    """Two streaming requests and one whole-answer request in one `generate` call."""
    requests = [request(text, max_new_tokens=6) for text in ("Hi there", "Name a color", "Bye")]
    shared_before = engine.scheduler.stats.sizes.get(3, 0)

    async def main() -> tuple[list[str], InferResponse]:
        async def streamed(r: InferRequest) -> str:
            return "".join([d.text async for d in engine.scheduler.stream(r) if isinstance(d, StreamDelta)])

        *texts, whole = await asyncio.gather(
            streamed(requests[0]), streamed(requests[1]), engine.scheduler.generate(requests[2])
        )
        return texts, whole

    texts, whole = asyncio.run(main())
    expected = [engine.generate([r])[0].choices[0].text for r in requests]
    assert texts == expected[:2]
    assert whole.choices[0].text == expected[2]
    assert engine.scheduler.stats.sizes.get(3, 0) == shared_before + 1
