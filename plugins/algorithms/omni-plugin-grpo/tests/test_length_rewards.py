"""Length-shaped rewards, measured in tokens from `completion_ids`: `length`, `cosine`, `soft_overlong`."""

from __future__ import annotations

import pytest
from omni.api import OmniError
from omni_plugin_grpo.rewards.cosine import CosineReward, cosine_schedule
from omni_plugin_grpo.rewards.length import LengthReward, SoftOverlongReward
from omni_plugin_grpo.rewards.options import CosineOptions, LengthOptions, SoftOverlongOptions


def ids(*lengths):
    return [[7] * n for n in lengths]


def test_length_peaks_at_the_target_and_falls_to_zero():
    reward = LengthReward(LengthOptions(length_target=10))
    assert reward([None] * 5, ["x"] * 5, completion_ids=ids(10, 5, 15, 0, 30)) == [1.0, 0.5, 0.5, 0.0, 0.0]


def test_length_rewards_say_they_need_token_ids():
    with pytest.raises(OmniError, match="length reward measures completions in tokens and needs `completion_ids`"):
        LengthReward(LengthOptions())(["q"], ["an answer"])


CORNERS = CosineOptions(
    cosine_min_len_value_wrong=-0.5,
    cosine_max_len_value_wrong=0.0,
    cosine_min_len_value_correct=1.0,
    cosine_max_len_value_correct=0.5,
    cosine_max_len=100,
)


@pytest.mark.parametrize(
    ("completion", "length", "expected"),
    [
        (r"\boxed{4}", 0, 1.0),  # correct and short: min_len_value_correct
        (r"\boxed{4}", 100, 0.5),  # correct at max length: max_len_value_correct
        (r"\boxed{4}", 500, 0.5),  # past max length: held at the end value
        (r"\boxed{4}", 50, 0.75),  # half way: the mean of the two
        (r"\boxed{5}", 0, -0.5),  # wrong and short: min_len_value_wrong
        (r"\boxed{5}", 100, 0.0),  # wrong at max length: max_len_value_wrong
        (r"\boxed{5}", 50, -0.25),
    ],
)
def test_cosine_corners(completion, length, expected):
    reward = CosineReward(CORNERS)
    assert reward(["q"], [completion], solution=["4"], completion_ids=ids(length)) == [pytest.approx(expected)]


def test_cosine_schedule_is_monotone_between_its_ends():
    values = [cosine_schedule(n, 100, 1.0, 0.5) for n in range(0, 101, 10)]
    assert values == sorted(values, reverse=True)
    assert cosine_schedule(25, 100, 1.0, 0.0) == pytest.approx((1 + 2**-0.5) / 2)


def test_cosine_gives_no_reward_where_the_solution_is_unreadable():
    reward = CosineReward(CORNERS)
    assert reward(["q", "q"], ["4", "4"], solution=["", "4"], completion_ids=ids(0, 0)) == [None, 1.0]


def test_cosine_needs_its_max_length():
    with pytest.raises(OmniError, match="--cosine-max-len is not set"):
        CosineReward(CosineOptions())


def test_soft_overlong_is_free_then_linear_then_minus_one():
    reward = SoftOverlongReward(SoftOverlongOptions(soft_max_length=100, soft_cache_length=20))
    lengths = (10, 80, 90, 100, 120)
    assert reward([None] * 5, ["x"] * 5, completion_ids=ids(*lengths)) == [0.0, 0.0, -0.5, -1.0, -1.0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SoftOverlongOptions(soft_cache_length=20), "--soft-max-length is not set"),
        (SoftOverlongOptions(soft_max_length=100), "--soft-cache-length is not set"),
        (SoftOverlongOptions(soft_max_length=100, soft_cache_length=100), "must be smaller than --soft-max-length"),
        (SoftOverlongOptions(soft_max_length=-5, soft_cache_length=1), "--soft-max-length must be a positive"),
    ],
)
def test_bad_soft_overlong_options_name_the_flag(options, message):
    with pytest.raises(OmniError, match=message):
        SoftOverlongReward(options)
