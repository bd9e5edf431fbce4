"""Options of the `deepspeed` strategy (light: read to build --help)."""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import option

PRESETS = ("zero0", "zero1", "zero2", "zero3", "zero2_offload", "zero3_offload")


@dataclass
class DeepSpeedOptions:
    """`--deepspeed`: a ZeRO preset by ms-swift's name, or a DeepSpeed JSON config of your own."""

    deepspeed: str | None = option(
        None,
        help=f"train under DeepSpeed: {', '.join(PRESETS)} (ms-swift's presets; _offload keeps optimizer state, "
        "and for zero3 parameters, in CPU memory) or a DeepSpeed config JSON; 'auto' values come from omni's options",
    )
    sequence_parallel_size: int = option(
        1,
        help="split each row's sequence across this many processes (DeepSpeed Ulysses): rows too long for one "
        "device train; the number of processes must be a multiple of it (ms-swift: --sequence_parallel_size)",
    )
