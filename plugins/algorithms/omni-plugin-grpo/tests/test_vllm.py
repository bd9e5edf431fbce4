"""With vLLM rollouts (omni-plugin-vllm, colocated, the trained weights loaded into vLLM after every optimizer
step), the tiny model learns the token-band task as it does with the pt engine."""

from __future__ import annotations

import pytest

from tests.helpers import run_omni

from .test_training import argv, assert_learned


@pytest.mark.slow
def test_grpo_with_vllm_rollouts_learns(tiny_model, token_task, tmp_path):
    pytest.importorskip("omni_plugin_vllm")
    pytest.importorskip("vllm")
    out = tmp_path / "out"
    args = argv("grpo", tiny_model, token_task, out, "--rollout-engine", "vllm")[1:]
    result = run_omni("rlhf", *args, env={"OMP_NUM_THREADS": "1"}, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rollout engine vllm" in result.stderr
    assert_learned(out)
