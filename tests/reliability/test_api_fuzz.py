"""Fuzz `omni serve`'s HTTP API from its own OpenAPI schema with schemathesis: valid and invalid requests
for every route, a bounded number of cases. None may get a 5xx; every error is an OpenAI error body; the
server answers a normal request afterwards."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

from tests.reliability.conftest import AUTH, HELLO, KEY, MODEL

CASES = 100


@pytest.fixture(scope="module")
def url(chat_engine: PtEngine) -> Iterator[str]:
    # Small answers keep a hundred cases quick; asking for more is a 400 the fuzzer meets too.
    app = create_app(chat_engine, ServedModels(MODEL), api_key=KEY, default_max_tokens=4, max_tokens_limit=8)
    with serving(app) as base_url:
        yield base_url


def served_model(case: schemathesis.Case, aim: bool) -> schemathesis.Case:
    if aim and isinstance(case.body, dict) and "model" in case.body:
        case.body = {**case.body, "model": MODEL}
    return case


def test_fuzzed_requests_get_openai_errors_never_a_server_error(url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    generated = st.one_of(
        [operation.as_strategy(mode) for operation in operations for mode in schemathesis.GenerationMode]
    )
    # Most generated model names are unknown (a 404 before the engine): half the cases name the served one,
    # so the generation settings the fuzzer draws reach the engine.
    cases = st.tuples(generated, st.booleans()).map(lambda drawn: served_model(*drawn))
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def answer(case: schemathesis.Case) -> None:
        response = case.call(headers=AUTH, timeout=120)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (case.method, case.path, case.body, response.text)
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}, response.text

    answer()
    assert sum(statuses.values()) >= CASES // 2 and any(400 <= status < 500 for status in statuses), statuses
    normal = httpx.post(f"{url}/v1/chat/completions", json=HELLO, headers=AUTH, timeout=60)
    assert normal.status_code == 200 and normal.json()["choices"][0]["message"]["content"]
