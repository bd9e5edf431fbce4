"""Start a training command on several processes (and nodes) through torch's elastic launcher (torchrun).

`omni sft|pt|rlhf --nproc-per-node N` (or ``NPROC_PER_NODE=N``) re-runs the same command line once per
process under torch's launcher; each process sees ``RANK``/``WORLD_SIZE`` and trains its share. A command
already running under an outside launcher (torchrun, ``accelerate launch``, deepspeed) is never relaunched.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass

from omni.errors import OmniError
from omni.train.options import LaunchOptions


@dataclass(frozen=True)
class Processes:
    """Where this process stands in a run: its global rank, local rank and the number of processes."""

    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_processes() -> Processes:
    """This process's place in the run, from the variables every launcher sets (one process when unset)."""
    env = os.environ
    return Processes(
        rank=int(env.get("RANK", "0")),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        world_size=int(env.get("WORLD_SIZE", "1")),
    )


def under_launcher() -> bool:
    """Whether a launcher (ours or another) started this process as one of a distributed run."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def wants_launch(options: LaunchOptions) -> bool:
    """More than one process was asked for and this process was not started by a launcher."""
    return not under_launcher() and options.nproc_per_node * options.nnodes > 1


def free_port() -> int:
    """A TCP port nobody listens on now, on this machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(options: LaunchOptions, *, output_dir: str | None) -> None:
    """Refuse launch settings that cannot work, before anything starts (`output_dir`: --output-dir as given)."""
    if options.nproc_per_node < 1 or options.nnodes < 1:
        raise OmniError("--nproc-per-node and --nnodes must be at least 1")
    if not 0 <= options.node_rank < options.nnodes:
        raise OmniError(
            f"--node-rank {options.node_rank} is not in 0..{options.nnodes - 1} (--nnodes {options.nnodes})"
        )
    if options.nnodes > 1 and not options.master_addr:
        raise OmniError("--nnodes > 1 needs --master-addr (the address of node 0, reachable from every node)")
    if options.nnodes > 1 and not output_dir:
        raise OmniError("--nnodes > 1 needs --output-dir: a folder every node writes into (shared storage)")


def launch(command: str, argv: list[str], options: LaunchOptions, *, output_dir: str | None) -> int:
    """Run ``omni COMMAND ARGV`` in `options.nproc_per_node` processes on this node; returns the exit status.

    Every process reports its own errors (with its rank); a failed process ends the others, and the status is
    the failed process's. `output_dir` (resolved once by the caller) is passed on so that all processes write
    into one folder. The caller has already `check`ed the options.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    port = options.master_port or (free_port() if options.nnodes == 1 else 29500)
    config = LaunchConfig(
        min_nodes=options.nnodes,
        max_nodes=options.nnodes,
        nproc_per_node=options.nproc_per_node,
        run_id="omni",
        rdzv_backend="static",
        rdzv_endpoint=f"{options.master_addr or '127.0.0.1'}:{port}",
        rdzv_configs={"rank": options.node_rank, "timeout": 900},
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
    )
    if "OMP_NUM_THREADS" not in os.environ:  # the processes share the node's cores, as under torchrun
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // options.nproc_per_node))
    args = [*argv, "--output-dir", output_dir] if output_dir else argv
    print(
        f"[omni] launching {options.nproc_per_node} process(es) on node {options.node_rank} of {options.nnodes}"
        f" (rendezvous {config.rdzv_endpoint})",
        file=sys.stderr,
        flush=True,
    )
    # Each process prints its own error with its rank; the launcher's failure report would repeat it as a wall.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "omni", command, *args)
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        if failure.exitcode < 0:  # killed by a signal (out of memory, say): the process could not say so itself
            print(f"omni: error: [rank {rank}] killed by signal {-failure.exitcode}", file=sys.stderr)
            return 128 - failure.exitcode
        return failure.exitcode
    return 0


def leave_process_group() -> None:
    """End this process's part in the run's process group, once training is done.

    A process exiting while the group (gloo's or DeepSpeed's communication threads) is still alive can abort at
    interpreter shutdown, turning a finished run into a failed one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
