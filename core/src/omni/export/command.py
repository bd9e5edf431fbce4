"""`omni export`: merge a trained adapter into its base model (`--merge-lora`) and/or quantize (`--quant-method`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omni.cli.invocation import Invocation
from omni.errors import OmniError
from omni.export.merge import merge_adapter
from omni.export.options import ExportOptions
from omni.export.quantize import quantize_model
from omni.export.save import ensure_free
from omni.models.embedded import EMBEDDED_MODEL


def run(invocation: Invocation) -> int:
    """Run `omni export` with the parsed flags; returns the exit status."""
    options: ExportOptions = invocation.options
    quantization_config = _quantization_config(invocation)
    if not options.merge_lora and quantization_config is None:
        raise OmniError(
            "nothing to export: add --merge-lora to fold an adapter into its base model, "
            "and/or --quant-method METHOD --quant-bits N to quantize"
        )
    if options.merge_lora and len(options.adapters) != 1:
        raise OmniError("--merge-lora needs the one adapter folder to merge: --adapters DIR")
    if options.adapters and not options.merge_lora:
        raise OmniError("an adapter is exported by merging it into its base model: add --merge-lora")
    output_dir = Path(options.output_dir) if options.output_dir else _default_output_dir(options)
    ensure_free(output_dir)

    registry = invocation.registry
    if quantization_config is None:
        saved = merge_adapter(Path(options.adapters[0]), output_dir, options, registry)
    elif options.merge_lora:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".omni-merge-", dir=output_dir.parent) as scratch:
            merged = merge_adapter(Path(options.adapters[0]), Path(scratch) / "merged", options, registry)
            saved = quantize_model(str(merged), output_dir, options, quantization_config, registry)
    else:
        saved = quantize_model(options.model or EMBEDDED_MODEL, output_dir, options, quantization_config, registry)
    print(f"exported model saved to {saved}")
    return 0


def _quantization_config(invocation: Invocation) -> Any:
    """The selected quantizer's load-time config for `--quant-bits`, or None without `--quant-method`."""
    options: ExportOptions = invocation.options
    selected = invocation.selected_one("quant_method")
    if selected is None and options.quant_bits is None:
        return None
    if selected is None or options.quant_bits is None:
        raise OmniError("--quant-method and --quant-bits go together, e.g. --quant-method bnb --quant-bits 4")
    quantizer = selected.spec.load()(selected.options)
    return quantizer.quantization_config(options.quant_bits, torch_dtype=options.torch_dtype)


def _default_output_dir(options: ExportOptions) -> Path:
    """ADAPTER-merged for a merge; the source's name plus METHOD-intBITS when quantizing (ms-swift's names)."""
    if options.merge_lora:
        adapter = Path(options.adapters[0])
        base = adapter.with_name(f"{adapter.name}-merged")
    else:
        base = Path(Path(options.model or EMBEDDED_MODEL).name)
    if options.quant_method is None:
        return base
    return base.with_name(f"{base.name}-{options.quant_method}-int{options.quant_bits}")
