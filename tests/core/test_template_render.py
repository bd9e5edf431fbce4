"""`omni template render`: a row as tokens with the trained ones marked, from the tokenizer alone."""

from __future__ import annotations

import json

import pytest
from omni.cli.main import main

from tests.core.data_helpers import write_jsonl


@pytest.fixture
def data(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"}]},
        {"instruction": "Add 1 and 2", "output": "3"},
    ]
    return str(write_jsonl(tmp_path / "a.jsonl", rows))


def test_render_marks_trained_text(tiny_model_dir, data, capsys):
    assert main(["template", "render", "--model", str(tiny_model_dir), "--dataset", data, "--index", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {data}:2  template=default")
    assert "[[3<|eot_id|>]]" in out and "Add 1 and 2<|eot_id|>" in out


def test_render_json_and_template_flags(tiny_model_dir, data, capsys):
    argv = ["template", "render", "--model", str(tiny_model_dir), "--dataset", data, "--json", "--loss-scope", "all"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["row"] == f"{data}:1" and report["num_tokens"] == len(report["tokens"])
    assert all(token["trained"] for token in report["tokens"])


def test_render_missing_row(tiny_model_dir, data, capsys):
    assert main(["template", "render", "--model", str(tiny_model_dir), "--dataset", data, "--index", "5"]) != 0
    assert "has no row 5" in capsys.readouterr().err
