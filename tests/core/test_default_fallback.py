"""A default that names an uninstalled plugin's spec runs with an installed one and says how to get the default;
a name the user gave is never replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.plugins import load_plugins, using_host

from tests.helpers import write_color_task


def _omni(plugins: str, *argv: str) -> int:
    with using_host(load_plugins({"OMNI_PLUGINS": plugins})):
        return main(list(argv))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"))


def test_sft_without_the_lora_plugin_trains_every_parameter_and_says_how_to_get_lora(model_dir, tmp_path, capsys):
    data = write_color_task(tmp_path / "colors.jsonl")
    out = tmp_path / "run"
    argv = ["sft", "--model", str(model_dir), "--dataset", str(data), "--max-steps", "1", "--output-dir", str(out)]
    assert _omni("", *argv, "--gradient-checkpointing", "false", "--save-strategy", "no") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("omni: note:")]
    assert notes == [
        "omni: note: the default tuner 'lora' is not installed, so this run uses 'full'; "
        "for lora: pip install omni-plugin-lora"
    ]
    assert json.loads((out / "args.json").read_text())["tuner"] == "full"
    assert (out / "model.safetensors").is_file()


def test_a_tuner_the_user_names_is_not_replaced(model_dir, tmp_path, capsys):
    argv = ["sft", "--model", str(model_dir), "--dataset", str(tmp_path / "none.jsonl"), "--tuner", "lora"]
    assert _omni("", *argv) == 2
    err = capsys.readouterr().err
    assert "omni: error: tuner 'lora' is not installed: pip install omni-plugin-lora" in err
    assert "note:" not in err


def test_rlhf_without_the_default_algorithms_plugin_uses_an_installed_one(capsys):
    assert _omni("grpo", "rlhf", "--help") == 0
    captured = capsys.readouterr()
    assert "the default algorithm 'dpo' is not installed, so this run uses 'grpo'; " in captured.err
    assert "for dpo: pip install omni-plugin-dpo" in captured.err
    assert "algorithm 'grpo' options (omni-plugin-grpo)" in captured.out


def test_rlhf_with_no_algorithm_installed_names_the_plugin(tmp_path, capsys):
    assert _omni("", "rlhf", "--dataset", str(tmp_path / "none.jsonl")) == 2
    assert "algorithm 'dpo' is not installed: pip install omni-plugin-dpo" in capsys.readouterr().err
