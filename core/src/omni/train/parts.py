"""`--freeze-llm`, `--freeze-vision`, `--freeze-audio`, `--freeze-aligner`: train or freeze whole parts of a
multimodal model, as its model spec's `ModelParts` name them, after the tuner has chosen what trains."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omni.errors import OmniError
from omni.registry import ModelSpec
from omni.train.options import TrainingOptions

PART_FLAGS = {
    "llm": "--freeze-llm",
    "vision": "--freeze-vision",
    "audio": "--freeze-audio",
    "aligner": "--freeze-aligner",
}


def requested_parts(options: TrainingOptions) -> dict[str, bool]:
    """{part: freeze?} for the flags the user set (unset flags leave the tuner's choice alone)."""
    chosen = {part: getattr(options, f"freeze_{part}") for part in PART_FLAGS}
    return {part: freeze for part, freeze in chosen.items() if freeze is not None}


def apply_part_freezing(model: Any, spec: ModelSpec, chosen: Mapping[str, bool]) -> dict[str, int]:
    """Freeze (true) or train in full (false) every parameter of each part in `chosen` ({part: freeze?}: the
    flags of `requested_parts` the tuner left to core, see `Tuner.take_part_flags`).

    Returns how many parameters each named part has. Raises `OmniError` when the model family names no
    parts, a part has no parameters in this model, an adapter tuner is asked to train a part in full (it
    would not save it), or nothing is left to train.
    """
    if not chosen:
        return {}
    flags = ", ".join(PART_FLAGS[p] for p in chosen)
    if spec.parts is None:
        raise OmniError(f"{flags}: model family {spec.name!r} does not name its parts (vision tower, LLM ...)")
    unfrozen = [PART_FLAGS[p] for p, freeze in chosen.items() if not freeze]
    if unfrozen and hasattr(model, "peft_config"):
        raise OmniError(
            f"{' '.join(unfrozen)} false trains that part in full, which this adapter tuner does not save; use "
            "--tuner full (with --freeze-* true for the parts to keep), or --tuner lora without --target-modules "
            "names (its default or all-linear targets then adapt the part)"
        )
    counts = dict.fromkeys(chosen, 0)
    for name, parameter in model.named_parameters():
        part = spec.parts.part_of(name)
        if part in chosen:
            parameter.requires_grad_(not chosen[part])
            counts[part] += 1
    missing = [PART_FLAGS[p] for p, n in counts.items() if n == 0]
    if missing:
        raise OmniError(f"{', '.join(missing)}: model family {spec.name!r} has no such part in this model")
    if not any(p.requires_grad for p in model.parameters()):
        raise OmniError(f"{flags} leave nothing to train")
    return counts
