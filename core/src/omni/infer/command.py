"""`omni infer`: answer one query, a file of rows, or chat interactively, through the selected engine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omni.cli.invocation import Invocation
from omni.errors import OmniError
from omni.infer.adapters import AdapterRouter, parse_adapters, parse_routes
from omni.infer.batch import answer_file, read_rows
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
    if options.speak is not None and options.query is None:
        raise OmniError("--speak speaks the answer to --query; pass --query too")
    if options.voice is not None and options.speak is None:
        raise OmniError("--voice is the voice of --speak's answer; pass --speak too")
    if options.input is not None and (options.image or options.audio or options.video):
        raise OmniError("--image/--audio/--video go with --query or chat; --input rows name their own media")
    adapters = parse_adapters(options.adapters)
    adapter = options.adapter_name or next(iter(adapters), None)
    if adapter is not None and adapter not in adapters:
        raise OmniError(
            f"--adapter-name {adapter!r} is not one of the loaded adapters ({', '.join(adapters) or 'none'})"
        )
    if (options.route_by or options.routes) and options.input is None:
        raise OmniError(
            "--route-by and --routes pick adapters for the rows of --input; use --adapter-name with --query"
        )
    router = AdapterRouter(tuple(adapters), adapter, options.route_by, parse_routes(options.routes))
    # --input rows are read and routed before the model loads: a bad row fails at once.
    routed = read_rows(options.input, router, invocation.registry) if options.input is not None else None
    engine = open_engine(invocation, adapters)
    try:
        if options.query is not None:
            answer_query(engine, options, adapter)
        elif routed is not None and options.output is not None:
            answer_file(engine, routed, Path(options.output), options.generation_config())
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
        registry=invocation.registry,
    )


def answer_query(engine: Engine, options: InferOptions, adapter: str | None) -> None:
    """Print the answer to `--query` (as it is generated with `--stream`), about the `--image`/`--audio`/`--video`
    files when given; with `--speak`, also write the spoken answer as a WAV file."""
    media = {"images": options.image, "audios": options.audio, "videos": options.video}
    row = user_turn(options.query or "", media)
    request = InferRequest(row, options.generation_config(), adapter)
    if options.speak is None:
        print_answer(engine, request, stream=options.stream)
        return
    try:
        answer = engine.speak(request, options.voice)
    except NotImplementedError:
        raise OmniError(f"--speak: the {options.infer_backend} engine cannot speak; use --infer-backend pt") from None
    except OmniError as exc:
        raise OmniError(f"--speak: {exc}") from None
    print(answer.text, flush=True)
    write_wav(Path(options.speak), answer.waveform, answer.sampling_rate)


def user_turn(text: str, media: dict[str, list[str]]) -> dict[str, Any]:
    """A one-turn row: `text` after one tag per medium file, with the files in the row's media columns."""
    tags = "".join(f"<{column[:-1]}>" * len(files) for column, files in media.items())
    return {"messages": [{"role": "user", "content": tags + text}], **{k: list(v) for k, v in media.items() if v}}


def write_wav(path: Path, wave: Any, rate: int) -> None:
    """Write a mono waveform as a 16-bit WAV file (creating its folder)."""
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), wave, rate, subtype="PCM_16")
    print(f"[omni] spoken answer: {path} ({len(wave) / rate:.2f} s)", file=sys.stderr, flush=True)
