"""`omni new-plugin KIND NAME` writes, for every kind, a distribution that installs, registers, passes its own
tests and runs from the CLI, unedited.

The plugins are installed with pip into a folder of their own put on PYTHONPATH (entry points included), so
the repository's virtual environment is left as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omni.scaffold import SCAFFOLDED_KINDS

from tests.helpers import run_omni

END_TO_END = ("model", "dataset", "reward", "engine")  # what a newcomer builds in docs/plugins.md


def _scaffold_and_install(kinds: tuple[str, ...], folder: Path) -> dict[str, str]:
    """Write `demo-KIND` plugins into `folder`, pip install them into `folder/site`; the env that finds them."""
    for kind in kinds:
        created = run_omni("new-plugin", kind, f"demo-{kind}", "--output-dir", str(folder))
        assert created.returncode == 0, created.stderr
    site = folder / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
    subprocess.run([*pip, *(str(folder / f"omni-plugin-demo-{k}") for k in kinds)], check=True, capture_output=True)
    return {"PYTHONPATH": str(site)}


def _plural(kind: str) -> str:
    return "strategies" if kind == "strategy" else f"{kind}s"


def _registered(kinds: tuple[str, ...], env: dict[str, str]) -> None:
    listing = {row["name"]: row for row in json.loads(run_omni("plugins", "--json", env=env).stdout)}
    for kind in kinds:
        row = listing[f"demo-{kind}"]
        assert row["distribution"] == f"omni-plugin-demo-{kind}" and row["error"] is None
        assert row["registered"] == {_plural(kind): [f"demo-{kind}"]}
        assert f"demo-{kind}" in run_omni("list", _plural(kind), env=env).stdout


def _run_their_tests(kinds: tuple[str, ...], folder: Path, env: dict[str, str]) -> None:
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [str(folder / f"omni-plugin-demo-{k}" / "tests") for k in kinds],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, **env},
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout


def _imports_only_the_plugin_api(kinds: tuple[str, ...], folder: Path) -> None:
    for kind in kinds:
        for source in (folder / f"omni-plugin-demo-{kind}").rglob("*.py"):
            omni_imports = {
                line.split()[1]
                for line in source.read_text().splitlines()
                if line.startswith(("from omni", "import omni")) and not line.startswith("from omni_plugin")
            }
            allowed = {"omni.api", "omni.testing"} if source.parent.name == "tests" else {"omni.api"}
            assert omni_imports <= allowed, f"{source} imports {omni_imports - allowed}"


def test_every_other_kind_installs_lists_and_passes_its_tests(tmp_path):
    kinds = tuple(k for k in SCAFFOLDED_KINDS if k not in END_TO_END)
    env = _scaffold_and_install(kinds, tmp_path)
    _registered(kinds, env)
    _imports_only_the_plugin_api(kinds, tmp_path)
    _run_their_tests(kinds, tmp_path, env)


@pytest.mark.slow
def test_model_dataset_reward_and_engine_plugins_run_from_the_cli(tmp_path):
    env = _scaffold_and_install(END_TO_END, tmp_path)
    _registered(END_TO_END, env)
    _imports_only_the_plugin_api(END_TO_END, tmp_path)
    _run_their_tests(END_TO_END, tmp_path, env)
    assert "The plugin has two modules" in (tmp_path / "omni-plugin-demo-model" / "README.md").read_text()
    assert (tmp_path / "omni-plugin-demo-model" / "src" / "omni_plugin_demo_model" / "impl.py").is_file()

    from omni.testing import build_tiny

    checkpoint = build_tiny("llama", tmp_path / "tiny", architectures=["DemoModelForCausalLM"])
    # The dataset's option is a flag of the training commands, shown in their help, and a YAML key.
    assert "--demo-dataset-max-number" in run_omni("sft", "--help", env=env).stdout
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {checkpoint}\ndataset: [demo-dataset]\ndemo_dataset_max_number: 0\ntuner: full\n")
    bad = run_omni("sft", "--config", str(config), env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == "omni: error: --demo-dataset-max-number must be at least 1, got 0"
    assert "loaded in" not in bad.stderr  # no model was loaded for it

    sft_out = tmp_path / "sft"
    sft = run_omni(
        "sft", "--config", str(config), "--demo-dataset-max-number", "3", "--max-steps", "2",
        "--output-dir", str(sft_out), "--save-strategy", "no", env=env, timeout=600,
    )  # fmt: skip
    assert sft.returncode == 0, sft.stderr[-3000:]
    assert "model demo-model from" in sft.stderr and "16 training rows" in sft.stderr  # (3 + 1) ** 2 additions
    assert (sft_out / "model.safetensors").is_file()

    rlhf_out = tmp_path / "grpo"
    grpo = run_omni(
        "rlhf", "--algo", "grpo", "--reward-funcs", "demo-reward", "--demo-reward-target-words", "2",
        "--model", str(checkpoint), "--dataset", "demo-dataset#8", "--tuner", "full", "--num-generations", "2",
        "--batch-size", "2", "--max-completion-length", "4", "--max-steps", "2", "--logging-steps", "1",
        "--save-strategy", "no", "--output-dir", str(rlhf_out), env=env, timeout=600,
    )  # fmt: skip
    assert grpo.returncode == 0, grpo.stderr[-3000:]
    logged = [json.loads(line) for line in (rlhf_out / "logging.jsonl").read_text().splitlines()]
    assert sum("reward" in row for row in logged) == 2  # one mean reward per step

    answer = run_omni(
        "infer", "--infer-backend", "demo-engine", "--model", str(sft_out), "--query", "What is 2 + 2?",
        "--max-new-tokens", "4", env=env, timeout=300,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-3000:]


def test_refuses_to_overwrite_and_bad_names(tmp_path):
    assert run_omni("new-plugin", "tuner", "x", "--output-dir", str(tmp_path)).returncode == 0
    again = run_omni("new-plugin", "tuner", "x", "--output-dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = run_omni("new-plugin", "tuner", "Bad_Name", "--output-dir", str(tmp_path))
    assert bad.returncode == 2 and "lower-case" in bad.stderr
