"""vLLM (its CPU build) answers from a quantized `omni export` of the embedded SmolLM2 as the pt engine does: the
same greedy answers to the questions it answers right, and, to every question, the same tokens up to where
they part ways, there between tokens both engines rank among their five likeliest (vLLM's `check_logprobs_close`).

The W8A8 export is here; GPTQ's (W4A16, in bfloat16 on both engines) is checked on the export of the llmcompressor
plugin's slow test, which needs llm-compressor's own environment.
"""

from __future__ import annotations

import pytest
from omni.plugins import load_plugins, using_host
from omni.testing import run_omni

from tests.helpers import check_vllm_answers_as_the_pt_engine


@pytest.mark.slow
def test_a_w8a8_export_answers_on_vllm_as_on_the_pt_engine(tmp_path):
    out = tmp_path / "w8a8"
    with using_host(load_plugins({"OMNI_PLUGINS": "compressed-tensors,vllm"})) as host:
        assert run_omni("export", "--quant-method", "compressed-tensors", "--quant-bits", "8",
                        "--output-dir", str(out)) == 0  # fmt: skip
        # float32 on both: vLLM runs W8A8 with int8 activations (per token), transformers with the int8 weights
        # decompressed and float32 activations, so log-probabilities differ by up to a few tenths.
        print(check_vllm_answers_as_the_pt_engine(host.registry, out, "auto"))
