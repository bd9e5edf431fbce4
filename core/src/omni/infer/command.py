"""`omni infer`: answer one query, a file of rows, or chat interactively, through the selected engine."""

from __future__ import annotations

from pathlib import Path

from omni.cli.invocation import Invocation
from omni.errors import OmniError
from omni.infer.adapters import parse_adapters
from omni.infer.batch import answer_file
from omni.infer.chat import chat, print_answer
from omni.infer.engine import Engine, InferRequest
from omni.infer.options import InferOptions
from omni.infer.recorded import with_training_defaults
from omni.models.embedded import EMBEDDED_MODEL


def run(invocation: Invocation) -> int:
    """Run `omni infer` with the parsed flags; returns the exit status."""
    options: InferOptions = invocation.options
    if options.query is not None and options.input is not None:
        raise OmniError("pass either --query or --input, not both")
    if (options.input is None) != (options.output is None):
        raise OmniError("--input and --output go together: rows are read from one and answers written to the other")
    adapters = parse_adapters(options.adapters)
    adapter = options.adapter_name or next(iter(adapters), None)
    if adapter is not None and adapter not in adapters:
        raise OmniError(
            f"--adapter-name {adapter!r} is not one of the loaded adapters ({', '.join(adapters) or 'none'})"
        )
    engine = open_engine(invocation, adapters)
    try:
        if options.query is not None:
            answer_query(engine, options, adapter)
        elif options.input is not None and options.output is not None:
            answer_file(engine, options.input, Path(options.output), options.generation_config(), adapter)
        else:
            chat(engine, options, adapter)
    finally:
        engine.close()
    return 0


def open_engine(invocation: Invocation, adapters: dict[str, str]) -> Engine:
    """The engine `--infer-backend` selected, loaded with the command's model, adapter and template flags.

    With adapters, what the first one's training recorded (base model, template, system prompt) fills
    the flags the user left empty, as in ms-swift.
    """
    options: InferOptions = invocation.options
    selected = invocation.selected_one("infer_backend")
    if selected is None:
        raise OmniError("--infer-backend is empty; pass an engine name (see `omni list engines`)")
    if adapters:
        options = with_training_defaults(options, Path(next(iter(adapters.values()))))
    return selected.spec.load()(
        options.model or EMBEDDED_MODEL,
        adapters=adapters,
        options=selected.options,
        model_options=options,
        template_options=options,
    )


def answer_query(engine: Engine, options: InferOptions, adapter: str | None) -> None:
    """Print the answer to `--query` (as it is generated with `--stream`)."""
    request = InferRequest(
        {"messages": [{"role": "user", "content": options.query}]}, options.generation_config(), adapter
    )
    print_answer(engine, request, stream=options.stream)
