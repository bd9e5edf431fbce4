"""`omni rlhf --algo <member of the GRPO family>`: flags, spellings, defaults and the mistakes users make."""

from __future__ import annotations

import json

import pytest
from omni.cli.main import main
from omni.plugins import load_plugins
from omni_plugin_grpo.options import DapoOptions, GrpoOptions
from omni_plugin_grpo.rewards.options import CosineOptions, SoftOverlongOptions

from tests.helpers import run_omni

ALGOS = ["dapo", "dr_grpo", "grpo", "gspo", "ppo", "reinforce_plus_plus", "rloo"]


def test_every_algorithm_is_registered_for_rlhf():
    host = load_plugins({"OMNI_PLUGINS": "grpo", "OMNI_STRICT_PLUGINS": "1"})
    algos = [r.spec for r in host.registry.all("algorithms") if r.distribution.name == "omni-plugin-grpo"]
    assert sorted(a.name for a in algos) == ALGOS
    assert {a.command for a in algos} == {"rlhf"}
    for spelling in ("dr-grpo", "DR_GRPO", "reinforce++", "reinforce-plus-plus"):
        assert host.registry.get("algorithms", spelling).spec.name in ALGOS


@pytest.mark.parametrize(
    "spelling", [("--algo", "gspo"), ("--algo", "grpo", "--importance_sampling_level", "sequence")]
)
def test_sequence_level_importance_sampling_in_both_spellings(spelling):
    from omni.api import get_registry
    from omni.cli.invocation import parse_invocation

    registry = get_registry()
    invocation = parse_invocation(
        registry.get("commands", "rlhf").spec, [*spelling, "--reward-funcs", "length"], registry
    )
    assert invocation.selected["algo"][0].options.importance_sampling_level == "sequence"


@pytest.mark.parametrize(
    ("algo", "defaults"),
    [
        ("grpo", {"--loss-type": "grpo", "--scale-rewards": "group", "--beta": "0.0"}),
        ("dapo", {"--loss-type": "dapo", "--epsilon-high": "0.28"}),
        ("dr-grpo", {"--loss-type": "dr_grpo", "--scale-rewards": "none"}),
        ("reinforce++", {"--scale-rewards": "batch"}),
        ("gspo", {"--importance-sampling-level": "sequence", "--epsilon": "0.0003", "--loss-type": "grpo"}),
        ("ppo", {"--num-generations": "2", "--vf-coef": "0.1", "--lam": "0.95", "--cliprange-value": "0.2"}),
    ],
)
def test_help_lists_the_options_with_each_algorithms_defaults(algo, defaults):
    result = run_omni("rlhf", "--algo", algo, "--help", env={"OMNI_PLUGINS": "grpo,lora"})
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for flag in (
        "--num-generations",
        "--temperature",
        "--top-p",
        "--max-completion-length",
        "--epsilon",
        "--num-iterations",
        "--steps-per-generation",
        "--reward-funcs",
        "--reward-weights",
        "--rollout-engine",
        "--dynamic-sample",
    ):
        assert flag in text, flag
    for flag, value in defaults.items():
        start = text.rindex(f"{flag} ")  # the help entry, after the usage line
        assert f"(default: {value})" in text[start : text.index("--", start + len(flag) + 1)], flag


def test_reward_lengths_default_to_the_completion_length():
    parsed = {"soft_overlong": SoftOverlongOptions(soft_cache_length=16)}
    rewards = GrpoOptions(max_completion_length=64).reward_options(parsed)
    assert rewards["cosine"].cosine_max_len == 64
    assert rewards["soft_overlong"] == SoftOverlongOptions(soft_max_length=64, soft_cache_length=16)
    set_by_user = DapoOptions(max_completion_length=64).reward_options({"cosine": CosineOptions(cosine_max_len=32)})
    assert set_by_user["cosine"].cosine_max_len == 32


def rlhf(model, data, tmp_path, *extra):
    argv = ["rlhf", "--algo", "grpo", "--model", str(model), "--dataset", str(data), "--tuner", "full"]
    return main([*argv, "--output-dir", str(tmp_path / "out"), "--max-steps", "1", *extra])


def test_a_batch_that_splits_a_group_is_an_error_naming_the_flags(tiny_model, token_task, tmp_path, capsys):
    data, rewards = token_task
    code = rlhf(
        tiny_model,
        data,
        tmp_path,
        "--reward-funcs",
        f"{rewards}:band_share",
        "--num-generations",
        "4",
        "--per-device-train-batch-size",
        "6",
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "--per-device-train-batch-size (6)" in err and "--num-generations (4)" in err


def test_the_default_batch_of_1_becomes_one_group(tiny_model, token_task, tmp_path, capsys):
    data, rewards = token_task
    extra = ["--reward-funcs", f"{rewards}:band_share", "--num-generations", "4", "--max-completion-length", "4"]
    assert rlhf(tiny_model, data, tmp_path, *extra, "--gradient-checkpointing", "false") == 0
    assert "[omni] --per-device-train-batch-size 4: a batch of 1 would split" in capsys.readouterr().err
    completions = [json.loads(line) for line in (tmp_path / "out" / "completions.jsonl").read_text().splitlines()]
    assert len(completions) == 4  # one step: one group of 4


def test_no_reward_is_an_error(tiny_model, token_task, tmp_path, capsys):
    assert rlhf(tiny_model, token_task[0], tmp_path, "--num-generations", "2", "--batch-size", "2") != 0
    assert "--reward-funcs is empty" in capsys.readouterr().err


def test_an_unknown_reward_names_the_installed_ones(tiny_model, token_task, tmp_path, capsys):
    code = rlhf(
        tiny_model,
        token_task[0],
        tmp_path,
        "--reward-funcs",
        "format,acuracy",
        "--num-generations",
        "2",
        "--batch-size",
        "2",
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "reward 'acuracy' is not installed" in err and "accuracy" in err


def test_a_missing_reward_file_is_an_error_naming_it(tiny_model, token_task, tmp_path, capsys):
    code = rlhf(
        tiny_model,
        token_task[0],
        tmp_path,
        "--reward-funcs",
        "format",
        "nope.py:f",
        "--num-generations",
        "2",
        "--batch-size",
        "2",
    )
    assert code != 0
    assert "nope.py does not exist" in capsys.readouterr().err
