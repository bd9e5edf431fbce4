"""`omni infer` from the command line, in a subprocess, on a tiny model."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def query_answer(tiny_chat_model):
    """The answer `omni infer --query` prints (streamed), checked against the non-streamed one."""
    from tests.helpers import run_omni

    common = ["infer", "--model", str(tiny_chat_model), "--max-new-tokens", "10"]
    streamed = run_omni(*common, "--query", QUESTION)
    assert streamed.returncode == 0, streamed.stderr
    whole = run_omni(*common, "--query", QUESTION, "--stream", "false")
    assert whole.returncode == 0, whole.stderr
    assert streamed.stdout == whole.stdout
    return streamed.stdout.removesuffix("\n")


def test_query_prints_one_answer(query_answer):
    assert query_answer.strip()


def test_input_output_answers_every_row(omni_cli, tiny_chat_model, tmp_path, query_answer):
    rows = [
        {"messages": [{"role": "user", "content": QUESTION}], "id": 1},
        {"instruction": QUESTION, "output": "Paris", "id": 2},  # Alpaca, with a reference answer
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "id": 3},
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = tmp_path / "out" / "answers.jsonl"
    result = omni_cli(
        "infer", "--model", str(tiny_chat_model), "--input", str(source), "--output", str(target),
        "--max_new_tokens", "10", "--max-batch-size", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote 3 answers to {target}" in result.stdout
    out = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in out] == [1, 2, 3]
    assert out[0]["messages"] == rows[0]["messages"]
    assert out[0]["response"] == out[1]["response"] == query_answer  # batched answers equal the single query's
    assert out[2]["messages"][-1] == {"role": "assistant", "content": "hello"}  # kept for comparison, not prompted
    assert sorted(p.name for p in target.parent.iterdir()) == ["answers.jsonl"]  # no temporary file left


def test_piped_chat_keeps_history_until_clear(omni_cli, tiny_chat_model, query_answer):
    turns = f"{QUESTION}\nand then?\n/clear\n{QUESTION}\n/exit\nnever asked\n"
    result = omni_cli("infer", "--model", str(tiny_chat_model), "--max-new-tokens", "10", input=turns)
    assert result.returncode == 0, result.stderr
    first = query_answer + "\n"
    assert result.stdout.startswith(first)  # the first turn is the single query
    assert result.stdout.endswith("\n" + first)  # after /clear the same question gets the same answer
    middle = result.stdout[len(first) : -len(first)]
    assert middle.strip()  # the second turn was answered with the first in its history


def test_input_needs_output(omni_cli, tmp_path):
    result = omni_cli("infer", "--input", str(tmp_path / "rows.jsonl"))
    assert result.returncode == 2
    assert "--input and --output go together" in result.stderr


def test_unknown_engine_names_what_is_installed(omni_cli):
    # As on a machine without omni-plugin-vllm: the known provider is named.
    result = omni_cli("infer", "--infer-backend", "vllm", "--query", "hi", env={"OMNI_DISABLE_PLUGINS": "vllm"})
    assert result.returncode == 2
    assert "engine 'vllm' is not installed: pip install omni-plugin-vllm (installed engines: " in result.stderr
    assert " pt" in result.stderr.split("installed engines:")[1]


def test_adapter_without_model_uses_its_recorded_base(omni_cli, tiny_chat_model, make_lora_adapter, tmp_path):
    from omni.infer.engine import GenerationConfig, InferRequest
    from omni.infer.pt_engine import PtEngine
    from omni.plugins import load_plugins, using_host

    adapter = make_lora_adapter(tiny_chat_model, tmp_path / "adapter", seed=5)  # PEFT records the base's path
    result = omni_cli("infer", "--adapters", str(adapter), "--query", QUESTION, "--max-new-tokens", "10")
    assert result.returncode == 0, result.stderr
    with using_host(load_plugins({"OMNI_PLUGINS": "lora"})):
        engine = PtEngine(str(tiny_chat_model), adapters={"adapter": str(adapter)})
    request = InferRequest({"messages": [{"role": "user", "content": QUESTION}]}, GenerationConfig(10), "adapter")
    assert result.stdout == engine.generate([request])[0].choices[0].text + "\n"


def test_terminal_chat_prompts_and_streams(tiny_chat_model, query_answer):
    leader, follower = pty.openpty()  # stdin is a terminal, as when a person types
    omni = Path(sys.executable).with_name("omni")
    proc = subprocess.Popen(
        [str(omni), "infer", "--model", str(tiny_chat_model), "--max-new-tokens", "10"],
        stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(follower)
    os.write(leader, f"{QUESTION}\n/clear\n/exit\n".encode())
    out, err = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0, err
    assert out.startswith(f"chatting with {tiny_chat_model}; /clear: forget the conversation so far")
    assert f"<<< >>> {query_answer}\n<<< (conversation cleared)\n<<< " in out
