"""`omni export --quant-method bnb --quant-bits 4`: a 4-bit checkpoint that loads quantized, alone or after a merge."""

from __future__ import annotations

import json

import pytest
from omni.infer.engine import GenerationConfig, InferRequest
from omni.plugins import load_plugins, using_host

pytest.importorskip("bitsandbytes")


def answer(model: str) -> str:
    from omni.infer.pt_engine import PtEngine

    with using_host(load_plugins({"OMNI_PLUGINS": ""})):
        engine = PtEngine(model)
    request = InferRequest({"messages": [{"role": "user", "content": "hello there"}]}, GenerationConfig(8))
    return engine.generate([request])[0].choices[0].text


def quantization(folder) -> dict:
    return json.loads((folder / "config.json").read_text())["quantization_config"]


def test_quantize_a_model(omni_cli, tiny_chat_model, tmp_path):
    out = tmp_path / "q4"
    result = omni_cli("export", "--model", str(tiny_chat_model), "--quant-method", "bnb", "--quant-bits", "4",
                      "--output-dir", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = quantization(out)
    assert (
        config["quant_method"] == "bitsandbytes" and config["load_in_4bit"] and config["bnb_4bit_quant_type"] == "nf4"
    )
    assert answer(str(out))  # loads quantized by path and generates


def test_merge_then_quantize(omni_cli, tiny_chat_model, make_lora_adapter, tmp_path):
    adapter = make_lora_adapter(tiny_chat_model, tmp_path / "adapter", seed=4)
    result = omni_cli(
        "export", "--adapters", str(adapter), "--merge-lora", "--quant_method", "bnb", "--quant_bits", "8"
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "adapter-merged-bnb-int8"
    assert f"exported model saved to {out}" in result.stdout
    assert quantization(out)["load_in_8bit"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "adapter-merged-bnb-int8"]  # no scratch left


def test_quantization_flags_go_together(omni_cli, tiny_chat_model):
    result = omni_cli("export", "--model", str(tiny_chat_model), "--quant-bits", "4")
    assert result.returncode == 2
    assert "--quant-method and --quant-bits go together" in result.stderr
