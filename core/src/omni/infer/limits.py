"""Bounds on what one request may ask of an engine: prompt length against ``--max-length`` and the
model's context. A request past them is the client's mistake (a server answers 400), never a stall."""

from __future__ import annotations

from omni.errors import OmniError


class PromptTooLong(OmniError):
    """A prompt over ``--max-length``, one that leaves the model's context no room for an answer, or an empty one."""


def check_prompt_length(tokens: int, max_length: int | None, context: int | None) -> None:
    """Raise `PromptTooLong` unless a prompt of `tokens` tokens is non-empty, within `max_length` (when
    set) and leaves at least one token of the model's `context` (when known) for the answer."""
    if tokens == 0:
        raise PromptTooLong("the prompt is empty")
    if max_length is not None and tokens > max_length:
        raise PromptTooLong(f"the prompt is {tokens} tokens, over this server's --max-length of {max_length}")
    if context is not None and tokens >= context:
        raise PromptTooLong(
            f"the prompt is {tokens} tokens; the model's context is {context} tokens, which leaves no room for an answer"
        )
