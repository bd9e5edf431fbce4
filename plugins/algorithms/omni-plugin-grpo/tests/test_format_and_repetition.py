"""The `format` reward (a regex over the whole completion) and the `repetition` n-gram penalty."""

from __future__ import annotations

import pytest
from omni.api import OmniError
from omni_plugin_grpo.rewards.format import FormatReward
from omni_plugin_grpo.rewards.options import FormatOptions, RepetitionOptions
from omni_plugin_grpo.rewards.repetition import RepetitionReward


def test_default_format_is_think_then_answer():
    reward = FormatReward(FormatOptions())
    completions = [
        "<think>\nadd them\n</think>\n<answer>4</answer>\n",
        [{"role": "assistant", "content": "<think>x</think><answer>4</answer>"}],
        "<answer>4</answer>",
        "<think>x</think><answer>4</answer> and some chatter",
        "<think>x</think>",
    ]
    assert reward([None] * 5, completions) == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_a_user_pattern_replaces_the_default():
    reward = FormatReward(FormatOptions(format_pattern=r"Answer: \d+"))
    assert reward(["q", "q"], ["Answer: 12", "Answer: twelve"]) == [1.0, 0.0]


def test_an_invalid_pattern_is_an_error_naming_the_flag():
    with pytest.raises(OmniError, match=r"--format-pattern '\(' is not a valid regex"):
        FormatReward(FormatOptions(format_pattern="("))


def test_repetition_is_zero_without_repeats_and_max_penalty_when_all_repeat():
    reward = RepetitionReward(RepetitionOptions(repetition_n_grams=2, repetition_max_penalty=-1.0))
    completions = ["a b c d e", "go go go go go", "a b", "a", ""]
    # "go go go go go" has 4 bigrams, 1 distinct: penalty -(1 - 1/4); too short for a bigram: 0
    assert reward([None] * 5, completions) == [0.0, -0.75, 0.0, 0.0, 0.0]


def test_repetition_counts_ngrams_of_the_configured_size_case_blind():
    reward = RepetitionReward(RepetitionOptions(repetition_n_grams=3, repetition_max_penalty=-0.5))
    # 6 trigrams, 3 distinct (the cat sat / cat sat the / sat the cat, each twice) once case is ignored
    text = "The cat sat the cat sat THE CAT"
    assert reward(["q"], [text]) == [pytest.approx(-0.5 * (1 - 3 / 6))]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RepetitionOptions(repetition_n_grams=0), "--repetition-n-grams must be at least 1"),
        (RepetitionOptions(repetition_max_penalty=0.5), "--repetition-max-penalty is a penalty and must be <= 0"),
    ],
)
def test_bad_repetition_options_are_errors_naming_the_flag(options, message):
    with pytest.raises(OmniError, match=message):
        RepetitionReward(options)
