"""The training-callback interface: what a plugin adds to every training run when its switch option is set.

A plugin registers a `omni.registry.CallbackSpec` whose ``impl`` is a `TrainingCallback` subclass. Its options
join the flags of ``omni sft``/``pt``/``rlhf``; when its switch is set the run builds it from them, lets it refuse
settings before the model loads, merges its `TrainingArguments` fields, adds its transformers callbacks to the
trainer of whichever algorithm runs, and plots the metrics it names next to the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TrainingCallback:
    """Implemented by every spec registered through `register_callbacks`.

    `options` is an instance of the spec's options dataclass.
    """

    def __init__(self, options: Any) -> None:
        self.options = options

    def check(self, options: Any, *, command: str, registry: Any) -> None:
        """Raise `omni.errors.OmniError` for settings it cannot run with (or data it cannot read); `options` are the
        command's `TrainOptions`, `registry` the plugins' specs. Called before the data and the model load."""

    def training_arguments(self, options: Any) -> dict[str, Any]:
        """transformers `TrainingArguments` fields it needs (applied after the tuner's and the strategy's)."""
        return {}

    def trainer_callbacks(self, job: Any) -> list[Any]:
        """transformers `TrainerCallback`s for the run of `job` (a `omni.train.job.TrainingJob`)."""
        return []

    def prepare_trainer(self, trainer: Any) -> None:
        """See the built trainer before it trains (e.g. to log through `trainer.log`)."""

    def plotted_metrics(self) -> list[str]:
        """Logged metric names drawn beside the loss in the run's plot (e.g. ``eval_gsm8k_accuracy``)."""
        return []


def active_callbacks(
    options: Any, selected: Mapping[str, list[Any]], *, command: str, registry: Any
) -> list[TrainingCallback]:
    """The installed training callbacks (``selected["callbacks"]``) whose switch option is set, built from their
    options and checked against the command's `options`."""
    chosen = [s for s in selected.get("callbacks", []) if getattr(s.options, s.spec.switch, None)]
    built: list[TrainingCallback] = [s.spec.load()(s.options) for s in chosen]
    for callback in built:
        callback.check(options, command=command, registry=registry)
    return built
