"""Runs the page starts: each one an `omni COMMAND --config config.yaml` subprocess in a folder of its own.

RUNS_DIR/NAME/
  config.yaml    what the form composed, with the output folder filled in
  run.json       the command, its process id, when it started
  omni.log       the command's output (stdout and stderr, appended by each resume)
  exit.json      its exit status, once it ended
  output/        the command's output folder: logging.jsonl, checkpoints, the adapter or model, eval reports

Everything shown about a run is read back from these files and the ones omni writes, so a run started before
the page restarted is still listed and watched.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from omni.api import OmniError

TRAINING_COMMANDS = ("sft", "pt", "rlhf")
COMMANDS = (*TRAINING_COMMANDS, "eval", "export")
# The option naming each command's output folder (training and export: output_dir).
OUTPUT_OPTION = {"eval": "eval_output_dir"}
_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,79}")
_PROGRESS = re.compile(r"^train:.*?(\d+)/(\d+) \[", re.MULTILINE)  # omni's bar: "train: 40%|...| 2/5 [..."
_ERROR_PREFIX = "omni: error: "


def output_option(command: str) -> str:
    return OUTPUT_OPTION.get(command, "output_dir")


def config_yaml(values: dict[str, Any]) -> str:
    """The YAML config file `omni COMMAND --config` reads for these values."""
    return yaml.safe_dump(values, sort_keys=False, allow_unicode=True)


def command_line(command: str, values: dict[str, Any], flags: dict[str, str]) -> str:
    """The same run as one `omni COMMAND --flag value ...` line; `flags` maps option names to their flags."""
    words = ["omni", command]
    for name, value in values.items():
        flag = flags.get(name, f"--{name.replace('_', '-')}")
        items = value if isinstance(value, list) else [value]
        words += [flag, *(str(item).lower() if isinstance(item, bool) else str(item) for item in items)]
    return shlex.join(words)


def _interruptible() -> None:
    """In the new run, before omni starts: Ctrl-C's signal interrupts it even when the page was started with SIGINT
    ignored (as a shell without job control starts background commands, `omni web &` in a script), which the run
    would inherit, and `stop` would not stop it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Runs:
    """Starts, stops, resumes and reads the runs under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._processes: dict[str, subprocess.Popen] = {}
        self._stopping: set[str] = set()
        self._lock = threading.Lock()

    def new_name(self, command: str, name: str | None) -> str:
        """`name` checked (a folder name not taken), or COMMAND-TIMESTAMP."""
        if name:
            if not _NAME.fullmatch(name):
                raise OmniError(f"run name {name!r}: use letters, digits, '.', '-' and '_' (80 at most)")
            if (self.root / name).exists():
                raise OmniError(f"run name {name!r} is taken: {self.root / name} exists")
            return name
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate, n = f"{command}-{stamp}", 1
        while (self.root / candidate).exists():
            n += 1
            candidate = f"{command}-{stamp}-{n}"
        return candidate

    def start(self, command: str, values: dict[str, Any], name: str | None = None) -> str:
        """Write the run's config and start `omni COMMAND --config` on it; returns the run's name."""
        if command not in COMMANDS:
            raise OmniError(f"the page starts {', '.join(COMMANDS)} runs, not {command!r}")
        name = self.new_name(command, name)
        folder = self.root / name
        folder.mkdir(parents=True)
        values = dict(values)
        values.setdefault(output_option(command), str((folder / "output").resolve()))
        (folder / "config.yaml").write_text(config_yaml(values), encoding="utf-8")
        self._launch(name, command, [])
        return name

    def resume(self, name: str, checkpoint: str) -> None:
        """Start a stopped or ended training run again from `checkpoint` ('last': its newest)."""
        run = self._read_run(name)
        if run["command"] not in TRAINING_COMMANDS:
            raise OmniError(f"run {name!r} is an {run['command']} run; only training runs resume")
        if self._alive(name, run):
            raise OmniError(f"run {name!r} is still running")
        (self.root / name / "exit.json").unlink(missing_ok=True)
        self._launch(name, run["command"], ["--resume-from-checkpoint", checkpoint])

    def stop(self, name: str) -> None:
        """Interrupt a running run as Ctrl-C would (its whole process group: launchers and workers)."""
        run = self._read_run(name)
        if not self._alive(name, run):
            raise OmniError(f"run {name!r} is not running")
        self._stopping.add(name)
        os.killpg(run["pid"], signal.SIGINT)

    def _launch(self, name: str, command: str, extra: list[str]) -> None:
        folder = self.root / name
        argv = [sys.executable, "-m", "omni", command, "--config", str(folder / "config.yaml"), *extra]
        with (folder / "omni.log").open("ab") as log:
            log.write(f"$ {shlex.join(['omni', *argv[3:]])}\n".encode())
            log.flush()
            # A session of its own: stopping it reaches every process the command starts (torchrun's workers).
            process = subprocess.Popen(
                argv,
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_interruptible,
            )
        record = {"command": command, "pid": process.pid, "started": time.time()}
        (folder / "run.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
        with self._lock:
            self._processes[name] = process
        threading.Thread(target=self._wait, args=(name, process), daemon=True).start()

    def _wait(self, name: str, process: subprocess.Popen) -> None:
        code = process.wait()
        record = {"returncode": code, "stopped": name in self._stopping, "ended": time.time()}
        self._stopping.discard(name)
        (self.root / name / "exit.json").write_text(json.dumps(record) + "\n", encoding="utf-8")

    def _read_run(self, name: str) -> dict[str, Any]:
        path = self.root / name / "run.json"
        if not _NAME.fullmatch(name) or not path.is_file():
            raise OmniError(f"no run named {name!r} in {self.root}")
        return json.loads(path.read_text(encoding="utf-8"))

    def _alive(self, name: str, run: dict[str, Any]) -> bool:
        process = self._processes.get(name)
        if process is not None:
            return process.poll() is None
        try:  # started by an earlier page: its process may still be running
            os.kill(run["pid"], 0)
        except OSError:
            return False
        return not (self.root / name / "exit.json").exists()

    def _config(self, name: str) -> dict[str, Any]:
        return yaml.safe_load((self.root / name / "config.yaml").read_text(encoding="utf-8")) or {}

    def names(self) -> list[str]:
        """Every run, newest first."""
        found = [p.parent for p in self.root.glob("*/run.json")]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]

    def summary(self, name: str) -> dict[str, Any]:
        """What the run list shows: status, progress, the latest loss, and the error line of a failed run."""
        run = self._read_run(name)
        folder = self.root / name
        config = self._config(name)
        output = Path(config.get(output_option(run["command"])) or folder / "output")
        log = _read_tail(folder / "omni.log")
        records = read_records(output / "logging.jsonl")
        losses = [r for r in records if "loss" in r]
        progress = _PROGRESS.findall(log)
        status, error = "running", None
        if not self._alive(name, run):
            ended = folder / "exit.json"
            outcome = json.loads(ended.read_text(encoding="utf-8")) if ended.exists() else None
            if outcome is None:  # it ended while no page was watching: its exit status is unknown
                status = "ended"
            elif outcome.get("stopped"):
                status = "stopped"
            elif outcome["returncode"] == 0:
                status = "finished"
            else:
                status, error = "failed", _error_line(log)
        return {
            "name": name,
            "command": run["command"],
            "status": status,
            "error": error,
            "started": run["started"],
            "step": int(progress[-1][0]) if progress else (losses[-1]["step"] if losses else 0),
            "total_steps": int(progress[-1][1]) if progress else None,
            "loss": losses[-1]["loss"] if losses else None,
            "output": str(output),
            # Only those written whole: the Trainer writes trainer_state.json after the weights and optimizer.
            "checkpoints": sorted(
                (p.name for p in output.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                key=lambda n: int(n.split("-")[-1]),
            ),
            # What the run saved says: a whole model has its config.json, any tuner's adapter does not.
            "adapter": run["command"] in TRAINING_COMMANDS and not (output / "config.json").is_file(),
        }

    def detail(self, name: str) -> dict[str, Any]:
        """The summary plus the config, every logged record (loss, eval and callback metrics), the log's end and
        an eval run's report."""
        info = self.summary(name)
        folder = self.root / name
        output = Path(info["output"])
        report = output / "summary.json"
        return {
            **info,
            "config": (folder / "config.yaml").read_text(encoding="utf-8"),
            "values": self._config(name),
            "records": read_records(output / "logging.jsonl"),
            "log": _read_tail(folder / "omni.log"),
            "report": json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None,
        }


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a run's logging.jsonl (a line being written is skipped until it is whole)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in records if "event" not in r]


def _read_tail(path: Path, size: int = 20000) -> str:
    """The end of a log as a terminal shows it: a progress bar's redraws (carriage returns) keep only the last."""
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def _error_line(log: str) -> str:
    """omni's one-line error, else the log's last line."""
    lines = [line for line in log.splitlines() if line.strip()]
    errors = [line[len(_ERROR_PREFIX) :] for line in lines if line.startswith(_ERROR_PREFIX)]
    return errors[-1] if errors else (lines[-1] if lines else "the command ended without output")
