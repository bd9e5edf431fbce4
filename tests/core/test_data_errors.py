"""Bad rows stop with `file:line: what is wrong`, or with --skip-bad-rows are skipped and counted."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omni.errors import DataError, OmniError

from tests.core.data_helpers import CHAT, load, write_jsonl

USER_ONLY = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"messages": [', "not valid JSON"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0] has role 'robot'"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            "messages[1] is a user message after a user message",
        ),
        ({"messages": [*CHAT["messages"], {"role": "system", "content": "late"}]}, "only the first message may be one"),
        (USER_ONLY, "no assistant answer to train on"),
        ({**CHAT, "images": ["a.png"]}, "0 <image> tag(s) in the messages but 1 file(s) in images"),
        ({"question": "x"}, "no conversation found"),
        ({"conversations": [{"from": "alien", "value": "x"}]}, "unknown speaker 'alien'"),
        ({"messages": "nope"}, "messages is a string that is not valid JSON"),
        ([1, 2], "a row must be a JSON object"),
    ],
    ids=[
        "json",
        "role",
        "alternation",
        "late-system",
        "no-answer",
        "image-count",
        "no-columns",
        "sharegpt",
        "messages-type",
        "not-object",
    ],
)
def test_jsonl_error_names_file_and_line(tmp_path, bad, message):
    path = write_jsonl(tmp_path / "a.jsonl", [CHAT, CHAT, bad if isinstance(bad, str) else bad])
    with pytest.raises(DataError) as info:
        load(str(path))
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_csv_error_names_file_line(tmp_path):
    path = tmp_path / "a.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "response"])
        writer.writerow(["multi\nline", "ok"])
        writer.writerow(["x", "y", "extra"])
    with pytest.raises(DataError, match=rf"^{path}:4: has 3 fields but the header has 2"):
        load(str(path))


def test_json_array_and_parquet_errors_name_row(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps([CHAT, USER_ONLY]))
    with pytest.raises(DataError, match=rf"^{array}:row 1: no assistant answer"):
        load(str(array))
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([CHAT, CHAT, USER_ONLY]), parquet)
    with pytest.raises(DataError, match=rf"^{parquet}:row 2: "):
        load(str(parquet))


def test_broken_json_array_names_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n{"messages": []},\n{oops}\n]')
    with pytest.raises(DataError, match=rf"^{path}:3: not valid JSON"):
        load(str(path))


def test_skip_bad_rows_counts_them(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [CHAT, "{broken", USER_ONLY, CHAT, {"x": 1}])
    loaded = load(str(path), skip_bad_rows=True)
    assert len(loaded.train) == 2 and loaded.skipped == 3
    assert loaded.skipped_rows.examples[0].startswith(f"{path}:2: not valid JSON")
    assert "skipped 3 bad row(s)" in loaded.skipped_rows.summary()


def test_all_rows_bad_is_an_error(tmp_path):
    with pytest.raises(OmniError, match="no training rows left"):
        load(str(write_jsonl(tmp_path / "a.jsonl", [USER_ONLY])), skip_bad_rows=True)


def test_unknown_dataset_lists_registered(tmp_path):
    with pytest.raises(OmniError, match="'nope': neither an existing file nor a registered dataset; registered"):
        load("nope")
    with pytest.raises(OmniError, match="missing.jsonl': no such file"):
        load(str(tmp_path / "missing.jsonl"))


def test_no_dataset_flag():
    with pytest.raises(OmniError, match="pass --dataset"):
        load()
