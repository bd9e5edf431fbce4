"""`run_grpo(job)`: train the `--algo` member of the GRPO family on the prepared job."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from omni.api import OmniError, TrainingJob, TrainResult, log_line

from omni_plugin_grpo.algorithms import BY_OPTIONS, Algorithm
from omni_plugin_grpo.columns import ROW_INDEX, RowColumnsReward, reward_labels
from omni_plugin_grpo.multiturn import EnvironmentRollout, check_template, with_tools
from omni_plugin_grpo.options import ENVIRONMENT_SELECTOR, REWARD_SELECTOR, GrpoOptions
from omni_plugin_grpo.progress import with_reward_on_bar
from omni_plugin_grpo.rewards import resolve_rewards
from omni_plugin_grpo.rollout import (
    EngineRollout,
    build_engine,
    check_media_engine,
    encode_prompts,
    media_token_ids,
)

# GRPOConfig fields set from the options of the same name.
_TRL_FIELDS = (
    "num_generations",
    "max_completion_length",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "beta",
    "epsilon",
    "epsilon_high",
    "loss_type",
    "scale_rewards",
    "importance_sampling_level",
    "num_iterations",
    "steps_per_generation",
    "mask_truncated_completions",
)


def train_batch_size(job: TrainingJob, options: GrpoOptions) -> int:
    """The per-device batch, such that a generation batch holds whole groups.

    A batch of 1 (the default, made for SFT) becomes the smallest batch that holds whole groups of
    --num-generations, and a line says so; any other batch that splits a group is an error naming the flags.
    """
    if options.num_generations < 2:
        raise OmniError(f"--num-generations must be at least 2 (a group), got {options.num_generations}")
    batch = job.options.per_device_train_batch_size
    steps = options.steps_per_generation or job.options.gradient_accumulation_steps
    if batch == 1 and steps % options.num_generations:
        batch = options.num_generations // math.gcd(options.num_generations, steps)
        log_line(f"--per-device-train-batch-size {batch}: a batch of 1 would split the groups of --num-generations")
    if (batch * steps) % options.num_generations:
        raise OmniError(
            f"each generation batch holds --per-device-train-batch-size ({batch}) x --steps-per-generation ({steps}) "
            f"= {batch * steps} completions, which must be a multiple of --num-generations ({options.num_generations});"
            f" e.g. --per-device-train-batch-size {options.num_generations}"
        )
    return batch


def check_async_generate(job: TrainingJob, options: GrpoOptions) -> None:
    """`--async-generate` rolls the next generation batch out while a step trains: on an engine of its own (not the
    training model), with one generation batch per optimizer step (so that the next step's batch is the next one)."""
    if not options.async_generate:
        return
    if options.rollout_engine == "pt":
        raise OmniError(
            "--async-generate rolls out while the model trains, so not with the training model itself: use "
            "--rollout-engine vllm or server"
        )
    accumulation = job.options.gradient_accumulation_steps
    if options.num_iterations != 1 or (options.steps_per_generation or accumulation) != accumulation:
        raise OmniError(
            "--async-generate needs one generation batch per optimizer step: leave --num-iterations at 1 and "
            "--steps-per-generation at --gradient-accumulation-steps"
        )


def check_reference(job: TrainingJob, options: GrpoOptions) -> None:
    """A KL penalty on a model without an adapter needs a reference copy, which TRL loads from the path in the
    model's config; a model loaded out of a larger checkpoint (Qwen3-Omni's thinker) has none."""
    if options.beta == 0 or hasattr(job.model, "peft_config") or getattr(job.model.config, "_name_or_path", ""):
        return
    raise OmniError(
        f"--beta {options.beta} with --tuner {job.options.tuner} needs a reference copy of the model, which TRL "
        f"loads from a checkpoint path this {job.model_spec.name} model does not record; use a LoRA tuner (the "
        "reference is the model with its adapter off) or --beta 0"
    )


def grpo_config(job: TrainingJob, options: GrpoOptions, weights: list[float], has_eval: bool, batch_size: int) -> Any:
    """TRL's GRPOConfig: omni's training arguments (with `batch_size` per device) plus the algorithm's options."""
    from trl import GRPOConfig

    args = job.training_arguments(has_eval=has_eval, per_device_train_batch_size=batch_size)
    base = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init}
    own = {name: getattr(options, name) for name in _TRL_FIELDS}
    return GRPOConfig(**base, **own, reward_weights=weights, log_completions=False)


def _end_token_id(job: TrainingJob) -> int | None:
    eos = job.model.generation_config.eos_token_id
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    return eos if eos is not None else job.tokenizer.eos_token_id


def _environment(job: TrainingJob, options: GrpoOptions) -> Any:
    """The `--environment` class, ready to build one instance per rollout (None without one)."""
    if not options.environment:
        return None
    if options.max_turns < 1:
        raise OmniError(f"--max-turns must be at least 1, got {options.max_turns}")
    check_template(job.template, options.environment)
    (selected,) = job.selected[ENVIRONMENT_SELECTOR.option]
    log_line(f"environment {selected.spec.name}: up to {options.max_turns} model turns per rollout")
    cls = selected.spec.load()
    return functools.partial(cls, selected.options)


def run_grpo(job: TrainingJob) -> TrainResult:
    """Train GRPO, DAPO, GSPO, Dr. GRPO, RLOO, REINFORCE++ or PPO (whichever `--algo` names) and write omni's
    outputs."""
    from datasets import Dataset

    from omni_plugin_grpo.media import PromptMedia
    from omni_plugin_grpo.trainer import DropReferenceAdapter, OmniGRPOTrainer

    options: GrpoOptions = job.algorithm_options.with_rollout_resolved()
    algorithm: Algorithm = BY_OPTIONS[type(options)]
    batch_size = train_batch_size(job, options)
    check_reference(job, options)
    check_async_generate(job, options)
    chosen = {s.spec.name: s.options for s in job.selected.get(REWARD_SELECTOR.option, [])}
    rewards = resolve_rewards(
        options.reward_funcs,
        options.reward_weights,
        job.registry,
        options.reward_options(chosen),
        reward_models=options.reward_model,
        reward_model_plugins=options.reward_model_plugin,
    )
    if not rewards:
        raise OmniError(
            "--reward-funcs is empty; name the rewards to train on (`omni list rewards`, or FILE.py:NAME), "
            "or a --reward-model"
        )
    log_line(f"{algorithm.name}: rewards " + ", ".join(f"{r.name} x{r.weight:g}" for r in rewards))

    rows = [*job.train_rows, *(job.val_rows or [])]
    make_environment = _environment(job, options)
    if make_environment is not None:  # the environment's tools go into prompts that carry none
        rows = [with_tools(row, make_environment().tools) for row in rows]
    # Encoded once, up front: the rows are checked before the first step, and every rollout reuses the ids.
    prompt_ids, with_media = encode_prompts(job.template, rows)
    check_media_engine(options, rows, with_media)
    trainer_class, value_model = OmniGRPOTrainer, {}
    if algorithm.value_model:
        from omni_plugin_grpo.ppo import OmniPPOTrainer, check_ppo, load_value_model

        check_ppo(job, with_media)
        trainer_class, value_model = OmniPPOTrainer, {"value_model": load_value_model(job, options)}
    engine = build_engine(job, options, max(map(len, prompt_ids), default=0))
    rollout = EngineRollout(engine, prompt_ids, _end_token_id(job), options, media_token_ids(job.model.config))
    if make_environment is not None:
        rollout = EnvironmentRollout(rollout, job.template, make_environment, options.max_turns, job.tokenizer.decode)
    prompts = [job.tokenizer.decode(ids) for ids in prompt_ids]
    n_train = len(job.train_rows)

    def dataset(indices: range) -> Any:
        return Dataset.from_dict({"prompt": [prompts[i] for i in indices], ROW_INDEX: list(indices)})

    has_eval = len(rows) > n_train
    labels = reward_labels([r.name for r in rewards])
    log_line(f"{algorithm.name}: {n_train} training prompts, {len(rows) - n_train} validation prompts")
    trainer = trainer_class(
        model=job.model,
        reward_funcs=[RowColumnsReward(r, rows, label) for r, label in zip(rewards, labels, strict=True)],
        args=grpo_config(job, options, [r.weight for r in rewards], has_eval, batch_size),
        train_dataset=dataset(range(n_train)),
        eval_dataset=dataset(range(n_train, len(rows))) if has_eval else None,
        processing_class=job.tokenizer,
        callbacks=[*with_reward_on_bar(job.callbacks()), DropReferenceAdapter()],
        rollout=rollout,
        rows=rows,
        media=PromptMedia(job.template, rows) if any(with_media) else None,
        algorithm=algorithm,
        options=options,
        **value_model,
    )
    if job.resume_from:
        trainer.load_completions(job.resume_from)
    try:
        result = job.train(trainer)
    finally:
        if options.rollout_engine != "pt":  # the pt engine is the training model itself
            engine.close()
    written = trainer.write_completions(job.output_dir)
    if written:
        log_line(f"sample completions: {written}")
    if value_model:
        log_line(f"value model: {trainer.save_value_model(job.output_dir)}")
    return result
