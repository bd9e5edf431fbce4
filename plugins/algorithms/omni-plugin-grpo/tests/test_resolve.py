"""`--reward-funcs` resolution: registered rewards with their options, user rewards from files, weights, errors."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import omni_plugin_grpo
import pytest
from omni.api import MissingCapabilityError, OmniError, RewardSpec, hookimpl, option
from omni_plugin_grpo.rewards import GrpoRewardOptions, WeightedReward, resolve_rewards
from omni_plugin_grpo.rewards.options import RepetitionOptions

USER_REWARDS = """
def brevity(prompts, completions, **columns):
    return [1.0 / len(c) for c in completions]

def uses_columns(prompts, completions, solution, images, **columns):
    return [float(s) + len(i) for s, i in zip(solution, images)]

async def remote_judge(prompts, completions, **columns):
    return [0.5 for _ in completions]

class Constant:
    def __call__(self, prompts, completions, **columns):
        return [2.0] * len(completions)

NOT_CALLABLE = 3
"""


@pytest.fixture
def registry(omni_host, register_plugin):
    register_plugin(omni_plugin_grpo, name="grpo", distribution="omni-plugin-grpo")
    return omni_host.registry


@pytest.fixture
def user_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # references are relative to the working directory
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent(USER_REWARDS))
    return "my_rewards.py"


def test_registered_rewards_resolve_in_order_with_default_weights(registry):
    rewards = resolve_rewards(["accuracy", "format"], None, registry, {})
    assert [(r.name, r.weight) for r in rewards] == [("accuracy", 1.0), ("format", 1.0)]
    assert rewards[1](["q"], ["<think>a</think><answer>4</answer>"]) == [1.0]


def test_commas_separate_names_as_spaces_do(registry):
    rewards = resolve_rewards(["accuracy,format", "repetition"], [1, 0.5, 2], registry, {})
    assert [(r.name, r.weight) for r in rewards] == [("accuracy", 1.0), ("format", 0.5), ("repetition", 2.0)]


def test_options_reach_a_class_reward(registry):
    options = {"repetition": RepetitionOptions(repetition_n_grams=1, repetition_max_penalty=-2.0)}
    (reward,) = resolve_rewards(["repetition"], None, registry, options)
    assert reward(["q"], ["go go go go"]) == [-1.5]  # 4 unigrams, 1 distinct


def test_a_reward_left_out_of_the_options_gets_their_defaults(registry):
    (reward,) = resolve_rewards(["format"], None, registry, {"repetition": RepetitionOptions()})
    assert reward(["q", "q"], ["<think>a</think><answer>4</answer>", "4"]) == [1.0, 0.0]


def test_weighted_rewards_carry_a_name_for_trainer_metrics(registry):
    (reward,) = resolve_rewards(["format"], [0.5], registry, {})
    assert isinstance(reward, WeightedReward) and reward.__name__ == "format" and reward.weight == 0.5


def test_user_functions_and_classes_load_from_a_file(registry, user_file):
    rewards = resolve_rewards(["my_rewards.py:brevity", "my_rewards.py:Constant", "accuracy"], None, registry, {})
    assert [r.name for r in rewards] == ["my_rewards.py:brevity", "my_rewards.py:Constant", "accuracy"]
    assert rewards[0](["q", "q"], ["ab", "abcd"]) == [0.5, 0.25]
    assert rewards[1](["q"], ["x"]) == [2.0]


def test_an_async_user_reward_is_awaited(registry, user_file):
    (reward,) = resolve_rewards(["my_rewards.py:remote_judge"], None, registry, {})
    assert reward(prompts=["q"], completions=["x"]) == [0.5]


def test_extra_columns_and_images_reach_a_user_reward(registry, user_file):
    (reward,) = resolve_rewards(["my_rewards.py:uses_columns"], None, registry, {})
    scores = reward(
        ["q", "q"], ["a", "b"], solution=["1", "2"], images=[["a.png", "b.png"], []], completion_ids=[[1], [2]]
    )
    assert scores == [3.0, 2.0]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "missing.py:brevity",
            r"reward 'missing.py:brevity': the file missing.py does not exist \(looked for .*missing.py\)",
        ),
        (
            "my_rewards.py:nope",
            r"my_rewards.py has no 'nope' \(it defines: brevity, uses_columns, remote_judge, Constant\)",
        ),
        ("my_rewards.py:NOT_CALLABLE", r"'NOT_CALLABLE' in my_rewards.py is a int, not a function or class"),
        ("my_rewards.py", r"name the function in the file too, as FILE.py:FUNCTION"),
    ],
)
def test_file_errors_name_the_file_and_function(registry, user_file, ref, message):
    with pytest.raises(OmniError, match=message):
        resolve_rewards([ref], None, registry, {})


def test_a_file_that_fails_to_import_is_named(registry, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(OmniError, match=rf"reward file {broken} failed to import: ModuleNotFoundError"):
        resolve_rewards([f"{broken}:f"], None, registry, {})


def test_weights_must_match_the_rewards_one_to_one(registry):
    with pytest.raises(
        OmniError,
        match=r"--reward-weights has 1 value\(s\) but --reward-funcs names 2 reward\(s\) \(accuracy, format\)",
    ):
        resolve_rewards(["accuracy", "format"], [1.0], registry, {})


def test_an_unknown_reward_lists_the_installed_ones(registry):
    with pytest.raises(
        MissingCapabilityError, match=r"reward 'brevity' is not installed \(installed rewards: accuracy, cosine"
    ):
        resolve_rewards(["brevity"], None, registry, {})


@dataclass
class _SomeOptions:
    some_knob: int = option(1, help="a knob")


class _FunctionWithOptions:
    """A plugin whose reward declares options but names a plain function: its options could never arrive."""

    @hookimpl
    def register_rewards(self, register):
        register(
            RewardSpec(
                name="knobbed",
                description="d",
                impl="omni_plugin_grpo.rewards.accuracy:accuracy_reward",
                options=_SomeOptions,
            )
        )


def test_a_function_reward_cannot_declare_options(registry, register_plugin):
    register_plugin(_FunctionWithOptions(), name="knobbed", distribution="omni-plugin-knobbed")
    with pytest.raises(
        OmniError,
        match=r"reward 'knobbed' \(omni-plugin-knobbed\) declares options but its implementation is a function",
    ):
        resolve_rewards(["knobbed"], None, registry, {})


def test_grpo_reward_options_default_to_no_rewards_and_no_weights():
    assert GrpoRewardOptions() == GrpoRewardOptions(reward_funcs=[], reward_weights=None)
