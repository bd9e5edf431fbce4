"""`omni export`: merge a trained adapter into its base model (`--merge-lora`) and/or quantize (`--quant-method`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from omni.cli.invocation import Invocation
from omni.errors import OmniError
from omni.export.merge import merge_adapter
from omni.export.options import ExportOptions
from omni.export.quantize import quantize_model
from omni.export.save import ensure_free
from omni.models.embedded import EMBEDDED_MODEL
from omni.train.quantizer import Quantizer


def run(invocation: Invocation) -> int:
    """Run `omni export` with the parsed flags; returns the exit status."""
    options: ExportOptions = invocation.options
    quantizer = _quantizer(invocation)
    if not options.merge_lora and quantizer is None:
        raise OmniError(
            "nothing to export: add --merge-lora to fold an adapter into its base model, "
            "and/or --quant-method METHOD --quant-bits N to quantize"
        )
    if options.adapters and not options.merge_lora and quantizer is None:
        raise OmniError("an adapter is exported by merging it into its base model: add --merge-lora")
    # Quantizing an adapter merges it into its base first, with or without --merge-lora (as ms-swift does).
    merging = options.merge_lora or bool(options.adapters)
    if merging and len(options.adapters) != 1:
        raise OmniError("--merge-lora needs the one adapter folder to merge: --adapters DIR")
    if options.dataset and (quantizer is None or not quantizer.needs_calibration()):
        raise OmniError(f"--dataset is calibration data, and --quant-method {options.quant_method} does not calibrate")
    output_dir = Path(options.output_dir) if options.output_dir else _default_output_dir(options)
    ensure_free(output_dir)

    registry = invocation.registry
    if quantizer is None:
        saved = merge_adapter(Path(options.adapters[0]), output_dir, options, registry)
    elif merging:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".omni-merge-", dir=output_dir.parent) as scratch:
            merged = merge_adapter(Path(options.adapters[0]), Path(scratch) / "merged", options, registry)
            saved = quantize_model(str(merged), output_dir, options, quantizer, registry)
    else:
        saved = quantize_model(options.model or EMBEDDED_MODEL, output_dir, options, quantizer, registry)
    print(f"exported model saved to {saved}")
    return 0


def _quantizer(invocation: Invocation) -> Quantizer | None:
    """The selected quantizer, built with its options, or None without `--quant-method`."""
    options: ExportOptions = invocation.options
    selected = invocation.selected_one("quant_method")
    if selected is None and options.quant_bits is None:
        return None
    if selected is None or options.quant_bits is None:
        raise OmniError("--quant-method and --quant-bits go together, e.g. --quant-method bnb --quant-bits 4")
    quantizer = selected.spec.load()(selected.options)
    quantizer.quantization_config(options.quant_bits, torch_dtype=options.torch_dtype)  # bad bits fail before loading
    return quantizer


def _default_output_dir(options: ExportOptions) -> Path:
    """ADAPTER-merged for an adapter; the source's name plus METHOD-intBITS when quantizing (ms-swift's names)."""
    if options.adapters:
        adapter = Path(options.adapters[0])
        base = adapter.with_name(f"{adapter.name}-merged")
    else:
        base = Path(Path(options.model or EMBEDDED_MODEL).name)
    if options.quant_method is None:
        return base
    return base.with_name(f"{base.name}-{options.quant_method}-int{options.quant_bits}")
