"""The OpenAI API shapes `omni serve` speaks: request models (validated by pydantic) and response bodies.

Requests are validated strictly ("0.5" is not a number): a request the OpenAI API would reject is
answered 400 with an OpenAI error body, never guessed at. Fields omni does not use (``user``,
``metadata`` ...) are accepted and ignored, as clients send them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from omni.data.convert import to_messages_row
from omni.data.rows import RowProblem
from omni.infer.engine import Choice, GenerationConfig, InferResponse, SpokenAnswer, StreamDelta, TokenLogprob


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
# OpenAI's bounds on alternatives per token: 5 for completions' `logprobs`, 20 for chat's `top_logprobs`
# (also vLLM's default bound, which `prompt_logprobs` shares).
MAX_COMPLETION_LOGPROBS = 5
# Prompts per completion request: each is a request to the engine, so the count is bounded as `n` is.
MAX_PROMPTS = 256
MAX_CHAT_TOP_LOGPROBS = 20


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
    return_token_ids: bool = False  # vLLM's extension: each choice's token ids (`token_ids`), for RL trainers

    @model_validator(mode="after")
    def _token_ids_whole(self) -> SamplingRequest:
        if self.return_token_ids and self.stream:
            raise ValueError("return_token_ids is for answers that are not streamed")
        return self

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

    def generation(
        self,
        default_max_tokens: int,
        max_tokens_limit: int | None,
        *,
        logprobs: bool,
        top_logprobs: int = 0,
        prompt_logprobs: int | None = None,
    ) -> GenerationConfig:
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
            max_new_tokens=default if asked is None else asked,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            seed=self.seed,
            stop=stop,
            n=self.n,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            prompt_logprobs=prompt_logprobs,
        )

    def answer_limit(self) -> int | None:
        return self.max_tokens


class ChatMessage(BaseModel):
    """One message; content is text or OpenAI content parts (text, image_url, input_audio ...)."""

    model_config = ConfigDict(strict=True, extra="allow")  # name, tool_call_id ... travel with the message

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class AudioOutput(_Strict):
    """A chat request's ``audio``: the voice and format of a spoken answer (with ``modalities: ["text", "audio"]``)."""

    voice: str
    format: Literal["wav", "pcm16"]


class ChatCompletionRequest(SamplingRequest):
    """A ``POST /v1/chat/completions`` body.

    ``modalities`` with "audio" and ``audio: {voice, format}`` ask for a spoken answer, as OpenAI's audio
    output does. ``use_audio_in_video`` (or vLLM's ``mm_processor_kwargs: {"use_audio_in_video": ...}``)
    says whether videos' audio tracks are heard, over the server's `--use-audio-in-video`.
    """

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_CHAT_TOP_LOGPROBS)
    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioOutput | None = None
    use_audio_in_video: bool | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    # Kept as sent (key order included): the template writes them into the prompt as training rows had them.
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None  # accepted; a template's format decides how many calls a turn holds

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def audio_output(self) -> AudioOutput | None:
        """The spoken answer's voice and format when ``modalities`` asks for audio; a request OpenAI's audio
        output would refuse is a 400 naming the parameter."""
        if "audio" not in (self.modalities or []):
            return None
        if self.audio is None:
            raise ApiError(400, 'modalities with "audio" needs the audio parameter: {"voice", "format"}', param="audio")
        for param, asked in (("n", self.n > 1), ("logprobs", self.logprobs)):
            if asked:
                raise ApiError(400, f"a spoken answer is one choice, without '{param}'", param=param)
        if self.stream and self.audio.format != "pcm16":
            raise ApiError(400, 'streamed audio is pcm16: send audio.format "pcm16" with stream', param="audio.format")
        return self.audio

    def hears_video_audio(self) -> bool | None:
        """Whether videos' audio tracks are heard, as the request says (None: it does not say)."""
        if self.use_audio_in_video is not None:
            return self.use_audio_in_video
        wanted = (self.mm_processor_kwargs or {}).get("use_audio_in_video")
        if wanted is not None and not isinstance(wanted, bool):
            raise ApiError(
                400, "mm_processor_kwargs.use_audio_in_video must be true or false", param="mm_processor_kwargs"
            )
        return wanted

    def answer_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def row(self) -> dict[str, Any]:
        """The conversation as a row of the messages format (content parts become media columns, ``tools`` and
        ``tool_calls`` OpenAI's shapes with arguments as objects)."""
        messages = []
        for message in self.messages:
            fields = message.model_dump(exclude_none=True)
            if fields["role"] == "developer":  # OpenAI's newer name for the system role
                fields["role"] = "system"
            messages.append(fields)
        try:
            return to_messages_row({"messages": messages, **({"tools": self.tools} if self.tools else {})})
        except RowProblem as exc:
            raise ApiError(400, str(exc), param="messages") from None


class CompletionRequest(SamplingRequest):
    """A ``POST /v1/completions`` body: prompts continued as they are, without the chat template.

    `prompt` is a string, a list of strings, a list of token ids or a list of such lists; each prompt gets its
    own `n` choices. `echo` puts the prompt before each choice's text (with `logprobs`, the prompt tokens'
    log-probabilities too), and with `echo`, `max_tokens` 0 scores the prompt without generating.
    """

    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(None, ge=0)
    logprobs: int | None = Field(None, ge=0, le=MAX_COMPLETION_LOGPROBS)
    echo: bool = False
    prompt_logprobs: int | None = Field(None, ge=0, le=MAX_CHAT_TOP_LOGPROBS)  # vLLM's extension

    @field_validator("prompt")
    @classmethod
    def _no_empty_prompt(cls, prompt: Any) -> Any:
        prompts = [prompt] if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)) else prompt
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("the prompt is empty")
        if len(prompts) > MAX_PROMPTS:
            raise ValueError(f"at most {MAX_PROMPTS} prompts are allowed per request, got {len(prompts)}")
        return prompt

    @model_validator(mode="after")
    def _generate_or_echo(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens 0 (nothing generated) needs echo: true")
        return self

    def prompts(self) -> list[str | list[int]]:
        """Each prompt of this request: a text, or token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(p, int) for p in self.prompt):
            return [list(self.prompt)]  # type: ignore[arg-type]
        return list(self.prompt)  # type: ignore[arg-type]

    def prompt_logprobs_wanted(self) -> int | None:
        """How many alternatives each prompt token's log-probability comes with; None when none are wanted."""
        echoed = self.logprobs if self.echo else None
        wanted = [n for n in (echoed, self.prompt_logprobs) if n is not None]
        return max(wanted) if wanted else None


class TokenizeRequest(_Strict):
    """A ``POST /tokenize`` body, as vLLM takes it: a `prompt`, or chat `messages` (with the chat template)."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)  # what a chat completion takes, checked on arrival
    add_special_tokens: bool | None = None  # vLLM's default: true for a prompt, false for messages
    add_generation_prompt: Literal[True] = True  # omni's templates always end a prompt ready for the answer
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send either prompt or messages")
        return self

    def row(self) -> dict[str, Any]:
        return ChatCompletionRequest.model_validate({"model": "", "messages": self.messages}).row()


class DetokenizeRequest(_Strict):
    """A ``POST /detokenize`` body, as vLLM takes it."""

    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0, le=2**63 - 1)]]


TokenText = Callable[[int], str]
"""The text of one token id, for log-probability entries."""


def usage(*responses: InferResponse) -> dict[str, int]:
    """Token counts of one request's responses together (one response per prompt)."""
    prompt = sum(r.prompt_tokens for r in responses)
    completion = sum(r.completion_tokens for r in responses)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _top_entries(top: dict[int, float], token_text: TokenText) -> list[dict[str, Any]]:
    entries = []
    for token_id, logprob in top.items():
        text = token_text(token_id)
        entries.append({"token": text, "logprob": logprob, "bytes": list(text.encode())})
    return entries


def chat_logprob_entries(tokens: Sequence[TokenLogprob], token_text: TokenText) -> list[dict[str, Any]]:
    """Chat ``logprobs.content`` entries: each token with its log-probability and ``top_logprobs``."""
    return [
        {**_top_entries({t.token_id: t.logprob}, token_text)[0], "top_logprobs": _top_entries(t.top, token_text)}
        for t in tokens
    ]


def _chat_logprobs(choice: Choice, token_text: TokenText) -> dict[str, Any] | None:
    if choice.logprobs is None:
        return None
    return {"content": chat_logprob_entries(choice.token_logprobs(), token_text)}


def _completion_logprobs(
    choice: Choice, response: InferResponse, echo: bool, token_text: TokenText
) -> dict[str, Any] | None:
    """OpenAI's completion ``logprobs``: every token (the prompt's first, with `echo`), its log-probability,
    its most likely alternatives (the token itself included, as vLLM does) and where its text starts."""
    if choice.logprobs is None:
        return None
    ids: list[int] = []
    logprobs: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    if echo:
        for token_id, scored in zip(response.prompt_token_ids or [], response.prompt_logprobs or [], strict=False):
            ids.append(token_id)
            logprobs.append(None if scored is None else scored.logprob)
            tops.append(None if scored is None else _named_top(scored, token_text))
    for token in choice.token_logprobs():
        ids.append(token.token_id)
        logprobs.append(token.logprob)
        tops.append(_named_top(token, token_text))
    tokens = [token_text(t) for t in ids]
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}


def _named_top(token: TokenLogprob, token_text: TokenText) -> dict[str, float]:
    """The alternatives keyed by their text: of tokens with the same text (byte pieces ...), the likeliest."""
    named: dict[str, float] = {}
    for token_id, logprob in token.top.items():
        named.setdefault(token_text(token_id), logprob)
    named.setdefault(token_text(token.token_id), token.logprob)
    return named


def vllm_prompt_logprobs(response: InferResponse, token_text: TokenText) -> list[dict[str, Any] | None]:
    """vLLM's ``prompt_logprobs`` of a choice: per prompt token (None for the first), the token and its most
    likely alternatives, keyed by token id, with log-probability, rank and text."""
    entries: list[dict[str, Any] | None] = []
    for scored in response.prompt_logprobs or []:
        if scored is None:
            entries.append(None)
            continue
        ranked = {t: (lp, rank) for rank, (t, lp) in enumerate(scored.top.items(), start=1)}
        ranked.setdefault(scored.token_id, (scored.logprob, scored.rank))
        entries.append(
            {str(t): {"logprob": lp, "rank": rank, "decoded_token": token_text(t)} for t, (lp, rank) in ranked.items()}
        )
    return entries


def chat_completion(
    response: InferResponse,
    *,
    request_id: str,
    created: int,
    model: str,
    token_text: TokenText,
    token_ids: bool = False,
) -> dict[str, Any]:
    """A ``chat.completion`` object; with `token_ids`, each choice has its ``token_ids`` (vLLM's field)."""
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
                **({"token_ids": list(c.token_ids)} if token_ids else {}),
            }
            for i, c in enumerate(response.choices)
        ],
        "usage": usage(response),
    }


def text_completion(
    responses: Sequence[InferResponse],
    prompt_texts: Sequence[str],
    *,
    request_id: str,
    created: int,
    model: str,
    token_text: TokenText,
    echo: bool = False,
    prompt_logprobs: bool = False,
    token_ids: bool = False,
) -> dict[str, Any]:
    """A ``text_completion`` object answering one prompt per response: prompt i's choice j has index i*n + j.

    With `echo` each text starts with its prompt; with `prompt_logprobs` each choice has vLLM's
    ``prompt_logprobs``; with `token_ids`, its generated ``token_ids`` (vLLM's field).
    """
    choices = []
    for response, prompt_text in zip(responses, prompt_texts, strict=True):
        for c in response.choices:
            choice = {
                "index": len(choices),
                "text": prompt_text + c.text if echo else c.text,
                "logprobs": _completion_logprobs(c, response, echo, token_text),
                "finish_reason": c.finish_reason,
            }
            if prompt_logprobs:
                choice["prompt_logprobs"] = vllm_prompt_logprobs(response, token_text)
            if token_ids:
                choice["token_ids"] = list(c.token_ids)
            choices.append(choice)
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(*responses),
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


def pcm16_bytes(waveform: Any) -> bytes:
    """A mono float waveform (samples in [-1, 1]) as 16-bit little-endian samples: OpenAI's ``pcm16``."""
    import numpy as np

    return (np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()


def audio_bytes(waveform: Any, sampling_rate: int, audio_format: str) -> bytes:
    """A mono float waveform in a request's ``audio.format``: ``pcm16`` samples, or a WAV file of them."""
    samples = pcm16_bytes(waveform)
    if audio_format == "pcm16":
        return samples
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(sampling_rate)
        file.writeframes(samples)
    return out.getvalue()


def spoken_usage(answer: SpokenAnswer) -> dict[str, int]:
    """The token counts of a spoken answer (its text's tokens; the speech is not counted)."""
    prompt, completion = answer.prompt_tokens, len(answer.token_ids)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def spoken_chat_completion(
    answer: SpokenAnswer, audio: bytes, *, request_id: str, created: int, model: str
) -> dict[str, Any]:
    """A ``chat.completion`` object whose message is spoken: OpenAI's ``message.audio`` with the base64 `audio`
    and the answer's text as its transcript (``content`` is null, as OpenAI sends it). The audio is kept nowhere,
    so it expires when it is sent."""
    message = {
        "role": "assistant",
        "content": None,
        "audio": {
            "id": f"audio_{request_id}",
            "data": base64.b64encode(audio).decode("ascii"),
            "expires_at": created,
            "transcript": answer.text,
        },
    }
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
        "usage": spoken_usage(answer),
    }


def spoken_stream_choice(audio: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """A chat chunk's choice carrying a piece of the spoken answer (``delta.audio``: transcript, data, id or
    expires_at); an empty delta with the finish reason when `audio` is empty."""
    return {"index": 0, "delta": {"audio": audio} if audio else {}, "logprobs": None, "finish_reason": finish_reason}


def chat_stream_opening(n: int) -> list[dict[str, Any]]:
    """The first chunk's choices: OpenAI opens every choice with a delta that carries only the role."""
    return [
        {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        for i in range(n)
    ]


def chat_stream_choice(delta: StreamDelta, token_text: TokenText | None = None) -> dict[str, Any]:
    """A chat chunk's choice for one delta (an empty ``delta`` object when only the finish reason is new); with
    `token_text`, the log-probabilities of the delta's tokens."""
    content = {"content": delta.text} if delta.text else {}
    logprobs = None if token_text is None else {"content": chat_logprob_entries(delta.logprobs, token_text)}
    return {"index": delta.index, "delta": content, "logprobs": logprobs, "finish_reason": delta.finish_reason}


def completion_stream_choice(delta: StreamDelta) -> dict[str, Any]:
    """A streamed text completion's choice for one delta."""
    return {"index": delta.index, "text": delta.text, "logprobs": None, "finish_reason": delta.finish_reason}
