"""Options of the `vllm` engine (no heavy imports: used to build --help).

Flag names follow vLLM's engine arguments; ms-swift's `vllm_`-prefixed spellings are accepted too, so
`--vllm_gpu_memory_utilization 0.5` from an ms-swift command works unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from omni.api import OmniError, option


def _aliases(name: str) -> tuple[str, ...]:
    return (f"vllm_{name}",)


@dataclass
class VllmOptions:
    """How the vLLM engine is set up: memory, parallelism, sequence limits, LoRA and multimodal limits."""

    gpu_memory_utilization: float | None = option(
        None,
        help="share of accelerator memory vLLM may take for weights and KV cache (default 0.9 on a GPU, 0.1 on "
        "CPU, where it is a share of host memory)",
        aliases=_aliases("gpu_memory_utilization"),
    )
    tensor_parallel_size: int = option(
        1, help="GPUs to split each layer across", aliases=_aliases("tensor_parallel_size")
    )
    pipeline_parallel_size: int = option(
        1, help="GPUs to split the layers across", aliases=_aliases("pipeline_parallel_size")
    )
    max_model_len: int | None = option(
        None, help="longest prompt plus answer in tokens (default: the model's)", aliases=_aliases("max_model_len")
    )
    max_num_seqs: int | None = option(
        None, help="most sequences generated together (default: vLLM's)", aliases=_aliases("max_num_seqs")
    )
    enforce_eager: bool = option(
        False, help="run the model eagerly, without CUDA graphs or compilation", aliases=_aliases("enforce_eager")
    )
    enable_prefix_caching: bool | None = option(
        None,
        help="reuse the KV cache of shared prompt prefixes (default: vLLM's)",
        aliases=_aliases("enable_prefix_caching"),
    )
    max_lora_rank: int | None = option(
        None,
        help="largest LoRA rank the engine accepts (default: the largest rank among --adapters)",
        aliases=_aliases("max_lora_rank"),
    )
    max_loras: int | None = option(
        None, help="LoRA adapters used in one batch (default: all of --adapters)", aliases=_aliases("max_loras")
    )
    limit_mm_per_prompt: str | None = option(
        None,
        help='most images/audios/videos per prompt, as JSON: \'{"image": 2, "audio": 1}\'',
        aliases=_aliases("limit_mm_per_prompt"),
    )
    quantization: str | None = option(
        None, help="vLLM quantization method for the weights (awq, gptq, fp8 ...)", aliases=_aliases("quantization")
    )
    engine_seed: int = option(
        0, help="the engine's random seed (requests without a seed sample from it)", aliases=("vllm_seed",)
    )
    engine_kwargs: str | None = option(
        None,
        help="further vLLM engine arguments as a JSON object, e.g. '{\"swap_space\": 4}'",
        aliases=_aliases("engine_kwargs"),
    )

    def parsed_limit_mm_per_prompt(self) -> dict[str, int] | None:
        """`limit_mm_per_prompt` as a dict, or an `OmniError` naming the flag."""
        return _json_object(self.limit_mm_per_prompt, "--limit-mm-per-prompt")

    def parsed_engine_kwargs(self) -> dict[str, Any]:
        """`engine_kwargs` as a dict, or an `OmniError` naming the flag."""
        return _json_object(self.engine_kwargs, "--engine-kwargs") or {}


def _json_object(text: str | None, flag: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise OmniError(f"{flag}: not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise OmniError(f"{flag}: expected a JSON object like '{{\"key\": value}}', got {text!r}")
    return value
