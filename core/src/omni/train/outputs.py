"""Everything a run leaves in its output directory, and where that directory is.

OUTPUT_DIR/
  args.json            the resolved arguments (`model` is the base model's resolved path)
  logging.jsonl        one JSON object per log step
  loss.png             training (and evaluation) loss against step; metrics of callback plugins beside it
  checkpoint-N/        written by the Trainer; resumable
  adapter_* | model*   the final adapter (PEFT format) or model (transformers format), with the tokenizer
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from omni.errors import OmniError
from omni.train.tuner import Tuner

ARGS_FILE = "args.json"
LOG_FILE = "logging.jsonl"
LOSS_PLOT = "loss.png"
COMPLETE_MARKER = "omni_checkpoint_complete.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def resolve_output_dir(output_dir: str | None, model_name: str, *, root: Path = Path("output")) -> Path:
    """`output_dir` when given, else ``output/<model-name>/v<N>-<YYYYmmdd-HHMMSS>`` with N the next version."""
    if output_dir:
        return Path(output_dir)
    parent = root / re.sub(r"[^\w.-]+", "-", Path(model_name.rstrip("/")).name)
    versions = [int(m.group(1)) for p in parent.glob("v*-*") if (m := re.match(r"v(\d+)-", p.name))]
    return parent / f"v{max(versions, default=-1) + 1}-{time.strftime('%Y%m%d-%H%M%S')}"


def is_complete_checkpoint(path: Path) -> bool:
    """Whether every process finished writing checkpoint `path` (`CheckpointCompleteCallback`'s marker)."""
    return (path / COMPLETE_MARKER).is_file()


def resolve_checkpoint(value: str | None, output_dir: Path) -> str | None:
    """The checkpoint directory `--resume-from-checkpoint` names ('last': the newest complete one in `output_dir`).

    'last' passes over checkpoints a killed run left half-written, saying which; a named one must be complete."""
    if value is None:
        return None
    if value == "last":
        found = [(int(m.group(1)), p) for p in output_dir.glob("checkpoint-*") if (m := _CHECKPOINT.fullmatch(p.name))]
        skipped = []
        for _, path in sorted(found, reverse=True):
            if is_complete_checkpoint(path):
                if skipped:
                    print(
                        f"[omni] --resume-from-checkpoint last: skipped {', '.join(skipped)} (not completely written)",
                        file=sys.stderr,
                    )
                return str(path)
            skipped.append(path.name)
        incomplete = f" (only incomplete ones: {', '.join(skipped)})" if skipped else ""
        raise OmniError(
            f"--resume-from-checkpoint last: no complete checkpoint-N directory in {output_dir}{incomplete}; "
            "pass --output-dir"
        )
    path = Path(value)
    if not (path / "trainer_state.json").is_file():
        raise OmniError(f"--resume-from-checkpoint {value}: not a checkpoint directory (no trainer_state.json)")
    if not is_complete_checkpoint(path):
        raise OmniError(f"--resume-from-checkpoint {value}: the checkpoint was not completely written")
    return value


class CheckpointCompleteCallback(TrainerCallback):
    """Marks each checkpoint complete once every process has written its part.

    The Trainer writes ``checkpoint-N`` in place; a run killed while saving leaves a folder that looks like a
    checkpoint. The marker, written last (after all processes are done), is what resuming trusts."""

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every process's shard, optimizer and RNG state are written
        if state.is_world_process_zero:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                tmp = path / f"{COMPLETE_MARKER}.tmp"
                tmp.write_text(json.dumps({"step": state.global_step, "time": round(time.time(), 3)}) + "\n")
                os.replace(tmp, path / COMPLETE_MARKER)


def whole_run_train_loss(
    log_history: list[dict[str, Any]], resumed_at: int, global_step: int, resumed_loss: float
) -> float:
    """The mean training loss over every step of a resumed run.

    The Trainer's own `train_loss` (`resumed_loss`) after a resume is the mean over the resumed steps only;
    the steps before `resumed_at` are read back from the logged losses the checkpoint carried, each logged
    value standing for the steps since the previous log."""
    before, last = 0.0, 0
    for record in log_history:
        if "loss" in record and record["step"] <= resumed_at:
            before += record["loss"] * (record["step"] - last)
            last = record["step"]
    if last:
        before *= resumed_at / last  # steps after the last log before the checkpoint: at the logged mean
    return (before + resumed_loss * (global_step - resumed_at)) / max(global_step, 1)


def write_args(output_dir: Path, values: dict[str, Any]) -> Path:
    """Write `args.json` atomically; dataclass values are expanded into dicts."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.asdict(v)
        return v

    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / ARGS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({k: plain(v) for k, v in values.items()}, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def save_final(
    tuner: Tuner, model: Any, processor: Any, output_dir: Path, *, state_dict: dict[str, Any] | None = None
) -> list[str]:
    """Save the trained adapter or model and the processor into `output_dir`, file by atomic file.

    `state_dict`: the whole model's weights when they are sharded over processes (gathered by the strategy).

    Everything is written to a temporary directory first and then renamed into place, so a crash never
    leaves a half-written weight file where `omni infer` would find it. Returns the file names.
    """
    tmp = output_dir / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tuner.save(model, tmp, state_dict=state_dict)
        if processor is not None:
            processor.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    names = []
    for item in sorted(tmp.iterdir()):
        target = output_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
        names.append(item.name)
    tmp.rmdir()
    return names


class JsonlLogCallback(TrainerCallback):
    """Appends every log (train and eval) to `logging.jsonl` with its step, epoch and time.

    Each (re)start of training also writes a ``{"event": "train_begin", ...}`` line, so a resumed run's
    file shows where it picked up, and start-up time can be measured from it.
    """

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / LOG_FILE
        self._start = time.time()

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if state.is_world_process_zero:
            self._write({"event": "train_begin", "step": state.global_step, "time": round(time.time(), 3)})

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: dict | None = None, **kw: Any
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        now = time.time()
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs}
        self._write({**record, "elapsed_s": round(now - self._start, 2), "time": round(now, 3)})


def plot_loss(log_history: list[dict[str, Any]], path: Path, *, metrics: Sequence[str] = ()) -> Path | None:
    """Draw training and evaluation loss against step into a PNG (None when nothing was logged).

    `metrics`: other logged values (a benchmark's accuracy ...) drawn against step in a panel beside the loss."""
    train = [(r["step"], r["loss"]) for r in log_history if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in log_history if "eval_loss" in r]
    beside = {m: [(r["step"], r[m]) for r in log_history if m in r] for m in metrics}
    beside = {m: points for m, points in beside.items() if points}
    if not train and not evals and not beside:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on training machines
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if beside else 1, figsize=(12 if beside else 7, 4), squeeze=False)
    ax = axes[0][0]
    for points, label, style in ((train, "train loss", "-"), (evals, "eval loss", "o--")):
        if points:
            steps, losses = zip(*points, strict=True)
            ax.plot(steps, losses, style, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if beside:
        right = axes[0][1]
        for name, points in beside.items():
            steps, values = zip(*points, strict=True)
            right.plot(steps, values, "o-", label=name)
        right.set_xlabel("step")
        right.set_ylabel("score")
        right.grid(alpha=0.3)
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
