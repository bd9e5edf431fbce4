"""`QuantizedLinear`: Q-GaLore's low-bit weights (Zhang et al. 2024, "Q-GaLore: Quantized GaLore with INT4
Projection and Layer-Adaptive Low-Rank Gradients").

A targeted `nn.Linear` keeps its weight as integer codes (int8 storage) with a scale and an offset per group of
`group_size` consecutive values, and dequantizes it for each forward and backward. The weight has no `.grad`:
backward accumulates the float gradient of the weight in `QuantizedLinear.weight_grad`, which the optimizer
(`omni_plugin_galore.optimizer.GaloreAdamW8bit`) consumes, adds its update to the dequantized weight and writes
it back with `requantize` — by stochastic rounding, so an update smaller than one quantization step still moves
the weight in expectation instead of rounding away.

q-galore-torch ships an optimizer for such weights but not the layer (it lives in the Q-GaLore training
scripts), hence this module. Its state dict is a plain linear layer's (the dequantized `weight`), so checkpoints
and the final output are ordinary transformers weights, and loading one (e.g. ``--resume-from-checkpoint``)
quantizes it again.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def quantize(
    weight: torch.Tensor, bits: int, group_size: int, *, stochastic: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(int8 codes shaped like `weight`, per-group scales, per-group minimums), asymmetric over each group of
    `group_size` consecutive values; `stochastic` rounds up with probability equal to the fractional part."""
    levels = 2**bits - 1
    groups = weight.detach().float().reshape(-1, group_size)
    low = groups.amin(dim=1, keepdim=True)
    scales = ((groups.amax(dim=1, keepdim=True) - low) / levels).clamp_(min=1e-12)
    steps = (groups - low) / scales
    steps = torch.floor(steps + torch.rand_like(steps)) if stochastic else torch.round(steps)
    # codes 0..levels are stored shifted into int8's signed range
    codes = (steps.clamp_(0, levels) - 2 ** (bits - 1)).to(torch.int8)
    return codes.reshape(weight.shape), scales, low


def dequantize(
    codes: torch.Tensor, scales: torch.Tensor, low: torch.Tensor, bits: int, dtype: torch.dtype
) -> torch.Tensor:
    """The weight `quantize` encoded, as `dtype`."""
    groups = codes.reshape(scales.shape[0], -1).float() + 2 ** (bits - 1)
    return (groups * scales + low).reshape(codes.shape).to(dtype)


class _DequantizedMatmul(torch.autograd.Function):
    """``x @ W.T`` with W dequantized on the fly; backward returns the input's gradient and adds the weight's
    gradient (float32) to the layer's `weight_grad`, where autograd cannot put it (integer tensors have no grad)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: QuantizedLinear) -> torch.Tensor:
        ctx.layer = layer
        ctx.save_for_backward(x)
        return nn.functional.linear(x, layer.dequantized(x.dtype))

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        layer: QuantizedLinear = ctx.layer
        grad_w = grad_out.reshape(-1, grad_out.shape[-1]).t().float() @ x.reshape(-1, x.shape[-1]).float()
        layer.weight_grad = grad_w if layer.weight_grad is None else layer.weight_grad.add_(grad_w)
        return grad_out @ layer.dequantized(grad_out.dtype), None


class QuantizedLinear(nn.Module):
    """A linear layer whose weight is stored as `bits`-bit integer codes (int8) with per-group scales."""

    def __init__(self, linear: nn.Linear, *, bits: int, group_size: int, stochastic_round: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bits, self.group_size, self.stochastic_round = bits, group_size, stochastic_round
        self.weight_dtype = linear.weight.dtype  # of the dequantized weight, as saved
        codes, scales, low = quantize(linear.weight, bits, group_size, stochastic=False)
        # a Parameter, so the optimizer and `model.parameters()` see it; it never has a .grad
        self.weight = nn.Parameter(codes, requires_grad=False)
        self.register_buffer("weight_scales", scales)
        self.register_buffer("weight_low", low)
        self.bias = linear.bias
        self.weight_grad: torch.Tensor | None = None
        self.register_state_dict_post_hook(_save_dequantized)
        self.register_load_state_dict_pre_hook(_load_quantized)

    def dequantized(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The current weight as floats (`dtype`, default the original weight's)."""
        return dequantize(self.weight, self.weight_scales, self.weight_low, self.bits, dtype or self.weight_dtype)

    @torch.no_grad()
    def requantize(self, weight: torch.Tensor) -> None:
        """Store `weight` (float, this layer's shape) as the new codes, in place."""
        codes, scales, low = quantize(weight, self.bits, self.group_size, stochastic=self.stochastic_round)
        self.weight.copy_(codes)
        self.weight_scales.copy_(scales)
        self.weight_low.copy_(low)

    def take_grad(self) -> torch.Tensor | None:
        """The weight's gradient accumulated since the last call (float32), and forget it."""
        grad, self.weight_grad = self.weight_grad, None
        return grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _DequantizedMatmul.apply(x, self)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, group_size={self.group_size}"


def _save_dequantized(module: QuantizedLinear, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    # a plain nn.Linear's entries: the float weight (and bias), no codes or scales
    state_dict[prefix + "weight"] = module.dequantized()
    del state_dict[prefix + "weight_scales"], state_dict[prefix + "weight_low"]


def _load_quantized(module: QuantizedLinear, state_dict: dict, prefix: str, *args: Any) -> None:
    weight = state_dict.get(prefix + "weight")
    if weight is not None and weight.is_floating_point():
        codes, scales, low = quantize(weight, module.bits, module.group_size, stochastic=False)
        state_dict.update({prefix + "weight": codes, prefix + "weight_scales": scales, prefix + "weight_low": low})


def quantize_linears(model: nn.Module, names: list[str], *, bits: int, group_size: int, stochastic_round: bool) -> None:
    """Replace each named `nn.Linear` of `model` with a `QuantizedLinear` of the same weights, in place."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, child)
        setattr(
            parent, child, QuantizedLinear(linear, bits=bits, group_size=group_size, stochastic_round=stochastic_round)
        )
