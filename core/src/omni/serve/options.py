"""Flags of `omni serve` (no heavy imports: used to build --help)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.models.options import ModelOptions
from omni.options import option
from omni.template.options import TemplateCliOptions


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
        None, help="require `Authorization: Bearer KEY` on every /v1 request (default: $OMNI_API_KEY when set)"
    )
    max_new_tokens: int = option(
        512, help="longest answer, in tokens, for requests that set no max_tokens", aliases=("default_max_tokens",)
    )
    infer_backend: str = option("pt", help="inference engine (see `omni list engines`)", aliases=("engine",))
    log_level: Literal["debug", "info", "warning", "error"] = option("info", help="how much the server logs")
