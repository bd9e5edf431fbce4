"""A run killed while it saves a checkpoint resumes from the previous complete one and ends where an
uninterrupted run ends; bad rows stop a run before its model loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.plugins import load_plugins, using_host
from omni.train.tuners import FullTuner
from transformers import TrainerCallback

from tests.core.test_distributed import assert_same_weights
from tests.helpers import REPO, write_color_task

TRAIN = "--tuner full --max-steps 6 --save-steps 2 --batch-size 4 --logging-steps 2 --learning-rate 3e-3"
TRAIN += " --gradient-checkpointing false --save-total-limit 5"


class _DieWhileSaving(TrainerCallback):
    """Cuts the optimizer file of checkpoint-4 short and kills its own process, as a power cut during that save
    would: after the Trainer wrote the checkpoint's files, before omni marked it complete."""

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 4:
            optimizer = Path(args.output_dir, "checkpoint-4", "optimizer.pt")
            optimizer.write_bytes(optimizer.read_bytes()[:100])
            os.kill(os.getpid(), signal.SIGKILL)


class FullTunerKilledAtCheckpoint4(FullTuner):
    def callbacks(self):
        return [_DieWhileSaving()]


# Runs `omni sft` with a tuner that kills the process during its second checkpoint's save.
KILLED_RUN = f"""
import sys
from omni import hookimpl
from omni.cli.main import main
from omni.plugins import load_plugins, using_host
from omni.registry import Distribution, TunerSpec

class Plugin:
    @hookimpl
    def register_tuners(self, register):
        register(TunerSpec(name="full-killed", description="full, killed while saving checkpoint-4",
                           impl="{__name__}:FullTunerKilledAtCheckpoint4"))

with using_host(load_plugins({{"OMNI_PLUGINS": ""}})) as host:
    host.add(Plugin(), name="killer", distribution=Distribution("killer", "0"))
    sys.exit(main(sys.argv[1:]))
"""


def _omni(*argv: str) -> int:
    with using_host(load_plugins({"OMNI_PLUGINS": ""})):
        return main(list(argv))


@pytest.mark.slow
def test_a_run_killed_during_a_save_resumes_from_the_last_complete_checkpoint(tiny_qwen3, tmp_path, capsys):
    data = write_color_task(tmp_path / "colors.jsonl")
    common = ["sft", "--model", str(tiny_qwen3), "--dataset", str(data), *TRAIN.split()]
    whole = tmp_path / "whole"
    assert _omni(*common, "--output-dir", str(whole)) == 0

    killed = tmp_path / "killed"
    argv = [*common, "--output-dir", str(killed)]
    argv[argv.index("full")] = "full-killed"
    run = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, *argv], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]
    assert (killed / "checkpoint-4" / "trainer_state.json").is_file()  # looks like a checkpoint, is not one

    capsys.readouterr()
    assert _omni(*common, "--output-dir", str(killed), "--resume-from-checkpoint", "last") == 0
    err = capsys.readouterr().err
    assert "skipped checkpoint-4 (not completely written)" in err
    assert f"resuming from {killed / 'checkpoint-2'}" in err
    assert_same_weights(whole, killed)
    # train_loss covers all 6 steps, not only the 4 after the resume.
    loss = {run: json.loads((run / "all_results.json").read_text())["train_loss"] for run in (whole, killed)}
    assert loss[killed] == pytest.approx(loss[whole], rel=1e-4)


def test_bad_rows_stop_the_run_before_the_model_loads(tiny_qwen3, tmp_path, capsys):
    # A checkpoint whose weights cannot load: reaching them would be a different error.
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in tiny_qwen3.iterdir():
        if item.is_file():
            (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not weights")
    data = tmp_path / "rows.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": 3}\n'
    )
    assert _omni("sft", "--model", str(broken), "--dataset", str(data), "--tuner", "full") == 2
    err = capsys.readouterr().err
    assert f"{data}:2" in err and "safetensors" not in err and "model " not in err.split("error:")[0]
