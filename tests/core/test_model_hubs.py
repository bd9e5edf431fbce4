"""Hub ids: the Hugging Face hub by default (its cache first, as transformers does), ModelScope with --use-hf false
(through the modelscope package, its cache first). No hub is reachable here: both are read from pre-filled
caches laid out as the hubs' clients write them."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from omni.cli.main import main
from omni.errors import OmniError
from omni.infer.engine import GenerationConfig, InferRequest
from omni.infer.remote import RemoteEngine
from omni.models.options import ModelOptions
from omni.models.resolve import resolve_model
from omni.plugins import get_registry

from tests.helpers import run_omni


def cached_snapshot(tiny_qwen3, cache, folder_name: str, ref: str):
    """Copy the tiny checkpoint into a hub cache as `<cache>/<folder_name>/snapshots/<revision>`."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / folder_name / "snapshots" / revision
    shutil.copytree(tiny_qwen3, snapshot)
    (cache / folder_name / "refs").mkdir()
    (cache / folder_name / "refs" / ref).write_text(revision)
    return snapshot


def test_a_modelscope_id_resolves_to_its_cached_snapshot_with_use_hf_false(tiny_qwen3, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    snapshot = cached_snapshot(tiny_qwen3, tmp_path / "models", "acme--tiny-qwen3", "master")
    resolved = resolve_model("acme/tiny-qwen3", get_registry(), use_hf=False)
    assert resolved.path_or_id == str(snapshot) and resolved.spec.name == "qwen3"
    query = ["--query", "Hi", "--max-new-tokens", "3"]
    assert main(["infer", "--model", str(tiny_qwen3), *query]) == 0
    local_answer = capsys.readouterr().out
    assert main(["infer", "--model", "acme/tiny-qwen3", "--use-hf", "false", *query]) == 0
    assert capsys.readouterr().out == local_answer  # greedy: the same weights give the same answer
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n')
    render = ["template", "render", "--dataset", str(rows), "--json"]
    assert main([*render, "--model", "acme/tiny-qwen3", "--use-hf", "false"]) == 0
    assert json.loads(capsys.readouterr().out)["template"] == "qwen3"  # the cached snapshot's family
    assert main([*render, "--model", "acme/tiny-qwen3", "--use-hf", "false", "--model-type", "qwen2.5"]) == 0
    assert json.loads(capsys.readouterr().out)["template"] == "qwen2.5"


def test_use_hf_false_without_modelscope_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(OmniError, match="needs the modelscope package: pip install modelscope"):
        resolve_model("acme/tiny-qwen3", get_registry(), use_hf=False)


def test_a_hugging_face_id_loads_from_the_hub_cache_by_default(tiny_qwen3, tmp_path, capsys):
    cached_snapshot(tiny_qwen3, tmp_path / "hub", "models--acme--tiny-qwen3", "main")
    query = ["--query", "Hi", "--max-new-tokens", "3"]
    assert main(["infer", "--model", str(tiny_qwen3), *query]) == 0
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}  # read when huggingface_hub is imported
    result = run_omni("infer", "--model", "acme/tiny-qwen3", *query, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == capsys.readouterr().out


class OmniServeEngine(RemoteEngine):
    """An engine plugin whose library ships its own server, here `omni serve`: what sglang's and lmdeploy's
    `--launch-server` do with theirs."""

    @classmethod
    def launch_command(cls, path, name, port, options, adapters, model_options):
        serve = ["serve", "--model", path, "--served-model-name", name, "--port", str(port)]
        return [sys.executable, "-m", "omni.cli.main", *serve]


def test_a_launched_server_gets_the_modelscope_snapshot_with_use_hf_false(tiny_qwen3, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    snapshot = cached_snapshot(tiny_qwen3, tmp_path / "models", "acme--tiny-qwen3", "master")
    options = SimpleNamespace(server_url=None, server_api_key=None, server_startup_timeout=300)
    engine = OmniServeEngine.open("acme/tiny-qwen3", options=options, model_options=ModelOptions(use_hf=False))
    try:
        served = engine.server.process.args[engine.server.process.args.index("--model") + 1]
        # ModelScope's client reads MODELSCOPE_CACHE once: after the test above, its cache holds the snapshot
        assert served.endswith(str(snapshot.relative_to(tmp_path))) and Path(served, "config.json").is_file()
        request = InferRequest({"messages": [{"role": "user", "content": "Hi"}]}, GenerationConfig(max_new_tokens=3))
        assert engine.generate([request])[0].choices[0].text
    finally:
        engine.close()
