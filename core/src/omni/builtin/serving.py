"""Built-in serving plugin: the `serve` command (alias `deploy`), an OpenAI-compatible HTTP server."""

from __future__ import annotations

from omni import hookimpl
from omni.registry import CommandSpec, Selector
from omni.serve.options import ServeOptions


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
