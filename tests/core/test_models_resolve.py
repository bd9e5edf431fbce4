"""Resolving `--model` values to a checkpoint and the model spec that loads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omni import hookimpl
from omni.errors import MissingCapabilityError, OmniError
from omni.models import resolve
from omni.models.resolve import GENERIC_MODEL, resolve_model
from omni.plugins import load_plugins
from omni.registry import ModelSpec

LOADER = "omni.models.loader:load_pretrained"


class FamilyPlugin:
    """A model plugin claiming Llama checkpoints by architecture, Qwen3 by model_type, Qwen ids by pattern."""

    @hookimpl
    def register_models(self, register):
        register(ModelSpec(name="tiny-llama", description="d", impl=LOADER, architectures=("LlamaForCausalLM",)))
        register(ModelSpec(name="tiny-smol", description="d", impl=LOADER, hub_ids=("HuggingFaceTB/SmolLM2-*",)))
        register(
            ModelSpec(
                name="tiny-qwen3", description="d", impl=LOADER, model_types=("qwen3",), hub_ids=("Qwen/Qwen3-*",)
            )
        )


def _checkpoint(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def registry(omni_host, register_plugin):
    register_plugin(FamilyPlugin(), name="family", distribution="omni-plugin-family")
    return omni_host.registry


def test_local_folder_is_matched_by_architecture_then_model_type(tmp_path, registry):
    llama = _checkpoint(tmp_path / "a", {"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    qwen = _checkpoint(tmp_path / "b", {"architectures": ["SomethingNew"], "model_type": "qwen3"})
    other = _checkpoint(tmp_path / "c", {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    assert resolve_model(str(llama), registry).spec.name == "tiny-llama"
    assert resolve_model(str(qwen), registry).spec.name == "tiny-qwen3"
    resolved = resolve_model(str(other), registry)
    assert resolved.spec.name == GENERIC_MODEL
    assert resolved.path_or_id == str(other)


def test_model_type_flag_overrides_detection(tmp_path, registry):
    other = _checkpoint(tmp_path / "c", {"architectures": ["GPT2LMHeadModel"]})
    assert resolve_model(str(other), registry, model_type="tiny_llama").spec.name == "tiny-llama"
    with pytest.raises(MissingCapabilityError, match="model 'nope' is not installed"):
        resolve_model(str(other), registry, model_type="nope")


def test_hub_ids_match_spec_patterns_without_network(registry):
    resolved = resolve_model("Qwen/Qwen3-0.6B", registry)
    assert resolved.spec.name == "tiny-qwen3"
    assert resolved.path_or_id == "Qwen/Qwen3-0.6B"


def test_embedded_name_and_no_name_resolve_to_the_converted_copy(tmp_path, registry, monkeypatch):
    converted = _checkpoint(tmp_path / "smol", {"architectures": ["LlamaForCausalLM"]})
    monkeypatch.setattr(resolve, "smollm2_path", lambda: converted)  # the conversion itself: test_models_embedded
    for name in (None, "", "smollm2-135m-instruct", "SmolLM2-135M-Instruct"):
        resolved = resolve_model(name, registry)
        assert resolved.path_or_id == str(converted)
        assert resolved.spec.name == "tiny-smol"  # claimed as the hub model it is, before its architecture
    assert resolve_model(None, load_plugins({"OMNI_PLUGINS": ""}).registry).spec.name == GENERIC_MODEL


def test_errors_name_the_path_and_what_to_do(tmp_path, registry):
    with pytest.raises(OmniError, match="model 'no/such/dir' not found: it is not a local folder"):
        resolve_model("no/such/dir", registry)
    with pytest.raises(OmniError, match="'gpt-nonexistent' not found"):
        resolve_model("gpt-nonexistent", registry)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OmniError, match=f"model path {empty} has no config.json"):
        resolve_model(str(empty), registry)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(OmniError, match="it holds an adapter: pass it with --adapters"):
        resolve_model(str(adapter), registry)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(OmniError, match=f"{broken / 'config.json'}: cannot read the model config"):
        resolve_model(str(broken), registry)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(OmniError, match="is a file; pass the checkpoint folder"):
        resolve_model(str(weights), registry)
