"""A training model's current weights under the names of its checkpoint, adapters merged in.

What engines send to their running model on `Engine.load_weights` (RL rollouts). The tuner whose adapters the
model carries merges them (`Tuner.merged_weights`: the LoRA plugin adds each active adapter's delta into new
tensors); core knows no adapter library. The training model is read, never changed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omni.registry import Registry

_PREFIXES = ("_orig_mod.",)  # torch.compile's wrapper
# Where an `omni rollout` server says what it is (GET) and takes a trainer's weights file (POST); `omni serve`
# answers it with a 404.
ROLLOUT_WEIGHTS_PATH = "/omni/v1/weights"


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


@contextlib.contextmanager
def weights_file(model: Any, registry: Registry | None = None) -> Iterator[str | None]:
    """The path of a safetensors file holding `merged_weights(model)`, removed on leaving (None: no weights).

    Written in shared memory (/dev/shm) where there is some, so that readers on this machine (an engine's
    worker processes) and uploads (`omni rollout`) read it from memory.
    """
    from safetensors.torch import save_file

    weights = merged_weights(model, registry)
    if not weights:
        yield None
        return
    handle, path = new_weights_file()
    os.close(handle)
    try:
        save_file({name: tensor.cpu() for name, tensor in weights.items()}, path)
        del weights
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


def new_weights_file() -> tuple[int, str]:
    """A new, empty safetensors file for weights, in shared memory (/dev/shm) where the machine has it: its open
    descriptor and path (`tempfile.mkstemp`'s)."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkstemp(prefix="omni-weights-", suffix=".safetensors", dir=folder)


def check_weights_fit(weights: dict[str, tuple[int, ...]], model: dict[str, tuple[int, ...]]) -> None:
    """`OmniError` naming the first misfits unless every tensor of `weights` (name to shape) is one of `model`'s
    in the same shape: what an engine checks before it takes a weights file (`Engine.load_weights_file`)."""
    from omni.errors import OmniError

    unknown = sorted(set(weights) - set(model))
    if unknown:
        raise OmniError(f"the weights do not fit this model: it has no {unknown[:3]} ({len(unknown)} such)")
    misshapen = sorted(name for name in weights if weights[name] != model[name])
    if misshapen:
        first = misshapen[0]
        raise OmniError(
            f"the weights do not fit this model: {first} is {list(weights[first])}, the model's {list(model[first])} "
            f"({len(misshapen)} tensors of other shapes)"
        )
