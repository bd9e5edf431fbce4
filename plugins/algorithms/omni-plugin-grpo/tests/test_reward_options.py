"""A reward's own options are flags (and YAML keys) of `omni rlhf` once `--reward-funcs` names it, for
the built-in rewards and for a reward another plugin registers (plugins/algorithms/omni-plugin-grpo/tests/reward_plugin.py)."""

from __future__ import annotations

import json

import pytest
from omni.api import Distribution
from omni.cli.main import main
from omni.plugins import load_plugins, using_host

from . import reward_plugin


@pytest.fixture
def band_plugin_installed():
    """The installed GRPO and Qwen3 plugins plus a third-party plugin registering the `band` reward."""
    host = load_plugins({"OMNI_PLUGINS": "grpo,qwen3", "OMNI_STRICT_PLUGINS": "1"})
    host.add(reward_plugin, name="band", distribution=Distribution("omni-plugin-band", "0.1"))
    with using_host(host):
        yield host


def help_text(capsys, *argv: str) -> str:
    assert main(["rlhf", "--algo", "grpo", *argv, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_the_options_of_the_rewards_named(band_plugin_installed, capsys):
    text = help_text(capsys, "--reward-funcs", "band,cosine", "my_rewards.py:brevity")
    assert "reward 'band' options (omni-plugin-band)" in text
    assert "--band-low BAND_LOW lowest token id that scores (default: 0)" in text
    assert "reward 'cosine' options (omni-plugin-grpo)" in text and "--cosine-max-len" in text
    # Rewards not named add nothing.
    assert "--format-pattern" not in text and "--band-low" not in help_text(capsys, "--reward-funcs", "format")


def test_a_flag_value_with_spaces_after_the_reward_names_is_not_taken_for_a_name():
    from omni.api import get_registry
    from omni.cli.invocation import parse_invocation

    registry = get_registry()
    argv = ["--algo", "grpo", "--reward-funcs", "format", "accuracy", "--format-pattern=.*The answer is [0-9]+"]
    invocation = parse_invocation(registry.get("commands", "rlhf").spec, argv, registry)
    assert [s.spec.name for s in invocation.selected["reward_funcs"]] == ["format", "accuracy"]
    assert invocation.selected["reward_funcs"][0].options.format_pattern == ".*The answer is [0-9]+"


def test_options_of_a_reward_not_named_are_refused(band_plugin_installed, tiny_model, token_task, tmp_path, capsys):
    argv = ["rlhf", "--algo", "grpo", "--model", str(tiny_model), "--dataset", str(token_task[0])]
    argv += ["--tuner", "full", "--reward-funcs", "format", "--band-low", "3", "--output-dir", str(tmp_path)]
    assert main(argv) != 0
    assert "unrecognized arguments: --band-low 3" in capsys.readouterr().err


def one_step(model, data, out, *extra: str) -> dict:
    argv = ["rlhf", "--algo", "grpo", "--model", str(model), "--dataset", str(data), "--output-dir", str(out)]
    argv += ["--num-generations", "4", "--per-device-train-batch-size", "4", "--max-completion-length", "6"]
    argv += ["--tuner", "full", "--max-steps", "1", "--logging-steps", "1", "--save-strategy", "no", *extra]
    assert main(argv) == 0
    return next(r for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "reward" in r)


def test_a_plugin_rewards_options_reach_it_from_flags_and_config(
    band_plugin_installed, tiny_model, token_task, tmp_path
):
    data = token_task[0]
    # Every token id is inside [0, 10**6): each completion scores 1; nothing is inside [0, 0): 0.
    everything = one_step(tiny_model, data, tmp_path / "a", "--reward-funcs", "band", "--band-high", "1000000")
    assert everything["rewards/band/mean"] == 1.0
    nothing = one_step(tiny_model, data, tmp_path / "b", "--reward-funcs", "band")
    assert nothing["rewards/band/mean"] == 0.0

    config = tmp_path / "run.yaml"
    config.write_text("reward_funcs: [band]\nband_high: 1000000\nband-low: 0\n")
    from_config = one_step(tiny_model, data, tmp_path / "c", "--config", str(config))
    assert from_config["rewards/band/mean"] == 1.0
    saved = json.loads((tmp_path / "c" / "args.json").read_text())["plugin_options"]["reward_funcs"]
    assert saved == [{"band_low": 0, "band_high": 1000000}]


def test_built_in_reward_options_are_flags_once_named(band_plugin_installed, tiny_model, token_task, tmp_path):
    # A random model rarely ends before --max-completion-length (6): at --length-target 6 most completions
    # score 1.0, where the default target (100) would give at most 0.07.
    logged = one_step(tiny_model, token_task[0], tmp_path / "out", "--reward-funcs", "length", "--length-target", "6")
    assert logged["rewards/length/mean"] > 0.5
