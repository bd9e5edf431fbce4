"""The distributed-strategy interface: how a run shards its model across processes (DeepSpeed, FSDP2 ...).

A strategy plugin registers a `omni.registry.StrategySpec` whose ``impl`` is a `Strategy` subclass. The
training commands build it from its options when its switch option is set, ask it to refuse what it cannot
run before the model loads, merge its `TrainingArguments` fields into every algorithm's, and let it gather
the whole model for the final save. The processes themselves are started by `omni.train.launch`.
"""

from __future__ import annotations

from typing import Any


class Strategy:
    """Implemented by every spec registered through `register_strategies`.

    `options` is an instance of the spec's options dataclass.
    """

    def __init__(self, options: Any) -> None:
        self.options = options

    def describe(self) -> str:
        """One line for the run's log, e.g. ``DeepSpeed ZeRO-3 (zero3)``."""
        return type(self).__name__

    def shards_parameters(self) -> bool:
        """Whether each process holds only a shard of the parameters (ZeRO-3, FSDP), not all of them."""
        return False

    def sequence_parallel_size(self) -> int:
        """How many processes split each row's sequence between them (1: none, the default).

        Above 1, training batches carry ``position_ids`` and a length divisible by it
        (`omni.train.collators.SequenceShardCollator`), the strategy cuts them into the processes' shards,
        and `omni.train.trainer.OmniTrainer` adds up the shards' losses. Only algorithms whose spec says
        ``sequence_parallel=True`` train this way."""
        return 1

    def sequence_length_multiple(self) -> int:
        """What the length of a batch of split rows is padded to a multiple of: by default one equal shard per
        process of a row (`sequence_parallel_size`)."""
        return self.sequence_parallel_size()

    def before_model_load(self, options: Any, *, model_path: str) -> None:
        """Called on every process just before the model loads from `model_path` (a folder or hub id), e.g. to
        have transformers load each parameter straight into this process's shard (DeepSpeed ZeRO-3's
        ``zero.Init``). `options` are the command's `TrainOptions`."""

    def check(self, options: Any, *, tuner: str) -> None:
        """Raise `omni.errors.OmniError` for settings this strategy cannot train with (e.g. 4-bit weights
        under ZeRO-3). `options` are the command's `TrainOptions`; called before any model loads."""

    def training_arguments(self, options: Any, *, model: Any, model_spec: Any) -> dict[str, Any]:
        """transformers `TrainingArguments` fields that turn the strategy on (``deepspeed=``, ``fsdp=`` ...).

        `options` are the command's `TrainOptions`, `model` the prepared (tuned) model. Applied over omni's
        own arguments and the tuner's, for every algorithm.
        """
        raise NotImplementedError

    def prepare_trainer(self, trainer: Any) -> None:
        """Adjust the built trainer before it trains (called by `TrainingJob.train` for every algorithm)."""

    def full_state_dict(self, trainer: Any) -> dict[str, Any] | None:
        """The whole model's weights, gathered from every process, on the main process (None elsewhere).

        Every process calls it (gathering is collective). The default asks accelerate, which gathers
        DeepSpeed ZeRO-3's partitions.
        """
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
        return state if trainer.accelerator.is_main_process else None
