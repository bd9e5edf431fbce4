"""`--streaming`: rows read, encoded and packed while training reads them, never all in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.data import load_datasets
from omni.data.options import DataOptions
from omni.plugins import load_plugins, using_host
from omni.template import get_template
from omni.template.options import TemplateCliOptions
from omni.train.encoding import EncodedStream, RowEncoder, encode_rows
from torch.utils.data import DataLoader

from tests.core.test_train_cli import FAST
from tests.helpers import COLOR_QUESTIONS, color_rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from omni.testing.models import build_tiny_model

    return build_tiny_model("qwen3", tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """Colour questions: three phrasings per object to train on, the fourth held out."""
    folder = tmp_path_factory.mktemp("data")
    train, val = folder / "train.jsonl", folder / "val.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in color_rows(COLOR_QUESTIONS[:3])))
    val.write_text("".join(json.dumps(r) + "\n" for r in color_rows(COLOR_QUESTIONS[3:])))
    return train, val


@pytest.fixture(scope="module")
def encoder(model_dir) -> RowEncoder:
    from transformers import AutoTokenizer

    template = get_template(None, AutoTokenizer.from_pretrained(model_dir), TemplateCliOptions().template_options())
    return RowEncoder(template, max_length=64)


def test_a_stream_encodes_the_same_features_as_loading_everything(data, encoder):
    stream = load_datasets(DataOptions(dataset=[str(data[0])], streaming=True)).train
    in_memory = load_datasets(DataOptions(dataset=[str(data[0])])).train
    streamed = EncodedStream(stream, encoder, packing_length=None)
    assert list(streamed) == encode_rows(encoder, in_memory).features
    assert list(streamed) == list(streamed)  # every epoch re-reads the file in the same order


def test_a_packed_stream_keeps_every_token_within_the_packing_length(data, encoder):
    rows = load_datasets(DataOptions(dataset=[str(data[0])], streaming=True)).train
    features = encode_rows(encoder, rows).features
    packed = list(EncodedStream(rows, encoder, packing_length=64))
    assert len(packed) < len(features) and all(len(p["input_ids"]) <= 64 for p in packed)
    assert sorted(t for p in packed for t in p["input_ids"]) == sorted(t for f in features for t in f["input_ids"])


def test_data_loader_workers_each_read_their_share_of_the_rows(data, encoder):
    rows = load_datasets(DataOptions(dataset=[str(data[0])], streaming=True)).train
    stream = EncodedStream(rows, encoder, packing_length=None)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    assert sorted(map(str, loader)) == sorted(map(str, stream))  # no row twice, none lost


def _omni(*argv: str) -> int:
    with using_host(load_plugins({"OMNI_PLUGINS": "lora"})):
        return main(list(argv))


def test_streaming_sft_with_packing_learns_from_the_cli(model_dir, data, tmp_path):
    out = tmp_path / "run"
    argv = ["sft", "--model", str(model_dir), "--dataset", str(data[0]), "--val-dataset", str(data[1])]
    argv += ["--streaming", "--packing", "--max-length", "64", "--tuner", "full", "--learning-rate", "3e-3"]
    argv += ["--max-steps", "24", "--batch-size", "2", "--eval-steps", "8", "--output-dir", str(out)]
    assert _omni(*argv, *FAST) == 0
    logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in logs if "loss" in r]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert logs[-1]["step"] == 24  # the stream is read again once a pass ends
    assert train[-1] < train[0] - 1.0
    assert evals[-1] < evals[0] - 0.5


def test_streaming_without_max_steps_is_refused_before_loading_a_model(data, capsys):
    assert _omni("sft", "--model", "/nonexistent", "--dataset", str(data[0]), "--streaming") == 2
    assert "--streaming needs --max-steps" in capsys.readouterr().err
