"""Quantize a model through a quantizer plugin and save the quantized checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omni.export.save import ensure_free, save_checkpoint
from omni.models.loader import load_model
from omni.models.options import ModelOptions
from omni.registry import Registry


def quantize_model(
    source: str, output_dir: Path, options: ModelOptions, quantization_config: Any, registry: Registry
) -> Path:
    """Load `source` with a quantizer's `quantization_config` and save the quantized weights to `output_dir`.

    The checkpoint records its quantization in config.json, so transformers (and vLLM, for methods it
    supports) load it quantized without further flags.
    """
    ensure_free(output_dir)
    loaded = load_model(dataclasses.replace(options, model=source), registry, quantization_config=quantization_config)
    return save_checkpoint(loaded.model, loaded.processor, output_dir)
