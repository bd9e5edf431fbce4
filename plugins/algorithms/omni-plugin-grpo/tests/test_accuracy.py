"""The `accuracy` reward: math-verify equivalence of the completion's final answer and the `solution` column."""

from __future__ import annotations

import threading

import pytest
from omni.api import OmniError
from omni_plugin_grpo.rewards.accuracy import accuracy_reward


def score(completion, solution):
    return accuracy_reward(["question"], [completion], solution=[solution])[0]


@pytest.mark.parametrize(
    ("completion", "solution"),
    [
        ("0.5", r"\frac{1}{2}"),
        (r"The answer is $\frac{1}{2}$.", "0.5"),
        (r"so we get \boxed{\dfrac{1}{2}}", r"$\frac12$"),
        (r"\boxed{1+x^2}", "x^2+1"),
        (r"\boxed{2\sqrt{2}}", r"2\sqrt{2}"),
        (r"\boxed{\{2, 1\}}", r"\{1,2\}"),
        ("1000", "1,000"),
        ("It is 42.", 42),
        ("Natalia sold 72 clips.", "She sold 48/2 = 24 in May, so 48+24 = 72.\n#### 72"),
    ],
)
def test_equivalent_answers_score_one(completion, solution):
    assert score(completion, solution) == 1.0


@pytest.mark.parametrize(
    ("completion", "solution"),
    [
        (r"\boxed{\frac{1}{3}}", r"\frac{1}{2}"),
        (r"\boxed{2}", r"2\sqrt{2}"),
        ("no number here", "7"),
        (r"\boxed{2} or maybe \boxed{3}", "3"),
    ],
)
def test_wrong_or_missing_answers_score_zero(completion, solution):
    assert score(completion, solution) == 0.0


def test_boxed_answer_wins_over_later_numbers():
    assert score(r"\boxed{12}, which is 3 times 4", "12") == 1.0


def test_answer_block_wins_over_numbers_in_the_reasoning():
    completion = "<think>3 apples and 7 pears make 10; times 4 is 40, plus 2</think><answer>42</answer>"
    assert score(completion, "42") == 1.0


def test_the_answer_after_a_think_block_wins_over_numbers_in_the_reasoning():
    """Qwen3 and DeepSeek-R1 answer after their reasoning, without <answer> tags."""
    assert score("<think>\n6 * 7: 6 * 5 is 30, plus 12\n</think>\n\n42", "42") == 1.0
    assert score("<think>\nit is 42\n</think>\n\n40", "42") == 0.0


def test_conversational_completions_are_read_like_strings():
    completions = [[{"role": "assistant", "content": r"\boxed{4}"}], [{"role": "assistant", "content": "5"}]]
    assert accuracy_reward(["q", "q"], completions, solution=["4", "4"]) == [1.0, 0.0]


@pytest.mark.parametrize("solution", [None, "", "   "])
def test_a_row_without_a_solution_gets_no_reward(solution):
    assert score(r"\boxed{4}", solution) is None


def test_a_dataset_without_a_solution_column_is_an_error_naming_its_columns():
    with pytest.raises(OmniError, match=r"accuracy reward needs a 'solution' column.*answer, images"):
        accuracy_reward(["q"], ["4"], answer=["4"], images=[[]])


def test_works_off_the_main_thread():
    # math-verify's timeout uses SIGALRM, which only the main thread may set
    results = []
    worker = threading.Thread(target=lambda: results.append(score(r"\boxed{0.5}", r"\frac{1}{2}")))
    worker.start()
    worker.join()
    assert results == [1.0]
