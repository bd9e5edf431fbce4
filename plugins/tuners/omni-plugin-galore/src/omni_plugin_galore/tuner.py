"""`GaloreTuner`: GaLore (Zhao et al. 2024, "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection")
and Q-GaLore (Zhang et al. 2024, "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank
Gradients").

Every parameter trains. For the targeted linear weights (m x n) the optimizer keeps its moments in a rank-r
subspace of the gradient (r x max(m, n) instead of m x n), refreshed by an SVD every `galore_update_proj_gap`
steps, and projects each update back to full size. With 32-bit states (adamw, adafactor) the optimizer is
galore-torch's, built by transformers' Trainer from ``optim="galore_adamw"`` and friends, which this tuner sets
through `Tuner.training_arguments`. With 8-bit states and for Q-GaLore the tuner builds the optimizer itself
(`Tuner.create_optimizer`): `omni_plugin_galore.optimizer.GaloreAdamW8bit`, which runs on CPU as well; Q-GaLore
also swaps the targeted layers for `omni_plugin_galore.quantized.QuantizedLinear` (INT8 weights). Both paths
work with every algorithm, whose trainers all build on transformers' Trainer.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import torch
from galore_torch.galore_projector import GaLoreProjector
from omni.api import FullTuner, OmniError, log_line
from q_galore_torch.q_galore_projector import GaLoreProjector as QGaLoreProjector
from transformers import TrainerCallback
from transformers.trainer_utils import check_target_module_exists

from omni_plugin_galore.options import GaloreOptions
from omni_plugin_galore.quantized import QuantizedLinear, quantize_linears


def target_linear_names(model: torch.nn.Module, targets: list[str]) -> list[str]:
    """Names of the `nn.Linear` modules GaLore projects: those `targets` match (by transformers' rule: exact
    name, substring or regex), or with no targets every linear layer except the output embedding (LM head)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        if not targets or check_target_module_exists(targets, name):
            names.append(name)
    return names


class LayerwiseCheck(TrainerCallback):
    """Layer-wise GaLore steps each parameter inside backward: say clearly which flags cannot combine with it."""

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if args.gradient_accumulation_steps != 1:
            raise OmniError(
                "--galore-optim-per-parameter steps every parameter during backward; "
                f"it cannot accumulate gradients (--gradient-accumulation-steps {args.gradient_accumulation_steps})"
            )


class GaloreTuner(FullTuner):
    """Full-parameter training with GaLore's low-rank projected optimizer on the targeted linear layers."""

    options: GaloreOptions

    def __init__(self, options: GaloreOptions | None, *, model_spec: Any = None) -> None:
        super().__init__(options or GaloreOptions(), model_spec=model_spec)
        self.target_names: list[str] = []

    @property
    def optim(self) -> str:
        """transformers' name of the optimizer these options choose (e.g. ``galore_adamw_layerwise``)."""
        o = self.options
        return f"galore_{o.galore_optim}" + ("_layerwise" if o.galore_optim_per_parameter else "")

    @property
    def builds_optimizer(self) -> bool:
        """Whether the tuner builds the optimizer itself: 8-bit states (except transformers' layer-wise 8-bit
        GaLore on a GPU) and Q-GaLore."""
        o = self.options
        return o.galore_quantization or (o.galore_optim == "adamw_8bit" and not o.galore_optim_per_parameter)

    def _check_options(self, model: Any) -> None:
        o = self.options
        if o.galore_rank < 1 or o.galore_update_proj_gap < 1:
            raise OmniError("--galore-rank and --galore-update-proj-gap must be at least 1")
        if o.galore_optim == "adamw_8bit" and o.galore_optim_per_parameter and not torch.cuda.is_available():
            raise OmniError(
                "--galore-optim adamw_8bit with --galore-optim-per-parameter needs a CUDA GPU (galore-torch's "
                "GaLoreAdamW8bit calls torch.cuda.synchronize()); drop --galore-optim-per-parameter to train with "
                "8-bit states here"
            )
        if not o.galore_quantization:
            return
        if o.galore_optim == "adafactor":
            raise OmniError("--galore-quantization trains with 8-bit AdamW; it cannot use --galore-optim adafactor")
        if o.galore_optim_per_parameter:
            raise OmniError("--galore-quantization cannot combine with --galore-optim-per-parameter")
        if o.galore_proj_type != "std":
            raise OmniError(
                f"--galore-quantization projects the smaller side only (--galore-proj-type std), "
                f"not {o.galore_proj_type}: q-galore-torch's projector supports std alone"
            )
        for flag, bits in (("--galore-weight-bits", o.galore_weight_bits), ("--galore-proj-bits", o.galore_proj_bits)):
            if not 2 <= bits <= 8:
                raise OmniError(f"{flag} {bits} must be between 2 and 8")
        if min(o.galore_queue_size, o.galore_gamma_proj, o.galore_weight_group_size, o.galore_proj_group_size) < 1:
            raise OmniError(
                "--galore-queue-size, --galore-gamma-proj, --galore-weight-group-size and --galore-proj-group-size "
                "must be at least 1"
            )
        for name in self.target_names:
            m, n = model.get_submodule(name).weight.shape
            if (m * n) % o.galore_weight_group_size:
                raise OmniError(
                    f"--galore-weight-group-size {o.galore_weight_group_size} does not divide the {m} x {n} "
                    f"weight of {name}; use a divisor of {m * n}"
                )
            projection = min(o.galore_rank, m, n) * min(m, n)
            if o.galore_proj_quant and projection % o.galore_proj_group_size:
                raise OmniError(
                    f"--galore-proj-group-size {o.galore_proj_group_size} does not divide the rank-"
                    f"{min(o.galore_rank, m, n)} projection of {name} ({projection} values); use a divisor of it"
                )

    def prepare(self, model: Any) -> Any:
        """Every parameter trains (Q-GaLore: the targeted layers' INT8 weights through the optimizer); checks the
        options against the model and this machine."""
        o = self.options
        self.target_names = target_linear_names(model, list(o.galore_target_modules))
        if not self.target_names:
            linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
            raise OmniError(
                f"--galore-target-modules {o.galore_target_modules} matches no linear layer; "
                f"names look like {linears[0] if linears else '(the model has no nn.Linear)'!r}"
            )
        self._check_options(model)
        model = super().prepare(model)
        # Checkpointed optimizer states hold the projector objects, and the Trainer reloads them with
        # torch.load(weights_only=True) on --resume-from-checkpoint.
        torch.serialization.add_safe_globals([GaLoreProjector, QGaLoreProjector])
        shapes = [model.get_submodule(n).weight.shape for n in self.target_names]
        full = sum(2 * m * n for m, n in shapes)
        projected = sum(2 * min(o.galore_rank, m, n) * max(m, n) for m, n in shapes)
        method = self.optim
        if self.builds_optimizer:
            method = "8-bit AdamW (bitsandbytes)"
        if o.galore_quantization:
            quantize_linears(
                model,
                self.target_names,
                bits=o.galore_weight_bits,
                group_size=o.galore_weight_group_size,
                stochastic_round=o.galore_stochastic_round,
            )
            # the INT8 weights' gradients come from backward through each layer's input, which must need one
            model.enable_input_require_grads()
            proj = f"INT{o.galore_proj_bits}" if o.galore_proj_quant else "float"
            method = f"Q-GaLore (INT{o.galore_weight_bits} weights, {proj} projections, 8-bit AdamW)"
        log_line(
            f"galore: {len(self.target_names)} linear layers projected to rank {o.galore_rank} with {method}; "
            f"their Adam moments take {projected:,} values instead of {full:,}"
        )
        if o.galore_quantization:  # the count of trainable parameters that follows is autograd's
            log_line(f"galore: their {full // 2:,} INT8 weights train through the optimizer, not autograd")
        return model

    def create_optimizer(self, model: Any, args: Any) -> Any:
        """`GaloreAdamW8bit` for 8-bit states and Q-GaLore; None (transformers builds galore-torch's) otherwise."""
        if not self.builds_optimizer:
            return None
        if not self.target_names:
            raise OmniError("GaloreTuner.create_optimizer() needs prepare(model) first")
        if args.world_size > 1:
            raise OmniError(
                "--galore-optim adamw_8bit and --galore-quantization train in one process: the optimizer does not "
                "all-reduce the projected weights' gradients"
            )
        from omni_plugin_galore.optimizer import GaloreAdamW8bit

        o = self.options
        layers = [model.get_submodule(name) for name in self.target_names]
        targeted = {id(layer.weight) for layer in layers}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in targeted]
        projection = {
            "rank": o.galore_rank,
            "update_proj_gap": o.galore_update_proj_gap,
            "scale": o.galore_scale,
            "proj_type": o.galore_proj_type,
        }
        if o.galore_quantization:
            projection |= {
                "proj_bits": o.galore_proj_bits if o.galore_proj_quant else None,
                "proj_group_size": o.galore_proj_group_size,
                "cos_threshold": o.galore_cos_threshold,
                "gamma_proj": o.galore_gamma_proj,
                "queue_size": o.galore_queue_size,
            }
        groups = [
            {"params": [layer.weight for layer in layers], "weight_decay": args.weight_decay, **projection},
            # as the Trainer does: matrices decay, biases and norm weights do not
            {"params": [p for p in rest if p.dim() >= 2], "weight_decay": args.weight_decay},
            {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
        ]
        return GaloreAdamW8bit(
            [g for g in groups if g["params"]],
            quantized={layer.weight: layer for layer in layers if isinstance(layer, QuantizedLinear)},
            min_8bit_size=o.galore_8bit_min_size,
            lr=args.learning_rate,
            betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon,
        )

    def training_arguments(self) -> dict[str, Any]:
        """transformers' GaLore optimizer on exactly the targeted modules."""
        o = self.options
        if not self.target_names:
            raise OmniError("GaloreTuner.training_arguments() needs prepare(model) first")
        if self.builds_optimizer:
            return {}  # `create_optimizer` builds it
        # galore-torch's AdamW warns about a deprecation of its own base class on every construction.
        warnings.filterwarnings("ignore", message="This implementation of AdamW is deprecated", category=FutureWarning)
        pattern = "|".join(re.escape(name) for name in self.target_names)
        return {
            "optim": self.optim,
            # a regex that matches exactly the modules `prepare` chose (a list would match by substring)
            "optim_target_modules": f"(?:{pattern})",
            "optim_args": (
                f"rank={o.galore_rank},update_proj_gap={o.galore_update_proj_gap},"
                f"scale={o.galore_scale},proj_type={o.galore_proj_type}"
            ),
        }

    def callbacks(self) -> list[Any]:
        """A flag check for layer-wise GaLore; nothing otherwise."""
        return [LayerwiseCheck()] if self.options.galore_optim_per_parameter else []
