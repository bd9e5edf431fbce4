"""docs/api.md is what scripts/api_reference.py writes from omni.api's docstrings today."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_api_reference_is_current():
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "api_reference.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr[-2000:]
