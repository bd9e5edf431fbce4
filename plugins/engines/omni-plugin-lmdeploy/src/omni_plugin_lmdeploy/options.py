"""Options of the `lmdeploy` engine (no heavy imports: used to build --help).

Names follow LMDeploy's engine configs; ms-swift's `lmdeploy_`-prefixed spellings are accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.api import option


@dataclass
class LmdeployOptions:
    """How the LMDeploy engine runs: in-process, or through an api_server it launches or attaches to."""

    server_url: str | None = option(
        None,
        help="attach to a running OpenAI-compatible LMDeploy api_server at this URL (http://HOST:PORT) instead "
        "of loading the model in-process",
        aliases=("lmdeploy_server_url",),
    )
    launch_server: bool = option(
        False,
        help="start `lmdeploy serve api_server` as a subprocess on a free local port and talk to it",
        aliases=("lmdeploy_launch_server",),
    )
    server_api_key: str | None = option(
        None, help="API key of the LMDeploy server (attached or launched)", aliases=("lmdeploy_api_key",)
    )
    server_startup_timeout: float = option(
        900.0, help="seconds to wait for a launched server's /health", aliases=("lmdeploy_startup_timeout",)
    )
    backend: Literal["turbomind", "pytorch"] | None = option(
        None,
        help="LMDeploy backend (default: turbomind, or pytorch when --adapters are given: only it serves LoRA)",
        aliases=("lmdeploy_backend",),
    )
    tp: int = option(1, help="GPUs to split each layer across (tensor parallelism)", aliases=("lmdeploy_tp",))
    session_len: int | None = option(
        None, help="longest prompt plus answer in tokens (default: the model's)", aliases=("lmdeploy_session_len",)
    )
    cache_max_entry_count: float = option(
        0.8, help="share of free GPU memory for the KV cache", aliases=("lmdeploy_cache_max_entry_count",)
    )
    max_batch_size: int | None = option(
        None, help="most sequences decoded together (default: LMDeploy's)", aliases=("lmdeploy_max_batch_size",)
    )
    quant_policy: Literal[0, 4, 8] = option(
        0, help="KV cache quantization: 0 none, 4 or 8 bits", aliases=("lmdeploy_quant_policy",)
    )

    def resolved_backend(self, has_adapters: bool) -> str:
        """The backend to run: the chosen one, else pytorch with adapters (TurboMind has no LoRA), else turbomind."""
        return self.backend or ("pytorch" if has_adapters else "turbomind")
