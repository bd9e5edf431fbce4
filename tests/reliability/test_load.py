"""A bounded load test of `omni serve` on the pt engine: 64 concurrent streams, 16 of them dropped half-way,
and one request asking for a million tokens. Everyone else is answered in full, the huge request is a 400,
and the dropped streams stop taking decoding steps (the server's /metrics count both)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

from tests.reliability.conftest import AUTH, KEY, MODEL

STREAMS = 64
DROPPED = 16
KEPT_TOKENS = 16
# The tiny model's greedy answers run on without an end-of-sequence token: a dropped stream left running would
# hold its batch for this many decoding steps.
DROPPED_TOKENS = 1500
DROP_AFTER_CHUNKS = 8


def stream_body(i: int, max_tokens: int) -> dict:
    question = f"Question {i}: tell me about the number {i}."
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def kept_stream(client: httpx.AsyncClient, i: int) -> dict:
    """Read a whole stream; its last event before [DONE] is the usage chunk."""
    async with client.stream("POST", "/v1/chat/completions", json=stream_body(i, KEPT_TOKENS)) as response:
        assert response.status_code == 200, await response.aread()
        events = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    return json.loads(events[-2][len("data: ") :])


async def dropped_stream(client: httpx.AsyncClient, i: int) -> int:
    """Read a few chunks of a long stream, then hang up."""
    chunks = 0
    async with client.stream("POST", "/v1/chat/completions", json=stream_body(i, DROPPED_TOKENS)) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            chunks += line.startswith("data: {")
            if chunks == DROP_AFTER_CHUNKS:
                break
    return chunks


async def huge_request(client: httpx.AsyncClient) -> httpx.Response:
    body = {**stream_body(0, 10**6), "stream": False}
    return await client.post("/v1/chat/completions", json=body)


def metrics(url: str) -> dict[str, int]:
    """The engine's counters from the server's /metrics, by name (``omni_engine_steps 12`` -> ``steps``)."""
    text = httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).text
    lines = (line.split(" ") for line in text.splitlines())
    return {name.removeprefix("omni_engine_"): int(value) for name, value in lines}


@pytest.mark.slow
def test_64_streams_with_16_dropped_and_a_million_token_request(chat_engine: PtEngine) -> None:
    app = create_app(chat_engine, ServedModels(MODEL), api_key=KEY)  # max_tokens bounded by the context, 2048
    with serving(app) as url:
        before = metrics(url)

        async def load() -> tuple[list, list, httpx.Response]:
            limits = httpx.Limits(max_connections=STREAMS + 8)
            async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=300, limits=limits) as client:
                dropped = [dropped_stream(client, i) for i in range(DROPPED)]
                kept = [kept_stream(client, i) for i in range(DROPPED, STREAMS)]
                results = await asyncio.gather(*dropped, *kept, huge_request(client))
            return results[:DROPPED], results[DROPPED:STREAMS], results[-1]

        dropped, kept, huge = asyncio.run(asyncio.wait_for(load(), 600))
        after = metrics(url)

    assert dropped == [DROP_AFTER_CHUNKS] * DROPPED
    assert len(kept) == STREAMS - DROPPED
    assert all(last["usage"]["completion_tokens"] == KEPT_TOKENS for last in kept), kept
    assert huge.status_code == 400 and huge.json()["error"]["param"] == "max_tokens", huge.text
    assert after["abandoned"] - before["abandoned"] == DROPPED
    # The dropped streams' batch ended soon after they hung up, not after their DROPPED_TOKENS steps.
    assert after["steps"] - before["steps"] < DROPPED_TOKENS
