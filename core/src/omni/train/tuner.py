"""The tuner interface: which parameters train, how they are wrapped, saved and reloaded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Tuner:
    """Implemented by every spec registered through `register_tuners`.

    `options` is an instance of the spec's options dataclass (or None). `model_spec` is the resolved
    `ModelSpec` (its `lora_targets` are the family's defaults).
    """

    def __init__(self, options: Any, *, model_spec: Any = None) -> None:
        self.options = options
        self.model_spec = model_spec

    def take_part_flags(self, flags: Mapping[str, bool]) -> dict[str, bool]:
        """Offered the ``--freeze-*`` flags the user set ({part: freeze?}, parts as `ModelParts` names them)
        before `prepare`; returns those the tuner leaves to core, which after `prepare` freezes each such part
        (true) or trains it in full (false). The default leaves all of them; LoRA takes them to widen or narrow
        its targets (``--freeze-vision false`` adapts the vision tower too, as ms-swift's ``all-linear`` does)."""
        return dict(flags)

    def prepare(self, model: Any) -> Any:
        """Return the model ready to train: trainable parameters chosen, wrappers applied."""
        raise NotImplementedError

    def optimizer_param_groups(self, model: Any, learning_rate: float) -> list[dict[str, Any]] | None:
        """Parameter groups with their own learning rates (e.g. LoRA+), or None for one group."""
        return None

    def training_arguments(self) -> dict[str, Any]:
        """transformers `TrainingArguments` fields this tuner sets, for every algorithm (sft, pt, rlhf).

        E.g. GaLore's ``{"optim": "galore_adamw", "optim_target_modules": [...], "optim_args": "rank=8"}``.
        They are applied over omni's own arguments; an algorithm's explicit overrides apply last.
        Called after `prepare`.
        """
        return {}

    def create_optimizer(self, model: Any, args: Any) -> Any:
        """An optimizer the tuner builds itself, or None (the default) for the one `args.optim` names.

        For optimizers transformers cannot build from `TrainingArguments` (e.g. Q-GaLore's, which updates
        INT8 weights that have no `.grad`). `model` is the trainer's model, `args` its `TrainingArguments`;
        the Trainer still wraps it, schedules its learning rate and saves its state in checkpoints.
        Called by `TrainingJob.train` for every algorithm, after `prepare`.
        """
        return None

    def callbacks(self) -> list[Any]:
        """transformers `TrainerCallback`s the tuner needs while training (e.g. LISA's layer switching).

        Called after `prepare`; they run after omni's own callbacks for every algorithm.
        """
        return []

    def save(self, model: Any, output_dir: Path, *, state_dict: dict[str, Any] | None = None) -> None:
        """Write what training produced (adapter or full weights) in the standard format.

        `state_dict`, when given, holds the model's weights (gathered from the processes of a sharded run,
        where `model`'s own parameters are only this process's shard) and is what must be written."""
        model.save_pretrained(output_dir, state_dict=state_dict)

    @classmethod
    def is_saved_here(cls, path: Path) -> bool:
        """Whether `path` holds something this tuner saved (used to load adapters for inference)."""
        return False

    @classmethod
    def load(cls, model: Any, path: Path, *, name: str = "default") -> Any:
        """Apply what `save` wrote at `path` onto `model` under `name`, for inference; returns the model.

        Called once per adapter; several adapters may be loaded onto one base model.
        """
        raise NotImplementedError

    @classmethod
    def set_active(cls, model: Any, name: str | None) -> None:
        """Route the next forward passes through adapter `name`, or through the bare base model (None)."""
        raise NotImplementedError

    @classmethod
    def merge(cls, model: Any) -> Any:
        """Fold the loaded adapter into the base weights; returns a plain transformers model."""
        raise NotImplementedError

    @classmethod
    def merged_weights(cls, model: Any) -> dict[str, Any] | None:
        """Every weight of `model` as new or detached tensors, named as in the base checkpoint, with this tuner's
        active adapters merged in, leaving `model` (a training model) unchanged; None when `model` carries none
        of this tuner's adapters. Engines send these to their running model on `Engine.load_weights` (RL
        rollouts), through `omni.infer.weights.merged_weights`."""
        return None
