"""Helpers shared by the core tests and the plugins' tests: `omni` in a subprocess, the colour task, `omni serve` in a
subprocess, transformers' own Qwen3-Omni processor."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
OMNI = Path(sys.executable).with_name("omni")


def run_omni(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess:
    """Run the installed `omni` console script in a subprocess; OMNI_* variables come only from `env`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_") or k == "OMNI_CACHE"}
    full_env = {**inherited, **(env or {})}
    return subprocess.run([str(OMNI), *args], capture_output=True, text=True, env=full_env, timeout=timeout, **kwargs)


COLORS = {"apple": "red", "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "banana": "yellow"}
COLOR_QUESTIONS = (
    "What color is the {}?",
    "Tell me the color of the {}.",
    "Which color does the {} have?",
    "The {} is what color?",
)


def color_rows(questions: Sequence[str] = COLOR_QUESTIONS, answer: str = "The {item} is {color}.") -> list[dict]:
    """A learnable task, a fixed colour per item: every item asked each way, answered `answer` (item, color)."""
    return [
        {
            "messages": [
                {"role": "user", "content": question.format(item)},
                {"role": "assistant", "content": answer.format(item=item, color=color)},
            ]
        }
        for question in questions
        for item, color in COLORS.items()
    ]


def write_color_task(path: Path) -> Path:
    """The colour task's rows, shuffled (seed 0), as the jsonl file `path`."""
    rows = color_rows()
    random.Random(0).shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def side_environment_python(folder: str, holding: str) -> Path:
    """The Python of an environment scripts/setup.sh makes beside .venv (REPO/`folder`, holding `holding`): its
    absence skips the test, except in CI, where setup.sh must have made it."""
    python = REPO / folder / "bin" / "python"
    if not python.is_file():
        message = f"{python} is missing: scripts/setup.sh creates the environment of {holding}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python


def start_serving(command: list[str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    """Run an `omni serve` command line and wait until it listens: (the process, its base URL, its log lines).

    The log keeps filling from a background thread. Fails the test, showing the log, when the server exits first.
    """
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    assert process.stderr is not None
    for line in process.stderr:
        log.append(line)
        found = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
        if found:
            break
    else:
        process.wait()
        pytest.fail("omni serve exited before listening:\n" + "".join(log[-30:]))
    threading.Thread(target=lambda: log.extend(process.stderr), daemon=True).start()
    return process, found.group(1), log


def qwen3_omni_processor(path: Path | str) -> Any:
    """transformers' own Qwen3-Omni processor for `path`, built without torchvision.

    `AutoProcessor` cannot build it here: the processor insists on a video processor and transformers'
    only one for Qwen3-Omni is torchvision-based. Everything else is the real processor: the image
    processor (PIL backend) stands in the video slot only to satisfy the constructor, and videos are
    not passed.
    """
    import transformers

    class ImageAndAudioProcessor(transformers.Qwen3OmniMoeProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name != "video_processor":
                return super().check_argument_for_proper_class(argument_name, argument)

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    images = transformers.AutoImageProcessor.from_pretrained(path)
    audio = transformers.AutoFeatureExtractor.from_pretrained(path)
    return ImageAndAudioProcessor(images, images, audio, tokenizer, chat_template=tokenizer.chat_template)
