"""Built-in training plugin: the `sft`, `pt` and `rlhf` commands, the sft/pt algorithms, full/freeze tuners
and the `fsdp` strategy.

Only light modules are imported here: implementations are lazy ``"module:attr"`` references.
"""

from __future__ import annotations

from omni import hookimpl
from omni.registry import AlgorithmSpec, CommandSpec, Selector, StrategySpec, TunerSpec
from omni.train.options import FreezeOptions, FsdpOptions, RlhfOptions, TrainOptions

_SELECTS = (Selector("tuner", "tuners"), Selector("quant_method", "quantizers"))


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="sft",
            description="supervised fine-tuning: loss on the assistant's answers (LoRA by default)",
            impl="omni.train.command:run",
            options=TrainOptions,
            selects=_SELECTS,
            includes=("strategies", "datasets", "callbacks"),
        )
    )
    register(
        CommandSpec(
            name="pt",
            description="pre-training / continued pre-training: loss on every token of plain text or conversations",
            impl="omni.train.command:run",
            options=TrainOptions,
            selects=_SELECTS,
            includes=("strategies", "datasets", "callbacks"),
        )
    )
    register(
        CommandSpec(
            name="rlhf",
            description="preference and RL training (--algo dpo, grpo ... from algorithm plugins)",
            impl="omni.train.command:run",
            options=RlhfOptions,
            selects=(*_SELECTS, Selector("algo", "algorithms")),
            includes=("strategies", "datasets", "callbacks"),
        )
    )


@hookimpl
def register_algorithms(register):
    register(
        AlgorithmSpec(
            name="sft",
            command="sft",
            description="supervised fine-tuning",
            impl="omni.train.sft:run_sft",
            streaming=True,
            sequence_parallel=True,
        )
    )
    register(
        AlgorithmSpec(
            name="pt",
            command="pt",
            description="(continued) pre-training",
            impl="omni.train.sft:run_pt",
            streaming=True,
            sequence_parallel=True,
        )
    )


@hookimpl
def register_tuners(register):
    register(TunerSpec(name="full", description="train every parameter", impl="omni.train.tuners:FullTuner"))
    register(
        TunerSpec(
            name="freeze",
            description="train only the named parameters (--trainable-parts / --freeze-parts)",
            impl="omni.train.tuners:FreezeTuner",
            options=FreezeOptions,
        )
    )


@hookimpl
def register_strategies(register):
    register(
        StrategySpec(
            name="fsdp",
            description="PyTorch FSDP2 through accelerate: parameters, gradients and optimizer state sharded",
            impl="omni.train.fsdp:FsdpStrategy",
            options=FsdpOptions,
            switch="fsdp",
        )
    )
