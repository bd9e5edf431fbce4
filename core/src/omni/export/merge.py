"""Merge an adapter into its base model and save the result as an ordinary transformers checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omni.export.save import ensure_free, save_checkpoint
from omni.infer.adapters import find_tuner
from omni.infer.recorded import recorded_model_head, with_training_defaults
from omni.models.loader import load_model
from omni.models.options import ModelOptions
from omni.models.resolve import read_config
from omni.registry import Registry


def merge_adapter(adapter_dir: Path, output_dir: Path, options: ModelOptions, registry: Registry) -> Path:
    """Load the base model, apply the adapter through its tuner, merge, and save into `output_dir` atomically.

    The result holds safetensors weights (in the base checkpoint's dtype unless `--torch-dtype` says
    otherwise), the generation config and the tokenizer or processor with its chat template. A model whose
    loader gave it an ``export_model`` callable is saved as the model that returns: the whole checkpoint it is
    part of (Qwen3-Omni's thinker with its talker and code2wav).
    """
    ensure_free(output_dir)  # before the slow part
    tuner_cls = find_tuner(adapter_dir, registry)
    head = recorded_model_head(adapter_dir)  # a reward model's adapter merges into its base with the score head
    loaded = load_model(with_training_defaults(options, adapter_dir), registry, head=head, with_adapters=True)
    model = tuner_cls.load(loaded.model, adapter_dir, name="default")
    tuner_cls.set_active(model, "default")
    merged = tuner_cls.merge(model)
    # A loader that returned one part of its checkpoint's model (Qwen3-Omni's thinker) says what the whole is:
    # that part, merged in place, beside the rest (the talker and code2wav that speak).
    export_model = getattr(merged, "export_model", None)
    saved = export_model() if export_model is not None else merged
    if options.torch_dtype == "auto":
        _restore_checkpoint_dtype(saved, loaded.path)
    return save_checkpoint(saved, loaded.processor, output_dir)


def _restore_checkpoint_dtype(model: Any, path: str) -> None:
    """Cast `model` back to the dtype its base checkpoint was saved in (CPU loading upcasts to float32)."""
    import torch

    if not Path(path).is_dir():
        return  # a hub id: keep the dtype it was loaded in
    config = read_config(Path(path))
    name = config.get("dtype") or config.get("torch_dtype")
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if isinstance(dtype, torch.dtype) and dtype != model.dtype:
        model.to(dtype)
