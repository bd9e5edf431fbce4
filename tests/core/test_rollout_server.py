"""`omni rollout`: `omni serve` that takes a trainer's weights (``POST /omni/v1/weights``), on the pt engine over real
HTTP: a `RemoteEngine` attached with `rollout_server` gets token ids back for token-id prompts and pushes a changed
model's weights, after which the server scores prompts as that model does; weights that do not fit are a 400 and
change nothing; plain `omni serve` takes none; a URL where no rollout server answers fails in one line naming it;
an update waits for the generations in flight. (With vLLM and a GRPO trainer in another process:
plugins/algorithms/omni-plugin-grpo/tests/test_rollout_server.py.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import torch
from omni.errors import OmniError
from omni.infer.engine import GenerationConfig, InferRequest
from omni.infer.pt_engine import PtEngine
from omni.infer.remote import RemoteEngine, free_port
from omni.serve.app import ServedModels, WeightsGate, WeightsRoute, create_app
from omni.serve.background import serving

KEY = "sk-rollout"
IDS_TEXT = "The capital of France is Paris, and the capital of Italy is"


@pytest.fixture(scope="module")
def url(engine: PtEngine) -> Iterator[str]:
    app = create_app(engine, ServedModels("tiny"), api_key=KEY, weights=WeightsRoute(max_bytes=50_000_000))
    with serving(app) as base_url:
        yield base_url


def server_logprobs(url: str, ids: list[int]) -> list[float]:
    body = {"model": "tiny", "prompt": ids, "echo": True, "logprobs": 0, "max_tokens": 0}
    answer = httpx.post(f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]["logprobs"]["token_logprobs"][1:]


def model_logprobs(model: torch.nn.Module, ids: list[int]) -> list[float]:
    with torch.inference_mode():
        steps = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
    return steps.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1).tolist()


def test_a_trainers_weights_reach_the_server_and_answers_come_back_as_token_ids(url, engine, tiny_chat_model):
    from transformers import AutoModelForCausalLM

    client = RemoteEngine.rollout_server(url, api_key=KEY)
    assert client.model_name == "tiny" and client.rollout
    ids = engine.tokenizer(IDS_TEXT)["input_ids"]
    greedy = GenerationConfig(max_new_tokens=6)
    answer = client.generate([InferRequest(prompt_ids=ids, generation=greedy)])[0].choices[0]
    local = engine.generate([InferRequest(prompt_ids=ids, generation=greedy)])[0].choices[0]
    assert answer.token_ids == local.token_ids and answer.text == local.text

    trained = AutoModelForCausalLM.from_pretrained(tiny_chat_model)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    before = server_logprobs(url, ids)
    assert before != pytest.approx(model_logprobs(trained, ids), abs=1e-3)
    updates = httpx.get(f"{url}/omni/v1/weights", headers={"Authorization": f"Bearer {KEY}"}).json()["updates"]
    client.load_weights(trained)
    assert server_logprobs(url, ids) == pytest.approx(model_logprobs(trained, ids), abs=1e-4)
    state = httpx.get(f"{url}/omni/v1/weights", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert state == {"object": "omni.rollout", "model": "tiny", "engine": "PtEngine", "updates": updates + 1}
    client.close()


def test_weights_that_do_not_fit_are_a_400_and_change_nothing(url, engine, tmp_path):
    from safetensors.torch import save_file

    ids = engine.tokenizer(IDS_TEXT)["input_ids"]
    before = server_logprobs(url, ids)
    headers = {"Authorization": f"Bearer {KEY}"}
    misfit = tmp_path / "misfit.safetensors"
    save_file({"model.embed_tokens.weight": torch.zeros(3, 3)}, misfit)
    for body, words in (
        (misfit.read_bytes(), "other shapes"),
        (b"not a safetensors file", "header"),
        (b"", "empty"),
    ):
        answer = httpx.post(f"{url}/omni/v1/weights", content=body, headers=headers)
        assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.text
    too_large = httpx.post(f"{url}/omni/v1/weights", content=b"x" * 50_000_001, headers=headers)
    assert too_large.status_code == 413
    assert httpx.post(f"{url}/omni/v1/weights", content=misfit.read_bytes()).status_code == 401  # no key
    assert server_logprobs(url, ids) == before


def test_plain_serve_takes_no_weights_and_a_trainer_is_told_so(engine):
    with serving(create_app(engine, ServedModels("tiny"))) as url:
        for method in ("GET", "POST"):
            answer = httpx.request(method, f"{url}/omni/v1/weights", content=b"x" if method == "POST" else None)
            assert answer.status_code == 404 and "omni rollout" in answer.json()["error"]["message"]
        with pytest.raises(OmniError, match=f"{url} is not an omni rollout server") as error:
            RemoteEngine.rollout_server(url)
        assert "\n" not in str(error.value)
        plain = RemoteEngine("tiny", url=url)
        with pytest.raises(OmniError, match="omni rollout"):
            plain.load_weights(engine.model)
        plain.close()


def test_no_server_at_the_url_is_one_line_naming_it():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OmniError, match=f"no rollout server answers at {url} within 1 s") as error:
        RemoteEngine.rollout_server(url, wait_s=1)
    assert "\n" not in str(error.value)


def test_a_weights_update_waits_for_generations_in_flight_and_holds_new_ones():
    async def main() -> list[str]:
        gate, events = WeightsGate(), []

        async def generation(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            async with gate.generating():
                events.append(f"{name} starts")
                await asyncio.sleep(0.05)
                events.append(f"{name} ends")

        async def update() -> None:
            await asyncio.sleep(0.01)
            async with gate.updating():
                events.append("update")

        await asyncio.gather(generation("first", 0), update(), generation("second", 0.02))
        return events

    assert asyncio.run(main()) == ["first starts", "first ends", "update", "second starts", "second ends"]


def test_rollout_is_a_command_with_serves_flags_and_vllm_by_default():
    shown = subprocess.run(
        [sys.executable, "-m", "omni.cli.main", "rollout", "--infer-backend", "pt", "--help"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    for flag in ("--max-weights-bytes", "--api-key", "--host", "--port", "--max-batch-size"):
        assert flag in shown.stdout
    from omni.serve.options import RolloutOptions

    assert RolloutOptions().infer_backend == "vllm" and RolloutOptions().host == "127.0.0.1"
