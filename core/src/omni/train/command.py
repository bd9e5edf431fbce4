"""`omni sft`, `omni pt` and `omni rlhf`: prepare the job, then run the chosen algorithm on it."""

from __future__ import annotations

import os

from omni.cli.invocation import Invocation
from omni.errors import OmniError
from omni.registry import Registration
from omni.train.options import TrainOptions


def algorithm_for(invocation: Invocation) -> Registration:
    """The algorithm this invocation runs: `--algo` for rlhf, else the one named like the command."""
    command = invocation.command.name
    name = getattr(invocation.options, "algo", None) or command
    registration = invocation.registry.get("algorithms", name)
    if registration.spec.command != command:
        offered = [r.spec.name for r in invocation.registry.all("algorithms") if r.spec.command == command]
        raise OmniError(
            f"algorithm {name!r} runs under `omni {registration.spec.command}`, not `omni {command}`"
            f" (algorithms for {command}: {', '.join(offered) or 'none installed'})"
        )
    return registration


def check_streaming(options: TrainOptions, algorithm: Registration) -> None:
    """``--streaming`` needs an algorithm that trains from a stream, and ``--max-steps`` to end training."""
    if not options.streaming:
        return
    if not algorithm.spec.streaming:
        raise OmniError(f"{algorithm.spec.name} needs its rows in memory; drop --streaming")
    if options.max_steps <= 0:
        raise OmniError("--streaming needs --max-steps: a stream has no length to count epochs by")


def check_tuner(invocation: Invocation, algorithm: Registration) -> None:
    """A tuner that declares the algorithms it trains with (`TunerSpec.algorithms`) refuses the others."""
    selected = invocation.selected_one("tuner")
    allowed = selected.spec.algorithms if selected else ()
    if allowed and algorithm.spec.name not in allowed:
        raise OmniError(
            f"--tuner {selected.spec.name} trains with the {', '.join(allowed)} algorithms only, "
            f"not {algorithm.spec.name} (omni {algorithm.spec.command})"
        )


def shared_output_dir(options: TrainOptions) -> str | None:
    """The one folder every process of a run writes into: --output-dir, the resumed checkpoint's run, or a new
    ``output/MODEL/vN-...`` chosen once by the launcher (None: the processes derive it from the checkpoint)."""
    from omni.models.embedded import EMBEDDED_MODEL
    from omni.train.outputs import resolve_output_dir

    if options.output_dir:
        return options.output_dir
    if options.resume_from_checkpoint not in (None, "last"):
        return None
    return str(resolve_output_dir(None, options.model or EMBEDDED_MODEL))


def run(invocation: Invocation) -> int:
    """Train: load everything once, hand the job to the algorithm, report where the results are.

    Asked for several processes (``--nproc-per-node``, ``NPROC_PER_NODE``), it starts them instead, each
    running this same command."""
    from omni.train import launch
    from omni.train.callback import active_callbacks
    from omni.train.job import active_strategy, check_fast_path, prepare_job

    options: TrainOptions = invocation.options
    algorithm = algorithm_for(invocation)  # before loading a model, so a wrong --algo fails fast
    check_streaming(options, algorithm)
    check_tuner(invocation, algorithm)
    check_fast_path(options)
    strategy = active_strategy(options, invocation.selected)
    if strategy is not None and strategy.sequence_parallel_size() > 1 and not algorithm.spec.sequence_parallel:
        raise OmniError(
            f"{algorithm.spec.name} does not train with rows split across processes ({strategy.describe()}); "
            "train it without sequence parallelism"
        )
    processes = options.resolved(os.environ)
    if launch.wants_launch(processes):
        launch.check(processes, output_dir=options.output_dir)
        return launch.launch(invocation.command.name, invocation.argv, processes, output_dir=shared_output_dir(options))
    if (
        launch.current_processes().world_size > 1
        and not options.output_dir
        and options.resume_from_checkpoint in (None, "last")
    ):
        raise OmniError(
            "a run of several processes needs --output-dir under torchrun or accelerate launch: a folder they all write into"
        )
    job = prepare_job(
        invocation.command.name,
        options,
        invocation.registry,
        invocation.selected,
        strategy=strategy,
        # each checks its settings before anything loads
        plugin_callbacks=active_callbacks(
            options, invocation.selected, command=invocation.command.name, registry=invocation.registry
        ),
        model_head=algorithm.spec.model_head,
    )
    algorithm.spec.load()(job)
    launch.leave_process_group()
    return 0
