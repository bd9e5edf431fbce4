"""Flags of `omni serve` (no heavy imports: used to build --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from omni.errors import OmniError
from omni.models.options import ModelOptions
from omni.options import option
from omni.template.options import TemplateCliOptions

if TYPE_CHECKING:
    from omni.encoders.sources import MediaPolicy


@dataclass
class ServeOptions(TemplateCliOptions, ModelOptions):
    """Flags of `omni serve`: the model and adapters, where to listen, who may call, and the engine."""

    adapters: list[str] = option(
        default_factory=list,
        help="adapters to serve, each under its own model name: NAME=DIR, or DIR (named after the folder)",
        metavar="[NAME=]DIR",
    )
    served_model_name: str | None = option(
        None, help="the model name clients send for the base model (default: --model as given)"
    )
    host: str = option("127.0.0.1", help="address to listen on; 0.0.0.0 makes the server reachable from other machines")
    port: int = option(8000, help="port to listen on; 0 picks a free port (the address is printed at start)")
    api_key: str | None = option(
        None, help="require `Authorization: Bearer KEY` on every request but /health (default: $OMNI_API_KEY when set)"
    )
    max_new_tokens: int = option(
        512, help="longest answer, in tokens, for requests that set no max_tokens", aliases=("default_max_tokens",)
    )
    max_new_tokens_limit: int | None = option(
        None, help="most tokens a request may ask for with max_tokens; more is a 400 (default: the model's context)"
    )
    max_length: int | None = option(
        None, help="longest prompt in tokens; a longer one is a 400 unless --truncation left (default: the context)"
    )
    truncation: Literal["left", "right", "error"] = option(
        "error",
        help="prompts over --max-length: error answers 400; left drops the oldest tokens",
        aliases=("truncation_strategy",),
    )
    request_timeout: float = option(
        600.0, help="seconds a request may run, streams included; then it ends with a 408 and frees its batch row"
    )
    allowed_local_media_path: str | None = option(
        None,
        help="requests may name local media files (paths, file:// URLs) inside this folder; by default none",
        metavar="DIR",
    )
    allowed_media_domains: list[str] = option(
        default_factory=list,
        help="requests may name http(s) media URLs on these hosts ('*': any host); by default none are fetched",
        metavar="HOST",
    )
    max_media_bytes: int = option(20 * 1024 * 1024, help="largest media item a request may send or name, in bytes")
    max_request_bytes: int = option(64 * 1024 * 1024, help="largest request body, in bytes; a larger one is a 413")
    media_fetch_timeout: float = option(10.0, help="seconds allowed for downloading one media URL")
    infer_backend: str = option("pt", help="inference engine (see `omni list engines`)", aliases=("engine",))
    log_level: Literal["debug", "info", "warning", "error"] = option("info", help="how much the server logs")
    enable_tokenizer_info_endpoint: bool = option(
        False,
        help="serve GET /tokenizer_info (vLLM's flag): the tokenizer's configuration, with which lm-eval's "
        "local-completions tokenizes through the server's /tokenize",
    )

    def media_policy(self) -> MediaPolicy:
        """What requests' media items may name, as these flags say; a folder that is not one is an `OmniError`."""
        from omni.encoders.sources import MediaPolicy

        root = Path(self.allowed_local_media_path).resolve() if self.allowed_local_media_path else None
        if root is not None and not root.is_dir():
            raise OmniError(f"--allowed-local-media-path {self.allowed_local_media_path} is not a folder")
        domains = frozenset(domain.lower() for domain in self.allowed_media_domains)
        return MediaPolicy(root, domains, self.max_media_bytes, self.media_fetch_timeout)


@dataclass
class RolloutOptions(ServeOptions):
    """Flags of `omni rollout`: those of `omni serve`, vLLM as the engine, and the limit on weight uploads."""

    infer_backend: str = option("vllm", help="inference engine (see `omni list engines`)", aliases=("engine",))
    max_weights_bytes: int | None = option(
        None, help="largest weights upload (POST /omni/v1/weights), in bytes; a larger one is a 413 (default: any)"
    )
