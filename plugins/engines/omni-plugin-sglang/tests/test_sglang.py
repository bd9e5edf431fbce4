"""The sglang engine: what runs here for real — its server mode against a live OpenAI-compatible server, the
translation of omni's requests into SGLang's arguments, option parsing, and the errors when SGLang is missing.

SGLang itself (sglang.Engine, sglang.launch_server) needs a GPU and is not installed here: not run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest
from omni.api import GenerationConfig, InferRequest, OmniError, PromptEncoder, StreamDelta
from omni.infer.remote import ServerProcess, free_port
from omni.testing import installed_registry
from omni_plugin_sglang.engine import (
    ChoiceStream,
    SglangEngine,
    SglangServerEngine,
    engine_arguments,
    generate_kwargs,
    sampling_params,
)
from omni_plugin_sglang.options import SglangOptions

from tests.helpers import run_omni
from tests.remote_server import ADAPTERS, KEY

QUESTIONS = ["Hello", "What is the capital of France?", "Tell me a story about a cat."]


def ask(question: str, adapter: str | None = None, **settings) -> InferRequest:
    return InferRequest(
        {"messages": [{"role": "user", "content": question}]},
        GenerationConfig(**{"max_new_tokens": 12, **settings}),
        adapter,
    )


@pytest.fixture(scope="module")
def attached(server_url: str) -> SglangServerEngine:
    engine = SglangEngine("tiny", options=SglangOptions(server_url=server_url, server_api_key=KEY))
    yield engine
    engine.close()


def test_server_url_gives_the_server_mode_with_the_servers_answers(attached, pt_engine) -> None:
    assert isinstance(attached, SglangServerEngine)
    requests = [ask(q, adapter) for q in QUESTIONS for adapter in (None, *ADAPTERS)]
    for mine, reference in zip(attached.generate(requests), pt_engine.generate(requests), strict=True):
        assert mine.choices[0].text == reference.choices[0].text
        assert mine.choices[0].finish_reason == reference.choices[0].finish_reason
        assert (mine.prompt_tokens, mine.completion_tokens) == (reference.prompt_tokens, reference.completion_tokens)


def test_server_mode_streams_samples_and_reports_logprobs(attached) -> None:
    request = ask(QUESTIONS[2], "beta", n=2, temperature=1.0, seed=5, max_new_tokens=16)

    async def collect():
        return [item async for item in attached.stream_deltas_async(request)]

    items = asyncio.run(collect())
    deltas, response = items[:-1], items[-1]
    for index in range(2):
        mine = [d for d in deltas if isinstance(d, StreamDelta) and d.index == index]
        assert "".join(d.text for d in mine) == response.choices[index].text
        assert mine[-1].finish_reason in ("stop", "length")
    assert response.completion_tokens > 0
    scored = attached.generate([ask(QUESTIONS[1], logprobs=True)])[0].choices[0]
    assert scored.logprobs and all(p <= 0 for p in scored.logprobs)
    assert "".join(attached.stream(ask(QUESTIONS[1]))) == attached.generate([ask(QUESTIONS[1])])[0].choices[0].text


def test_server_errors_become_user_errors(attached, server_url: str) -> None:
    with pytest.raises(OmniError, match="rejected the request \\(404\\).*does not exist"):
        attached.generate([ask(QUESTIONS[0], "gamma")])
    wrong_key = SglangEngine("tiny", options=SglangOptions(server_url=server_url, server_api_key="nope"))
    with pytest.raises(OmniError, match="401"):
        wrong_key.generate([ask(QUESTIONS[0])])
    with pytest.raises(OmniError, match="cannot take new weights"):
        attached.load_weights(object())
    nobody = SglangEngine("tiny", options=SglangOptions(server_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(OmniError, match="cannot reach the server"):
        nobody.generate([ask(QUESTIONS[0])])


def test_omni_infer_attaches_to_a_server_from_the_cli(server_url: str, pt_engine) -> None:
    shown = run_omni(
        "infer", "--infer-backend", "sglang", "--model", "tiny", "--sglang-server-url", server_url,
        "--sglang_api_key", KEY, "--query", QUESTIONS[1], "--max-new-tokens", "12", "--stream", "false",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == pt_engine.generate([ask(QUESTIONS[1])])[0].choices[0].text.strip()
    unreachable = run_omni(
        "infer",
        "--infer-backend",
        "sglang",
        "--model",
        "tiny",
        "--sglang-server-url",
        "http://127.0.0.1:9",
        "--query",
        "hi",
    )
    assert unreachable.returncode != 0
    assert (
        "cannot reach the server at http://127.0.0.1:9" in unreachable.stderr and "Traceback" not in unreachable.stderr
    )


def test_a_launched_server_is_waited_for_and_stopped(tiny_model: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "omni.cli.main", "serve", "--model", str(tiny_model), "--port", str(port)]
    server = ServerProcess(command, f"http://127.0.0.1:{port}", timeout_s=300)
    engine = SglangServerEngine(str(tiny_model), url=server.url, server=server)
    assert engine.generate([ask(QUESTIONS[0])])[0].choices[0].text
    engine.close()
    assert server.process.poll() is not None
    failing = [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"]
    with pytest.raises(OmniError, match="exited with status 3 before it was ready.*no model here"):
        ServerProcess(failing, f"http://127.0.0.1:{free_port()}", timeout_s=60)


def test_requests_translate_into_sglang_arguments(tiny_model: Path) -> None:
    prompts = PromptEncoder.load(str(tiny_model), registry=installed_registry())
    request = ask(QUESTIONS[1], "alpha", temperature=0.7, top_p=0.9, top_k=20, seed=3, stop=["\n\n"], logprobs=True)
    ids = prompts.token_ids(request)
    kwargs = generate_kwargs(ids, request.generation, 1, prompts, adapter="alpha", stream=True)
    assert kwargs["input_ids"] == prompts.template.encode_prompt(request.row).input_ids
    assert kwargs["lora_path"] == "alpha" and kwargs["stream"] is True
    assert kwargs["return_logprob"] is True and kwargs["logprob_start_len"] == len(ids)
    params = kwargs["sampling_params"]
    assert params["max_new_tokens"] == 12 and params["temperature"] == 0.7 and params["top_k"] == 20
    assert params["sampling_seed"] == 4  # choice 1 of a seeded request
    assert params["stop"][0] == "\n\n" and set(params["stop_token_ids"]) == prompts.end_token_ids
    greedy = sampling_params(GenerationConfig(temperature=0.0, top_k=5), prompts)
    assert (greedy["temperature"], greedy["top_k"], greedy["top_p"]) == (0.0, -1, 1.0)


def test_sglang_outputs_translate_into_choices(tiny_model: Path) -> None:
    prompts = PromptEncoder.load(str(tiny_model), registry=installed_registry())
    stream = ChoiceStream(prompts)
    end = sorted(prompts.end_token_ids)[0]
    assert stream.add({"text": "Par", "output_ids": [5], "meta_info": {}}).text == "Par"
    last = stream.add({"text": "Paris", "output_ids": [5, 6, end], "meta_info": {"finish_reason": {"type": "stop"}}})
    assert (last.text, last.finish_reason) == ("is", "stop")
    choice = stream.choice(logprobs=False)
    assert (choice.text, choice.token_ids, choice.finish_reason) == ("Paris", [5, 6], "stop")
    incremental = ChoiceStream(prompts)  # servers started with incremental streaming send only the new text
    incremental.add({"text": "Par"})
    assert incremental.add({"text": "is", "meta_info": {"finish_reason": {"type": "length"}}}).text == "is"
    assert incremental.choice(logprobs=False).finish_reason == "length"


def test_options_become_engine_arguments_and_flags(tiny_model: Path) -> None:
    options = SglangOptions(
        tp_size=2, mem_fraction_static=0.7, disable_cuda_graph=True, engine_kwargs='{"chunked_prefill_size": 512}'
    )
    arguments = engine_arguments(str(tiny_model), options, {"alpha": "/a"}, None)
    assert arguments["model_path"] == str(tiny_model) and arguments["tp_size"] == 2
    assert arguments["mem_fraction_static"] == 0.7 and arguments["disable_cuda_graph"] is True
    assert arguments["enable_lora"] is True and arguments["lora_paths"] == ["alpha=/a"]
    assert arguments["chunked_prefill_size"] == 512 and "context_length" not in arguments
    with pytest.raises(OmniError, match="--engine-kwargs: not valid JSON"):
        SglangOptions(engine_kwargs="{oops").parsed_engine_kwargs()
    shown = run_omni("serve", "--infer-backend", "sglang", "--help")
    assert shown.returncode == 0
    for flag in ("--server-url", "--launch-server", "--tp-size", "--mem-fraction-static", "--context-length"):
        assert flag in shown.stdout


@pytest.mark.skipif(importlib.util.find_spec("sglang") is not None, reason="SGLang is installed here")
def test_without_sglang_the_in_process_and_launch_modes_say_what_to_install(tiny_model: Path) -> None:
    for options in (SglangOptions(), SglangOptions(launch_server=True)):
        with pytest.raises(OmniError, match=r"needs SGLang.*omni-plugin-sglang\[sglang\].*--sglang-server-url"):
            SglangEngine(str(tiny_model), options=options)
    shown = run_omni("infer", "--infer-backend", "sglang", "--model", str(tiny_model), "--query", "hi")
    assert shown.returncode != 0 and "needs SGLang" in shown.stderr and "Traceback" not in shown.stderr
