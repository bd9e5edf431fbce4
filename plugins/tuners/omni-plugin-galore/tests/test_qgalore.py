"""8-bit GaLore and Q-GaLore on CPU: 8-bit Adam moments in the rank-r subspace, INT8 weights updated with
stochastic rounding, INT4 projections with lazy subspace updates, and `omni sft` learning, saving ordinary
transformers weights that `omni infer` loads, and resuming."""

from __future__ import annotations

import json

import pytest
import torch
from omni_plugin_galore.options import GaloreOptions
from omni_plugin_galore.quantized import QuantizedLinear, dequantize, quantize
from omni_plugin_galore.tuner import GaloreTuner
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from tests.helpers import run_omni

from .conftest import FAST, VARIANTS, token_rows

RANK = 8


def _train(model_dir, tmp_path, steps, **options):
    """`steps` Trainer steps of a tiny Llama with the tuner's own optimizer; (model, tuner, optimizer)."""
    tuner = GaloreTuner(GaloreOptions(galore_rank=RANK, galore_8bit_min_size=256, **options))
    model = tuner.prepare(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32))
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-2,
        report_to="none", save_strategy="no", disable_tqdm=True, dataloader_pin_memory=False,
        **tuner.training_arguments(),
    )  # fmt: skip
    optimizer = tuner.create_optimizer(model, args)
    Trainer(model=model, args=args, train_dataset=token_rows(), optimizers=(optimizer, None)).train()
    return model, tuner, optimizer


def test_stochastic_rounding_keeps_updates_smaller_than_a_quantization_step():
    weight = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    codes, scales, low = quantize(weight, 8, 256, stochastic=False)
    assert codes.dtype == torch.int8 and scales.shape == (16, 1)
    restored = dequantize(codes, scales, low, 8, torch.float32)
    assert (restored - weight).abs().reshape(16, -1).amax(1).le(scales.squeeze(1) / 2 + 1e-6).all()
    # a step of a tenth of a quantization step: round-to-nearest loses it, stochastic rounding keeps it on average
    # (every value but each group's minimum and maximum, which set the group's range)
    groups = restored.reshape(16, 256)
    inner = torch.ones_like(groups, dtype=torch.bool)
    inner.scatter_(1, groups.argmin(1, keepdim=True), False).scatter_(1, groups.argmax(1, keepdim=True), False)
    nudged = (groups + inner * scales / 10).reshape(64, 64)
    nearest = dequantize(*quantize(nudged, 8, 256, stochastic=False), 8, torch.float32)
    assert torch.allclose(nearest, restored, atol=1e-5)
    torch.manual_seed(0)
    drawn = torch.stack([dequantize(*quantize(nudged, 8, 256, stochastic=True), 8, torch.float32) for _ in range(400)])
    moved = ((drawn.mean(0) - restored).reshape(16, 256) / scales)[inner].mean()
    assert 0.08 < moved < 0.12, moved  # ~0.1 of a step: unbiased


def test_qgalore_trains_int8_weights_through_int4_projections_with_8bit_moments(model_dir, tmp_path):
    before = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    # update gap 1 and a threshold every similarity passes: each layer's gap doubles after two SVDs
    model, tuner, optimizer = _train(
        model_dir, tmp_path, steps=6, galore_quantization=True, galore_update_proj_gap=1,
        galore_cos_threshold=-1.0, galore_queue_size=2, galore_proj_group_size=128, galore_weight_group_size=128,
    )  # fmt: skip
    layers = {name: model.get_submodule(name) for name in tuner.target_names}
    assert len(layers) == 14 and all(isinstance(layer, QuantizedLinear) for layer in layers.values())
    for name, layer in layers.items():
        assert layer.weight.dtype == torch.int8 and layer.weight.grad is None and layer.weight_grad is None
        state = optimizer.state[layer.weight]
        m, n = layer.weight.shape
        assert sorted(state["state1"].shape) == sorted((RANK, max(m, n))), name  # r x max(m, n), not m x n
        assert state["state1"].dtype == state["state2"].dtype == torch.uint8
        projector = state["projector"]
        assert projector.ortho_matrix.dtype == torch.uint8 and int(projector.ortho_matrix.max()) <= 15  # INT4 codes
        assert projector.ortho_matrix.numel() == RANK * min(m, n) and projector.ortho_matrix_scales.numel() == (
            RANK * min(m, n) // 128
        )
        # lazy subspace updates: 6 steps with a gap of 1 would take 6 SVDs; the gap grew to 2, then 4
        assert projector.update_proj_gap == 4 and projector.svd_count == 4, name
        assert not torch.equal(layer.dequantized(), before[f"{name}.weight"]), name  # the INT8 weight trained
    # the state dict is a plain Llama's: float weights, no codes or scales
    saved = model.state_dict()
    assert set(saved) == set(before) and all(v.dtype == torch.float32 for v in saved.values())
    fresh = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert not fresh.load_state_dict(saved, strict=True).missing_keys


def test_8bit_galore_keeps_uint8_moments_on_cpu(model_dir, tmp_path):
    before = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    model, tuner, optimizer = _train(model_dir, tmp_path, steps=3, galore_optim="adamw_8bit", galore_update_proj_gap=2)
    names = {id(p): n for n, p in model.named_parameters()}
    targeted = {f"{n}.weight" for n in tuner.target_names}
    states = {names[id(p)]: s for p, s in optimizer.state.items()}
    assert set(states) == {n for n, _ in model.named_parameters()}  # every parameter trained
    for name, state in states.items():
        param = model.get_parameter(name)
        if name in targeted:
            assert sorted(state["state1"].shape) == sorted((RANK, max(param.shape)))
        else:
            assert state["state1"].shape == param.shape
        small = state["state1"].numel() < 256  # --galore-8bit-min-size: norm weights keep 32-bit moments
        assert state["state1"].dtype == state["state2"].dtype == (torch.float32 if small else torch.uint8), name
        assert not torch.equal(param.detach(), before[name]), name


@pytest.mark.parametrize("variant", ["8bit", "qgalore"])
def test_cli_sft_learns_and_saves_weights_omni_infer_loads(model_dir, colors, tmp_path, variant, omni_in_process):
    out = tmp_path / "run"
    argv = ["sft", "--tuner", "galore", "--galore-rank", "8", "--galore-update-proj-gap", "10", *VARIANTS[variant]]
    argv += ["--galore-8bit-min-size", "256", "--model", str(model_dir), "--dataset", str(colors)]
    argv += "--learning-rate 3e-3 --max-steps 16 --batch-size 8 --val-split-ratio 0.25 --eval-steps 4".split()
    argv += ["--per-device-eval-batch-size", "8", "--save-steps", "1000", *FAST, "--output-dir", str(out)]
    if variant == "qgalore":  # the console script once; in-process is faster for the other
        result = run_omni(*argv, env={"OMNI_PLUGINS": "galore"}, timeout=300)
        code, stderr = result.returncode, result.stderr
    else:
        code, stderr = omni_in_process(argv)
    assert code == 0, stderr
    method = "Q-GaLore (INT8 weights, INT4 projections, 8-bit AdamW)" if variant == "qgalore" else "8-bit AdamW"
    assert f"galore: 14 linear layers projected to rank 8 with {method}" in stderr
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert evals[-1] < evals[0] - 0.5, evals
    # an ordinary transformers checkpoint: float weights, nothing quantized, loadable as it is
    from safetensors.torch import load_file

    saved = load_file(out / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in saved.values()) and not any("weight_" in k for k in saved)
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    answers = run_omni(
        "infer", "--model", str(out), "--query", "What color is grass?", "--max-new-tokens", "4",
        env={"OMNI_PLUGINS": "galore,llama"}, timeout=120,
    )  # fmt: skip
    assert answers.returncode == 0 and answers.stdout.strip(), answers.stderr


def test_option_mistakes_are_one_line_errors(model_dir, colors, tmp_path, omni_in_process):
    argv = ["sft", "--tuner", "galore", "--model", str(model_dir), "--dataset", str(colors), "--max-steps", "1"]
    argv += ["--output-dir", str(tmp_path / "out"), "--galore-quantization", "true"]
    for extra, message in [
        (["--galore-proj-type", "left"], "--galore-quantization projects the smaller side only"),
        (["--galore-weight-group-size", "100"], "--galore-weight-group-size 100 does not divide the 64 x 64 weight"),
        (["--galore-proj-bits", "9"], "--galore-proj-bits 9 must be between 2 and 8"),
        (["--galore-optim", "adafactor"], "it cannot use --galore-optim adafactor"),
        (["--galore-proj-group-size", "0"], "--galore-proj-group-size must be at least 1"),
    ]:
        code, stderr = omni_in_process([*argv, *extra])
        assert code != 0 and message in stderr and "Traceback" not in stderr, stderr
