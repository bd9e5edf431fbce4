"""Every extension point of omni.

Each hook is a *contribution* hook: omni calls it once per plugin while loading plugins and passes a
``register`` callback that takes one spec record of that hook's kind (see `omni.registry`). A hook must
only build spec records and call ``register``; it must not import heavy libraries (torch,
transformers ...), because loading plugins happens on every ``omni`` invocation, ``omni --help`` included.
Implementations return nothing. Built-in plugins (`omni.builtin`) are called first, then installed ones.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from omni.registry import (
    AlgorithmSpec,
    BenchmarkSpec,
    CallbackSpec,
    CommandSpec,
    DatasetSpec,
    EncoderSpec,
    EngineSpec,
    EnvironmentSpec,
    ModelSpec,
    QuantizerSpec,
    RewardSpec,
    StrategySpec,
    TemplateSpec,
    TunerSpec,
)

hookspec = pluggy.HookspecMarker("omni")


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register model families with `register(ModelSpec(...))`.

    Called when plugins load. A model spec says which checkpoints it handles (config.json
    ``architectures``/``model_type``, hub-id patterns), its default template and LoRA targets, and names
    a loader ``load(path_or_id, *, model_options, load_options) -> (model, processor)``.
    """


@hookspec
def register_templates(register: Callable[[TemplateSpec], None]) -> None:
    """Register chat templates with `register(TemplateSpec(...))`.

    Called when plugins load. ``impl`` names a `omni.template.Template` subclass that turns a row of the
    messages format into ``input_ids`` and ``labels`` (and modality tensors for multimodal models).
    """


@hookspec
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register modality encoders (image, audio, video) with `register(EncoderSpec(...))`.

    Called when plugins load. ``impl`` names a callable that loads one item of that modality (a path,
    ``data:`` URI, or bytes) into the array a processor takes.
    """


@hookspec
def register_tuners(register: Callable[[TunerSpec], None]) -> None:
    """Register tuners (which parameters train, and how) with `register(TunerSpec(...))`.

    Called when plugins load. ``impl`` names a `omni.train.tuner.Tuner` subclass; ``options`` becomes
    flags of ``omni sft``/``pt``/``rlhf`` when ``--tuner`` selects it.
    """


@hookspec
def register_algorithms(register: Callable[[AlgorithmSpec], None]) -> None:
    """Register training algorithms with `register(AlgorithmSpec(command=..., ...))`.

    Called when plugins load. ``command`` is ``sft``, ``pt`` or ``rlhf`` (selected with ``--algo``);
    ``impl`` names a callable that builds and runs the trainer for a prepared training job.
    """


@hookspec
def register_rewards(register: Callable[[RewardSpec], None]) -> None:
    """Register reward functions for RL with `register(RewardSpec(...))`.

    Called when plugins load. ``impl`` names ``reward(prompts, completions, **columns) -> list[float | None]``
    or, when the spec has options, a class built with the options instance whose instances are called so.
    ``columns`` are the row's extra dataset columns (e.g. ``solution``, ``images``), one value per completion;
    None means the reward does not apply to that completion. The spec's options become flags of the command
    once ``--reward-funcs`` names the reward.
    """


@hookspec
def register_quantizers(register: Callable[[QuantizerSpec], None]) -> None:
    """Register quantization methods with `register(QuantizerSpec(...))`.

    Called when plugins load. ``impl`` names a quantizer used when loading a model for training
    (``--quant-method``, e.g. 4-bit QLoRA) and by ``omni export --quant-method``.
    """


@hookspec
def register_engines(register: Callable[[EngineSpec], None]) -> None:
    """Register inference engines with `register(EngineSpec(...))`.

    Called when plugins load. ``impl`` names a `omni.infer.engine.Engine` subclass used by ``infer``,
    ``serve``, ``eval`` and RL rollouts (``--infer-backend``).
    """


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register named datasets, or families of dataset ids, with `register(DatasetSpec(...))`.

    Called when plugins load. ``impl`` names ``load(name, options) -> iterable of rows`` in the messages
    format; ``pattern`` (a regex) lets one spec claim many ``--dataset`` values, e.g. hub ids.
    """


@hookspec
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Register distributed training strategies with `register(StrategySpec(...))`.

    Called when plugins load. ``impl`` names a `omni.train.strategy.Strategy` subclass; its ``options`` join
    the flags of ``omni sft``/``pt``/``rlhf`` whenever the plugin is installed, and ``switch`` names the option
    that turns it on (``--deepspeed zero3``, ``--fsdp full_shard``). At most one strategy is on in a run.
    """


@hookspec
def register_callbacks(register: Callable[[CallbackSpec], None]) -> None:
    """Register training callbacks with `register(CallbackSpec(...))`.

    Called when plugins load. ``impl`` names a `omni.train.callback.TrainingCallback` subclass; its ``options`` join
    the flags of ``omni sft``/``pt``/``rlhf`` whenever the plugin is installed, and when ``switch`` is set the run
    builds it, merges its ``TrainingArguments`` fields and adds its transformers callbacks to the trainer of
    whichever algorithm runs. Any number may be on in one run.
    """


@hookspec
def register_benchmarks(register: Callable[[BenchmarkSpec], None]) -> None:
    """Register benchmarks for ``omni eval`` (and evaluation during training) with `register(BenchmarkSpec(...))`.

    Called when plugins load. ``impl`` names a class built with the spec's options instance whose instances
    ``load(path)`` the rows of a local file or folder (each a dict with a ``subset``), ``prompt(row)`` a row as a
    conversation in the messages format, and ``score(answer, row)`` the model's answer as a dict of metrics, the
    spec's ``metric`` among them (each 0 to 1), plus optionally ``extracted``, what was read from the answer.
    """


@hookspec
def register_environments(register: Callable[[EnvironmentSpec], None]) -> None:
    """Register RL environments for multi-turn rollouts with `register(EnvironmentSpec(...))`.

    Called when plugins load. ``impl`` names an `omni.train.environment.Environment` subclass, built with the
    spec's options instance once per rollout; its ``tools`` are shown to the model (when the row has none) and its
    ``step(answer)`` gets each model turn, tool calls parsed by the template, and returns an `EnvironmentStep`:
    the observation messages, an optional reward and whether the episode is done. ``--environment NAME`` selects it.
    """


@hookspec
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    """Register CLI commands with `register(CommandSpec(...))`.

    Called when plugins load. ``options`` is a dataclass whose fields become the command's flags (and
    ``--config`` YAML keys); ``selects`` lists options that pick specs of a kind whose own options then
    join the command's flags; ``impl`` names ``run(invocation) -> int | None``.
    """
