"""The calculator task: sums, differences and products of digits ("What is 7 * 8?"). A model cannot know the
answers of held-out ones it never saw, but can get them right by calling the calculator environment's `calculate`
tool with the question's expression and repeating its result (the tiny test models did not learn to copy the
expression into the call: docs/grpo.md, multi-turn rollouts).

`write_task` writes SFT rows that show the whole exchange (question, call, result, answer) and GRPO rows (the
question and its `solution`), from disjoint sets of questions, plus held-out questions of neither.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from omni_plugin_grpo.environments.calculator import CALCULATOR_TOOLS

_VALUES = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_QUESTIONS = [f"{a} {op} {b}" for a in range(2, 10) for op in _VALUES for b in range(2, 10)]


def value(expression: str) -> int:
    a, op, b = expression.split()
    return _VALUES[op](int(a), int(b))


def _user(expression: str) -> dict:
    return {"role": "user", "content": f"What is {expression}?"}


def sft_row(expression: str) -> dict:
    call = {"type": "function", "function": {"name": "calculate", "arguments": {"expression": expression}}}
    return {
        "tools": CALCULATOR_TOOLS,
        "messages": [
            _user(expression),
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": str(value(expression))},
            {"role": "assistant", "content": str(value(expression))},
        ],
    }


def question_row(expression: str) -> dict:
    return {"messages": [_user(expression)], "solution": str(value(expression))}


def write_task(folder: Path, *, sft: int, rl: int, held_out: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """(sft.jsonl, questions.jsonl, held_out.jsonl) in `folder`."""
    questions = random.Random(seed).sample(_QUESTIONS, sft + rl + held_out)
    files = []
    for name, rows in (
        ("sft", [sft_row(q) for q in questions[:sft]]),
        ("questions", [question_row(q) for q in questions[sft : sft + rl]]),
        ("held_out", [question_row(q) for q in questions[sft + rl :]]),
    ):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(path)
    return files[0], files[1], files[2]
