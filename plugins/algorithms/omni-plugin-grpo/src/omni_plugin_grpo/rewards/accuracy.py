"""The `accuracy` reward: is a completion's final answer mathematically equal to the row's `solution`?

math-verify does the parsing and the comparison (LaTeX, numbers, fractions, sets, intervals ...); this
module only decides which text to give it.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from omni_plugin_grpo.rewards.inputs import Completion, completion_text, required_column

_TIMEOUT_S = 5
# A `\boxed{}` answer wins over anything else; without one, the last LaTeX or plain expression counts.
_ANSWER_EXTRACTION = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_MATH_DELIMITER = re.compile(r"\$|\\\(|\\\[|\\boxed")


def accuracy_reward(prompts: list[Any], completions: list[Completion], **columns: Any) -> list[float | None]:
    """1.0 per completion whose answer equals its row's ``solution``, 0.0 if not, None when the row's
    solution is empty or not something math-verify can read (the row is then left out of the reward).

    A dataset without a ``solution`` column is an error naming the columns it has. After a multi-turn rollout
    the answer is the model's last turn (``final_answer``), not the tool results before it.
    """
    solutions = required_column("accuracy", "solution", columns, len(completions))
    answers = columns.get("final_answer") or [completion_text(c) for c in completions]
    return [_as_score(is_correct(a, s)) for a, s in zip(answers, solutions, strict=True)]


def is_correct(completion: str, solution: Any) -> bool | None:
    """Whether the completion's final answer equals `solution`; None when the solution can't be read."""
    gold = _parse_solution(solution)
    if not gold:
        return None
    answer = parse(
        _answer_region(completion), _ANSWER_EXTRACTION, extraction_mode="first_match", parsing_timeout=_timeout()
    )
    return bool(answer) and verify(gold, answer, timeout_seconds=_timeout())


def _parse_solution(solution: Any) -> list[Any]:
    if solution is None or not str(solution).strip():
        return []
    text = str(solution).strip()
    # A bare solution ("2\sqrt{2}", "x^2+1") is one LaTeX expression: math-verify reads LaTeX only between
    # delimiters, and undelimited it would extract just the leading "2".
    if not _MATH_DELIMITER.search(text):
        text = f"${text}$"
    return parse(text, parsing_timeout=_timeout())


def _answer_region(completion: str) -> str:
    """The last <answer>...</answer> block when there is one, else the text after the reasoning's ``</think>``
    (Qwen3, DeepSeek-R1 ...), so numbers in the reasoning don't count."""
    blocks = _ANSWER_TAG.findall(completion)
    return blocks[-1] if blocks else completion.rpartition("</think>")[2]


def _timeout() -> int | None:
    # math-verify times out with SIGALRM, which only the main thread may set.
    return _TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _as_score(correct: bool | None) -> float | None:
    return None if correct is None else float(correct)
