"""Bad rows stop with `file:line: what is wrong`, or with --skip-bad-rows are skipped and counted."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omni.data import DataOptions, load_datasets
from omni.errors import DataError, OmniError
from omni.plugins import load_plugins

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
        (
            {**CHAT, "messages": [{"role": "user", "content": "<image><image>"}, CHAT["messages"][1]], "images": ["a"]},
            "2 <image> tag(s) in the messages but 1 file(s) in images",
        ),
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


@pytest.mark.parametrize("skip_bad_rows", [False, True], ids=["stop", "skip-bad-rows"])
def test_a_binary_file_is_named_with_its_byte_offset_even_when_skipping_bad_rows(tmp_path, skip_bad_rows):
    path = tmp_path / "images.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataError) as info:
        load(str(path), skip_bad_rows=skip_bad_rows)
    assert str(info.value).startswith(f"{path}:1: byte 0x89 at byte offset 0 is not UTF-8 text; is this a binary file?")


def test_undecodable_and_nul_bytes_are_named_by_line_and_byte_offset(tmp_path):
    latin1 = tmp_path / "a.csv"
    head = b"query,response\nhi,hello\n"
    latin1.write_bytes(head + "caf\u00e9,ok\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{latin1}:3: byte 0xe9 at byte offset {len(head) + 3} is not UTF-8"):
        load(str(latin1))
    first = (json.dumps(CHAT) + "\n").encode()
    nul = tmp_path / "a.jsonl"
    nul.write_bytes(first + b'{"messages"\x00: []}\n')
    with pytest.raises(DataError, match=rf"^{nul}:2: byte 0x00 at byte offset {len(first) + 11} "):
        load(str(nul))
    array = tmp_path / "a.json"
    array.write_bytes(b'[\n{"text": "caf\xe9"}\n]')
    with pytest.raises(DataError, match=rf"^{array}:2: byte 0xe9 at byte offset 15 "):
        load(str(array))


def test_jsonl_lines_end_only_at_newlines_and_columns_count_characters(tmp_path):
    # A carriage return is JSON whitespace: it neither ends a line nor shifts the lines after it.
    with_cr = json.dumps(CHAT).replace(", ", ",\r ", 1)
    path = write_jsonl(tmp_path / "a.jsonl", ["\ufeff" + json.dumps(CHAT), with_cr, '{"m": "\u00e9\u00e9" x}'])
    with pytest.raises(DataError, match=rf"^{path}:3: not valid JSON \(Expecting ',' delimiter at column 12\)"):
        load(str(path))


def test_rows_with_media_the_model_cannot_take_are_bad_rows_unless_media_as_text(tmp_path):
    image_row = {
        "messages": [{"role": "user", "content": "<image>What is it?"}, {"role": "assistant", "content": "A cat."}],
        "images": ["cat.png"],
    }
    path = write_jsonl(tmp_path / "a.jsonl", [CHAT, image_row, CHAT])
    registry = load_plugins({"OMNI_PLUGINS": ""}).registry

    def read(**flags):
        return load_datasets(DataOptions(dataset=[str(path)], **flags), registry, modalities=("text",))

    with pytest.raises(DataError, match=rf"^{path}:2: has 1 image item\(s\) in images, but the model takes only text"):
        read()
    assert read(skip_bad_rows=True).skipped == 1
    assert len(read(media_as_text=True).train) == 3
    # A model that takes images reads the row; without modalities nothing is checked.
    assert len(load_datasets(DataOptions(dataset=[str(path)]), registry, modalities=("text", "image")).train) == 3
