"""A training model's current weights under the names of its checkpoint, adapters merged in.

What engines send to their running model on `Engine.load_weights` (RL rollouts). peft LoRA layers contribute their base weight plus each
active adapter's delta (peft's `get_delta_weight`), computed into new tensors: the training model is
read, never changed (no merge/unmerge round trip that would disturb its optimizer state or gradients).
"""

from __future__ import annotations

from typing import Any

import torch

from omni.errors import OmniError

_PREFIXES = ("_orig_mod.",)  # torch.compile's wrapper


@torch.no_grad()
def merged_weights(model: Any) -> dict[str, torch.Tensor]:
    """`model`'s weights named as in its checkpoint (peft adapters merged); `model` is left unchanged.

    `model` is a transformers model, or a peft model around one. Every weight is returned: engines rebuild
    fused layers (q/k/v in one matrix, kernel-packed on vLLM's CPU backend) from all of their parts.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") and hasattr(model, "peft_config") else model
    lora_layers, saved_copies = _peft_layers(base)
    covered = tuple(f"{name}." for name in [*lora_layers, *saved_copies])
    weights: dict[str, torch.Tensor] = {}
    for name, layer in lora_layers.items():
        weights[f"{name}.weight"] = _merged_lora_weight(layer, name)
        if getattr(layer.get_base_layer(), "bias", None) is not None:
            weights[f"{name}.bias"] = layer.get_base_layer().bias.detach()
    for name, wrapper in saved_copies.items():
        active = wrapper.modules_to_save[wrapper.active_adapters[0]] if wrapper.active_adapters else None
        module = active if active is not None else wrapper.original_module
        for param_name, param in module.named_parameters():
            weights[f"{name}.{param_name}"] = param.detach()
    for name, param in base.named_parameters():
        if name.startswith(covered):
            continue
        weights[name] = param.detach()
    return {_checkpoint_name(name): tensor.contiguous() for name, tensor in weights.items()}


def _peft_layers(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """peft's LoRA layers and modules-to-save wrappers inside `model`, by module name (empty without peft)."""
    if not any(type(m).__module__.startswith("peft.") for m in model.modules()):
        return {}, {}
    from peft.tuners.lora import LoraLayer
    from peft.utils import ModulesToSaveWrapper

    lora = {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}
    saved = {n: m for n, m in model.named_modules() if isinstance(m, ModulesToSaveWrapper)}
    return lora, saved


def _merged_lora_weight(layer: Any, name: str) -> torch.Tensor:
    """The base weight plus every active adapter's delta, as a new tensor (the weight if already merged)."""
    weight = layer.get_base_layer().weight.detach()
    if layer.merged:  # peft merged the adapters into the base weight already
        return weight
    merged = weight.clone()
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if layer.use_dora.get(adapter, False):
            raise OmniError(
                f"{name}: DoRA adapters cannot be merged into vLLM's weights on the fly; train with plain LoRA "
                "or merge the adapter first"
            )
        merged += layer.get_delta_weight(adapter).to(merged.dtype)
    return merged


def _checkpoint_name(name: str) -> str:
    for prefix in _PREFIXES:
        name = name.replace(prefix, "")
    return name
