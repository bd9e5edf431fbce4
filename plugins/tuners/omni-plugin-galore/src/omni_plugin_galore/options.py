"""Flags of the `galore` tuner (light: no torch import). ms-swift spellings are accepted as aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.api import option


@dataclass
class GaloreOptions:
    """GaLore, as `omni sft --tuner galore` flags."""

    galore_rank: int = option(128, help="rank of the projected gradients and optimizer states")
    galore_update_proj_gap: int = option(50, help="recompute each projection (an SVD of the gradient) every N steps")
    galore_scale: float = option(1.0, help="scale of the projected-back update (the paper uses 0.25 with its lr)")
    galore_proj_type: Literal["std", "reverse_std", "left", "right", "full"] = option(
        "std", help="which side is projected: std projects the smaller dimension"
    )
    galore_target_modules: list[str] = option(
        default_factory=list,
        help="linear modules projected: names (substring match) or regexes "
        "(default: every linear layer except the LM head, i.e. the attention and MLP projections)",
    )
    galore_optim: Literal["adamw", "adamw_8bit", "adafactor"] = option(
        "adamw",
        help="the optimizer under the projection (adamw_8bit: bitsandbytes' 8-bit AdamW states, on CPU or GPU)",
    )
    galore_optim_per_parameter: bool = option(
        False,
        help="layer-wise: step each parameter during backward, so only one gradient is alive at a time "
        "(no gradient accumulation, no clipping)",
        aliases=("galore_layerwise",),
    )
    galore_8bit_min_size: int = option(
        4096, help="with 8-bit states: tensors of fewer values keep 32-bit Adam moments (bitsandbytes' min_8bit_size)"
    )
    galore_quantization: bool = option(
        False,
        help="Q-GaLore: targeted weights stored as INT8 and updated with stochastic rounding, INT4 projections, "
        "lazy layer-wise subspace updates, 8-bit Adam states",
    )
    galore_weight_bits: int = option(8, help="Q-GaLore: bits of the quantized weights (2-8, stored as int8)")
    galore_weight_group_size: int = option(
        256, help="Q-GaLore: consecutive weight values sharing one scale and offset (must divide each weight's size)"
    )
    galore_stochastic_round: bool = option(
        True, help="Q-GaLore: write updated weights back with stochastic rounding (false: round to nearest)"
    )
    galore_proj_quant: bool = option(True, help="Q-GaLore: quantize the projection matrices to --galore-proj-bits")
    galore_proj_bits: int = option(4, help="Q-GaLore: bits of the projection matrices (2-8)")
    galore_proj_group_size: int = option(256, help="Q-GaLore: projection values sharing one scale and zero point")
    galore_cos_threshold: float = option(
        0.4,
        help="Q-GaLore lazy subspace updates: when a layer's last --galore-queue-size projections have a mean "
        "cosine similarity of at least this, its update gap grows by --galore-gamma-proj",
    )
    galore_gamma_proj: float = option(2.0, help="Q-GaLore: factor by which a stable layer's update gap grows")
    galore_queue_size: int = option(5, help="Q-GaLore: how many successive projections the similarity averages")
