"""Built-in serving plugin: the `serve` command (alias `deploy`), an OpenAI-compatible HTTP server, and `rollout`,
the same server taking a trainer's weights too (RL rollouts served to trainers in other processes)."""

from __future__ import annotations

from omni import hookimpl
from omni.registry import CommandSpec, Selector
from omni.serve.options import RolloutOptions, ServeOptions


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="serve",
            aliases=("deploy",),
            description="serve a model and its adapters over the OpenAI API (chat, completions, streaming)",
            impl="omni.serve.command:run",
            options=ServeOptions,
            selects=(Selector("infer_backend", "engines"),),
        )
    )
    register(
        CommandSpec(
            name="rollout",
            description="serve a model for RL trainers in other processes or on other machines: `serve`'s OpenAI API "
            "plus a route taking the trainer's weights after every step (rlhf --rollout-engine server)",
            impl="omni.serve.command:run",
            options=RolloutOptions,
            selects=(Selector("infer_backend", "engines"),),
        )
    )
