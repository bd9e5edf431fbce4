"""`omni export --merge-lora`: the merged checkpoint answers exactly like base model + adapter."""

from __future__ import annotations

import json

import pytest
from omni.errors import OmniError
from omni.export.merge import merge_adapter
from omni.infer.engine import GenerationConfig, InferRequest
from omni.models.options import ModelOptions
from omni.plugins import load_plugins, using_host

QUESTIONS = ["hello there", "What is the capital of France? Tell me.", "Tell me a story about a cat."]


def greedy(model: str, adapters: dict[str, str] | None = None) -> list[list[int]]:
    from omni.infer.pt_engine import PtEngine

    engine = PtEngine(model, adapters=adapters)
    adapter = next(iter(adapters or {}), None)
    requests = [
        InferRequest({"messages": [{"role": "user", "content": q}]}, GenerationConfig(max_new_tokens=10), adapter)
        for q in QUESTIONS
    ]
    return [r.choices[0].token_ids for r in engine.generate(requests)]


@pytest.fixture
def lora_host():
    with using_host(load_plugins({"OMNI_PLUGINS": "lora"})) as host:
        yield host


@pytest.fixture(scope="module")
def adapter(tiny_chat_model, make_lora_adapter, tmp_path_factory):
    return make_lora_adapter(tiny_chat_model, tmp_path_factory.mktemp("run") / "adapter", seed=3)


def test_cli_merge_equals_adapter_inference(omni_cli, lora_host, tiny_chat_model, adapter, tmp_path):
    out = tmp_path / "merged"
    result = omni_cli("export", "--adapters", str(adapter), "--merge_lora", "true", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr
    assert f"exported model saved to {out}" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    } <= names
    assert "adapter_config.json" not in names
    merged = greedy(str(out))
    assert merged == greedy(str(tiny_chat_model), {"default": str(adapter)})
    assert merged != greedy(str(tiny_chat_model))  # the adapter really changed the weights


def test_base_model_comes_from_args_json_first(lora_host, tiny_chat_model, adapter, tmp_path):
    config = json.loads((adapter / "adapter_config.json").read_text())
    moved = tmp_path / "run" / "checkpoint-5"
    moved.mkdir(parents=True)
    for f in adapter.iterdir():
        (moved / f.name).write_bytes(f.read_bytes())
    (moved / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/gone"}))
    (moved.parent / "args.json").write_text(json.dumps({"model": str(tiny_chat_model)}))  # what training writes
    out = merge_adapter(moved, tmp_path / "merged", ModelOptions(), lora_host.registry)
    assert greedy(str(out)) == greedy(str(tiny_chat_model), {"default": str(adapter)})


def test_export_errors_say_what_to_do(omni_cli, lora_host, adapter, tmp_path):
    result = omni_cli("export", "--adapters", str(adapter))
    assert result.returncode == 2 and "add --merge-lora" in result.stderr
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("")
    with pytest.raises(OmniError, match="already exists and is not empty"):
        merge_adapter(adapter, taken, ModelOptions(), lora_host.registry)
    with pytest.raises(OmniError, match="no installed tuner recognises the adapter folder"):
        merge_adapter(tmp_path / "taken", tmp_path / "out", ModelOptions(), lora_host.registry)
