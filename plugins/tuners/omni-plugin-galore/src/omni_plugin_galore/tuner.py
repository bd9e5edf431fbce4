"""`GaloreTuner`: GaLore (Zhao et al. 2024, "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection").

Every parameter trains. For the targeted linear weights (m x n) the optimizer keeps its moments in a rank-r
subspace of the gradient (r x max(m, n) instead of m x n), refreshed by an SVD every `galore_update_proj_gap`
steps, and projects each update back to full size. The optimizer itself is galore-torch's, built by
transformers' Trainer from ``optim="galore_adamw"`` and friends, which this tuner sets through
`Tuner.training_arguments` — so it works with every algorithm, whose trainers all build on that Trainer.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import torch
from galore_torch.galore_projector import GaLoreProjector
from omni.errors import OmniError
from omni.train.job import log_line
from omni.train.tuners import FullTuner
from transformers import TrainerCallback
from transformers.trainer_utils import check_target_module_exists

from omni_plugin_galore.options import GaloreOptions

Q_GALORE_MISSING = (
    "--galore-quantization (Q-GaLore) is not available: q-galore-torch 1.0 installs here, but its optimizer "
    "only trains weights that a Q-GaLore INT8 linear layer (not shipped in the package) has quantized, and it "
    "calls torch.cuda.synchronize() on every update; transformers has no Q-GaLore integration. "
    "Use --galore-optim adamw_8bit (8-bit optimizer states, CUDA GPU) or plain GaLore"
)


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

    def prepare(self, model: Any) -> Any:
        """Every parameter trains; checks the options against the model and this machine."""
        o = self.options
        if o.galore_quantization:
            raise OmniError(Q_GALORE_MISSING)
        if o.galore_optim == "adamw_8bit" and not torch.cuda.is_available():
            raise OmniError(
                "--galore-optim adamw_8bit needs a CUDA GPU: galore-torch 1.0's GaLoreAdamW8bit calls "
                "torch.cuda.synchronize() after every update (bitsandbytes' 8-bit Adam alone runs on CPU)"
            )
        if o.galore_rank < 1 or o.galore_update_proj_gap < 1:
            raise OmniError("--galore-rank and --galore-update-proj-gap must be at least 1")
        self.target_names = target_linear_names(model, list(o.galore_target_modules))
        if not self.target_names:
            linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
            raise OmniError(
                f"--galore-target-modules {o.galore_target_modules} matches no linear layer; "
                f"names look like {linears[0] if linears else '(the model has no nn.Linear)'!r}"
            )
        model = super().prepare(model)
        # Checkpointed optimizer states hold galore-torch's projector objects, and the Trainer reloads them
        # with torch.load(weights_only=True) on --resume-from-checkpoint.
        torch.serialization.add_safe_globals([GaLoreProjector])
        shapes = [model.get_submodule(n).weight.shape for n in self.target_names]
        full = sum(2 * m * n for m, n in shapes)
        projected = sum(2 * min(o.galore_rank, m, n) * max(m, n) for m, n in shapes)
        log_line(
            f"galore: {len(self.target_names)} linear layers projected to rank {o.galore_rank} with {self.optim}; "
            f"their Adam moments take {projected:,} values instead of {full:,}"
        )
        return model

    def training_arguments(self) -> dict[str, Any]:
        """transformers' GaLore optimizer on exactly the targeted modules."""
        o = self.options
        if not self.target_names:
            raise OmniError("GaloreTuner.training_arguments() needs prepare(model) first")
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
