"""`omni --help` with 20 installed plugins imports their entry modules and nothing else (timings: benchmarks/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.tiny_plugins import write_tiny_plugins

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "vllm", "deepspeed", "bitsandbytes")

PROBE = """
import contextlib, io, json, sys
from omni.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["--help"])
from omni.plugins import get_host
report = {"code": code, "help": out.getvalue(), "modules": sorted(sys.modules),
          "errors": [p.name for p in get_host().errors]}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("site")
    return folder, write_tiny_plugins(folder, 20)


def help_run(site: Path, plugins: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    env.update(PYTHONPATH=str(site), OMNI_PLUGINS=plugins)
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_twenty_plugins_add_their_entry_modules_and_nothing_heavy(site):
    folder, names = site
    bare = help_run(folder, "")
    full = help_run(folder, ",".join(names))
    assert bare["code"] == full["code"] == 0 and full["errors"] == []
    assert [m for m in HEAVY if m in full["modules"]] == []
    added = set(full["modules"]) - set(bare["modules"])
    assert added == {f"omni_plugin_{name}" for name in names}  # no implementation module, no library
    assert all(f"  {name}-report " in full["help"] for name in names)
