"""Every file format loads, and Alpaca, ShareGPT, query/response and OpenAI content parts convert."""

from __future__ import annotations

import csv
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omni.data import DataOptions, Row, load_datasets
from omni.plugins import load_plugins

from tests.core.data_helpers import CHAT, load, write_jsonl

ROWS = [
    {**CHAT, "solution": "42"},
    {"messages": [{"role": "system", "content": "Be brief."}, *CHAT["messages"]], "solution": "7"},
]


def test_jsonl(tmp_path):
    loaded = load(str(write_jsonl(tmp_path / "a.jsonl", ROWS)))
    assert [dict(r) for r in loaded.train] == ROWS
    assert isinstance(loaded.train[0], Row) and loaded.train[1].location == 2
    assert loaded.val is None and loaded.skipped == 0


def test_json_array_and_json_lines_named_json(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps(ROWS))
    assert [dict(r) for r in load(str(array)).train] == ROWS
    assert load(str(array)).train[1].location == "row 1"
    lines = write_jsonl(tmp_path / "b.json", ROWS)
    assert [dict(r) for r in load(str(lines)).train] == ROWS


def test_csv_alpaca_and_json_cells(tmp_path):
    path = tmp_path / "a.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "input", "output", "images"])
        writer.writerow(["Add these", "1 2", "3", ""])
        writer.writerow(["Say hi\nplease", "", "hi", ""])  # a quoted field over two file lines
        writer.writerow(["<image>What colour?", "", "red", '["a.png"]'])
    rows = load(str(path)).train
    assert rows[0]["messages"] == [{"role": "user", "content": "Add these\n1 2"}, {"role": "assistant", "content": "3"}]
    assert rows[1]["messages"][0]["content"] == "Say hi\nplease"
    assert rows[2]["images"] == ["a.png"]
    assert [r.location for r in rows] == [2, 3, 5]


def test_parquet(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    rows = load(str(path)).train
    assert [dict(r) for r in rows] == ROWS and rows[1].location == "row 1"


def test_saved_dataset_folder(tmp_path):
    datasets.Dataset.from_list(ROWS).save_to_disk(tmp_path / "ds")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(tmp_path / "dd")
    assert [dict(r) for r in load(str(tmp_path / "ds")).train] == ROWS
    assert [dict(r) for r in load(str(tmp_path / "dd")).train] == ROWS


def test_alpaca_with_system_and_history(tmp_path):
    row = {"system": "S", "history": [["q1", "a1"]], "instruction": "q2", "input": "", "output": "a2", "id": 9}
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert loaded == {
        "id": 9,
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"},
        ],
    }


def test_sharegpt_roles(tmp_path):
    turns = [("system", "S"), ("human", "weather?"), ("function_call", '{"name": "w"}'), ("observation", "sunny"),
             ("gpt", "It is sunny.")]  # fmt: skip
    row = {"conversations": [{"from": f, "value": v} for f, v in turns], "tools": "[]"}
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert [m["role"] for m in loaded["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert loaded["messages"][2]["tool_calls"] == [{"type": "function", "function": {"name": "w", "arguments": {}}}]
    assert "tools" not in loaded  # an empty tool list is no tools


def test_query_response(tmp_path):
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [{"query": "q", "response": "r"}]))).train
    assert loaded["messages"] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]


def test_trl_prompt_completion_and_preference_rows(tmp_path):
    rows = [
        {"prompt": "2+2?", "completion": "4"},
        {"prompt": [{"role": "user", "content": "2+2?"}], "solution": "4"},
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "assistant", "content": "Go away."}]},
    ]  # fmt: skip
    registry = load_plugins({"OMNI_PLUGINS": ""}).registry
    options = DataOptions(dataset=[str(write_jsonl(tmp_path / "a.jsonl", rows))])
    first, prompt_only, preference, conversational = load_datasets(options, registry, require_answer=False).train
    assert first["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert prompt_only == {"messages": [{"role": "user", "content": "2+2?"}], "solution": "4"}
    assert preference["messages"][-1] == {"role": "assistant", "content": "Paris."}
    assert preference["rejected_response"] == "Lyon." and "chosen" not in preference
    assert conversational["messages"][-1]["content"] == "Hello!" and conversational["rejected_response"] == "Go away."


def test_text_rows_stay_text(tmp_path):
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [{"text": "Once upon a time."}]))).train
    assert loaded == {"text": "Once upon a time."}


def test_openai_content_parts(tmp_path):
    content = [
        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
        {"type": "text", "text": "and "},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "text", "text": " what are these?"},
    ]
    row = {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "a cat"}]}
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert loaded["messages"][0]["content"] == "<image>and <audio> what are these?"
    assert loaded["images"] == ["https://x/cat.png"]
    assert loaded["audios"] == ["data:audio/wav;base64,UklGRg=="]


def test_media_tags_pair_with_columns(tmp_path):
    row = {"messages": [{"role": "user", "content": "<image><image>same?"}, {"role": "assistant", "content": "no"}],
           "images": ["a.png", "b.png"]}  # fmt: skip
    assert load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train[0]["images"] == ["a.png", "b.png"]


@pytest.mark.parametrize("suffix", [".txt", ".xlsx"])
def test_unsupported_file_type(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    path.write_text("x")
    with pytest.raises(Exception, match="unsupported dataset file type"):
        load(str(path))


def test_byte_order_mark_is_tolerated(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(CHAT) + "\n", encoding="utf-8-sig")
    assert [dict(r) for r in load(str(path)).train] == [CHAT]


@pytest.mark.parametrize(
    "columns", [["question=query", "answer=response"], ['{"question": "query", "answer": "response"}']]
)
def test_columns_are_renamed_before_reading(tmp_path, columns):
    path = write_jsonl(tmp_path / "a.jsonl", [{"question": "q", "answer": "a", "id": 1}])
    (row,) = load(str(path), columns=columns).train
    assert row == {"id": 1, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def test_bad_columns_flag(tmp_path):
    with pytest.raises(Exception, match="--columns: 'question' is not OLD=NEW"):
        load(str(write_jsonl(tmp_path / "a.jsonl", [CHAT])), columns=["question"])
