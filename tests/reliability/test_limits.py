"""Every way a client could stall `omni serve` or make it fail, found by probing it: each is a 4xx with an
OpenAI error body, streaming or not, and a normal request succeeds afterwards.

Real HTTP on 127.0.0.1 with httpx, against the pt engine on a tiny random Qwen3 (whose greedy answers run
to 2000 tokens without an end-of-sequence token, so long requests really are long).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving
from omni.serve.protocol import MAX_STOP_STRINGS
from omni.template.options import TemplateCliOptions

from tests.reliability.conftest import AUTH, HELLO, KEY, MODEL

MAX_TOKENS_LIMIT = 64
MAX_LENGTH = 32


@pytest.fixture(scope="module")
def url(chat_engine: PtEngine) -> Iterator[str]:
    app = create_app(
        chat_engine, ServedModels(MODEL), api_key=KEY, default_max_tokens=8, max_tokens_limit=MAX_TOKENS_LIMIT
    )
    with serving(app) as base_url:
        yield base_url


def post(url: str, path: str, body: object, **kwargs) -> httpx.Response:
    """POST `body` (JSON, raw bytes, or byte chunks sent without a Content-Length) with the key; a stream's body is read whole."""
    content = body if isinstance(body, bytes | Iterator) else json.dumps(body).encode()
    headers = {**AUTH, "Content-Type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{url}{path}", content=content, headers=headers, timeout=kwargs.pop("timeout", 120), **kwargs)


def assert_openai_error(response: httpx.Response, status: int, *, says: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert says in error["message"], error
    if param is not None:
        assert error["param"] == param, error


def assert_still_serving(url: str) -> None:
    answer = post(url, "/v1/chat/completions", HELLO, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] > 0


CHAT_LIMITS = [
    ({"max_tokens": 10**9}, "at most 64 tokens", "max_tokens"),
    ({"max_completion_tokens": 10**6}, "at most 64 tokens", "max_completion_tokens"),
    ({"stop": [f"s{i}" for i in range(MAX_STOP_STRINGS + 1)]}, "at most 4 stop strings", "stop"),
    ({"stop": [f"s{i}" for i in range(1000)]}, "at most 4 stop strings", "stop"),
    ({"stop": "x" * 10_000}, "at most 128 characters", "stop"),
    ({"seed": 2**64}, "seed", "seed"),
    ({"repetition_penalty": 1e-300}, "greater than or equal to 0.01", "repetition_penalty"),
    ({"messages": [{"role": "user", "content": "word " * 40_000}]}, "the model's context is 2048 tokens", None),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/passwd"}}]}]},
        "the model takes only text",
        "messages",
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("change", "says", "param"), CHAT_LIMITS, ids=lambda v: str(v)[:30])
def test_chat_requests_past_a_limit_are_400s(
    url: str, change: dict, says: str, param: str | None, stream: bool
) -> None:
    answer = post(url, "/v1/chat/completions", {**HELLO, **change, "stream": stream})
    assert_openai_error(answer, 400, says=says, param=param)
    assert_still_serving(url)


def test_a_vanishing_temperature_decodes_greedily_rather_than_overflowing(url: str) -> None:
    greedy = post(url, "/v1/chat/completions", HELLO).json()["choices"][0]["message"]["content"]
    answer = post(url, "/v1/chat/completions", {**HELLO, "temperature": 1e-300, "seed": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == greedy


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": [""]}, "the prompt is empty"),
        ({"max_tokens": 10**9}, "at most"),
    ],
)
def test_completions_past_a_limit_are_400s_before_any_stream_starts(
    url: str, change: dict, says: str, stream: bool
) -> None:
    answer = post(url, "/v1/completions", {"model": MODEL, "prompt": "Once", **change, "stream": stream})
    assert_openai_error(answer, 400, says=says)
    assert_still_serving(url)


@pytest.mark.parametrize(
    ("body", "says"),
    [(b"", "the request body is empty"), (b"{not json", "not valid JSON"), (b"[1, 2]", "invalid request body")],
)
def test_malformed_bodies_are_400s(url: str, body: bytes, says: str) -> None:
    assert_openai_error(post(url, "/v1/chat/completions", body), 400, says=says)


def test_a_body_over_the_limit_is_a_413_before_it_is_read_whole(chat_engine: PtEngine) -> None:
    app = create_app(chat_engine, ServedModels(MODEL), api_key=KEY, max_request_bytes=10_000)
    with serving(app) as small_url:
        declared = post(small_url, "/v1/chat/completions", b"x" * 20_000)
        assert_openai_error(declared, 413, says="larger than this server's limit of 10000 bytes")
        chunked = post(small_url, "/v1/chat/completions", iter([b"x" * 4_000] * 5))  # no Content-Length
        assert_openai_error(chunked, 413, says="larger than this server's limit of 10000 bytes")
        assert_still_serving(small_url)


def test_the_key_is_checked_before_the_body_is_read(url: str) -> None:
    refused = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", timeout=30)
    assert_openai_error(refused, 401, says="API key")
    assert refused.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("path", ["/openapi.json", "/metrics", "/v1/models"])
def test_docs_and_metrics_need_the_key_and_health_does_not(url: str, path: str) -> None:
    assert_openai_error(httpx.get(f"{url}{path}", timeout=30), 401, says="API key")
    assert httpx.get(f"{url}{path}", headers=AUTH, timeout=30).status_code == 200
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200


def test_a_prompt_over_max_length_is_a_400_not_truncated(tiny_chat_model: Path) -> None:
    engine = PtEngine(
        str(tiny_chat_model), template_options=TemplateCliOptions(max_length=MAX_LENGTH, truncation="error")
    )
    try:
        with serving(create_app(engine, ServedModels(MODEL), api_key=KEY)) as url:
            long = {**HELLO, "messages": [{"role": "user", "content": "word " * 100}]}
            for stream in (False, True):
                answer = post(url, "/v1/chat/completions", {**long, "stream": stream})
                assert_openai_error(answer, 400, says=f"over --max-length {MAX_LENGTH}")
            completion = post(url, "/v1/completions", {"model": MODEL, "prompt": "word " * 100})
            assert_openai_error(completion, 400, says=f"over this server's --max-length of {MAX_LENGTH}")
            assert_still_serving(url)
    finally:
        engine.close()


# About 2000 decoding steps for the tiny model: seconds even on a fast machine.
LONG = {**HELLO, "max_tokens": 2000}


def test_a_request_past_the_timeout_is_stopped_with_a_408(url: str, chat_engine: PtEngine) -> None:
    app = create_app(chat_engine, ServedModels(MODEL), api_key=KEY, request_timeout_s=0.5)
    with serving(app) as hasty_url:
        before = chat_engine.stats()["abandoned"]
        answer = post(hasty_url, "/v1/chat/completions", LONG)
        assert_openai_error(answer, 408, says="--request-timeout")
        assert answer.json()["error"]["code"] == "request_timeout"
        streamed = post(hasty_url, "/v1/chat/completions", {**LONG, "stream": True})
        if streamed.status_code == 200:  # the first token came in time: the stream ends with the error
            events = [line for line in streamed.text.splitlines() if line.startswith("data: {")]
            assert json.loads(events[-1][len("data: ") :])["error"]["code"] == "request_timeout"
        else:
            assert_openai_error(streamed, 408, says="--request-timeout")
    # The shared engine is free again (asked through a server without so short a limit) ...
    assert_still_serving(url)
    # ... because both requests left it rather than running to their end.
    assert chat_engine.stats()["abandoned"] == before + 2


def test_a_client_that_disconnects_frees_its_place(chat_engine: PtEngine) -> None:
    with serving(create_app(chat_engine, ServedModels(MODEL), api_key=KEY)) as url:
        before = chat_engine.stats()["abandoned"]
        with pytest.raises(httpx.ReadTimeout):
            post(url, "/v1/chat/completions", LONG, timeout=httpx.Timeout(60, read=0.5))
        deadline = time.monotonic() + 60
        while chat_engine.stats()["abandoned"] == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert chat_engine.stats()["abandoned"] == before + 1
        assert_still_serving(url)


def test_metrics_count_batches_steps_and_abandoned_requests(url: str) -> None:
    assert_still_serving(url)
    metrics = httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).text
    values = dict(line.split(" ") for line in metrics.splitlines())
    assert int(values["omni_engine_batches"]) > 0 and int(values["omni_engine_steps"]) > 0
    assert "omni_engine_abandoned" in values


def test_a_busy_port_fails_before_the_model_loads_with_a_warning_off_loopback(omni_cli) -> None:
    # The port is held (bound, not listening: nothing is reachable) on all interfaces.
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        port = held.getsockname()[1]
        # A model that does not exist: loading it would be the error, were the port bound after.
        run = omni_cli("serve", "--host", "0.0.0.0", "--port", str(port), "--model", "/nonexistent/model", timeout=120)
    assert run.returncode != 0
    assert "omni: warning: serving on 0.0.0.0 without --api-key" in run.stderr
    assert f"omni: error: cannot listen on 0.0.0.0:{port}" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "nonexistent" not in run.stderr
