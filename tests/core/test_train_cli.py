"""`omni sft` / `omni pt` from the CLI on a tiny model: it learns, writes its outputs, and resumes exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.plugins import load_plugins, using_host

from tests.helpers import COLORS

FAST = "--gradient-checkpointing false --logging-steps 1 --save-steps 1000 --torch-dtype float32".split()


def _omni(*argv: str) -> int:
    with using_host(load_plugins({"OMNI_PLUGINS": "lora,bnb"})):
        return main(list(argv))


def _logs(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_full_sft_learns_and_held_out_loss_improves(tiny_qwen3, colors, tmp_path):
    out = tmp_path / "run"
    argv = ["sft", "--model", str(tiny_qwen3), "--dataset", str(colors), "--tuner", "full", "--learning-rate", "3e-3"]
    argv += "--epochs 4 --batch-size 8 --val-split-ratio 0.25 --eval-steps 3 --per-device-eval-batch-size 8".split()
    argv += ["--output-dir", str(out)]
    assert _omni(*argv, *FAST) == 0
    logs = _logs(out)
    train = [r["loss"] for r in logs if "loss" in r]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert train[-1] < train[0] - 1.0
    assert evals[-1] < evals[0] - 0.5
    assert all(r["tokens_per_second"] > 0 for r in logs if "loss" in r)
    args = json.loads((out / "args.json").read_text())
    assert args["model"] == str(tiny_qwen3) and args["tuner"] == "full" and args["command"] == "sft"
    assert (out / "loss.png").stat().st_size > 1000
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / ".final.tmp").exists()


def test_lora_padding_free_sft_writes_an_adapter_for_the_recorded_base(tiny_qwen3, colors, tmp_path):
    import torch
    from omni_plugin_lora.tuner import LoraTuner
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    argv = ["sft", "--model", str(tiny_qwen3), "--dataset", str(colors), "--padding-free", "--lora-rank", "4"]
    argv += ["--max-steps", "3", "--batch-size", "4", "--learning-rate", "1e-2", "--output-dir", str(out)]
    assert _omni(*argv, *FAST) == 0
    assert LoraTuner.is_saved_here(out)
    args = json.loads((out / "args.json").read_text())
    assert args["plugin_options"]["tuner"][0]["lora_rank"] == 4  # plugin options are recorded as data
    base = AutoModelForCausalLM.from_pretrained(args["model"])
    tuned = LoraTuner.load(base, out)
    b = tuned.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight
    assert b.abs().sum() > 0 and torch.isfinite(b).all()  # B starts at zero: it trained


def test_pt_trains_on_every_token_of_plain_text(tiny_qwen3, tmp_path):
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps({"text": f"the {k} is {v} . " * 3}) + "\n" for k, v in COLORS.items()))
    out = tmp_path / "pt"
    argv = ["pt", "--model", str(tiny_qwen3), "--dataset", str(data), "--tuner", "full", "--max-steps", "2"]
    assert _omni(*argv, "--output-dir", str(out), *FAST) == 0
    assert json.loads((out / "args.json").read_text())["loss_scope"] == "all"
    # every token but each row's first is a target
    assert _logs(out)[-1]["step"] == 2


KILLER = textwrap.dedent(
    """
    import os, sys
    from transformers import TrainerCallback
    from omni.train.job import TrainingJob

    class KillAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == int(os.environ["KILL_AFTER_STEP"]):
                os._exit(3)  # a crash: no cleanup, no final save

    callbacks = TrainingJob.callbacks
    TrainingJob.callbacks = lambda self: callbacks(self) + [KillAfter()]
    from omni.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_qwen3, colors, tmp_path):
    import os

    from safetensors.torch import load_file

    common = ["sft", "--model", str(tiny_qwen3), "--dataset", str(colors), "--tuner", "full", "--learning-rate", "3e-3"]
    common += ["--epochs", "2", "--batch-size", "4", "--gradient-checkpointing", "false", "--logging-steps", "1"]
    common += ["--save-steps", "4", "--torch-dtype", "float32"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert _omni(*common, "--output-dir", str(whole)) == 0

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "KILL_AFTER_STEP": "6", "OMNI_PLUGINS": "lora,bnb"}
    argv = [sys.executable, str(script), *common, "--output-dir", str(broken)]
    killed = subprocess.run(argv, env=env, timeout=1800, capture_output=True, text=True)
    assert killed.returncode == 3, killed.stderr[-2000:]
    assert (broken / "checkpoint-4").is_dir() and not (broken / "model.safetensors").exists()

    assert _omni(*common, "--output-dir", str(broken), "--resume-from-checkpoint", "last") == 0
    final_whole, final_resumed = _logs(whole)[-1], _logs(broken)[-1]
    assert final_resumed["step"] == final_whole["step"] == 12
    last_loss = {name: [r["loss"] for r in _logs(d) if "loss" in r][-1] for name, d in (("w", whole), ("r", broken))}
    assert last_loss["r"] == pytest.approx(last_loss["w"], abs=1e-4), last_loss
    a, b = load_file(whole / "model.safetensors"), load_file(broken / "model.safetensors")
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-4, f"weights differ by up to {worst}"
