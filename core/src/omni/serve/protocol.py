"""The OpenAI API shapes `omni serve` speaks: request models (validated by pydantic) and response bodies.

Requests are validated strictly ("0.5" is not a number): a request the OpenAI API would reject is
answered 400 with an OpenAI error body, never guessed at. Fields omni does not use (``user``,
``metadata`` ...) are accepted and ignored, as clients send them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from omni.data.convert import to_messages_row
from omni.data.rows import RowProblem
from omni.infer.engine import Choice, GenerationConfig, InferResponse, StreamDelta


class ApiError(Exception):
    """An error answered with an OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_means_not_given(cls, data: Any) -> Any:
        # The OpenAI API reads null as "use the default", and clients (LangChain ...) send it.
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


# OpenAI's own limit on stop strings; each is also kept short, since every one is matched against every
# decoding step's text.
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 128


class StreamOptions(_Strict):
    include_usage: bool = False


class SamplingRequest(_Strict):
    """Fields shared by chat and text completions."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)  # vLLM's extension; 0 means no cut
    repetition_penalty: float = Field(1.0, ge=0.01, le=100)  # vLLM's extension; near 0 it overflows the logits
    n: int = Field(1, ge=1, le=64)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # a 64-bit integer, as OpenAI's and vLLM's
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _few_short_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        strings = [stop] if isinstance(stop, str) else stop or []
        if len(strings) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings are allowed, got {len(strings)}")
        if any(len(s) > MAX_STOP_CHARS for s in strings):
            raise ValueError(f"each stop string may have at most {MAX_STOP_CHARS} characters")
        return stop

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def generation(self, default_max_tokens: int, max_tokens_limit: int | None, *, logprobs: bool) -> GenerationConfig:
        """The engine's generation settings for this request.

        Asking for more than `max_tokens_limit` tokens is a 400; a request that asks for none gets
        `default_max_tokens`, within the limit.
        """
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        asked = self.answer_limit()
        if asked is not None and max_tokens_limit is not None and asked > max_tokens_limit:
            param = "max_completion_tokens" if getattr(self, "max_completion_tokens", None) else "max_tokens"
            raise ApiError(
                400, f"{param} is {asked}; this server answers with at most {max_tokens_limit} tokens", param=param
            )
        default = default_max_tokens if max_tokens_limit is None else min(default_max_tokens, max_tokens_limit)
        return GenerationConfig(
            max_new_tokens=asked or default,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            seed=self.seed,
            stop=stop,
            n=self.n,
            logprobs=logprobs,
        )

    def answer_limit(self) -> int | None:
        return self.max_tokens


class ChatMessage(BaseModel):
    """One message; content is text or OpenAI content parts (text, image_url, input_audio ...)."""

    model_config = ConfigDict(strict=True, extra="allow")  # name, tool_call_id ... travel with the message

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(SamplingRequest):
    """A ``POST /v1/chat/completions`` body."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=0)  # alternatives per token are not computed

    def answer_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def row(self) -> dict[str, Any]:
        """The conversation as a row of the messages format (content parts become media columns)."""
        messages = []
        for message in self.messages:
            fields = message.model_dump(exclude_none=True)
            if fields["role"] == "developer":  # OpenAI's newer name for the system role
                fields["role"] = "system"
            messages.append(fields)
        try:
            return to_messages_row({"messages": messages})
        except RowProblem as exc:
            raise ApiError(400, str(exc), param="messages") from None


class CompletionRequest(SamplingRequest):
    """A ``POST /v1/completions`` body: plain text continued without the chat template."""

    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=0)  # the chosen tokens' log-probabilities; no alternatives
    echo: Literal[False] = False

    def text(self) -> str:
        """The one prompt of this request; an empty one is a 400."""
        if not isinstance(self.prompt, str) and len(self.prompt) != 1:
            raise ApiError(400, "send one prompt per request (concurrent requests are batched)", param="prompt")
        text = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        if not text:
            raise ApiError(400, "the prompt is empty", param="prompt")
        return text


TokenText = Callable[[int], str]
"""The text of one token id, for log-probability entries."""


def usage(response: InferResponse) -> dict[str, int]:
    return {
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "total_tokens": response.prompt_tokens + response.completion_tokens,
    }


def _chat_logprobs(choice: Choice, token_text: TokenText) -> dict[str, Any] | None:
    if choice.logprobs is None:
        return None
    content = []
    for token_id, logprob in zip(choice.token_ids, choice.logprobs, strict=False):
        text = token_text(token_id)
        content.append({"token": text, "logprob": logprob, "bytes": list(text.encode()), "top_logprobs": []})
    return {"content": content}


def _completion_logprobs(choice: Choice, token_text: TokenText) -> dict[str, Any] | None:
    if choice.logprobs is None:
        return None
    tokens = [token_text(t) for t in choice.token_ids[: len(choice.logprobs)]]
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {"tokens": tokens, "token_logprobs": choice.logprobs, "top_logprobs": None, "text_offset": offsets}


def chat_completion(
    response: InferResponse, *, request_id: str, created: int, model: str, token_text: TokenText
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": _chat_logprobs(c, token_text),
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(response.choices)
        ],
        "usage": usage(response),
    }


def text_completion(
    response: InferResponse, *, request_id: str, created: int, model: str, token_text: TokenText
) -> dict[str, Any]:
    """A ``text_completion`` object."""
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "text": c.text,
                "logprobs": _completion_logprobs(c, token_text),
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(response.choices)
        ],
        "usage": usage(response),
    }


def stream_chunk(
    object_name: str,
    choices: list[dict[str, Any]],
    *,
    request_id: str,
    created: int,
    model: str,
    include_usage: bool,
) -> dict[str, Any]:
    """One streamed object (``chat.completion.chunk``, or ``text_completion`` as OpenAI streams completions).

    With `include_usage`, every chunk has ``usage``: null until the last one.
    """
    chunk = {"id": request_id, "object": object_name, "created": created, "model": model, "choices": choices}
    return {**chunk, "usage": None} if include_usage else chunk


def chat_stream_opening(n: int) -> list[dict[str, Any]]:
    """The first chunk's choices: OpenAI opens every choice with a delta that carries only the role."""
    return [
        {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        for i in range(n)
    ]


def chat_stream_choice(delta: StreamDelta) -> dict[str, Any]:
    """A chat chunk's choice for one delta (an empty ``delta`` object when only the finish reason is new)."""
    content = {"content": delta.text} if delta.text else {}
    return {"index": delta.index, "delta": content, "logprobs": None, "finish_reason": delta.finish_reason}


def completion_stream_choice(delta: StreamDelta) -> dict[str, Any]:
    """A streamed text completion's choice for one delta."""
    return {"index": delta.index, "text": delta.text, "logprobs": None, "finish_reason": delta.finish_reason}
