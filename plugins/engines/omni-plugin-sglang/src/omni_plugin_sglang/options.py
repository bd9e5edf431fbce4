"""Options of the `sglang` engine (no heavy imports: used to build --help).

Names follow SGLang's server arguments; ms-swift's `sglang_`-prefixed spellings are accepted too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from omni.api import OmniError, option


@dataclass
class SglangOptions:
    """How the SGLang engine runs: in-process, or through a server it launches or attaches to."""

    server_url: str | None = option(
        None,
        help="attach to a running OpenAI-compatible SGLang server at this URL (http://HOST:PORT) instead of "
        "loading the model in-process",
        aliases=("sglang_server_url",),
    )
    launch_server: bool = option(
        False,
        help="start `python -m sglang.launch_server` as a subprocess on a free local port and talk to it",
        aliases=("sglang_launch_server",),
    )
    server_api_key: str | None = option(
        None, help="API key of the SGLang server (attached or launched)", aliases=("sglang_api_key",)
    )
    server_startup_timeout: float = option(
        900.0, help="seconds to wait for a launched server's /health", aliases=("sglang_startup_timeout",)
    )
    tp_size: int = option(1, help="GPUs to split each layer across (tensor parallelism)", aliases=("sglang_tp_size",))
    dp_size: int = option(1, help="data-parallel copies of the model", aliases=("sglang_dp_size",))
    mem_fraction_static: float | None = option(
        None,
        help="share of GPU memory for weights and KV cache (default: SGLang's)",
        aliases=("sglang_mem_fraction_static",),
    )
    context_length: int | None = option(
        None, help="longest prompt plus answer in tokens (default: the model's)", aliases=("sglang_context_length",)
    )
    max_running_requests: int | None = option(
        None, help="most requests decoded together (default: SGLang's)", aliases=("sglang_max_running_requests",)
    )
    disable_cuda_graph: bool = option(False, help="run without CUDA graphs", aliases=("sglang_disable_cuda_graph",))
    quantization: str | None = option(
        None, help="SGLang quantization method (fp8, awq ...)", aliases=("sglang_quantization",)
    )
    max_lora_rank: int | None = option(
        None, help="largest LoRA rank (default: the largest among --adapters)", aliases=("sglang_max_lora_rank",)
    )
    random_seed: int | None = option(None, help="the engine's random seed", aliases=("sglang_random_seed",))
    engine_kwargs: str | None = option(
        None,
        help="further SGLang server arguments as a JSON object, e.g. '{\"chunked_prefill_size\": 4096}'",
        aliases=("sglang_engine_kwargs",),
    )

    def parsed_engine_kwargs(self) -> dict[str, Any]:
        """`engine_kwargs` as a dict, or an `OmniError` naming the flag."""
        if self.engine_kwargs is None:
            return {}
        try:
            value = json.loads(self.engine_kwargs)
        except ValueError as exc:
            raise OmniError(f"--engine-kwargs: not valid JSON ({exc}): {self.engine_kwargs!r}") from None
        if not isinstance(value, dict):
            raise OmniError(f"--engine-kwargs: expected a JSON object, got {self.engine_kwargs!r}")
        return value

    def server_arguments(self, adapters: dict[str, str]) -> dict[str, Any]:
        """The SGLang server arguments these options set (as `sglang.Engine` keywords), adapters included."""
        args: dict[str, Any] = {"tp_size": self.tp_size, "dp_size": self.dp_size}
        for name in ("mem_fraction_static", "context_length", "max_running_requests", "quantization", "random_seed"):
            if getattr(self, name) is not None:
                args[name] = getattr(self, name)
        if self.disable_cuda_graph:
            args["disable_cuda_graph"] = True
        if adapters:
            args["enable_lora"] = True
            args["lora_paths"] = [f"{name}={path}" for name, path in adapters.items()]
            if self.max_lora_rank is not None:
                args["max_lora_rank"] = self.max_lora_rank
        args.update(self.parsed_engine_kwargs())
        return args
