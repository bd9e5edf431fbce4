"""Flags of the `galore` tuner (light: no torch import). ms-swift spellings are accepted as aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.options import option


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
        "adamw", help="the optimizer under the projection (adamw_8bit: 8-bit states, needs a CUDA GPU)"
    )
    galore_optim_per_parameter: bool = option(
        False,
        help="layer-wise: step each parameter during backward, so only one gradient is alive at a time "
        "(no gradient accumulation, no clipping)",
        aliases=("galore_layerwise",),
    )
    galore_quantization: bool = option(
        False, help="Q-GaLore (INT8 weights, INT4 projections): not available, see the plugin README"
    )
