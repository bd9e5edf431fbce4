"""Libraries' deprecation notices (warnings and transformers' log records) are hidden from CLI users unless
--debug; omni's own warnings stay visible."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Real notices: transformers logs one when a config's `torch_dtype` is read; a FutureWarning stands for a
# library's renamed argument; the UserWarning for omni's own (a plugin that failed to load).
SCRIPT = """
import sys, warnings
from omni.cli.main import hide_library_deprecations
if sys.argv[1] == "hidden":
    hide_library_deprecations()
import transformers
transformers.PretrainedConfig().torch_dtype
warnings.warn("`gradient_checkpointing` is deprecated; use `activation_checkpointing`", FutureWarning)
warnings.warn("plugin 'broken' not loaded", UserWarning)
"""


@pytest.mark.parametrize("mode", ["hidden", "debug"])
def test_library_deprecations_show_only_with_debug(mode):
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "plugin 'broken' not loaded" in result.stderr
    shown = [line for line in result.stderr.splitlines() if "deprecated" in line]
    if mode == "hidden":
        assert shown == []
    else:
        assert len(shown) == 2 and "torch_dtype" in shown[0], shown
