"""`omni sft`, `omni pt` and `omni rlhf`: prepare the job, then run the chosen algorithm on it."""

from __future__ import annotations

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


def run(invocation: Invocation) -> int:
    """Train: load everything once, hand the job to the algorithm, report where the results are."""
    from omni.train.job import prepare_job

    algorithm = algorithm_for(invocation)  # before loading a model, so a wrong --algo fails fast
    check_streaming(invocation.options, algorithm)
    check_tuner(invocation, algorithm)
    job = prepare_job(invocation)
    algorithm.spec.load()(job)
    return 0
