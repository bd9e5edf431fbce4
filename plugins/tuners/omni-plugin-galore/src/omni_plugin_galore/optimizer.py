"""`GaloreAdamW8bit`: bitsandbytes' 8-bit AdamW with GaLore's projection, on CPU or GPU, for plain weights and
for Q-GaLore's INT8 weights (`omni_plugin_galore.quantized.QuantizedLinear`).

Why not the libraries' own classes: galore-torch 1.0's `GaLoreAdamW8bit` and q-galore-torch 1.0's `AdamW8bit`
call ``torch.cuda.synchronize()`` after every update (an error on a CPU-only torch), and the latter only trains
weights carrying attributes set by a layer the package does not ship. bitsandbytes' 8-bit Adam kernels and the
projectors of both packages run anywhere, so this optimizer is built from those: parameter groups without
``rank`` are bitsandbytes' `AdamW8bit` unchanged; for a group with ``rank`` each weight's gradient is projected
to rank r (galore-torch's `GaLoreProjector`, or q-galore-torch's with INT4 projection matrices and lazy
subspace updates), Adam runs on the projected gradient with 8-bit moments of that small shape, and the update
is projected back and added to the weight (decoupled weight decay applied to the full weight).
"""

from __future__ import annotations

from typing import Any

import bitsandbytes.functional as bnb_functional
import torch
from bitsandbytes.optim import AdamW8bit
from bitsandbytes.utils import sync_gpu
from galore_torch.galore_projector import GaLoreProjector
from q_galore_torch.q_galore_projector import GaLoreProjector as QGaLoreProjector

from omni_plugin_galore.quantized import QuantizedLinear


class GaloreAdamW8bit(AdamW8bit):
    """AdamW with 8-bit states (bitsandbytes, block-wise) and GaLore projection for groups that set ``rank``.

    Projected groups take ``rank``, ``update_proj_gap``, ``scale``, ``proj_type`` and, for Q-GaLore,
    ``proj_bits`` (None: float projections), ``proj_group_size``, ``cos_threshold``, ``gamma_proj``,
    ``queue_size``. `quantized` maps each INT8 weight to its layer, whose accumulated float gradient is used
    in place of ``.grad``. Tensors smaller than `min_8bit_size` keep 32-bit moments, as in bitsandbytes.
    """

    def __init__(
        self,
        params: Any,
        *,
        quantized: dict[torch.Tensor, QuantizedLinear] | None = None,
        min_8bit_size: int = 4096,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, min_8bit_size=min_8bit_size, **kwargs)
        self.quantized = quantized or {}

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self.initialized:
            self.check_overrides()
            self.to_gpu()
            self.initialized = True
        for gindex, group in enumerate(self.param_groups):
            for pindex, p in enumerate(group["params"]):
                if "rank" in group:
                    self._projected_step(group, p)
                elif p.grad is not None:  # bitsandbytes' own path
                    if len(self.state[p]) == 0:
                        self.init_state(group, p, gindex, pindex)
                    self.prefetch_state(p)
                    self.update_step(group, p, gindex, pindex)
                    sync_gpu(p)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients, the INT8 weights' accumulated float gradients included."""
        super().zero_grad(set_to_none=set_to_none)
        for layer in self.quantized.values():
            layer.weight_grad = None

    def _projector(self, group: dict[str, Any]) -> Any:
        if group.get("proj_bits") is None and group.get("cos_threshold") is None:
            return GaLoreProjector(
                group["rank"],
                update_proj_gap=group["update_proj_gap"],
                scale=group["scale"],
                proj_type=group["proj_type"],
            )
        return QGaLoreProjector(
            group["rank"],
            update_proj_gap=group["update_proj_gap"],
            scale=group["scale"],
            proj_type=group["proj_type"],
            quant=group.get("proj_bits") is not None,
            group_size=group["proj_group_size"],
            n_bit=group.get("proj_bits") or 8,
            cos_threshold=group["cos_threshold"],
            gamma_proj=group["gamma_proj"],
            queue_size=group["queue_size"],
        )

    def _init_moments(self, state: dict[str, Any], like: torch.Tensor) -> None:
        state["state1"] = torch.zeros_like(like, dtype=torch.float32)
        state["state2"] = torch.zeros_like(like, dtype=torch.float32)
        if like.numel() >= self.args.min_8bit_size:
            if "dynamic" not in self.name2qmap:
                self.fill_qmap()
            state["state1"] = torch.zeros_like(like, dtype=torch.uint8)
            state["state2"] = torch.zeros_like(like, dtype=torch.uint8)
            state["qmap1"] = self.name2qmap["dynamic"].to(like.device)
            state["qmap2"] = self.name2qmap["udynamic"].to(like.device)
            blocks = -(-like.numel() // 256)  # bitsandbytes' block size for block-wise 8-bit states
            state["absmax1"] = torch.zeros(blocks, dtype=torch.float32, device=like.device)
            state["absmax2"] = torch.zeros(blocks, dtype=torch.float32, device=like.device)

    def _projected_step(self, group: dict[str, Any], p: torch.Tensor) -> None:
        layer = self.quantized.get(p)
        grad = layer.take_grad() if layer is not None else p.grad
        if grad is None:
            return
        state = self.state[p]
        if "projector" not in state:
            state["projector"] = self._projector(group)
            state["step"] = 0
        low_rank = state["projector"].project(grad.float(), state["step"]).contiguous()
        if "state1" not in state:
            self._init_moments(state, low_rank)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        update = torch.zeros_like(low_rank)  # the kernels add -lr * Adam's step to this buffer
        if state["state1"].dtype == torch.uint8:
            bnb_functional.optimizer_update_8bit_blockwise(
                "adam", low_rank, update, state["state1"], state["state2"], beta1, beta2, 0.0, 0.0, group["eps"],
                state["step"], group["lr"], state["qmap1"], state["qmap2"], state["absmax1"], state["absmax2"],
            )  # fmt: skip
        else:
            bnb_functional.optimizer_update_32bit(
                "adam", low_rank, update, state["state1"], beta1, group["eps"], state["step"], group["lr"],
                state["state2"], beta2,
            )  # fmt: skip
        sync_gpu(update)
        weight = layer.dequantized(torch.float32) if layer is not None else p
        if group["weight_decay"] > 0:
            weight.mul_(1 - group["lr"] * group["weight_decay"])
        weight.add_(state["projector"].project_back(update).to(weight.dtype))
        if layer is not None:
            layer.requantize(weight)
