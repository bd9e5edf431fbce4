"""LISA on tiny models: at every step only the embeddings, head, final norm and n sampled layers train; the
layers switch at the interval, each period updates exactly its layers, and `omni sft --tuner lisa` learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omni.api import OmniError
from omni_plugin_lisa.options import LisaOptions
from omni_plugin_lisa.tuner import LisaTuner, active_layers
from transformers import Trainer, TrainerCallback, TrainingArguments

from tests.helpers import run_omni, write_color_task

LAYERS = 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from omni.testing.models import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"), num_hidden_layers=LAYERS)


def _layer(name: str) -> int | None:
    return int(name.split(".")[2]) if name.startswith("model.layers.") else None


class Recorder(TrainerCallback):
    """Before every optimizer step: which parameters have gradients, which require them, what the optimizer
    holds state for; and a copy of the weights at the start of each step."""

    def __init__(self, model):
        self.model = model
        self.steps: list[dict] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.steps.append({"weights": {n: p.detach().clone() for n, p in self.model.named_parameters()}})

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        named = dict(self.model.named_parameters())
        ids = {id(p): n for n, p in named.items()}
        self.steps[-1].update(
            requires_grad={n for n, p in named.items() if p.requires_grad},
            has_grad={n for n, p in named.items() if p.grad is not None},
            optimizer_state_before={ids[id(p)] for p in optimizer.optimizer.state},
        )


def test_only_sampled_layers_train_and_they_switch_at_the_interval(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tuner = LisaTuner(LisaOptions(lisa_activated_layers=2, lisa_step_interval=3))
    model = tuner.prepare(model)
    assert all(p.requires_grad for p in model.parameters())  # the optimizer must hold every candidate
    recorder = Recorder(model)
    generator = torch.Generator().manual_seed(0)
    rows = [{"input_ids": (ids := torch.randint(3, 200, (16,), generator=generator)), "labels": ids} for _ in range(48)]
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=12, per_device_train_batch_size=4, learning_rate=1e-2, seed=7,
        report_to="none", save_strategy="no", disable_tqdm=True, lr_scheduler_type="constant", weight_decay=0.0,
        dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[*tuner.callbacks(), recorder])
    trainer.train()

    history = tuner.callbacks()[0].history
    assert [step for step, _ in history] == [0, 3, 6, 9]
    assert [layers for _, layers in history] == [active_layers(LAYERS, 2, 7, period) for period in range(4)]
    assert len({tuple(layers) for _, layers in history}) > 1  # different layers train in different periods
    always = {n for n, _ in model.named_parameters() if _layer(n) is None}
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"} <= always
    for step, record in enumerate(recorder.steps):
        active = history[step // 3][1]
        expected = always | {n for n, _ in model.named_parameters() if _layer(n) in active}
        assert record["requires_grad"] == expected and record["has_grad"] == expected, step
        # Adam moments exist only for this period's parameters (those of switched-off layers were dropped)
        assert record["optimizer_state_before"] <= expected, step
    # Within each period the weights of exactly its layers (and the always-trained parts) move.
    final = {n: p.detach() for n, p in model.named_parameters()}
    for period, (start, layers) in enumerate(history):
        before = recorder.steps[start]["weights"]
        after = recorder.steps[start + 3]["weights"] if start + 3 < len(recorder.steps) else final
        moved = {_layer(n) for n in before if not torch.equal(before[n], after[n])}
        assert moved == {None, *layers}, (period, moved, layers)
    trained_layers = {layer for _, layers in history for layer in layers}
    initial = recorder.steps[0]["weights"]
    changed = {_layer(n) for n in initial if not torch.equal(initial[n], final[n])} - {None}
    assert changed == trained_layers


def test_bad_options_name_the_flag(model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with pytest.raises(OmniError, match=r"--lisa-activated-layers 7: model.layers has 6 layers; choose 1 to 6"):
        LisaTuner(LisaOptions(lisa_activated_layers=7)).prepare(model)
    with pytest.raises(OmniError, match="--lisa-step-interval 0: must be at least 1"):
        LisaTuner(LisaOptions(lisa_step_interval=0)).prepare(model)


@pytest.fixture(scope="module")
def colors(tmp_path_factory) -> Path:
    return write_color_task(tmp_path_factory.mktemp("data") / "colors.jsonl")


def test_cli_sft_with_lisa_learns_and_saves_a_full_model(model_dir, colors, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    argv = ["sft", "--tuner", "lisa", "--lisa_activated_layers", "2", "--lisa-step-interval", "2"]
    argv += ["--model", str(model_dir), "--dataset", str(colors), "--learning-rate", "3e-3", "--max-steps", "16"]
    argv += "--batch-size 8 --val-split-ratio 0.25 --eval-steps 4 --per-device-eval-batch-size 8".split()
    argv += "--gradient-checkpointing false --logging-steps 1 --torch-dtype float32 --output-dir".split()
    result = run_omni(*argv, str(out), env={"OMNI_PLUGINS": "lisa"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"lisa: 2 of the {LAYERS} layers in model.layers train at a time, switched every 2 steps" in result.stderr
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert evals[-1] < evals[0] - 0.5, evals
    assert json.loads((out / "args.json").read_text())["plugin_options"]["tuner"][0]["lisa_step_interval"] == 2
    trained, base = load_file(out / "model.safetensors"), load_file(model_dir / "model.safetensors")
    changed = {_layer(n) for n in base if not torch.equal(base[n], trained[n])}
    expected = {layer for period in range(8) for layer in active_layers(LAYERS, 2, 42, period)}
    assert changed == {None, *expected} and len(expected) > 2  # more layers trained than are active at once


def test_resuming_from_a_checkpoint_matches_the_uninterrupted_run(model_dir, colors, tmp_path, capsys):
    from omni.cli.main import main
    from omni.plugins import load_plugins, using_host
    from safetensors.torch import load_file

    common = ["sft", "--tuner", "lisa", "--lisa-activated-layers", "1", "--lisa-step-interval", "2"]
    common += ["--model", str(model_dir), "--dataset", str(colors), "--max-steps", "6", "--batch-size", "4"]
    common += "--learning-rate 3e-3 --gradient-checkpointing false --torch-dtype float32 --save-steps 3".split()
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    with using_host(load_plugins({"OMNI_PLUGINS": "lisa"})):
        assert main([*common, "--output-dir", str(whole)]) == 0
        # resumed mid-period (step 3 of the period starting at 2): the same layer must train on
        argv = [*common, "--output-dir", str(resumed), "--resume-from-checkpoint", str(whole / "checkpoint-3")]
        assert main(argv) == 0, capsys.readouterr().err
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


def test_rlhf_dpo_with_lisa_trains_only_the_sampled_layers(model_dir, tmp_path, capsys):
    pytest.importorskip("omni_plugin_dpo")
    from omni.cli.main import main
    from omni.plugins import load_plugins, using_host
    from safetensors.torch import load_file

    rows = [
        {
            "messages": [{"role": "user", "content": f"Say yes {i}."}, {"role": "assistant", "content": f"yes {i}"}],
            "rejected_response": f"no {i}",
        }
        for i in range(16)
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "dpo"
    argv = ["rlhf", "--algo", "dpo", "--tuner", "lisa", "--lisa-activated-layers", "1", "--lisa-step-interval", "3"]
    argv += ["--model", str(model_dir), "--dataset", str(data), "--max-steps", "6", "--batch-size", "4", "--seed", "5"]
    argv += "--learning-rate 1e-3 --gradient-checkpointing false --torch-dtype float32 --output-dir".split()
    with using_host(load_plugins({"OMNI_PLUGINS": "lisa,dpo"})):
        assert main([*argv, str(out)]) == 0, capsys.readouterr().err
    trained, base = load_file(out / "model.safetensors"), load_file(model_dir / "model.safetensors")
    changed = {_layer(n) for n in base if not torch.equal(base[n], trained[n])}
    assert changed == {None, *active_layers(LAYERS, 1, 5, 0), *active_layers(LAYERS, 1, 5, 1)}
