"""Where a run writes, what it writes, and that the final save never leaves half a model behind."""

from __future__ import annotations

import json
import re

import pytest
from omni.errors import OmniError
from omni.train import outputs
from omni.train.tuner import Tuner


def test_default_output_dir_is_versioned_per_model(tmp_path):
    first = outputs.resolve_output_dir(None, "Qwen/Qwen3-0.6B", root=tmp_path)
    assert first.parent == tmp_path / "Qwen3-0.6B" and re.fullmatch(r"v0-\d{8}-\d{6}", first.name)
    first.mkdir(parents=True)
    assert outputs.resolve_output_dir(None, "Qwen/Qwen3-0.6B", root=tmp_path).name.startswith("v1-")
    assert outputs.resolve_output_dir("mine", "Qwen/Qwen3-0.6B", root=tmp_path).name == "mine"


def test_resume_last_finds_the_newest_complete_checkpoint_or_says_what_to_do(tmp_path, capsys):
    with pytest.raises(OmniError, match="no complete checkpoint-N directory"):
        outputs.resolve_checkpoint("last", tmp_path)
    for step in (5, 10, 12):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        if step != 12:  # checkpoint-12 was being written when the run was killed
            (tmp_path / f"checkpoint-{step}" / outputs.COMPLETE_MARKER).write_text("{}")
    assert outputs.resolve_checkpoint("last", tmp_path).endswith("checkpoint-10")
    assert "skipped checkpoint-12 (not completely written)" in capsys.readouterr().err
    assert outputs.resolve_checkpoint(str(tmp_path / "checkpoint-5"), tmp_path).endswith("checkpoint-5")
    with pytest.raises(OmniError, match="checkpoint-12: the checkpoint was not completely written"):
        outputs.resolve_checkpoint(str(tmp_path / "checkpoint-12"), tmp_path)
    with pytest.raises(OmniError, match="not a checkpoint directory"):
        outputs.resolve_checkpoint(str(tmp_path), tmp_path)


def test_train_loss_after_a_resume_covers_the_whole_run():
    log = [{"step": s, "loss": loss} for s, loss in ((2, 4.0), (4, 3.0), (6, 2.0), (8, 1.0))]
    # Logged every 2 steps, resumed from step 4: the Trainer's figure is the mean of steps 5-8 (1.5).
    assert outputs.whole_run_train_loss(log, 4, 8, 1.5) == pytest.approx((4 + 4 + 3 + 3 + 2 + 2 + 1 + 1) / 8)


class _Broken(Tuner):
    def save(self, model, output_dir, *, state_dict=None):
        (output_dir / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError("disk full")


class _Fine(Tuner):
    def save(self, model, output_dir, *, state_dict=None):
        (output_dir / "adapter_model.safetensors").write_bytes(b"whole")


def test_final_save_is_all_or_nothing(tmp_path):
    with pytest.raises(OSError):
        outputs.save_final(_Broken(None), None, None, tmp_path)
    assert not (tmp_path / "adapter_model.safetensors").exists() and not (tmp_path / ".final.tmp").exists()
    assert outputs.save_final(_Fine(None), None, None, tmp_path) == ["adapter_model.safetensors"]
    assert (tmp_path / "adapter_model.safetensors").read_bytes() == b"whole"
    assert not (tmp_path / ".final.tmp").exists()


def test_args_and_loss_plot(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Opts:
        rank: int = 8

    path = outputs.write_args(tmp_path, {"model": "/m", "lora": Opts()})
    assert json.loads(path.read_text()) == {"model": "/m", "lora": {"rank": 8}}
    history = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 2, "eval_loss": 1.7}]
    assert outputs.plot_loss(history, tmp_path / "loss.png").stat().st_size > 1000
    assert outputs.plot_loss([], tmp_path / "none.png") is None
