"""`omni export --quant-method bnb` of a multimodal model (the tiny Qwen3-Omni): the language model is quantized,
the vision and audio towers keep their weights, and the export answers an image question."""

from __future__ import annotations

import json

import pytest
from omni.plugins import load_plugins, using_host
from omni.testing import run_omni
from PIL import Image
from safetensors import safe_open


def tensors(folder, prefix=""):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {key.removeprefix(prefix): f.get_tensor(key) for key in f.keys() if key.startswith(prefix)}


@pytest.mark.slow
def test_bnb_export_keeps_the_towers_and_answers_an_image_question(tmp_path, capsys):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    source = build_tiny_qwen3_omni(tmp_path / "model")
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(image)
    exported, towers_too = tmp_path / "nf4", tmp_path / "nf4-towers"
    with using_host(load_plugins({"OMNI_PLUGINS": "bnb,qwen3-omni"})):
        assert run_omni("export", "--model", str(source), "--quant-method", "bnb", "--quant-bits", "4",
                        "--output-dir", str(exported)) == 0  # fmt: skip
        assert run_omni("export", "--model", str(source), "--quant_method", "bnb", "--quant_bits", "4",
                        "--quant-towers", "--output-dir", str(towers_too)) == 0  # fmt: skip
        capsys.readouterr()
        assert run_omni("infer", "--model", str(exported), "--query", "What color is it?", "--image", str(image),
                        "--max-new-tokens", "6") == 0  # fmt: skip
    assert capsys.readouterr().out.strip()  # the quantized language model answered from the image's tokens

    config = json.loads((exported / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "bitsandbytes" and config["load_in_4bit"]
    saved, original = tensors(exported), tensors(source, prefix="thinker.")
    towers = [key for key in saved if key.startswith(("visual.", "audio_tower."))]
    assert towers and not [key for key in towers if "quant" in key]
    assert all(saved[key].equal(original[key]) for key in towers)  # bit for bit the source's towers
    assert any(key.startswith("model.layers.") and "quant_state" in key for key in saved)
    with_towers = tensors(towers_too)
    assert any(key.startswith("visual.") and "quant_state" in key for key in with_towers)
    assert any(key.startswith("audio_tower.") and "quant_state" in key for key in with_towers)
