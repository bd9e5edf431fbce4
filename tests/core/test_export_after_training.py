"""The whole adapter path from the CLI: `omni sft` -> `omni infer --adapters` -> `omni export --merge-lora`.

Training writes args.json with the base model; inference and export find the base through it, and the
merged model answers exactly as base + adapter did.
"""

from __future__ import annotations

import json

import pytest

QUESTION = "What color is the sky?"


@pytest.mark.slow
def test_sft_adapter_answers_the_same_before_and_after_merging(omni_cli, tiny_chat_model, tmp_path):
    row = {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "The sky is blue."}]}
    data = tmp_path / "sky.jsonl"
    data.write_text((json.dumps(row) + "\n") * 8)
    run = tmp_path / "run"
    trained = omni_cli(
        "sft", "--model", str(tiny_chat_model), "--dataset", str(data), "--tuner", "lora",
        "--max-steps", "3", "--learning-rate", "0.01", "--output-dir", str(run), "--save-strategy", "no",
        timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run / "args.json").read_text())["model"] == str(tiny_chat_model)

    ask = ["--query", QUESTION, "--max-new-tokens", "8"]
    with_adapter = omni_cli("infer", "--adapters", str(run), *ask)  # no --model: args.json names the base
    assert with_adapter.returncode == 0, with_adapter.stderr

    exported = omni_cli("export", "--adapters", str(run), "--merge-lora")
    assert exported.returncode == 0, exported.stderr
    merged = tmp_path / "run-merged"
    assert f"exported model saved to {merged}" in exported.stdout

    from_merged = omni_cli("infer", "--model", str(merged), *ask)
    assert from_merged.returncode == 0, from_merged.stderr
    assert from_merged.stdout == with_adapter.stdout
