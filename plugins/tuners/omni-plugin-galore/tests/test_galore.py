"""GaLore on tiny models: the targeted weights' optimizer states live in the rank-r projection, their updates are
low rank, every parameter trains, and `omni sft --tuner galore` (plain and layer-wise) learns."""

from __future__ import annotations

import json

import pytest
import torch
from omni.api import OmniError
from omni.train.trainer import OmniTrainer
from omni_plugin_galore.options import GaloreOptions
from omni_plugin_galore.tuner import GaloreTuner
from transformers import Trainer, TrainerCallback, TrainingArguments

from tests.helpers import run_omni

from .conftest import FAST, VARIANTS, token_rows

RANK = 8
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


class StateShapes(TrainerCallback):
    def __init__(self, model):
        self.model = model
        self.shapes: dict[str, tuple[int, ...]] = {}

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        names = {id(p): n for n, p in self.model.named_parameters()}
        inner = getattr(optimizer, "optimizer", optimizer)
        self.shapes = {names[id(p)]: tuple(s["exp_avg"].shape) for p, s in inner.state.items()}


def _train(model, tuner, tmp_path, steps, **extra):
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-2,
        report_to="none", save_strategy="no", disable_tqdm=True, dataloader_pin_memory=False,
        **{**tuner.training_arguments(), **extra},
    )  # fmt: skip
    recorder = StateShapes(model)
    Trainer(model=model, args=args, train_dataset=token_rows(), callbacks=[*tuner.callbacks(), recorder]).train()
    return recorder.shapes


def test_targeted_weights_keep_rank_r_optimizer_states_and_low_rank_updates(model_dir, tmp_path):
    model = _model(model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tuner = GaloreTuner(GaloreOptions(galore_rank=RANK, galore_update_proj_gap=100))
    model = tuner.prepare(model)
    assert all(p.requires_grad for p in model.parameters())
    assert sorted(tuner.target_names) == sorted(f"model.layers.{i}.{kind}" for i in range(2) for kind in (
        *(f"self_attn.{m}" for m in LINEARS[:4]), *(f"mlp.{m}" for m in LINEARS[4:])))  # fmt: skip
    shapes = _train(model, tuner, tmp_path, steps=4)

    params = dict(model.named_parameters())
    targeted = {f"{n}.weight" for n in tuner.target_names}
    assert set(shapes) == set(params)  # every parameter has optimizer state: all of them train
    for name, shape in shapes.items():
        m, n = params[name].shape if params[name].dim() == 2 else (None, None)
        if name in targeted:
            assert sorted(shape) == sorted((RANK, max(m, n))), (name, shape)  # r x max(m, n), not m x n
        else:
            assert shape == tuple(params[name].shape), name
    full = sum(params[n].numel() for n in targeted)
    projected = sum(torch.Size(shapes[n]).numel() for n in targeted)
    assert projected <= full / 2
    # One projection for all 4 steps: every targeted weight moved within a rank-r subspace; the LM head did not.
    for name in targeted:
        delta = params[name].detach() - before[name]
        assert delta.abs().sum() > 0 and torch.linalg.matrix_rank(delta) <= RANK, name
    assert torch.linalg.matrix_rank(params["lm_head.weight"].detach() - before["lm_head.weight"]) > RANK


def test_target_modules_option_and_its_error(model_dir, tmp_path):
    tuner = GaloreTuner(GaloreOptions(galore_rank=RANK, galore_target_modules=["down_proj"]))
    model = tuner.prepare(_model(model_dir))
    assert tuner.target_names == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    shapes = _train(model, tuner, tmp_path, steps=1)
    assert sorted(shapes["model.layers.0.mlp.down_proj.weight"]) == [RANK, 128]
    assert shapes["model.layers.0.mlp.up_proj.weight"] == (128, 64)  # not targeted: full moments
    with pytest.raises(OmniError, match=r"--galore-target-modules \['nope'\] matches no linear layer; names look"):
        GaloreTuner(GaloreOptions(galore_target_modules=["nope"])).prepare(_model(model_dir))


def test_layerwise_optimizer_steps_every_parameter_during_backward(model_dir, tmp_path):
    tuner = GaloreTuner(GaloreOptions(galore_rank=RANK, galore_optim_per_parameter=True))
    model = tuner.prepare(_model(model_dir))
    assert tuner.training_arguments()["optim"] == "galore_adamw_layerwise"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2, report_to="none",
        save_strategy="no", disable_tqdm=True, dataloader_pin_memory=False, **tuner.training_arguments(),
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=token_rows(), callbacks=tuner.callbacks())
    trainer.train()
    assert type(trainer.optimizer.optimizer).__name__ == "LayerWiseDummyOptimizer"
    states = [opt.state[p] for p, opt in trainer.optimizer.optimizer.optimizer_dict.items() if p in opt.state]
    assert len(states) == len(before)
    q = model.model.layers[0].self_attn.q_proj.weight
    assert sorted(trainer.optimizer.optimizer.optimizer_dict[q].state[q]["exp_avg"].shape) == [RANK, 64]
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())
    args.gradient_accumulation_steps = 2
    with pytest.raises(OmniError, match="cannot accumulate gradients"):
        Trainer(model=model, args=args, train_dataset=token_rows(), callbacks=tuner.callbacks())


def test_tuner_parameter_groups_cannot_combine_with_galore(model_dir, tmp_path):
    class Grouped(GaloreTuner):
        def optimizer_param_groups(self, model, learning_rate):
            return [{"params": list(model.parameters()), "lr": learning_rate}]

    tuner = Grouped(GaloreOptions(galore_rank=RANK))
    model = tuner.prepare(_model(model_dir))
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", **tuner.training_arguments())
    trainer = OmniTrainer(model=model, args=args, train_dataset=token_rows(), tuner=tuner)
    with pytest.raises(OmniError, match="optimizer galore_adamw builds its own parameter groups"):
        trainer.create_optimizer()


@pytest.mark.parametrize("layerwise", [False, True], ids=["adamw", "layerwise"])
def test_cli_sft_with_galore_learns_and_saves_a_full_model(model_dir, colors, tmp_path, layerwise, omni_in_process):
    out = tmp_path / "run"
    argv = ["sft", "--tuner", "galore", "--galore_rank", "8", "--galore-update-proj-gap", "10", "--galore-scale", "1"]
    argv += ["--galore-layerwise", str(layerwise).lower(), "--model", str(model_dir), "--dataset", str(colors)]
    argv += "--learning-rate 3e-3 --max-steps 16 --batch-size 8 --val-split-ratio 0.25 --eval-steps 4".split()
    argv += ["--per-device-eval-batch-size", "8", *FAST, "--save-steps", "1000", "--output-dir", str(out)]
    if layerwise:  # the subprocess run covers the console script; in-process is faster for the variant
        code, stderr = omni_in_process(argv)
    else:
        result = run_omni(*argv, env={"OMNI_PLUGINS": "galore"}, timeout=300)
        code, stderr = result.returncode, result.stderr
    assert code == 0, stderr
    optim = "galore_adamw_layerwise" if layerwise else "galore_adamw"
    assert f"galore: 14 linear layers projected to rank 8 with {optim}" in stderr
    assert "deprecated" not in stderr
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert evals[-1] < evals[0] - 0.5, evals
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="transformers' layer-wise 8-bit GaLore runs on a GPU")
def test_cli_says_layerwise_8bit_needs_a_gpu(model_dir, colors, tmp_path, omni_in_process):
    argv = ["sft", "--tuner", "galore", "--model", str(model_dir), "--dataset", str(colors), "--max-steps", "1"]
    argv += ["--output-dir", str(tmp_path / "out"), "--galore-optim", "adamw_8bit", "--galore-layerwise", "true"]
    code, stderr = omni_in_process(argv)
    assert code != 0 and "with --galore-optim-per-parameter needs a CUDA GPU" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resuming_from_a_checkpoint_matches_the_uninterrupted_run(
    model_dir, colors, tmp_path, variant, omni_in_process
):
    from safetensors.torch import load_file

    common = ["sft", "--tuner", "galore", "--galore-rank", "8", "--galore-update-proj-gap", "2", *VARIANTS[variant]]
    common += ["--galore-8bit-min-size", "256", "--model", str(model_dir), "--dataset", str(colors)]
    common += "--max-steps 6 --batch-size 4 --learning-rate 3e-3 --save-steps 3".split() + FAST
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert omni_in_process([*common, "--output-dir", str(whole)])[0] == 0
    # The checkpoint holds float weights (Q-GaLore quantizes them again on load), the moments (8-bit ones
    # too) and galore-torch's projectors, which must load with weights_only.
    code, stderr = omni_in_process(
        [*common, "--output-dir", str(resumed), "--resume-from-checkpoint", str(whole / "checkpoint-3")]
    )
    assert code == 0, stderr
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
