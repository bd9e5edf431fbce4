"""`omni export --quant-method fp8`: one clear line without a GPU; on a GPU, an FP8 checkpoint that reloads."""

from __future__ import annotations

import json

import pytest
import torch
from omni.plugins import load_plugins, using_host
from omni.testing import run_omni

PLUGINS = {"OMNI_PLUGINS": "fp8"}


def export(*args: str) -> int:
    with using_host(load_plugins(PLUGINS)):
        return run_omni("export", "--quant-method", "fp8", *args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only refusal")
def test_without_a_gpu_fp8_export_says_it_needs_one(capsys, tiny_qwen3, tmp_path):
    assert export("--model", str(tiny_qwen3), "--quant-bits", "8", "--output-dir", str(tmp_path / "f")) == 2
    assert capsys.readouterr().err.strip() == (
        "omni: error: --quant-method fp8 needs a CUDA GPU (FP8 weights are made and run by GPU kernels); "
        "on CPU use --quant-method quanto or bnb"
    )
    assert not (tmp_path / "f").exists()


def test_fp8_is_eight_bits(capsys, tiny_qwen3, tmp_path):
    assert export("--model", str(tiny_qwen3), "--quant-bits", "4", "--output-dir", str(tmp_path / "f")) == 2
    assert "--quant-method fp8 supports --quant-bits 8, not 4" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FP8 export needs a CUDA GPU")
def test_fp8_export_reloads_quantized_and_answers(capsys, tiny_qwen3, tmp_path):
    out = tmp_path / "fp8"
    assert export("--model", str(tiny_qwen3), "--quant-bits", "8", "--output-dir", str(out)) == 0
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "fp8"
    with using_host(load_plugins(PLUGINS)):
        capsys.readouterr()
        assert run_omni("infer", "--model", str(out), "--query", "hello", "--max-new-tokens", "4") == 0
    assert capsys.readouterr().out.strip()
