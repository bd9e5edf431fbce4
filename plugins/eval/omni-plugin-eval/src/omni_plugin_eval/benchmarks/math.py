"""GSM8K-style math: the reference's final answer (after ``####``, as in GSM8K's test.jsonl) against the model's,
compared with math-verify (numbers, fractions, LaTeX and boxed answers equal by value)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omni_plugin_eval.benchmarks.files import files_under, read_records, required, subset_of

INSTRUCTION = "Please reason step by step, and put your final answer after ####."


class Gsm8k:
    """Rows {"question", "answer"} (GSM8K's worked answer ending ``#### 72``, or a bare final answer / "solution")."""

    max_new_tokens = 512

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def load(self, path: Path) -> Iterator[dict[str, Any]]:
        files = files_under(path, (".jsonl", ".json"))
        for file in files:
            for record in read_records(file):
                reference = str(required(record, "answer", "solution"))
                final = reference.rsplit("####", 1)[-1].strip().replace(",", "")
                subset = subset_of(record, several_files=len(files) > 1)
                question = str(required(record, "question", "problem"))
                yield {"subset": subset, "question": question, "answer": final, "source": record.where()}

    def prompt(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": f"{row['question'].strip()}\n{INSTRUCTION}"}]}

    def score(self, answer: str, row: dict[str, Any]) -> dict[str, Any]:
        from math_verify import parse, verify

        # The text after the last "####" when the model wrote one, else math-verify finds the final answer.
        final = answer.rsplit("####", 1)[-1].replace(",", "") if "####" in answer else answer
        predicted = parse(final)
        correct = bool(predicted) and verify(parse(row["answer"]), predicted)
        return {"accuracy": float(correct), "extracted": str(predicted[-1]) if predicted else None}
