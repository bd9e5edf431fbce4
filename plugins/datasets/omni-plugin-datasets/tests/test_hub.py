"""Hub ids resolve to the `hub` spec and load through `datasets.load_dataset` (here: a local dataset)."""

from __future__ import annotations

import datasets
from omni.data.convert import to_messages_row
from omni.data.resolve import resolve_dataset
from omni.plugins import load_plugins
from omni_plugin_datasets.hub import load_hub_dataset

from tests.core.data_helpers import write_jsonl


def test_hub_ids_resolve_after_names_and_local_paths(tmp_path, monkeypatch):
    registry = load_plugins({"OMNI_PLUGINS": "datasets"}).registry
    assert resolve_dataset("tatsu-lab/alpaca", registry).spec.name == "hub"
    assert resolve_dataset("org/name:subset", registry).spec.name == "hub"
    assert resolve_dataset("identity", registry).spec.name == "identity"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    write_jsonl(tmp_path / "org" / "name.jsonl", [{"text": "x"}])
    assert resolve_dataset("org/name.jsonl", registry).spec is None  # an existing path is read as a file


def test_load_dataset_code_path_with_a_local_dataset(tmp_path):
    folder = tmp_path / "alpaca"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(3)])
    rows = load_hub_dataset(str(folder), None, streaming=False)
    assert isinstance(rows, datasets.Dataset) and len(rows) == 3
    assert to_messages_row(rows[0])["messages"][1] == {"role": "assistant", "content": "a0"}
    streamed = load_hub_dataset(str(folder), None, streaming=True)
    assert isinstance(streamed, datasets.IterableDataset)
    assert [r["output"] for r in streamed] == ["a0", "a1", "a2"]
