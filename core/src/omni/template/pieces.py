"""Templates that render a conversation as text pieces; tokenizing, loss masks and truncation live here.

A template subclass only says how the conversation is written (`render`) and which stretches are
answers. Masks are then exact by construction: the whole text is tokenized once (so ids equal what
``tokenizer.apply_chat_template`` gives) and each token is labelled by the piece its first character
lies in, or, for a token that starts before an answer and ends in it (a space the template writes before the
answer, joined to the answer's first word), by that answer.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from omni.data.convert import to_messages_row
from omni.data.rows import RowProblem, row_error
from omni.template.base import IGNORE_INDEX, TOKEN_AXIS_KEYS, Encoded, RowTooLongError, Template


@dataclass(frozen=True)
class Piece:
    """A stretch of rendered text; `answer` is the index of the assistant message it answers, else None."""

    text: str
    answer: int | None = None


class PieceTemplate(Template):
    """Base for templates that implement `render`; gives `encode` and `encode_prompt`."""

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> list[Piece]:
        """The conversation as pieces whose texts join into exactly what the model reads.

        An answer piece holds an assistant turn's trained text: its content (and tool calls) and the end-of-turn
        token. With `add_generation_prompt` the text ends where the next assistant turn begins. A template with
        `supports_tools` takes ``tools=`` too: the row's function definitions, or None.
        """
        raise NotImplementedError

    def _render_row(
        self, row: dict[str, Any], messages: list[dict[str, Any]], *, add_generation_prompt: bool
    ) -> list[Piece]:
        """`render` with the row's tools, for templates that write them; a tool row is an error for the others."""
        if not self.supports_tools:
            if row.get("tools") or any(m.get("tool_calls") for m in messages):
                raise row_error(
                    row,
                    f"has tools or tool calls, but the {type(self).__name__} has no tool format; use a "
                    "template with one (qwen3, qwen2.5, llama3, or default with a chat template that takes tools)",
                )
            return self.render(messages, add_generation_prompt=add_generation_prompt)
        return self.render(messages, add_generation_prompt=add_generation_prompt, tools=row.get("tools") or None)  # type: ignore[call-arg]

    def messages(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The row's messages with string contents and the ``--system`` override applied."""
        if "messages" not in row:
            raise row_error(row, "has no messages to render (plain text rows are for `omni pt`)")
        if any(not isinstance(m.get("content"), str) for m in row["messages"]):
            try:
                row = to_messages_row(row)  # OpenAI content parts, as inference requests send them
            except RowProblem as problem:
                raise row_error(row, str(problem)) from None
        messages = [dict(m) for m in row["messages"]]
        system = self.options.system
        if system is not None:
            if messages and messages[0]["role"] == "system":
                messages[0]["content"] = system
            else:
                messages.insert(0, {"role": "system", "content": system})
        return messages

    def encode(self, row: dict[str, Any]) -> Encoded:
        pieces = self._render_row(row, self.messages(row), add_generation_prompt=False)
        ids, answers, extras = self._tokenize(pieces, row)
        scope = self.options.loss_scope
        if scope == "all":
            labels = list(ids)
        else:
            trained = {a for a in answers if a is not None}
            if not trained:
                raise row_error(row, "has no assistant answer to train on")
            keep = trained if scope == "assistant" else {max(trained)}
            labels = [t if a in keep else IGNORE_INDEX for t, a in zip(ids, answers, strict=True)]
        return self._fit(Encoded(ids, labels, extras), answers, row)

    def encode_prompt(self, row: dict[str, Any]) -> Encoded:
        messages = self.messages(row)
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        ids, _, extras = self._tokenize(self._render_row(row, messages, add_generation_prompt=True), row)
        limit = self.options.max_length
        if limit is not None and len(ids) > limit:
            if self.options.truncation == "error":
                raise row_error(row, f"prompt is {len(ids)} tokens, over --max-length {limit}", RowTooLongError)
            # The newest context matters most for the next turn.
            ids, extras = ids[-limit:], _sliced_extras(extras, len(ids) - limit, len(ids))
        return Encoded(ids, [IGNORE_INDEX] * len(ids), extras)

    def tokenize(self, text: str, row: dict[str, Any]) -> tuple[list[int], list[tuple[int, int]], dict[str, Any]]:
        """Token ids of the rendered `text`, each token's (start, end) characters in `text`, and the row's
        modality tensors (none here; templates whose processor turns media into tensors override this)."""
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoding["input_ids"]), list(encoding["offset_mapping"]), {}

    def _tokenize(self, pieces: list[Piece], row: dict[str, Any]) -> tuple[list[int], list[int | None], dict[str, Any]]:
        """Token ids of the joined text, per token the answer its first (else its last) character belongs to, and
        the extras."""
        ids, offsets, extras = self.tokenize("".join(p.text for p in pieces), row)
        starts, ends, answers = [], [], []
        position = 0
        for piece in pieces:
            starts.append(position)
            position += len(piece.text)
            ends.append(position)
            answers.append(piece.answer)

        def answer_at(char: int) -> int | None:
            index = bisect.bisect_right(starts, char) - 1
            return answers[index] if 0 <= index and char < ends[index] else None

        per_token: list[int | None] = []
        for start, end in offsets:
            answer = answer_at(start)
            if answer is None and end > start:
                # A token that starts before an answer but ends in it (" red" after "ASSISTANT:", the space
                # written by the template) carries the answer's first characters: it trains with the answer.
                answer = answer_at(end - 1)
            per_token.append(answer)
        return ids, per_token, extras

    def _fit(self, encoded: Encoded, answers: list[int | None], row: dict[str, Any]) -> Encoded:
        """Truncate to ``--max-length`` as ``--truncation`` says, never losing the last answer silently."""
        limit, length = self.options.max_length, len(encoded)
        if limit is None or length <= limit:
            return encoded
        over = f"is {length} tokens, over --max-length {limit}"
        whole_text = self.options.loss_scope == "all"
        if self.options.truncation == "left":
            if not whole_text:
                answer_start = answers.index(max(a for a in answers if a is not None))
                if length - answer_start > limit:
                    raise row_error(
                        row,
                        f"its last answer alone is {length - answer_start} tokens, over --max-length {limit}; "
                        "raise --max-length or shorten the answer",
                        RowTooLongError,
                    )
            return _sliced(encoded, length - limit, length)
        if self.options.truncation == "right":
            last_trained = max(i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX)
            if whole_text or last_trained < limit:
                return _sliced(encoded, 0, limit)
            raise row_error(
                row, f"{over}; right truncation would cut trained tokens, use --truncation left", RowTooLongError
            )
        raise row_error(row, f"{over} (--truncation error)", RowTooLongError)


def _sliced(encoded: Encoded, start: int, end: int) -> Encoded:
    return Encoded(encoded.input_ids[start:end], encoded.labels[start:end], _sliced_extras(encoded.extras, start, end))


def _sliced_extras(extras: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """`extras` with each per-token input (`TOKEN_AXIS_KEYS`) cut to the kept tokens, like the ids."""
    return {key: value[:, start:end] if key in TOKEN_AXIS_KEYS else value for key, value in extras.items()}
