"""Quantize a model through a quantizer plugin and save the quantized checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.export.options import ExportOptions
from omni.export.save import ensure_free, save_checkpoint
from omni.models.loader import load_model
from omni.models.resolve import resolve_model
from omni.registry import ModelSpec, Registry


def quantize_model(source: str, output_dir: Path, options: ExportOptions, quantizer: Any, registry: Registry) -> Path:
    """Load `source`, quantize it with `quantizer` at `--quant-bits` and save it to `output_dir`.

    A multimodal model's vision and audio towers (and aligners) keep their precision unless `--quant-towers`.
    Methods that calibrate get `--dataset` rows encoded with the model's template. The checkpoint records
    its quantization, so transformers (and vLLM, for formats it supports) or the quantizer's own loader
    load it quantized without further flags.
    """
    ensure_free(output_dir)
    model_options = dataclasses.replace(options, model=source)
    resolved = resolve_model(source, registry, model_type=options.model_type, use_hf=options.use_hf)
    keep_modules = () if options.quant_towers else tower_modules(resolved.spec)
    bits = options.quant_bits
    calibrates = quantizer.needs_calibration()
    if calibrates and not options.dataset:
        raise OmniError(
            f"--quant-method {options.quant_method} calibrates: pass --dataset DATASET (e.g. data.jsonl#128)"
        )
    config = quantizer.quantization_config(bits, torch_dtype=options.torch_dtype, keep_modules=keep_modules)
    loaded = load_model(model_options, registry, quantization_config=config, resolved=resolved)
    if config is not None and getattr(loaded.model.config, "quantization_config", None) is None:
        # A loader that returns part of what it loaded (the Qwen3-Omni thinker) leaves the record on the whole.
        loaded.model.config.quantization_config = config
    calibration = None
    if calibrates:
        from omni.export.data import encoded_batches

        batches = encoded_batches(
            loaded, options.dataset, n_samples=options.quant_n_samples, max_length=options.max_length, registry=registry
        )
        calibration = [{key: value for key, value in batch.items() if key != "labels"} for batch in batches]
    model = quantizer.quantize(loaded.model, bits=bits, keep_modules=keep_modules, calibration=calibration)
    return save_checkpoint(model, loaded.processor, output_dir, save_model=quantizer.save_quantized)


def tower_modules(spec: ModelSpec) -> tuple[str, ...]:
    """Module-name prefixes of a model family's vision and audio towers and aligners (none for text models)."""
    parts = spec.parts
    return () if parts is None else (*parts.vision, *parts.audio, *parts.aligner)


def transformers_skip_patterns(keep_modules: tuple[str, ...]) -> list[str] | None:
    """`keep_modules` as the skip list of a transformers quantization config (bitsandbytes' `llm_int8_skip_modules`,
    FP8's `modules_to_not_convert`), or None (transformers' default skips) when there is nothing to keep.

    transformers matches each entry as a regex from the start of a module's name; the model a loader returns
    may be a submodule of what transformers loads (the Qwen3-Omni thinker), hence the optional parent. Naming
    modules replaces transformers' default skips (the output head), so the head is named too.
    """
    import re

    if not keep_modules:
        return None
    return [*(rf"(.+\.)?{re.escape(prefix)}" for prefix in keep_modules), "lm_head"]
