"""`omni serve` from the command line: flags, start-up on a free port, request logging, graceful shutdown."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import start_serving

OMNI = [sys.executable, "-m", "omni.cli.main"]


def test_serve_help_shows_the_selected_engines_options() -> None:
    for command in ("serve", "deploy"):
        shown = subprocess.run([*OMNI, command, "--infer_backend", "pt", "--help"], capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        for flag in ("--adapters", "--api-key", "--host", "--port", "--served-model-name", "--max-batch-size"):
            assert flag in shown.stdout


@pytest.fixture
def served(tiny_chat_model: Path) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """`omni serve` in a subprocess on a free port; yields the process, its base URL and its log lines so far."""
    process, url, log = start_serving(
        [*OMNI, "serve", "--model", str(tiny_chat_model), "--served-model-name", "tiny", "--port", "0"]
        + ["--api-key", "sk-cli", "--max-new-tokens", "64"]
    )
    yield process, url, log
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def test_serve_answers_logs_each_request_and_finishes_streams_when_interrupted(served) -> None:
    process, url, log = served
    headers = {"Authorization": "Bearer sk-cli"}
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "temperature": 0}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] > 0

    # Interrupt while a stream is in flight: the stream still runs to its end, then the server exits.
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=headers) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("data: ")
        process.send_signal(signal.SIGINT)
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    assert process.wait(timeout=60) == 0
    logged = "".join(log)
    assert re.search(r"POST /v1/chat/completions 200 \d+ms", logged), logged
    assert "serving models: tiny" in logged
