"""`omni --help`, `omni plugins` and `omni list` must not import heavy libraries, whatever is installed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from omni.registry import KINDS

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "vllm", "deepspeed", "bitsandbytes")

PROBE = """
import json, sys
from omni.cli.main import main
code = main(sys.argv[1:])
loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)
print("@@" + json.dumps({{"code": code, "heavy": loaded}}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["plugins"], ["plugins", "--json"], *(["list", kind] for kind in KINDS), ["sft", "--help"]],
    ids=lambda argv: " ".join(argv),
)
def test_no_heavy_imports(argv):
    code = PROBE.format(HEAVY=HEAVY)
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    report = json.loads(result.stderr.rsplit("@@", 1)[1])
    assert report["heavy"] == [], f"omni {' '.join(argv)} imported {report['heavy']}"
    assert report["code"] in (0, None), result.stderr
