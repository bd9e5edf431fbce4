"""Flags of `omni export` (no heavy imports: used to build --help)."""

from __future__ import annotations

from dataclasses import dataclass

from omni.models.options import ModelOptions
from omni.options import option


@dataclass
class ExportOptions(ModelOptions):
    """What to export and where; `--model` overrides the base model recorded with the adapter."""

    adapters: list[str] = option(
        default_factory=list,
        help="the adapter folder to export; its base model is read from the args.json training wrote "
        "(or PEFT's adapter_config.json) unless --model is given",
        metavar="DIR",
    )
    merge_lora: bool = option(False, help="fold the adapter into the base weights and save a plain model")
    output_dir: str | None = option(None, help="where the exported model goes (default: ADAPTER_DIR-merged)")
