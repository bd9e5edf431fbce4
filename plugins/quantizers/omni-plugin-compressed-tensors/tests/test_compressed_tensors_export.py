"""`omni export --quant-method compressed-tensors` on the embedded SmolLM2: an int8 W8A8 folder in the format vLLM
serves, which transformers reloads, answers from, and whose held-out perplexity stays near the original's."""

from __future__ import annotations

import json

import pytest
from omni.api import ModelOptions, encoded_batches, load_model, perplexity
from omni.plugins import load_plugins, using_host
from omni.testing import run_omni

PLUGINS = {"OMNI_PLUGINS": "compressed-tensors,datasets"}


@pytest.mark.slow
def test_w8a8_export_reloads_answers_and_keeps_perplexity(tmp_path, capsys, one_thread):
    from omni.models.embedded import smollm2_path

    original, out = smollm2_path(), tmp_path / "w8a8"
    with using_host(load_plugins(PLUGINS)) as host:
        assert run_omni("export", "--quant-method", "compressed-tensors", "--quant-bits", "8",
                        "--output-dir", str(out)) == 0  # fmt: skip
        capsys.readouterr()
        assert run_omni("infer", "--model", str(out), "--query", "What is the capital of France?",
                        "--max-new-tokens", "8") == 0  # fmt: skip
        assert "Paris" in capsys.readouterr().out
        reference = load_model(ModelOptions(model=str(original)), host.registry)
        held_out = encoded_batches(reference, ["identity"], n_samples=6, max_length=256, registry=host.registry)
        scores = [perplexity(reference.model, held_out)]
        scores.append(perplexity(load_model(ModelOptions(model=str(out)), host.registry).model, held_out))
    print(scores)
    assert scores[1] < scores[0] * 1.05
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == "int-quantized"
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["strategy"]) == (8, "channel") and config["ignore"] == ["lm_head"]
    size = lambda folder: sum(path.stat().st_size for path in folder.iterdir())  # noqa: E731
    assert size(original) / size(out) > 2.3  # int8 Linear weights, float32 embeddings


def test_only_eight_bits(capsys, tiny_qwen3, tmp_path):
    with using_host(load_plugins(PLUGINS)):
        status = run_omni("export", "--model", str(tiny_qwen3), "--quant-method", "w8a8", "--quant-bits", "4",
                          "--output-dir", str(tmp_path / "x"))  # fmt: skip
    assert status == 2
    assert "--quant-method compressed-tensors supports --quant-bits 8 (W8A8), not 4" in capsys.readouterr().err


def test_a_multimodal_export_keeps_its_towers_and_answers_an_image_question(tmp_path, capsys):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni
    from PIL import Image
    from safetensors import safe_open

    source, out, image = build_tiny_qwen3_omni(tmp_path / "model"), tmp_path / "w8a8", tmp_path / "red.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(image)
    with using_host(load_plugins({"OMNI_PLUGINS": "compressed-tensors,qwen3-omni"})):
        assert run_omni("export", "--model", str(source), "--quant-method", "w8a8", "--quant-bits", "8",
                        "--output-dir", str(out)) == 0  # fmt: skip
        capsys.readouterr()
        assert run_omni("infer", "--model", str(out), "--query", "What color is it?", "--image", str(image),
                        "--max-new-tokens", "4") == 0  # fmt: skip
    assert capsys.readouterr().out.strip()
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        scales = [key for key in f.keys() if key.endswith("weight_scale")]
    assert scales and all(key.startswith("model.layers.") for key in scales)  # the language model only
    ignored = json.loads((out / "config.json").read_text())["quantization_config"]["ignore"]
    assert "visual.blocks.0.attn.qkv" in ignored and "audio_tower.layers.0.fc1" in ignored
