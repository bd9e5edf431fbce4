"""`LisaTuner`: LISA (Pan et al. 2024, "LISA: Layerwise Importance Sampling for Memory-Efficient LLM Fine-Tuning").

Everything outside the decoder layers (embeddings, final norm, LM head) trains all the time; of the decoder
layers only `lisa_activated_layers`, drawn at random, train during each period of `lisa_step_interval` steps.

How it stays correct with any algorithm's optimizer: the Trainer builds its optimizer from the parameters
that have ``requires_grad`` when training starts, so `prepare` leaves every parameter trainable and
`LisaCallback` narrows the set from `on_train_begin` on. A frozen layer's gradient is None, so AdamW skips it;
its optimizer state is dropped when it is switched off, so state exists only for the trainable parameters of
the current period (each period starts its Adam moments afresh, as the paper's algorithm runs AdamW per
period). That is where LISA's memory saving over full tuning comes from.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from omni.api import FullTuner, OmniError, log_line
from transformers import TrainerCallback

from omni_plugin_lisa.options import LisaOptions


def decoder_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The model's stack of decoder layers: the `ModuleList` holding the most parameters, with its name.

    (A multimodal model also has encoder stacks; the language model's layers are the largest.)
    """
    best: tuple[int, str, torch.nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            size = sum(p.numel() for p in module.parameters())
            if best is None or size > best[0]:
                best = (size, name, module)
    if best is None:
        raise OmniError(f"--tuner lisa: {type(model).__name__} has no stack of layers (nn.ModuleList) to sample from")
    return best[1], best[2]


def active_layers(num_layers: int, count: int, seed: int, period: int) -> list[int]:
    """The layers that train in `period` (steps ``period * interval`` onwards): a seeded draw, so a resumed
    run picks the same layers as an uninterrupted one."""
    return sorted(random.Random(seed * 1_000_003 + period).sample(range(num_layers), count))


class LisaCallback(TrainerCallback):
    """Switches which decoder layers train every `interval` steps (see the module docstring)."""

    def __init__(self, layers: torch.nn.ModuleList, count: int, interval: int) -> None:
        self.layers = layers
        self.count = count
        self.interval = interval
        self.active: list[int] = []
        self.history: list[tuple[int, list[int]]] = []  # (first step, layers) per period, for logs and tests

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        if args.deepspeed or getattr(args, "fsdp", None):
            raise OmniError(
                "--tuner lisa switches trainable layers during training; DeepSpeed and FSDP do not allow it"
            )
        self._switch(state.global_step, args.seed, optimizer)

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        if state.global_step % self.interval == 0 and (not self.history or self.history[-1][0] != state.global_step):
            self._switch(state.global_step, args.seed, optimizer)

    def _switch(self, step: int, seed: int, optimizer: Any) -> None:
        chosen = active_layers(len(self.layers), self.count, seed, step // self.interval)
        optimizer_state = getattr(getattr(optimizer, "optimizer", optimizer), "state", {})
        for index, layer in enumerate(self.layers):
            on = index in chosen
            for p in layer.parameters():
                if not on and p.requires_grad:
                    p.grad = None
                    optimizer_state.pop(p, None)  # frees its Adam moments; the next activation starts afresh
                p.requires_grad_(on)
        self.active = chosen
        self.history.append((step, chosen))


class LisaTuner(FullTuner):
    """Full-parameter tuning where only the embeddings, head and a few sampled decoder layers train at a time."""

    options: LisaOptions

    def __init__(self, options: LisaOptions | None, *, model_spec: Any = None) -> None:
        super().__init__(options or LisaOptions(), model_spec=model_spec)
        self._callback: LisaCallback | None = None

    def prepare(self, model: Any) -> Any:
        """Every parameter trainable (so the optimizer holds them all); the callback picks the layers per period."""
        o = self.options
        name, layers = decoder_layers(model)
        if not 0 < o.lisa_activated_layers <= len(layers):
            raise OmniError(
                f"--lisa-activated-layers {o.lisa_activated_layers}: {name} has {len(layers)} layers; "
                f"choose 1 to {len(layers)}"
            )
        if o.lisa_step_interval < 1:
            raise OmniError(f"--lisa-step-interval {o.lisa_step_interval}: must be at least 1")
        model = super().prepare(model)
        per_layer = sum(p.numel() for p in layers.parameters()) // len(layers)
        outside = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in layers.parameters())
        log_line(
            f"lisa: {o.lisa_activated_layers} of the {len(layers)} layers in {name} train at a time, switched every "
            f"{o.lisa_step_interval} steps: about {outside + o.lisa_activated_layers * per_layer:,} parameters per step"
        )
        self._callback = LisaCallback(layers, o.lisa_activated_layers, o.lisa_step_interval)
        return model

    def callbacks(self) -> list[Any]:
        """The layer-switching callback (one per prepared model)."""
        if self._callback is None:
            raise OmniError("LisaTuner.callbacks() needs prepare(model) first")
        return [self._callback]
