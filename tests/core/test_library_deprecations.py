"""Libraries' notices for their developers (deprecation warnings and log records, missing optional kernels, no GPU
found, the rope keys of Qwen's configs) are hidden from CLI users unless --debug; omni's own warnings stay visible."""

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
import logging
logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
    "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'"
)
from deepspeed.utils import logger
logger.warning("Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.")
# Qwen3-Omni's talker config carries these rope keys; transformers logs them on every load of such a checkpoint.
transformers.Qwen3Config(rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]})
logging.getLogger("transformers.modeling_rope_utils").warning("Unrecognized keys are only hidden from this logger")
"""


@pytest.mark.parametrize("mode", ["hidden", "debug"])
def test_library_deprecations_show_only_with_debug(mode):
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "plugin 'broken' not loaded" in result.stderr
    lines = (result.stdout + result.stderr).splitlines()  # DeepSpeed's logger writes to stdout
    shown = [line for line in lines if "deprecated" in line]
    kernels = [line for line in lines if "kernels-community" in line]
    no_gpu = [line for line in lines if "accelerator to CPU" in line]
    rope = [line for line in lines if "Unrecognized keys in `rope_parameters`" in line]
    assert "Unrecognized keys are only hidden from this logger" in result.stderr  # the logger's other records stay
    if mode == "hidden":
        assert shown == kernels == no_gpu == rope == []
    else:
        assert len(shown) == 2 and "torch_dtype" in shown[0], shown
        assert kernels and no_gpu and rope, result.stderr
