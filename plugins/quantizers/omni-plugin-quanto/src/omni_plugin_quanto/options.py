"""Flags of the `quanto` quantizer (light: no optimum-quanto import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.api import option


@dataclass
class QuantoOptions:
    """What optimum-quanto quantizes besides the weights."""

    quanto_activations: Literal["none", "int8"] = option(
        "none",
        help="also quantize activations to int8, with scales calibrated on --dataset rows (default: weights only)",
    )
