"""`omni export --quant-method quanto` on the embedded SmolLM2: int8 and int4 exports that reload quantized through
every command, answer, keep held-out perplexity near the unquantized model's and shrink the folder."""

from __future__ import annotations

import json
import sys

import openai
import pytest
from omni.api import ModelOptions, encoded_batches, load_model, perplexity
from omni.plugins import load_plugins, using_host
from omni.testing import run_omni

from tests.helpers import start_serving

PLUGINS = {"OMNI_PLUGINS": "quanto,datasets"}


def tensors(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def folder_bytes(folder) -> int:
    return sum(path.stat().st_size for path in folder.iterdir())


def exit_and_error(capsys, *args) -> tuple[int, str]:
    with using_host(load_plugins(PLUGINS)):
        status = run_omni("export", *args)
    return status, capsys.readouterr().err


@pytest.mark.slow
def test_int8_and_int4_exports_reload_answer_and_keep_perplexity_near_the_original(tmp_path, capsys, one_thread):
    from omni.models.embedded import smollm2_path

    original = smollm2_path()
    exports = {bits: tmp_path / f"int{bits}" for bits in (8, 4)}
    with using_host(load_plugins(PLUGINS)) as host:
        registry = host.registry
        for bits, folder in exports.items():
            assert run_omni("export", "--quant-method", "quanto", "--quant-bits", str(bits),
                            "--output-dir", str(folder)) == 0  # fmt: skip
        capsys.readouterr()
        assert run_omni("infer", "--model", str(exports[4]), "--query", "What is the capital of France?",
                        "--max-new-tokens", "8") == 0  # fmt: skip
        assert "Paris" in capsys.readouterr().out  # the pt engine generates from the int4 export

        reference = load_model(ModelOptions(model=str(original)), registry)
        held_out = encoded_batches(reference, ["identity"], n_samples=6, max_length=256, registry=registry)
        scores = {"original": perplexity(reference.model, held_out)}
        for bits, folder in exports.items():
            loaded = load_model(ModelOptions(model=str(folder)), registry)  # found by quanto_qmap.json
            assert type(loaded.model.model.layers[0].mlp.down_proj).__name__ == "QLinear"
            assert type(loaded.model.lm_head).__name__ == "Linear"  # the output head keeps its precision
            scores[bits] = perplexity(loaded.model, held_out)
    print(scores)
    # Measured 2026-12-05 on 48 identity rows: 20.4 original, 20.5 int8, 43.3 int4 (135M parameters lose much
    # at 4 bits in groups of 128; bnb's NF4 in blocks of 64 keeps 22.2).
    assert scores[8] < scores["original"] * 1.03
    assert scores[4] < scores["original"] * 2.5
    qmap = json.loads((exports[8] / "quanto_qmap.json").read_text())
    assert qmap["model.layers.0.self_attn.q_proj"]["weights"] == "qint8" and "lm_head" not in qmap
    assert (exports[8] / "tokenizer.json").is_file() and (exports[8] / "chat_template.jinja").is_file()
    # The Linear weights (106M of the 135M float32 parameters) shrink 4x (int8) and 8x (int4); embeddings stay.
    assert folder_bytes(original) / folder_bytes(exports[8]) > 2.3
    assert folder_bytes(original) / folder_bytes(exports[4]) > 2.9


def test_unsupported_bits_fail_before_loading(capsys, tiny_qwen3, tmp_path):
    status, err = exit_and_error(capsys, "--model", str(tiny_qwen3), "--quant-method", "quanto", "--quant-bits", "3",
                                 "--output-dir", str(tmp_path / "q"))  # fmt: skip
    assert status == 2 and "--quant-method quanto supports --quant-bits 4 or 8, not 3" in err
    assert not (tmp_path / "q").exists()


def test_calibration_data_goes_with_calibrated_activations_only(capsys, tiny_qwen3, tmp_path, colors):
    status, err = exit_and_error(capsys, "--model", str(tiny_qwen3), "--quant-method", "quanto", "--quant-bits", "8",
                                 "--dataset", str(colors), "--output-dir", str(tmp_path / "a"))  # fmt: skip
    assert status == 2 and "--dataset is calibration data, and --quant-method quanto does not calibrate" in err
    status, err = exit_and_error(capsys, "--model", str(tiny_qwen3), "--quant-method", "quanto", "--quant-bits", "8",
                                 "--quanto-activations", "int8", "--output-dir", str(tmp_path / "b"))  # fmt: skip
    assert status == 2 and "--quant-method quanto calibrates: pass --dataset" in err


def test_int8_activations_calibrate_on_template_encoded_rows(capsys, tiny_qwen3, tmp_path, colors):
    out = tmp_path / "w8a8"
    with using_host(load_plugins(PLUGINS)) as host:
        assert run_omni("export", "--model", str(tiny_qwen3), "--quant-method", "quanto", "--quant-bits", "8",
                        "--quanto-activations", "int8", "--dataset", str(colors), "--quant-n-samples", "8",
                        "--output-dir", str(out)) == 0  # fmt: skip
        loaded = load_model(ModelOptions(model=str(out)), host.registry)
    qmap = json.loads((out / "quanto_qmap.json").read_text())
    assert qmap["model.layers.0.mlp.down_proj"] == {"weights": "qint8", "activations": "qint8"}
    # Calibration recorded each layer's activation range: a scale other than the initial 1.
    scale = float(loaded.model.model.layers[0].mlp.down_proj.input_scale)
    assert scale > 0 and scale != 1.0


def test_quantizing_an_adapter_merges_it_first_and_the_export_serves(tiny_qwen3, make_lora_adapter, tmp_path):
    adapter = make_lora_adapter(tiny_qwen3, tmp_path / "adapter", seed=3)
    with using_host(load_plugins({"OMNI_PLUGINS": "quanto,lora"})):
        assert run_omni("export", "--adapters", str(adapter), "--quant-method", "quanto", "--quant-bits", "8") == 0
        assert run_omni("export", "--adapters", str(adapter), "--merge-lora", "--quant-method", "quanto",
                        "--quant-bits", "8", "--output-dir", str(tmp_path / "explicit")) == 0  # fmt: skip
        assert run_omni("export", "--model", str(tiny_qwen3), "--quant-method", "quanto", "--quant-bits", "8",
                        "--output-dir", str(tmp_path / "base")) == 0  # fmt: skip
    implicit = tmp_path / "adapter-merged-quanto-int8"
    merged, explicit, base = tensors(implicit), tensors(tmp_path / "explicit"), tensors(tmp_path / "base")
    assert merged.keys() == explicit.keys() and all(merged[key].equal(explicit[key]) for key in merged)
    weight = "model.layers.0.self_attn.q_proj.weight._data"  # LoRA's default target: the merge changed it
    assert not merged[weight].equal(base[weight])

    # omni serve loads the export through quanto's own loader too and answers over the OpenAI API.
    command = [sys.executable, "-m", "omni.cli.main", "serve", "--model", str(implicit), "--port", "0"]
    process, url, log = start_serving([*command, "--served-model-name", "int8"])
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        answer = client.chat.completions.create(
            model="int8", messages=[{"role": "user", "content": "hello"}], max_tokens=4, temperature=0
        )
        assert answer.usage.completion_tokens > 0 and answer.choices[0].finish_reason in ("stop", "length")
    finally:
        process.terminate()
        process.wait(timeout=30)
