"""A training model's current weights under the names of its checkpoint, adapters merged in.

What engines send to their running model on `Engine.load_weights` (RL rollouts). The tuner whose adapters the
model carries merges them (`Tuner.merged_weights`: the LoRA plugin adds each active adapter's delta into new
tensors); core knows no adapter library. The training model is read, never changed.
"""

from __future__ import annotations

from typing import Any

from omni.registry import Registry

_PREFIXES = ("_orig_mod.",)  # torch.compile's wrapper


def merged_weights(model: Any, registry: Registry | None = None) -> dict[str, Any]:
    """`model`'s weights named as in its checkpoint (adapters merged by their tuner); `model` is left unchanged.

    `model` is a transformers model, or a tuner's wrapper around one. Every weight is returned: engines rebuild
    fused layers (q/k/v in one matrix, kernel-packed on vLLM's CPU backend) from all of their parts. The tuners
    asked are `registry`'s (default: the process's plugin host).
    """
    if registry is None:
        from omni.plugins import get_registry

        registry = get_registry()
    weights = None
    for registration in registry.all("tuners"):
        weights = registration.spec.load().merged_weights(model)
        if weights is not None:
            break
    if weights is None:
        weights = {name: param.detach() for name, param in model.named_parameters()}
    return {_checkpoint_name(name): tensor.contiguous() for name, tensor in weights.items()}


def _checkpoint_name(name: str) -> str:
    for prefix in _PREFIXES:
        name = name.replace(prefix, "")
    return name
