"""omni-plugin-deepspeed: `--sequence-parallel-size` (DeepSpeed Ulysses) on 2 CPU processes (gloo).

Each long row is split across the processes; the loss, the gradients and the trained weights equal one
process training on the whole rows. Settings Ulysses cannot run are one-line errors before any model loads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from omni.api import IGNORE_INDEX, OmniError
from omni.train.collators import PaddingCollator, PaddingFreeCollator, SequenceShardCollator

from tests.core.test_distributed import assert_same_weights, weights

from .test_zero import NO_SAVES, _omni, omni_ok


def _logged(out: Path, key: str) -> list[float]:
    return [r[key] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if key in r]


def _long_rows(path: Path, words: int = 300) -> Path:
    """Four copies of one long conversation (~700 tokens): any order of rows gives the same batches."""
    rng = random.Random(0)
    vocabulary = "red green blue cat dog sky tree river stone cloud".split()
    half = " ".join(rng.choice(vocabulary) for _ in range(words // 2))
    row = {"messages": [{"role": "user", "content": half}, {"role": "assistant", "content": half[::-1]}]}
    path.write_text((json.dumps(row) + "\n") * 4)
    return path


@pytest.mark.slow  # three short runs of a tiny model, two of them on 2 processes: about 2 minutes on 2 cores
def test_rows_split_across_two_processes_train_as_one_process_does(tiny_qwen3, tmp_path):
    data = _long_rows(tmp_path / "long.jsonl")
    common = ["sft", "--model", tiny_qwen3, "--dataset", data, "--tuner", "full", "--max-steps", "2"]
    common += ["--learning-rate", "1e-3", *NO_SAVES]
    one = tmp_path / "one"
    omni_ok(*common, "--batch-size", "2", "--output-dir", one)

    # Two rows per step either way: here one per micro-batch, each split in halves across the two processes.
    split = ["--batch-size", "1", "--gradient-accumulation-steps", "2", "--nproc-per-node", "2"]
    zero2 = tmp_path / "zero2"
    result = omni_ok(*common, *split, "--deepspeed", "zero2", "--sequence-parallel-size", "2", "--output-dir", zero2)
    assert "each row split across 2 processes (Ulysses)" in result.stderr
    assert _logged(zero2, "loss") == pytest.approx(_logged(one, "loss"), rel=1e-5)
    assert _logged(zero2, "grad_norm") == pytest.approx(_logged(one, "grad_norm"), rel=1e-5)
    assert_same_weights(one, zero2)

    # ZeRO-3 with plain SGD, whose update is proportional to the gradient: the weights show its scale, and the
    # validation rows (whole rows on each process, Ulysses off) give one process's validation loss.
    from omni_plugin_deepspeed.strategy import load_config

    config = load_config("zero3")
    config |= {"optimizer": {"type": "SGD", "params": {"lr": 0.5}}, "zero_allow_untested_optimizer": True}
    (tmp_path / "sgd3.json").write_text(json.dumps(config))
    sgd = ["--learning-rate", "0.5", "--warmup-ratio", "0", "--val-dataset", data, "--eval-steps", "1"]
    plain, zero3 = tmp_path / "sgd-zero2", tmp_path / "sgd-zero3"
    omni_ok(*common, *sgd, "--batch-size", "1", "--nproc-per-node", "2", "--deepspeed", tmp_path / "sgd3.json",
            "--output-dir", plain)  # fmt: skip
    omni_ok(*common, *sgd, *split, "--deepspeed", tmp_path / "sgd3.json", "--sequence-parallel-size", "2",
            "--output-dir", zero3)  # fmt: skip
    assert _logged(zero3, "loss") == pytest.approx(_logged(plain, "loss"), rel=1e-5)
    assert _logged(zero3, "eval_loss") == pytest.approx(_logged(plain, "eval_loss"), rel=1e-5)
    before, after = weights(tiny_qwen3), weights(plain)
    moved = max((after[k] - before[k]).abs().max() for k in before.keys() & after.keys())
    assert moved > 1e-2
    assert_same_weights(plain, zero3, tol=1e-5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nproc-per-node", "3", "--deepspeed", "zero2", "--sequence-parallel-size", "2"],
         "--sequence-parallel-size 2 does not divide the run's 3 processes"),
        (["--nproc-per-node", "2", "--sequence-parallel-size", "2"],
         "--sequence-parallel-size is an option of the deepspeed strategy, which is off: switch it on with --deepspeed"),
        (["--nproc-per-node", "2", "--deepspeed", "zero3", "--sequence-parallel-size", "2", "--padding-free", "true"],
         "--padding-free and --packing with --sequence-parallel-size need flash attention on a GPU"),
        (["--nproc-per-node", "2", "--deepspeed", "zero3", "--sequence-parallel-size", "2", "--attn-impl", "eager"],
         "--attn-impl eager cannot run with --sequence-parallel-size"),
        (["--nproc-per-node", "2", "--deepspeed", "zero2", "--sequence-parallel-size", "0"],
         "--sequence-parallel-size 0: must be at least 1"),
    ],
)  # fmt: skip
def test_settings_ulysses_cannot_run_are_one_line_errors_before_the_model_loads(flags, message, colors, capsys):
    code = _omni("sft", "--model", "/nonexistent", "--dataset", str(colors), *flags)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "/nonexistent" not in err, err


def test_algorithms_that_cannot_split_rows_refuse_sequence_parallel(colors, capsys):
    flags = ["--nproc-per-node", "2", "--deepspeed", "zero2", "--sequence-parallel-size", "2"]
    code = _omni("rlhf", "--algo", "dpo", "--model", "/nonexistent", "--dataset", str(colors), *flags,
                 plugins="deepspeed,dpo")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "dpo does not train with rows split across processes" in err, err


def _row(length: int, prompt: int) -> dict:
    ids = list(range(10, 10 + length))
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]}


def test_batches_for_split_rows_divide_evenly_and_keep_their_positions():
    rows = [_row(7, 3), _row(4, 1)]
    padded = SequenceShardCollator(PaddingCollator(pad_token_id=0), shards=4, pad_token_id=0)(rows)
    assert padded["input_ids"].shape == (2, 8) and "attention_mask" not in padded and "loss_positions" not in padded
    assert padded["position_ids"].tolist() == [list(range(8)), list(range(8))]
    assert padded["labels"][0].tolist() == [IGNORE_INDEX] * 3 + list(range(13, 17)) + [IGNORE_INDEX]
    assert padded["num_tokens"] == 11

    # A padding-free row keeps the restart of positions at each sequence; the pad continues the last one.
    free = SequenceShardCollator(PaddingFreeCollator(), shards=4, pad_token_id=0)(rows)
    assert free["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4]]
    assert free["input_ids"].shape == (1, 12)


def test_rows_with_media_are_refused_by_name():
    row = {**_row(6, 2), "pixel_values": torch.zeros(4, 3)}
    with pytest.raises(OmniError, match="sequence parallel splits text rows only; these rows carry pixel_values"):
        SequenceShardCollator(PaddingCollator(pad_token_id=0), shards=2, pad_token_id=0)([row])
