"""Flags of the `reft` tuner and their validation (light: no torch import). ms-swift's names where it has them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from omni.api import OmniError, option

# --reft-intervention-type spellings -> the method. ms-swift/pyreft use the class names.
INTERVENTION_TYPES = {
    "loreftintervention": "loreft",
    "loreft": "loreft",
    "noreftintervention": "noreft",
    "noreft": "noreft",
}
_POSITIONS = re.compile(r"^(?:f(\d+))?\+?(?:l(\d+))?$")
_REFT_ARGS = {"act_fn"}  # keys --reft-args may set


@dataclass
class ReftOptions:
    """ReFT interventions, as `omni sft --tuner reft` flags."""

    reft_rank: int = option(4, help="rank r of each intervention: the dimension of the edited subspace")
    reft_layers: list[int] = option(
        default_factory=list,
        help="decoder layers whose output (the residual stream) is edited, 0-based, negative counts from the end "
        "(default: every layer)",
    )
    reft_intervention_type: str = option(
        "LoreftIntervention",
        help="LoreftIntervention (loreft): h + R^T(Wh + b - Rh) with orthonormal rows in R; "
        "NoreftIntervention (noreft): the same without the orthogonality",
    )
    reft_positions: str = option(
        "f1+l1",
        help="prompt positions edited: fN the first N prompt tokens, lN the last N, fN+lN both (pyreft's notation)",
    )
    reft_dropout: float = option(0.0, help="dropout on the intervention's edit while training")
    reft_args: str | None = option(
        None, help='JSON with further intervention settings: {"act_fn": "relu"} applies an activation to Wh + b'
    )

    def method(self) -> str:
        """`loreft` or `noreft`; raises `OmniError` for any other --reft-intervention-type."""
        method = INTERVENTION_TYPES.get(self.reft_intervention_type.lower())
        if method is None:
            raise OmniError(
                f"--reft-intervention-type {self.reft_intervention_type!r} is not supported; "
                "choose LoreftIntervention (loreft) or NoreftIntervention (noreft)"
            )
        return method

    def positions(self) -> tuple[int, int]:
        """(first, last): how many leading and trailing prompt tokens are edited."""
        return parse_positions(self.reft_positions)

    def extra_args(self) -> dict[str, str]:
        """--reft-args as a dict of the settings it may carry."""
        if not self.reft_args:
            return {}
        try:
            values = json.loads(self.reft_args)
        except ValueError as exc:
            raise OmniError(f"--reft-args is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise OmniError(f"--reft-args must be a JSON object, got {self.reft_args!r}")
        unknown = set(values) - _REFT_ARGS
        if unknown:
            raise OmniError(f"--reft-args: unknown keys {sorted(unknown)}; known: {sorted(_REFT_ARGS)}")
        return {k: str(v) for k, v in values.items()}


def parse_positions(text: str) -> tuple[int, int]:
    """'f3+l3' -> (3, 3), 'l1' -> (0, 1); raises `OmniError` naming --reft-positions for anything else."""
    match = _POSITIONS.match(text.strip().lower().replace(" ", ""))
    first, last = (int(g) if g else 0 for g in match.groups()) if match else (0, 0)
    if not match or first + last == 0:
        raise OmniError(
            f"--reft-positions {text!r}: expected fN, lN or fN+lN (e.g. f1+l1: the first and the last prompt token)"
        )
    return first, last
