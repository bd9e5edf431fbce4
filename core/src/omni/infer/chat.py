"""Interactive chat for `omni infer`: multi-turn history, streamed answers, `/clear` and `/exit`.

On a terminal it prompts for each turn; with piped input it reads one user turn per line and prints
one answer per turn, so a conversation can be scripted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from omni.infer.engine import Engine, InferRequest
from omni.infer.options import InferOptions

COMMANDS = {
    "/clear": "forget the conversation so far",
    "/exit": "quit (also /quit, Ctrl-D)",
    "/image PATH": "attach an image to your next message (also /audio PATH, /video PATH)",
}
MEDIA_COMMANDS = {"/image": "images", "/audio": "audios", "/video": "videos"}


def chat(engine: Engine, options: InferOptions, adapter: str | None) -> None:
    """Hold a conversation on stdin/stdout until `/exit` or end of input."""
    interactive = sys.stdin.isatty()
    if interactive:
        model = engine.model_name + (f" + adapter {adapter}" if adapter else "")
        print(f"chatting with {model}; " + "; ".join(f"{c}: {what}" for c, what in COMMANDS.items()))
    history: list[dict[str, Any]] = []
    # Files of the whole conversation, in tag order, and those waiting for the next message (--image ... first).
    media: dict[str, list[str]] = {column: [] for column in MEDIA_COMMANDS.values()}
    pending = {"images": list(options.image), "audios": list(options.audio), "videos": list(options.video)}
    for line in _user_turns(interactive):
        text = line.strip()
        if text in ("/exit", "/quit"):
            break
        if text == "/clear":
            history.clear()
            for files in (*media.values(), *pending.values()):
                files.clear()
            if interactive:
                print("(conversation cleared)")
            continue
        command, _, argument = text.partition(" ")
        if command in MEDIA_COMMANDS:
            if argument.strip():
                pending[MEDIA_COMMANDS[command]].append(argument.strip())
            elif interactive:
                print(f"(usage: {command} PATH)")
            continue
        if not text:
            continue
        tags = "".join(f"<{column[:-1]}>" * len(files) for column, files in pending.items())
        for column, files in pending.items():
            media[column] += files
            files.clear()
        history.append({"role": "user", "content": tags + text})
        row = {"messages": list(history), **{column: list(files) for column, files in media.items() if files}}
        request = InferRequest(row, options.generation_config(), adapter)
        answer = print_answer(engine, request, stream=options.stream, prefix=">>> " if interactive else "")
        history.append({"role": "assistant", "content": answer})


def _user_turns(interactive: bool) -> Iterator[str]:
    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            yield input("<<< ")
        except EOFError:
            print()
            return


def print_answer(engine: Engine, request: InferRequest, *, stream: bool, prefix: str = "") -> str:
    """Print the answer to `request` (streamed or whole) after `prefix`, end the line, and return its text."""
    print(prefix, end="", flush=True)
    if stream:
        pieces = []
        for piece in engine.stream(request):
            pieces.append(piece)
            print(piece, end="", flush=True)
        answer = "".join(pieces)
    else:
        answer = engine.generate([request])[0].choices[0].text
        print(answer, end="")
    print(flush=True)
    return answer
