"""Multiple-choice benchmarks: the model is shown the options as letters and answers with one.

One prompt format for all of them (the question, one ``X. option`` line per option, then an instruction to answer
with the letter); the answer's first standalone option letter is its choice.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omni_plugin_eval.benchmarks.files import Record, files_under, read_records, required, subset_of

INSTRUCTION = "Answer with the option's letter from the given choices directly."
LETTERS = string.ascii_uppercase


def choice_prompt(question: str, options: list[list[str]]) -> str:
    """The text asked: the question, its lettered options, the instruction."""
    lines = [question.strip(), *(f"{label}. {text.strip()}" for label, text in options), INSTRUCTION]
    return "\n".join(lines)


def extract_choice(answer: str, labels: list[str]) -> str | None:
    """The first of `labels` standing alone in `answer` (``B``, ``(B)``, ``B. Paris``), or None."""
    pattern = r"\b(" + "|".join(re.escape(label) for label in labels) + r")\b"
    found = re.search(pattern, answer)
    return found.group(1) if found else None


class MultipleChoice:
    """Rows with a question, lettered options (columns A, B, C ... or a `choices` list) and the right letter."""

    max_new_tokens = 16  # a letter, perhaps with the option's text

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def load(self, path: Path) -> Iterator[dict[str, Any]]:
        files = files_under(path)
        for file in files:
            for record in self.records(file):
                yield self.row(record, subset=subset_of(record, several_files=len(files) > 1))

    def records(self, file: Path) -> Iterator[Record]:
        return read_records(file)

    def row(self, record: Record, *, subset: str) -> dict[str, Any]:
        fields = record.fields
        choices = fields.get("choices")
        if isinstance(choices, list) and choices:
            options = [[LETTERS[i], str(text)] for i, text in enumerate(choices)]
        else:
            options = [[letter, str(fields[letter])] for letter in LETTERS if fields.get(letter) not in (None, "")]
        if len(options) < 2:
            raise record.error("needs at least two options: columns A, B ... or a `choices` list")
        answer = str(required(record, "answer", "label", "answerKey")).strip()
        labels = [label for label, _ in options]
        if answer.isdigit() and answer not in labels:  # a 0-based index, as in `choices` lists
            answer = LETTERS[int(answer)] if int(answer) < len(options) else answer
        if answer not in labels:
            raise record.error(f"answer {answer!r} is not one of the options {', '.join(labels)}")
        question = str(required(record, "question", "stem"))
        return {"subset": subset, "question": question, "options": options, "answer": answer, "source": record.where()}

    def prompt(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": choice_prompt(row["question"], row["options"])}]}

    def score(self, answer: str, row: dict[str, Any]) -> dict[str, Any]:
        chosen = extract_choice(answer, [label for label, _ in row["options"]])
        return {"accuracy": float(chosen == row["answer"]), "extracted": chosen}


class Mmlu(MultipleChoice):
    """MMLU's release: headerless CSVs question,A,B,C,D,answer named SUBJECT_test.csv (under data/test/)."""

    def load(self, path: Path) -> Iterator[dict[str, Any]]:
        folder = path / "data" / "test" if (path / "data" / "test").is_dir() else path
        pattern = "*_test.csv" if folder.is_dir() and any(folder.glob("*_test.csv")) else "*.csv"
        for file in files_under(folder, (".csv",), pattern=pattern):
            subset = file.stem.removesuffix("_test")
            for record in read_records(file, header=False, columns=("question", "A", "B", "C", "D", "answer")):
                yield self.row(record, subset=subset)


class CEval(MultipleChoice):
    """C-Eval's release: CSVs with a header (id,question,A,B,C,D,answer,explanation) named SUBJECT_val.csv (under val/)."""

    def load(self, path: Path) -> Iterator[dict[str, Any]]:
        folder = path / "val" if (path / "val").is_dir() else path
        for file in files_under(folder, (".csv",)):
            subset = re.sub(r"_(val|dev|test)$", "", file.stem)
            for record in read_records(file):
                yield self.row(record, subset=subset)


class Arc(MultipleChoice):
    """AI2 ARC's JSONL: {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}; labels may be 1-4."""

    def load(self, path: Path) -> Iterator[dict[str, Any]]:
        files = files_under(path, (".jsonl",))
        for file in files:
            for record in read_records(file):
                question = record.fields.get("question")
                if not isinstance(question, dict) or not isinstance(question.get("choices"), list):
                    raise record.error('expected "question": {"stem", "choices": [{"text", "label"}]}')
                labels = [str(c.get("label", "")) for c in question["choices"]]
                # Some ARC questions label their options 1-4: shown as A-D like the rest.
                letters = {label: LETTERS[i] for i, label in enumerate(labels)}
                key = str(required(record, "answerKey"))
                if key not in letters:
                    raise record.error(f"answerKey {key!r} is not one of the labels {', '.join(labels)}")
                fields = {
                    "question": question.get("stem", ""),
                    "choices": [c.get("text", "") for c in question["choices"]],
                    "answer": letters[key],
                }
                arc = Record(fields, record.file, record.line)
                yield self.row(arc, subset=subset_of(arc, several_files=len(files) > 1))


class MediaChoice(MultipleChoice):
    """Multiple choice about an image or a sound: rows add image/images and/or audio/audios, relative to the file."""

    def row(self, record: Record, *, subset: str) -> dict[str, Any]:
        row = super().row(record, subset=subset)
        found = False
        for column, single in (("images", "image"), ("audios", "audio")):
            value = record.fields.get(column, record.fields.get(single))
            if value in (None, "", []):
                continue
            paths = [
                str((record.file.parent / str(item)).resolve())
                for item in (value if isinstance(value, list) else [value])
            ]
            missing = [p for p in paths if not Path(p).is_file()]
            if missing:
                raise record.error(f"{single} file not found: {missing[0]}")
            row[column] = paths
            found = True
        if not found:
            raise record.error("needs an image/images or audio/audios field")
        return row

    def prompt(self, row: dict[str, Any]) -> dict[str, Any]:
        tags = "<image>" * len(row.get("images", [])) + "<audio>" * len(row.get("audios", []))
        text = tags + choice_prompt(row["question"], row["options"])
        media = {column: row[column] for column in ("images", "audios") if column in row}
        return {"messages": [{"role": "user", "content": text}], **media}
