"""Where exports go: a free output folder, written in one piece."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.models.atomic import atomic_directory


def ensure_free(output_dir: Path) -> None:
    """Raise `OmniError` when `output_dir` already holds something (exports never overwrite)."""
    if output_dir.exists() and any(output_dir.iterdir()):
        raise OmniError(f"{output_dir} already exists and is not empty; remove it or pass another --output-dir")


def save_checkpoint(
    model: Any, processor: Any, output_dir: Path, *, save_model: Callable[[Any, Path], None] | None = None
) -> Path:
    """Save a model and its processor/tokenizer (with its chat template) atomically.

    `save_model(model, folder)` writes the weights; the default is transformers' `save_pretrained`
    (safetensors, config, generation config).
    """
    ensure_free(output_dir)
    with atomic_directory(output_dir, replace=output_dir.exists()) as tmp:
        if save_model is None:
            model.save_pretrained(tmp)
        else:
            save_model(model, tmp)
        processor.save_pretrained(tmp)
    return output_dir
