"""Benchmark files in their public layouts, written at test time, and the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from omni_plugin_eval.benchmarks.math import INSTRUCTION as MATH_INSTRUCTION

# Questions a 135M chat model gets partly right: an agreement check needs answers that are neither all right nor
# all wrong.
GENERAL_KNOWLEDGE = [
    ("What is the capital of France?", ["Berlin", "Paris", "Rome", "Madrid"], "B"),
    ("Which planet is known as the Red Planet?", ["Mars", "Venus", "Jupiter", "Saturn"], "A"),
    ("What is 2 + 2?", ["3", "5", "4", "22"], "C"),
    ("Which animal barks?", ["Cat", "Cow", "Fish", "Dog"], "D"),
    ("What color is the sky on a clear day?", ["Blue", "Green", "Red", "Black"], "A"),
    ("How many legs does a spider have?", ["Six", "Eight", "Ten", "Four"], "B"),
    ("Which gas do plants take in from the air?", ["Oxygen", "Helium", "Carbon dioxide", "Neon"], "C"),
    ("What is frozen water called?", ["Steam", "Ice", "Mist", "Rain"], "B"),
    ("Which is the largest ocean?", ["Atlantic", "Indian", "Arctic", "Pacific"], "D"),
    ("Who wrote Romeo and Juliet?", ["Shakespeare", "Dickens", "Tolstoy", "Homer"], "A"),
    ("What do bees make?", ["Milk", "Silk", "Honey", "Wax paper"], "C"),
    ("How many days are in a week?", ["Five", "Six", "Eight", "Seven"], "D"),
    ("Which is a fruit?", ["Carrot", "Apple", "Potato", "Onion"], "B"),
    ("What is the boiling point of water at sea level in Celsius?", ["100", "50", "0", "212"], "A"),
    ("Which is the closest star to Earth?", ["Sirius", "Polaris", "The Sun", "Vega"], "C"),
    ("What is the chemical symbol for gold?", ["Ag", "Au", "Go", "Gd"], "B"),
]


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The embedded SmolLM2-135M-Instruct as a local checkpoint folder (converted once into omni's cache)."""
    from omni.models.embedded import smollm2_path

    return Path(smollm2_path())


@pytest.fixture(scope="session")
def general_mcq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multiple-choice JSONL file (question, A-D, answer letter) of easy general-knowledge questions."""
    path = tmp_path_factory.mktemp("mcq") / "general.jsonl"
    with path.open("w") as handle:
        for question, options, answer in GENERAL_KNOWLEDGE:
            handle.write(
                json.dumps({"question": question, **dict(zip("ABCD", options, strict=True)), "answer": answer}) + "\n"
            )
    return path


def write_arithmetic(folder: Path, *, train: int, held_out: int, seed: int = 0) -> tuple[Path, Path]:
    """Sums of two numbers from 1 to 29: `train` rows in the messages format that answer the benchmark's own prompt
    with ``#### SUM``, and `held_out` other sums as GSM8K-style rows ({"question", "answer": "#### SUM"})."""
    rng = random.Random(seed)
    pairs = [(a, b) for a in range(1, 30) for b in range(1, 30)]
    rng.shuffle(pairs)
    folder.mkdir(parents=True, exist_ok=True)
    train_file, held_out_file = folder / "train.jsonl", folder / "heldout.jsonl"
    with train_file.open("w") as handle:
        for a, b in pairs[:train]:
            messages = [
                {"role": "user", "content": f"What is {a} + {b}?\n{MATH_INSTRUCTION}"},
                {"role": "assistant", "content": f"#### {a + b}"},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")
    with held_out_file.open("w") as handle:
        for a, b in pairs[train : train + held_out]:
            handle.write(json.dumps({"question": f"What is {a} + {b}?", "answer": f"#### {a + b}"}) + "\n")
    return train_file, held_out_file
