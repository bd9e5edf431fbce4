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
    merge_lora: bool = option(
        False,
        help="fold the adapter into the base weights and save a plain model (quantizing an adapter does this first "
        "anyway)",
    )
    quant_method: str | None = option(
        None, help="quantize the exported weights with this quantizer (see `omni list quantizers`), e.g. bnb"
    )
    quant_bits: int | None = option(
        None,
        help="bits per quantized weight, with --quant-method: 4 or 8 for most methods, a method refuses what it lacks "
        "(docs/export.md lists each)",
    )
    quant_towers: bool = option(
        False,
        help="also quantize a multimodal model's vision and audio towers and their aligners (by default only "
        "the language model is quantized and the towers keep their precision)",
    )
    dataset: list[str] = option(
        default_factory=list,
        help="calibration data for methods that calibrate (files or registered dataset names, as for training; "
        "NAME#N takes N rows), encoded with the model's chat template",
        metavar="DATASET",
    )
    quant_n_samples: int = option(256, help="calibration rows to use from --dataset")
    max_length: int = option(2048, help="longest calibration row in tokens; longer rows are truncated")
    output_dir: str | None = option(
        None, help="where the exported model goes (default: ADAPTER_DIR-merged, or MODEL-METHOD-intBITS)"
    )
