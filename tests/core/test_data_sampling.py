"""`NAME#N` sampling, validation splits, --val-dataset and lazy --streaming."""

from __future__ import annotations

import pytest
from omni.data import StreamingRows
from omni.data.options import DataOptions
from omni.errors import DataError, OmniError
from omni.options import add_arguments, build_options, fields_of

from tests.core.data_helpers import load, write_jsonl


def chats(n: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    ]


def questions(rows) -> list[str]:
    return [r["messages"][0]["content"] for r in rows]


def test_hash_n_samples_with_the_seed(tmp_path):
    path = str(write_jsonl(tmp_path / "a.jsonl", chats(10)))
    first = questions(load(f"{path}#4").train)
    assert len(first) == 4 and len(set(first)) == 4
    assert first == questions(load(f"{path}#4").train)
    assert first != questions(load(f"{path}#4", data_seed=1).train)


def test_hash_n_beyond_the_set_repeats_it(tmp_path):
    path = str(write_jsonl(tmp_path / "a.jsonl", chats(3)))
    rows = questions(load(f"{path}#7").train)
    assert len(rows) == 7 and all(rows.count(q) >= 2 for q in ("q0", "q1", "q2"))


def test_several_datasets_concatenate(tmp_path):
    a = str(write_jsonl(tmp_path / "a.jsonl", chats(3)))
    b = str(write_jsonl(tmp_path / "b.jsonl", chats(5)))
    assert len(load(a, f"{b}#2").train) == 5


def test_val_split_ratio(tmp_path):
    path = str(write_jsonl(tmp_path / "a.jsonl", chats(20)))
    loaded = load(path, val_split_ratio=0.25)
    assert len(loaded.train) == 15 and len(loaded.val) == 5
    assert not set(questions(loaded.train)) & set(questions(loaded.val))


def test_val_dataset_wins_over_split(tmp_path):
    train = str(write_jsonl(tmp_path / "a.jsonl", chats(4)))
    val = str(write_jsonl(tmp_path / "v.jsonl", chats(2)))
    loaded = load(train, val_dataset=[val], val_split_ratio=0.5)
    assert len(loaded.train) == 4 and len(loaded.val) == 2


def test_ms_swift_spellings_parse():
    import argparse

    parser = argparse.ArgumentParser()
    infos = add_arguments(parser, DataOptions)
    flags = vars(parser.parse_args(["--dataset", "a.jsonl", "--split_dataset_ratio", "0.1", "--dataset_seed", "7"]))
    options = build_options(DataOptions, infos, flags, {}, "")
    assert options.val_split_ratio == 0.1 and options.data_seed == 7
    assert {f.name for f in fields_of(DataOptions)} >= {"dataset", "val_dataset", "streaming", "skip_bad_rows"}


def test_streaming_reads_lazily(tmp_path):
    # A broken last line proves nothing past the rows taken is read (a full load would raise).
    path = write_jsonl(tmp_path / "a.jsonl", [*chats(3), "{broken"])
    loaded = load(str(path), streaming=True)
    assert isinstance(loaded.train, StreamingRows)
    iterator = iter(loaded.train)
    assert [next(iterator)["messages"][0]["content"] for _ in range(3)] == ["q0", "q1", "q2"]
    with pytest.raises(DataError, match=":4: not valid JSON"):
        next(iterator)
    assert questions(load(f"{path}#2", streaming=True).train) == ["q0", "q1"]  # streams take the first N


def test_streaming_skips_and_counts_while_reading(tmp_path):
    loaded = load(
        str(write_jsonl(tmp_path / "a.jsonl", [*chats(2), "{broken", *chats(1)])), streaming=True, skip_bad_rows=True
    )
    assert loaded.skipped == 0
    assert len(list(loaded.train)) == 3 and loaded.skipped == 1


def test_streaming_needs_val_dataset_for_validation(tmp_path):
    with pytest.raises(OmniError, match="with --streaming pass --val-dataset"):
        load(str(write_jsonl(tmp_path / "a.jsonl", chats(4))), streaming=True, val_split_ratio=0.1)
