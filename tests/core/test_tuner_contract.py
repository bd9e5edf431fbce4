"""A tuner plugin sets TrainingArguments fields and adds trainer callbacks, for a real `omni sft` run."""

from __future__ import annotations

import json
import random
import types

import pytest
from omni import hookimpl
from omni.cli.main import main
from omni.registry import TunerSpec
from omni.train.tuners import FullTuner
from transformers import TrainerCallback

SEEN: dict = {}


class StepRecorder(TrainerCallback):
    """Records the optimizer the trainer built and every step it began."""

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        SEEN["optim"] = args.optim
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
        SEEN["optimizer"] = type(inner).__name__
        SEEN["momentum"] = inner.param_groups[0].get("momentum")
        SEEN["lr"] = inner.param_groups[0]["lr"]

    def on_step_begin(self, args, state, control, **kwargs):
        SEEN.setdefault("steps", []).append(state.global_step)


class RmspropTuner(FullTuner):
    """Full tuning that trains with RMSprop (momentum 0.5) and records its steps."""

    def training_arguments(self):
        return {"optim": "rmsprop", "optim_args": "momentum=0.5"}

    def callbacks(self):
        return [StepRecorder()]


class AdagradTuner(FullTuner):
    """Full tuning with an optimizer the tuner builds itself (no `optim` name reaches it)."""

    def create_optimizer(self, model, args):
        import torch

        return torch.optim.Adagrad(model.parameters(), lr=args.learning_rate, lr_decay=0.0)

    def callbacks(self):
        return [StepRecorder()]


class TypoTuner(FullTuner):
    def training_arguments(self):
        return {"optimiser": "sgd"}


def _register(register_plugin, name, impl):
    plugin = types.ModuleType(f"omni_plugin_{name}")

    @hookimpl
    def register_tuners(register):
        register(TunerSpec(name=name, description="test", impl=f"{__name__}:{impl}"))

    plugin.register_tuners = register_tuners
    register_plugin(plugin, name=name, distribution=f"omni-plugin-{name}")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """A tiny model and a learnable task: each word's fixed answer, with held-out rows of the same facts."""
    from omni.testing.models import build_tiny_model

    root = tmp_path_factory.mktemp("contract")
    facts = {"apple": "red", "sky": "blue", "grass": "green", "snow": "white", "coal": "black"}
    rows = [
        {"messages": [{"role": "user", "content": q.format(k)}, {"role": "assistant", "content": f"{k} is {v}."}]}
        for q in ("Color of {}?", "What color is {}?", "{}: which color?", "Name the color of {}.")
        for k, v in facts.items()
    ]
    random.Random(0).shuffle(rows)
    data = root / "colors.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return build_tiny_model("qwen3", root / "model"), data


def test_tuner_sets_training_arguments_and_adds_a_callback(register_plugin, task, tmp_path, capsys):
    model, data = task
    _register(register_plugin, "rmsprop", "RmspropTuner")
    SEEN.clear()
    out = tmp_path / "out"
    argv = ["sft", "--model", str(model), "--dataset", str(data), "--tuner", "rmsprop", "--learning-rate", "2e-3"]
    argv += "--max-steps 12 --batch-size 8 --val-split-ratio 0.25 --eval-steps 2 --per-device-eval-batch-size 8".split()
    argv += "--gradient-checkpointing false --logging-steps 1 --torch-dtype float32 --output-dir".split() + [str(out)]
    assert main(argv) == 0
    assert f"trained 12 steps; final model in {out}" in capsys.readouterr().err  # a full-tuner kin saves a model
    assert SEEN["optim"] == "rmsprop" and SEEN["optimizer"] == "RMSprop" and SEEN["momentum"] == 0.5
    assert SEEN["steps"] == list(range(12))  # the tuner's callback ran at every step
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert len(evals) == 6 and evals[-1] < evals[0] - 0.5, evals  # it learned under the tuner's optimizer
    assert json.loads((out / "args.json").read_text())["tuner"] == "rmsprop"


def test_unknown_training_arguments_field_is_a_clear_error(register_plugin, task, tmp_path, capsys):
    model, data = task
    _register(register_plugin, "typo", "TypoTuner")
    argv = ["sft", "--model", str(model), "--dataset", str(data), "--tuner", "typo", "--max-steps", "1"]
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "tuner TypoTuner sets unknown TrainingArguments fields: ['optimiser']" in err
    assert "Traceback" not in err


def test_tuner_builds_its_own_optimizer_which_the_trainer_schedules(register_plugin, task, tmp_path, capsys):
    model, data = task
    _register(register_plugin, "adagrad", "AdagradTuner")
    SEEN.clear()
    out = tmp_path / "out"
    argv = ["sft", "--model", str(model), "--dataset", str(data), "--tuner", "adagrad", "--learning-rate", "2e-2"]
    argv += "--max-steps 12 --batch-size 8 --val-split-ratio 0.25 --eval-steps 4 --per-device-eval-batch-size 8".split()
    argv += "--warmup-ratio 0.5 --gradient-checkpointing false --torch-dtype float32 --output-dir".split() + [str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert SEEN["optimizer"] == "Adagrad" and SEEN["lr"] == 0.0  # the Trainer's warm-up schedule drives it
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert evals[-1] < evals[0] - 0.5, evals
