"""GKD's options, under TRL's and ms-swift's names (light module)."""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import option


@dataclass
class GkdOptions:
    """Generalized Knowledge Distillation (Agarwal et al. 2024) on TRL's GKDTrainer."""

    teacher_model: str | None = option(
        None, help="the teacher (name, folder or hub id); it must share the student's vocabulary (required)"
    )
    lmbda: float = option(
        0.5, help="share of steps trained on the student's own samples (on-policy); the rest on the dataset's answers"
    )
    beta: float = option(
        0.5,
        help="generalized Jensen-Shannon interpolation: 0 is KL(teacher || student), 1 is KL(student || teacher)",
    )
    seq_kd: bool = option(
        False, help="sequence-level KD: the off-policy steps train on the teacher's samples instead of the dataset's"
    )
    temperature: float = option(0.9, help="sampling temperature of the student's and teacher's samples")
    max_completion_length: int = option(128, help="most tokens sampled per completion", aliases=("max_new_tokens",))
