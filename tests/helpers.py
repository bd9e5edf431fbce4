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


# Questions SmolLM2-135M-Instruct answers in a short sentence, and the word its right answer holds: where a model
# answers right it is sure of each token, so engines running the same weights should give the same greedy answer.
SHORT_ANSWERS = {
    "What is the capital of France? Answer in one word.": "Paris",
    "What is the capital of Italy? Answer in one word.": "Rome",
    "What is the capital of Japan? Answer in one word.": "Tokyo",
    "What is the opposite of hot? Answer in one word.": "cold",
}
# Questions it answers at length, hesitating between openings: engines computing in different precisions may
# part ways on these, but only between tokens both find likely (`greedy_divergence`).
OPEN_QUESTIONS = (
    "What color is the sky? Answer in one word.",
    "How many legs does a spider have? Answer with a number.",
    "What do bees make? Answer in one word.",
    "What animal says meow? Answer in one word.",
)


def greedy_answers(engine: Any, questions: Sequence[str], max_new_tokens: int = 12, top_logprobs: int = 5) -> list:
    """`engine`'s greedy `Choice` for each question (one batch), with its tokens' `top_logprobs` alternatives."""
    from omni.api import GenerationConfig, InferRequest

    config = GenerationConfig(max_new_tokens=max_new_tokens, logprobs=True, top_logprobs=top_logprobs)
    requests = [InferRequest({"messages": [{"role": "user", "content": q}]}, config) for q in questions]
    return [response.choices[0] for response in engine.generate(requests)]


def greedy_divergence(reference: Any, other: Any, end_token_id: int) -> str | None:
    """Where two greedy answers (`Choice`s with `top_logprobs`) part ways, if they do so for more than numeric
    noise (vLLM's `check_logprobs_close`): None when they are the same tokens, or the same up to a first differing
    token that is among the other answer's top alternatives at that step, each way; otherwise what differs.

    After the first differing token the answers continue different texts, so nothing after it is compared. An
    answer that stopped has no entry for its end token (`end_token_id`): where one stops and the other goes on,
    the end token must be among the other's alternatives (the other way round cannot be checked).
    """
    pairs = zip(reference.token_ids, other.token_ids, strict=False)
    step = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
    if step is None:
        if len(reference.token_ids) == len(other.token_ids):
            return None
        step, going_on = min(len(reference.token_ids), len(other.token_ids)), max(reference, other, key=_length)
        if end_token_id in going_on.top_logprobs[step]:
            return None
        return (
            f"one answer stops where the other goes on with its end token not among the top "
            f"{len(going_on.top_logprobs[step])}: {reference.text!r} vs {other.text!r}"
        )
    chosen, alternative = reference.token_ids[step], other.token_ids[step]
    if chosen in other.top_logprobs[step] and alternative in reference.top_logprobs[step]:
        return None
    return (
        f"token {step} differs ({chosen} vs {alternative}) and is not among the other's top "
        f"{len(reference.top_logprobs[step])}: {reference.text!r} vs {other.text!r}; "
        f"top log-probabilities {reference.top_logprobs[step]} vs {other.top_logprobs[step]}"
    )


def _length(choice: Any) -> int:
    return len(choice.token_ids)


def check_vllm_answers_as_the_pt_engine(registry: Any, folder: Path, torch_dtype: str) -> list[tuple[str, str]]:
    """Ask the pt engine, then omni's vllm engine, the model `folder` (loaded in `torch_dtype`) `SHORT_ANSWERS`' and
    `OPEN_QUESTIONS`' questions greedily, one engine at a time, and assert that vLLM answers as the pt engine:
    the same answer wherever the pt engine answers right, and every answer close (`greedy_divergence`).

    Returns each question's answers (pt's, vLLM's), to print."""
    from omni.api import ModelOptions, PtEngine

    questions = [*SHORT_ANSWERS, *OPEN_QUESTIONS]
    model_options = ModelOptions(model=str(folder), torch_dtype=torch_dtype)
    pt = PtEngine(str(folder), model_options=model_options, registry=registry)
    try:
        pt_answers, end_token_id = greedy_answers(pt, questions), pt.tokenizer.eos_token_id
    finally:
        pt.close()
    vllm = registry.find("engines", "vllm")
    options = vllm.spec.default_options()
    options.enforce_eager, options.max_model_len = True, 512  # no compilation: starts sooner on CPU
    engine = vllm.spec.load()(str(folder), options=options, model_options=model_options, registry=registry)
    try:
        vllm_answers = greedy_answers(engine, questions)
    finally:
        engine.close()
    answers = [(a.text, b.text) for a, b in zip(pt_answers, vllm_answers, strict=True)]
    assert "Paris" in pt_answers[0].text, answers
    for word, (pt_text, vllm_text) in zip(SHORT_ANSWERS.values(), answers, strict=False):
        assert word not in pt_text or vllm_text == pt_text, answers
    divergences = [greedy_divergence(a, b, end_token_id) for a, b in zip(pt_answers, vllm_answers, strict=True)]
    assert divergences == [None] * len(questions)
    return answers
