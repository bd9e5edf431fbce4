"""Where exports go: a free output folder, written in one piece."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.models.atomic import atomic_directory


def ensure_free(output_dir: Path) -> None:
    """Raise `OmniError` when `output_dir` already holds something (exports never overwrite)."""
    if output_dir.exists() and any(output_dir.iterdir()):
        raise OmniError(f"{output_dir} already exists and is not empty; remove it or pass another --output-dir")


def save_checkpoint(model: Any, processor: Any, output_dir: Path) -> Path:
    """Save a transformers model (safetensors, generation config) and its processor/tokenizer atomically."""
    ensure_free(output_dir)
    with atomic_directory(output_dir, replace=output_dir.exists()) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return output_dir
