"""The speed and memory flags from the CLI: chunked loss and peak memory in a real run's logs, the CUDA-only
flags' one-line refusals on a machine without a GPU, and torch.compile on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from omni.cli.main import main
from omni.plugins import load_plugins, using_host

FAST = "--gradient-checkpointing false --logging-steps 1 --save-steps 1000 --torch-dtype float32".split()


def _sft(omni_cli, model, data, out, *extra):
    argv = ["sft", "--model", str(model), "--dataset", str(data), "--max-steps", "2", "--batch-size", "4"]
    return omni_cli(*argv, "--output-dir", str(out), *FAST, *extra, env={"OMNI_PLUGINS": "lora"}, timeout=300)


@pytest.mark.slow
def test_chunked_loss_run_logs_peak_memory_per_step(omni_cli, tiny_qwen3, colors, tmp_path):
    out = tmp_path / "run"
    result = _sft(omni_cli, tiny_qwen3, colors, out, "--loss-chunk-tokens", "8", "--padding-free")
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "loss" in r]
    assert len(steps) == 2 and all(r["peak_memory_gib"] > 0.05 for r in steps)  # a Python process with torch
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert [r["peak_memory_gib"] for r in state["log_history"] if "loss" in r] == [r["peak_memory_gib"] for r in steps]
    assert json.loads((out / "args.json").read_text())["loss_chunk_tokens"] == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusals are for machines without a CUDA GPU")
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--use-liger-kernel"], "--use-liger-kernel needs a CUDA GPU (liger-kernel's kernels are written in Triton)"),
        (["--loss-chunk-tokens", "-1"], "--loss-chunk-tokens -1: give a number of tokens, or 0 for off"),
    ],
)
def test_flags_that_cannot_run_here_are_one_line_before_the_model_loads(colors, tmp_path, capsys, flags, message):
    # A model path that does not exist: the refusal must come before anything tries to load it.
    argv = ["sft", "--model", str(tmp_path / "no-model"), "--dataset", str(colors), *flags]
    with using_host(load_plugins({"OMNI_PLUGINS": "lora"})):
        assert main(argv) != 0
    assert capsys.readouterr().err.strip().splitlines() == [f"omni: error: {message}"]


@pytest.mark.slow
def test_flash_attention_on_cpu_is_one_line_naming_its_needs_and_trains_with_sdpa(
    omni_cli, tiny_qwen3, colors, tmp_path
):
    if torch.cuda.is_available():
        pytest.skip("flash attention runs on this machine's GPU")
    result = _sft(omni_cli, tiny_qwen3, colors, tmp_path / "out", "--attn-impl", "flash_attention_3")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "flash_attention_3" in line]
    assert len(lines) == 1 and "needs a CUDA GPU (and the flash-attn package); using sdpa" in lines[0]


def test_ms_swift_spellings_parse_into_the_trainers_arguments(tmp_path):
    from omni.cli.invocation import parse_invocation
    from omni.train.trainer import training_arguments

    registry = load_plugins({"OMNI_PLUGINS": "lora"}).registry
    argv = ["--use_liger_kernel", "true", "--torch_compile", "true", "--loss_chunk_tokens", "64"]
    argv += ["--attn_impl", "flash_attention_3"]
    options = parse_invocation(registry.get("commands", "sft").spec, argv, registry).options
    assert (options.use_liger_kernel, options.torch_compile, options.loss_chunk_tokens) == (True, True, 64)
    assert options.attn_impl == "flash_attention_3"
    args = training_arguments(options, str(tmp_path), has_eval=False, model_dtype=torch.float32)
    assert args.use_liger_kernel and args.torch_compile and args.torch_compile_backend == "inductor"
    assert args.bf16 == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    defaults = parse_invocation(registry.get("commands", "sft").spec, [], registry).options
    assert (defaults.use_liger_kernel, defaults.torch_compile, defaults.loss_chunk_tokens) == (False, False, 1024)
