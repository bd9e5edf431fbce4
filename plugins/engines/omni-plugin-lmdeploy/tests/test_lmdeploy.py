"""The lmdeploy engine: what runs here for real — its server mode against a live OpenAI-compatible server, the
translation of omni's requests into LMDeploy's configs and prompts, option parsing, and the errors when
LMDeploy is missing.

LMDeploy itself (lmdeploy.pipeline, `lmdeploy serve api_server`) needs a GPU and is not installed here: not run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from omni.api import GenerationConfig, InferRequest, OmniError, PromptEncoder
from omni.testing import installed_registry
from omni_plugin_lmdeploy.engine import (
    LmdeployEngine,
    LmdeployServerEngine,
    backend_config,
    generation_config,
    prompt_text,
)
from omni_plugin_lmdeploy.options import LmdeployOptions

from tests.helpers import run_omni
from tests.remote_server import ADAPTERS, KEY


def ask(question: str, adapter: str | None = None, **settings) -> InferRequest:
    config = GenerationConfig(**{"max_new_tokens": 12, **settings})
    return InferRequest({"messages": [{"role": "user", "content": question}]}, config, adapter)


def test_server_url_gives_the_server_mode_with_the_servers_answers(server_url: str, pt_engine) -> None:
    engine = LmdeployEngine("tiny", options=LmdeployOptions(server_url=server_url, server_api_key=KEY))
    assert isinstance(engine, LmdeployServerEngine)
    requests = [ask("What is the capital of France?", adapter) for adapter in (None, *ADAPTERS)]
    requests.append(InferRequest(generation=GenerationConfig(max_new_tokens=8), prompt="Once upon a time"))
    for mine, reference in zip(engine.generate(requests), pt_engine.generate(requests), strict=True):
        assert mine.choices[0].text == reference.choices[0].text
    assert "".join(engine.stream(requests[1])) == engine.generate([requests[1]])[0].choices[0].text
    engine.close()


def test_engine_flags_show_in_help_with_ms_swift_spellings_accepted(server_url: str) -> None:
    shown = run_omni(
        "serve", "--infer-backend", "lmdeploy", "--lmdeploy_tp", "2", "--lmdeploy-server-url", server_url, "--help"
    )
    assert shown.returncode == 0
    for flag in ("--server-url", "--launch-server", "--backend", "--tp", "--session-len", "--cache-max-entry-count"):
        assert flag in shown.stdout


def test_backend_configs_follow_the_options() -> None:
    assert backend_config(LmdeployOptions(tp=2, session_len=4096), {}) == (
        "TurbomindEngineConfig",
        {"tp": 2, "cache_max_entry_count": 0.8, "session_len": 4096},
    )
    name, fields = backend_config(LmdeployOptions(quant_policy=8), {"alpha": "/a"})
    assert name == "PytorchEngineConfig" and fields["adapters"] == {"alpha": "/a"} and fields["quant_policy"] == 8
    with pytest.raises(OmniError, match="turbomind cannot serve LoRA adapters"):
        backend_config(LmdeployOptions(backend="turbomind"), {"alpha": "/a"})


def test_requests_translate_into_lmdeploy_generation_configs(tiny_model: Path) -> None:
    prompts = PromptEncoder.load(str(tiny_model), registry=installed_registry())
    sampled = generation_config(
        GenerationConfig(temperature=0.8, top_k=40, seed=9, stop=["END"], logprobs=True), prompts, 2
    )
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.8 and sampled["top_k"] == 40
    assert sampled["random_seed"] == 11 and sampled["stop_words"][0] == "END" and sampled["logprobs"] == 1
    assert set(sampled["stop_token_ids"]) == prompts.end_token_ids
    greedy = generation_config(GenerationConfig(), prompts)
    assert greedy["do_sample"] is False and greedy["top_k"] == 1 and "random_seed" not in greedy


def test_prompts_are_omnis_template_as_text_without_a_doubled_bos(tmp_path: Path, tiny_model: Path) -> None:
    from omni.testing.models import build_tiny_model

    qwen = PromptEncoder.load(str(tiny_model), registry=installed_registry())
    request = ask("Hi there")
    assert qwen.tokenizer(prompt_text(qwen, request))["input_ids"] == qwen.token_ids(request)
    llama = PromptEncoder.load(str(build_tiny_model("llama", tmp_path / "llama")), registry=installed_registry())
    ids = llama.token_ids(request)
    assert ids[0] == llama.tokenizer.bos_token_id
    assert llama.tokenizer(prompt_text(llama, request))["input_ids"] == ids  # LMDeploy's own BOS restores it
    assert prompt_text(llama, InferRequest(prompt="raw text")) == "raw text"


@pytest.mark.skipif(importlib.util.find_spec("lmdeploy") is not None, reason="LMDeploy is installed here")
def test_without_lmdeploy_the_in_process_and_launch_modes_say_what_to_install(tiny_model: Path) -> None:
    for options in (LmdeployOptions(), LmdeployOptions(launch_server=True)):
        with pytest.raises(OmniError, match=r"needs LMDeploy.*omni-plugin-lmdeploy\[lmdeploy\].*--lmdeploy-server-url"):
            LmdeployEngine(str(tiny_model), options=options)
