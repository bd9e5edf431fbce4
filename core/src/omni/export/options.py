"""Flags of `omni export` (no heavy imports: used to build --help)."""

from __future__ import annotations

from dataclasses import dataclass

from omni.models.options import ModelOptions
from omni.options import option


@dataclass
class ExportOptions(ModelOptions):
    """What to export and where: a merged adapter, quantized weights, or both (merged, then quantized).

    `--model` is the model to quantize, or overrides the base model recorded with the adapter.
    """

    adapters: list[str] = option(
        default_factory=list,
        help="the adapter folder to export; its base model is read from the args.json training wrote "
        "(or PEFT's adapter_config.json) unless --model is given",
        metavar="DIR",
    )
    merge_lora: bool = option(False, help="fold the adapter into the base weights and save a plain model")
    quant_method: str | None = option(
        None, help="quantize the exported weights with this quantizer (see `omni list quantizers`), e.g. bnb"
    )
    quant_bits: int | None = option(None, help="bits per quantized weight, with --quant-method (bnb: 4 or 8)")
    output_dir: str | None = option(
        None, help="where the exported model goes (default: ADAPTER_DIR-merged, or MODEL-METHOD-intBITS)"
    )
