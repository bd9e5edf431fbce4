"""lm-evaluation-harness, a client nobody here wrote, against `omni serve` on the embedded SmolLM2.

lm-eval runs with its `local-completions` defaults (prompts sent as token ids, several per request with
`batch_size`, scoring requests with `echo`, `logprobs` and `max_tokens` 1) two local tasks: one multiple-choice
(scored by log-likelihood) and one generation task. Given only the server's URL and model name, it finds
`/tokenizer_info` and tokenizes through the server's `/tokenize`. One run proves several things, as it is the
slow part.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from omni.infer.engine import GenerationConfig, InferRequest
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving

TASKS = Path(__file__).with_name("lm_eval_tasks")
SERVED = "smollm2"
BATCH = 4


@pytest.fixture(scope="module")
def engine() -> Iterator[PtEngine]:
    import torch
    from omni.models.embedded import smollm2_path

    # One torch thread: on a CPU other processes share, a second thread waiting for its peer stalls every
    # matrix product (docs/serving.md says the same of serving there).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = PtEngine(str(smollm2_path()))
    yield engine
    engine.close()
    torch.set_num_threads(threads)


def in_process_loglikelihood(engine: PtEngine, context: str, continuation: str) -> float:
    """The continuation's log-likelihood after the context, from the engine in this process (no server), with
    the tokens lm-eval scores: the pair encoded whole, the context's trailing spaces moved to the continuation."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    encode = engine.tokenizer
    whole = encode(context + continuation, add_special_tokens=False)["input_ids"]
    context_length = len(encode(context, add_special_tokens=False)["input_ids"])
    scoring = GenerationConfig(max_new_tokens=0, prompt_logprobs=0)
    response = engine.generate([InferRequest(prompt_ids=whole, generation=scoring)])[0]
    return sum(scored.logprob for scored in response.prompt_logprobs[context_length:])


def test_lm_eval_scores_and_generates_through_omni_serve(
    engine: PtEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.INFO, logger="omni.serve")  # one line per request the server answers
    with serving(create_app(engine, ServedModels(SERVED), tokenizer_info=True)) as url:
        results = lm_eval.simple_evaluate(
            model="local-completions",
            model_args={"model": SERVED, "base_url": f"{url}/v1/completions", "batch_size": BATCH},
            tasks=["omni_capitals", "omni_sequences"],
            task_manager=TaskManager(include_path=str(TASKS), include_defaults=False),
            log_samples=True,
        )
    # Several prompts per request were batched by the engine, not answered one by one.
    assert engine.stats()["largest"] >= BATCH
    routes = {record.getMessage().split()[2] for record in caplog.records if record.name == "omni.serve"}
    assert {"/tokenizer_info", "/tokenize", "/v1/completions"} <= routes

    choices = results["samples"]["omni_capitals"]
    assert len(choices) == 6
    for sample in choices:
        scored = [
            (arguments, response[0]) for arguments, response in zip(sample["arguments"], sample["resps"], strict=True)
        ]
        assert len(scored) == 4
        for (context, continuation), (loglikelihood, _) in scored:
            assert loglikelihood == pytest.approx(in_process_loglikelihood(engine, context, continuation), abs=1e-4)
    # The model knows most of these capitals: log-likelihoods that rank the answers, not noise.
    assert results["results"]["omni_capitals"]["acc,none"] >= 0.5

    generations = results["samples"]["omni_sequences"]
    assert len(generations) == 4
    tokenizer = engine.tokenizer
    for sample in generations:
        context, settings = sample["arguments"][0]
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        greedy = GenerationConfig(
            max_new_tokens=settings["max_gen_toks"], stop=[*settings["until"], tokenizer.eos_token]
        )
        expected = engine.generate([InferRequest(prompt_ids=ids, generation=greedy)])[0].choices[0].text
        assert sample["resps"][0][0] == expected
    assert "exact_match,none" in results["results"]["omni_sequences"]
