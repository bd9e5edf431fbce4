"""Flags of the `lisa` tuner (light: no torch import). ms-swift spells them the same way."""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import option


@dataclass
class LisaOptions:
    """LISA, as `omni sft --tuner lisa` flags."""

    lisa_activated_layers: int = option(2, help="decoder layers that train at a time (chosen at random)")
    lisa_step_interval: int = option(20, help="choose new layers every N optimizer steps")
