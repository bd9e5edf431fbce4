"""`omni new-plugin` writes a distribution that installs, registers, and passes its own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omni.cli.new_plugin import SCAFFOLDED_KINDS

from tests.conftest import run_omni


@pytest.mark.parametrize("kind", SCAFFOLDED_KINDS)
def test_scaffold_installs_registers_and_passes_its_test(kind, tmp_path):
    created = run_omni("new-plugin", kind, f"demo-{kind}", "--output-dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    root = tmp_path / f"omni-plugin-demo-{kind}"
    assert {p.name for p in root.iterdir()} >= {"pyproject.toml", "README.md", "src", "tests"}

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    env = {"PYTHONPATH": str(site)}
    listing = run_omni("plugins", "--json", env=env)
    (row,) = [r for r in json.loads(listing.stdout) if r["name"] == f"demo-{kind}"]
    assert row["distribution"] == f"omni-plugin-demo-{kind}" and row["error"] is None
    assert row["registered"] == {f"{kind}s": [f"demo-{kind}"]}

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout


def test_refuses_to_overwrite_and_bad_names(tmp_path):
    assert run_omni("new-plugin", "tuner", "x", "--output-dir", str(tmp_path)).returncode == 0
    again = run_omni("new-plugin", "tuner", "x", "--output-dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = run_omni("new-plugin", "tuner", "Bad_Name", "--output-dir", str(tmp_path))
    assert bad.returncode == 2 and "lower-case" in bad.stderr
