"""Short-answer QA scored as SQuAD scores it: exact match and token F1 after normalisation, best over gold answers.

The normalisation (lower case, no punctuation, no articles, single spaces) is SQuAD v1.1's evaluation script's,
written out here because the libraries that carry it (`evaluate`) pull a hub download for the metric itself.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omni_plugin_eval.benchmarks.files import files_under, read_records, required, subset_of

INSTRUCTION = "Answer with a short phrase only."


def normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(gold).split()
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if not predicted or not expected:
        return float(predicted == expected)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


class ShortAnswer:
    """Rows {"question", "answer" or "answers": [...], optional "context"}."""

    max_new_tokens = 32

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def load(self, path: Path) -> Iterator[dict[str, Any]]:
        files = files_under(path, (".jsonl", ".json"))
        for file in files:
            for record in read_records(file):
                gold = required(record, "answers", "answer")
                answers = [str(a) for a in gold] if isinstance(gold, list) else [str(gold)]
                yield {
                    "subset": subset_of(record, several_files=len(files) > 1),
                    "question": str(required(record, "question")),
                    "context": str(record.fields.get("context") or ""),
                    "answers": answers,
                    "source": record.where(),
                }

    def prompt(self, row: dict[str, Any]) -> dict[str, Any]:
        context = f"{row['context'].strip()}\n\n" if row["context"] else ""
        return {"messages": [{"role": "user", "content": f"{context}{row['question'].strip()}\n{INSTRUCTION}"}]}

    def score(self, answer: str, row: dict[str, Any]) -> dict[str, Any]:
        first_line = answer.strip().split("\n", 1)[0]
        exact = max(float(normalize(first_line) == normalize(gold)) for gold in row["answers"])
        f1 = max(token_f1(first_line, gold) for gold in row["answers"])
        return {"exact_match": exact, "f1": f1, "extracted": first_line}
