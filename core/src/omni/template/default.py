"""The `default` template: the tokenizer's own Jinja chat template, with exact answer masks.

Chat templates rarely mark answers (``{% generation %}``), so the answers are found by rendering
message boundaries: the text before assistant turn i is what the template renders for messages[:i]
with a generation prompt, and the turn ends where messages[:i+1] ends. Templates whose history
rendering changes as the conversation grows (Qwen3 drops earlier thinking) break that prefix
property; those turns are found by their content instead.
"""

from __future__ import annotations

from typing import Any

from omni.template.base import TemplateError
from omni.template.pieces import Piece, PieceTemplate


class DefaultTemplate(PieceTemplate):
    """Renders with ``tokenizer.apply_chat_template``; trains each answer and its end-of-turn token."""

    @property
    def stop_words(self) -> tuple[str, ...]:  # type: ignore[override]
        eos = self.tokenizer.eos_token
        return (eos,) if eos else ()

    @property
    def supports_tools(self) -> bool:  # type: ignore[override]
        """Whether the chat template writes tool definitions (it reads ``tools``)."""
        return "tools" in str(getattr(self.processor, "chat_template", None) or "")

    def render(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool, tools: list[dict[str, Any]] | None = None
    ) -> list[Piece]:
        full = self._render(messages, add_generation_prompt=add_generation_prompt, tools=tools)
        if add_generation_prompt:
            return [Piece(full)]
        pieces, cursor = [], 0
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start, end = self._answer_span(messages, index, full, cursor, tools)
            pieces += [Piece(full[cursor:start]), Piece(full[start:end], answer=index)]
            cursor = end
        pieces.append(Piece(full[cursor:]))
        return [p for p in pieces if p.text]

    def _render(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool, tools: list[dict[str, Any]] | None = None
    ) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise TemplateError("the tokenizer has no chat template; pass --template NAME (see `omni list templates`)")
        kwargs = {} if self.options.enable_thinking is None else {"enable_thinking": self.options.enable_thinking}
        text = self.tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )
        return str(text)

    def _answer_span(
        self, messages: list[dict[str, Any]], index: int, full: str, cursor: int, tools: list[dict[str, Any]] | None
    ) -> tuple[int, int]:
        """Where assistant message `index` is written in `full`: its text (and tool calls) and end-of-turn token."""
        content = messages[index]["content"].strip()
        try:
            before = self._render(messages[:index], add_generation_prompt=True, tools=tools)
            through = self._render(messages[: index + 1], add_generation_prompt=False, tools=tools)
        except Exception:  # templates may reject partial conversations (e.g. no user turn yet)
            before = through = ""
        if cursor <= len(before) and through.startswith(before) and full.startswith(through) and through != before:
            start, turn_end = len(before), len(through)
            if messages[index].get("tool_calls"):  # the calls follow the content: the turn ends after them
                return start, self._end_of_turn(full, start, turn_end, otherwise=turn_end, after_text=True)
            content_at = full.rfind(content, start, turn_end) if content else -1
            content_end = content_at + len(content) if content_at >= 0 else start
            return start, self._end_of_turn(full, content_end, turn_end, otherwise=turn_end)
        if messages[index].get("tool_calls") and before and cursor <= len(before) and full.startswith(before):
            # A template that writes the last turn differently (Qwen3's think block): the turn opens as prompted.
            start = len(before)
            return start, self._end_of_turn(full, start, len(full), otherwise=len(full), after_text=True)
        start = full.find(content, self._after_previous_message(messages, index, full, cursor)) if content else -1
        if start < 0:
            raise TemplateError(
                f"cannot find assistant message {index} in what the chat template rendered; "
                "pass --template NAME for this model family"
            )
        content_end = start + len(content)
        return start, self._end_of_turn(full, content_end, len(full), otherwise=content_end)

    @staticmethod
    def _after_previous_message(messages: list[dict[str, Any]], index: int, full: str, cursor: int) -> int:
        """Where the message before `index` ends in `full`, so an answer repeating the question is found after it."""
        previous = messages[index - 1]["content"].strip() if index else ""
        at = full.find(previous, cursor) if previous else -1
        return at + len(previous) if at >= 0 else cursor

    def _end_of_turn(self, full: str, content_end: int, limit: int, *, otherwise: int, after_text: bool = False) -> int:
        """Just past the special token that closes the answer (only whitespace before it, or any text with
        `after_text`: tool calls), else `otherwise`."""
        # Added tokens marked special count too: tokenizers do not always list their turn tokens among
        # all_special_tokens (Gemma's <end_of_turn>, Phi-3's <|end|>).
        added = getattr(self.tokenizer, "added_tokens_decoder", {}).values()
        specials = set(self.tokenizer.all_special_tokens) | {token.content for token in added if token.special}
        closing = [
            (at, at + len(token))
            for token in specials
            if (at := full.find(token, content_end, limit)) >= 0 and (after_text or not full[content_end:at].strip())
        ]
        return min(closing)[1] if closing else otherwise
