"""The OpenAI-compatible HTTP app of `omni serve`: FastAPI routes in front of any omni engine.

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``,
``POST /tokenize``, ``POST /detokenize``, ``GET /metrics``; with a `WeightsRoute` (`omni rollout`), ``GET`` and
``POST /omni/v1/weights``: what the server is and a trainer's new weights (a 404 saying so on `omni serve`).
Every error is an OpenAI error body with a fitting status (400 invalid request, a limit passed or a parameter the
engine does not implement, 401 bad API key, 404 unknown model or route, 408 past the request timeout, 500 engine failure), streams included:
a stream's headers go out only once its first token is ready, so a request the engine refuses gets its
status code. The server keeps serving after any of them.

No request can stall the others or read the host: the API key is checked before a body is read; media
items are read here, under a `MediaPolicy`, so an engine only ever sees their bytes; `max_tokens`, prompt
length and stop strings are bounded; a request whose client disconnects or whose time is up is cancelled,
which frees its rows in a running batch at the next decoding step.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omni.data.convert import MEDIA_COLUMNS
from omni.data.validate import media_problem
from omni.encoders.sources import MediaPolicy, read_source
from omni.errors import DataError, OmniError
from omni.infer.engine import (
    PROMPT_IDS,
    SCORING,
    TOP_LOGPROBS,
    USE_AUDIO_IN_VIDEO,
    Engine,
    InferRequest,
    InferResponse,
    SpeechDelta,
    SpokenAnswer,
    StreamDelta,
)
from omni.infer.weights import ROLLOUT_WEIGHTS_PATH, new_weights_file
from omni.serve.protocol import (
    ApiError,
    AudioOutput,
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
    TokenText,
    audio_bytes,
    chat_completion,
    chat_stream_choice,
    chat_stream_opening,
    completion_stream_choice,
    pcm16_bytes,
    spoken_chat_completion,
    spoken_stream_choice,
    spoken_usage,
    stream_chunk,
    text_completion,
    usage,
)
from omni.serve.tool_calls import ToolCallStream, tool_use

logger = logging.getLogger("omni.serve")
T = TypeVar("T")


@dataclass(frozen=True)
class ServedModels:
    """The model names a server answers to: the base model, and each loaded adapter under its own name."""

    base: str
    adapters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.base in self.adapters:
            raise OmniError(f"adapter name {self.base!r} is also the served model name; rename one")

    @property
    def names(self) -> list[str]:
        return [self.base, *self.adapters]

    def adapter_for(self, model: str) -> str | None:
        """The adapter a request's `model` picks (None for the base model); unknown names are a 404."""
        if model == self.base:
            return None
        if model in self.adapters:
            return model
        raise ApiError(
            404,
            f"The model `{model}` does not exist; this server serves: {', '.join(self.names)}",
            param="model",
            code="model_not_found",
        )


# The routes that generate: a weights update waits for their requests in flight and holds new ones back.
_GENERATING_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


@dataclass(frozen=True)
class WeightsRoute:
    """``POST /omni/v1/weights`` on a server (`omni rollout`): a trainer's new weights, a safetensors file as the
    body, loaded with `Engine.load_weights_file` between generations. `max_bytes` bounds the body (None: no bound)."""

    max_bytes: int | None = None


def create_app(
    engine: Engine,
    models: ServedModels,
    *,
    api_key: str | None = None,
    default_max_tokens: int = 512,
    max_tokens_limit: int | None = None,
    request_timeout_s: float = 600.0,
    media: MediaPolicy | None = None,
    max_request_bytes: int = 64 * 1024 * 1024,
    tokenizer_info: bool = False,
    weights: WeightsRoute | None = None,
) -> FastAPI:
    """An app answering OpenAI API requests with `engine`.

    `api_key`, when set, is required as ``Authorization: Bearer KEY`` on every route but ``/health``
    (the OpenAPI schema and ``/metrics`` included). `default_max_tokens` bounds answers of requests that
    set no ``max_tokens``; asking for more than `max_tokens_limit` (and the engine's `max_model_len`) is a
    400. A request still running after `request_timeout_s` ends with a 408. `media` says what the media
    items of requests may name (default: only data sent inline). A body over `max_request_bytes` is a 413,
    refused before it is held whole in memory. With `tokenizer_info`, ``GET /tokenizer_info`` answers the
    tokenizer's configuration, as vLLM does with ``--enable-tokenizer-info-endpoint``. With `weights`, the
    server takes new weights (`WeightsRoute`); without, ``/omni/v1/weights`` is a 404 that says so.
    """
    app = FastAPI(title="omni", docs_url=None, redoc_url=None)
    gate = WeightsGate() if weights is not None else None
    if gate is not None:
        app.add_middleware(GenerationGate, gate=gate)
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes, exempt=(ROLLOUT_WEIGHTS_PATH,) if weights else ())
    app.add_middleware(ApiKeyGuard, api_key=api_key)
    app.add_middleware(RequestLog)  # outermost: refused requests are logged too
    _add_error_handlers(app)
    started = int(time.time())
    name_token = _token_text(engine)
    media = media or MediaPolicy()
    limits = [n for n in (max_tokens_limit, engine.max_model_len) if n is not None]
    token_limit = min(limits) if limits else None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        lines = [f"omni_engine_{name} {value}" for name, value in engine.stats().items()]
        return PlainTextResponse("".join(line + "\n" for line in lines))

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        cards = [{"id": models.base, "object": "model", "created": started, "owned_by": "omni"}]
        cards += [
            {"id": name, "object": "model", "created": started, "owned_by": "omni", "parent": models.base}
            for name in models.adapters
        ]
        return {"object": "list", "data": cards}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, http: Request) -> Any:
        deadline = asyncio.get_running_loop().time() + request_timeout_s
        adapter = models.adapter_for(body.model)
        top = body.top_logprobs or 0
        if top:
            _require(engine, TOP_LOGPROBS, "top_logprobs")
        generation = body.generation(default_max_tokens, token_limit, logprobs=body.logprobs, top_logprobs=top)
        tools = tool_use(body.tools, body.tool_choice, engine)
        row = body.row()
        if engine.modalities is not None and (problem := media_problem(row, engine.modalities)):
            raise ApiError(400, f"the request {problem}", param="messages")
        audio = body.audio_output()
        voice = _voice(engine, audio) if audio is not None else None
        row = await _within(asyncio.to_thread(_read_media, row, media), http, deadline)
        hears_video_audio = body.hears_video_audio()
        if hears_video_audio is not None:
            _require(engine, USE_AUDIO_IN_VIDEO, "use_audio_in_video")
        request = InferRequest(row, generation, adapter, use_audio_in_video=hears_video_audio)
        if tools is not None and tools.opening:
            request = await _within(asyncio.to_thread(_opened, engine, request, tools.opening), http, deadline)
        head = {"request_id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if audio is not None:
            if tools is not None:
                raise ApiError(400, "a spoken answer cannot call tools; send tools without audio", param="tools")
            if not body.stream:
                answer = await _within(_spoken_answer(engine, request, voice), http, deadline)
                data = audio_bytes(answer.waveform, answer.sampling_rate, audio.format)
                return spoken_chat_completion(answer, data, **head)
            chunk = functools.partial(stream_chunk, "chat.completion.chunk", **head, include_usage=body.include_usage)
            return await _speech_stream(engine, request, voice, http, deadline, chunk, body.include_usage)
        if not body.stream:
            response = await _within(_answer(engine, request), http, deadline)
            completion = chat_completion(response, **head, token_text=name_token, token_ids=body.return_token_ids)
            return completion if tools is None else tools.rewrite(completion)
        chunk = functools.partial(stream_chunk, "chat.completion.chunk", **head, include_usage=body.include_usage)
        if tools is None:
            plain = functools.partial(chat_stream_choice, token_text=name_token if body.logprobs else None)
            choice: Callable[[StreamDelta], list[dict[str, Any]]] = lambda delta: [plain(delta)]  # noqa: E731
        else:
            choice = ToolCallStream(tools).choices
        opening = chat_stream_opening(body.n)
        return await _stream(engine, request, http, deadline, chunk, choice, opening, body.include_usage)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, http: Request) -> Any:
        deadline = asyncio.get_running_loop().time() + request_timeout_s
        adapter = models.adapter_for(body.model)
        prompts = body.prompts()
        _check_completion_request(engine, body, prompts)
        generation = body.generation(
            default_max_tokens,
            token_limit,
            logprobs=body.logprobs is not None,
            top_logprobs=body.logprobs or 0,
            prompt_logprobs=body.prompt_logprobs_wanted(),
        )
        requests = [
            InferRequest(
                generation=generation, adapter=adapter, **{"prompt" if isinstance(p, str) else "prompt_ids": p}
            )
            for p in prompts
        ]
        head = {"request_id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if not body.stream:
            # All prompts at once, so that the engine batches them.
            answers = asyncio.gather(*(_answer(engine, r) for r in requests))
            responses = await _within(answers, http, deadline)
            texts = [_prompt_text(engine, p) for p in prompts] if body.echo else [""] * len(prompts)
            return text_completion(
                responses,
                texts,
                **head,
                token_text=name_token,
                echo=body.echo,
                prompt_logprobs=body.prompt_logprobs is not None,
                token_ids=body.return_token_ids,
            )
        chunk = functools.partial(stream_chunk, "text_completion", **head, include_usage=body.include_usage)
        return await _stream(
            engine, requests[0], http, deadline, chunk, lambda d: [completion_stream_choice(d)], [], body.include_usage
        )

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> dict[str, Any]:
        if body.model is not None:
            models.adapter_for(body.model)
        tokenizer = _tokenizer(engine)
        if body.prompt is not None:
            special = True if body.add_special_tokens is None else body.add_special_tokens
            ids = list(tokenizer(body.prompt, add_special_tokens=special)["input_ids"])
        else:
            if body.add_special_tokens:
                raise ApiError(
                    400, "omni's chat templates write every special token themselves", param="add_special_tokens"
                )
            try:
                ids = await asyncio.to_thread(engine.prompt_token_ids, InferRequest(body.row()))
            except NotImplementedError:
                raise ApiError(400, "this server's engine does not tokenize conversations", param="messages") from None
            except Exception as exc:
                raise _engine_error(exc) from exc
        answer: dict[str, Any] = {"count": len(ids), "max_model_len": engine.max_model_len or 0, "tokens": ids}
        answer["token_strs"] = tokenizer.convert_ids_to_tokens(ids) if body.return_token_strs else None
        return answer

    if tokenizer_info:

        @app.get("/tokenizer_info")
        async def get_tokenizer_info() -> dict[str, Any]:
            return _tokenizer_config(_tokenizer(engine))

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> dict[str, str]:
        if body.model is not None:
            models.adapter_for(body.model)
        tokenizer = _tokenizer(engine)
        _check_token_ids(tokenizer, body.tokens, "tokens")
        return {"prompt": tokenizer.decode(body.tokens)}

    _add_weights_routes(app, engine, models, weights, gate)
    return app


def _add_weights_routes(
    app: FastAPI, engine: Engine, models: ServedModels, weights: WeightsRoute | None, gate: WeightsGate | None
) -> None:
    """``GET``/``POST /omni/v1/weights``: on a server that takes weights, what it is and new weights; elsewhere a 404
    naming the command that takes them."""
    if weights is None or gate is None:

        @app.api_route(ROLLOUT_WEIGHTS_PATH, methods=["GET", "POST"], include_in_schema=False)
        async def no_weights() -> None:
            raise ApiError(
                404, "this server takes no weights: start it with `omni rollout` to serve a trainer", code="not_found"
            )

        return

    updates = 0

    def state() -> dict[str, Any]:
        return {"object": "omni.rollout", "model": models.base, "engine": type(engine).__name__, "updates": updates}

    @app.get(ROLLOUT_WEIGHTS_PATH)
    async def weights_state() -> dict[str, Any]:
        return state()

    @app.post(ROLLOUT_WEIGHTS_PATH)
    async def load_weights(http: Request) -> dict[str, Any]:
        nonlocal updates
        start = time.perf_counter()
        path, size = await _body_to_file(http, weights.max_bytes)
        try:
            async with gate.updating():  # between generations: none in flight, new ones wait
                try:
                    await asyncio.to_thread(engine.load_weights_file, path)
                except NotImplementedError:
                    raise ApiError(
                        400, f"this server's engine ({type(engine).__name__}) cannot take new weights"
                    ) from None
                except Exception as exc:
                    raise _engine_error(exc) from exc
                updates += 1
        finally:
            os.unlink(path)
        logger.info("weights update %d: %.1f MB loaded in %.2f s", updates, size / 1e6, time.perf_counter() - start)
        return state()


async def _body_to_file(http: Request, max_bytes: int | None) -> tuple[str, int]:
    """The request's body written to a new file in shared memory (/dev/shm where there is one): its path and size.
    A body over `max_bytes` is a 413; an empty one a 400."""
    handle, path = new_weights_file()
    size, pending = 0, bytearray()
    try:
        with os.fdopen(handle, "wb") as file:
            async for chunk in http.stream():
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise ApiError(413, f"the weights are larger than this server's --max-weights-bytes ({max_bytes})")
                pending += chunk
                if len(pending) >= 1 << 23:  # written in 8 MiB pieces, off the event loop
                    await asyncio.to_thread(file.write, bytes(pending))
                    pending.clear()
            await asyncio.to_thread(file.write, bytes(pending))
        if size == 0:
            raise ApiError(400, "the request body is empty; send the weights as a safetensors file")
    except BaseException:
        os.unlink(path)
        raise
    return path, size


class WeightsGate:
    """Keeps generation requests and weight updates apart: an update waits until the requests in flight are
    answered and holds new ones back until its weights are loaded, so every answer comes from one set of weights."""

    def __init__(self) -> None:
        self._active = 0
        self._updating = False
        self._changed: asyncio.Condition | None = None  # made on the server's event loop, at first use

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    @contextlib.asynccontextmanager
    async def generating(self) -> AsyncIterator[None]:
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: not self._updating)
            self._active += 1
        try:
            yield
        finally:
            async with changed:
                self._active -= 1
                changed.notify_all()

    @contextlib.asynccontextmanager
    async def updating(self) -> AsyncIterator[None]:
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: not self._updating)
            self._updating = True
            await changed.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            async with changed:
                self._updating = False
                changed.notify_all()


class GenerationGate:
    """ASGI middleware holding each generation request (streams to their end) inside `WeightsGate.generating`."""

    def __init__(self, app: ASGIApp, gate: WeightsGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in _GENERATING_PATHS:
            await self.app(scope, receive, send)
            return
        async with self.gate.generating():
            await self.app(scope, receive, send)


def _opened(engine: Engine, request: InferRequest, opening: str) -> InferRequest:
    """`request` continued from its prompt plus `opening` (a tool call's first text), as token ids."""
    if any(request.row.get(column) for column in MEDIA_COLUMNS.values()):
        raise ApiError(400, "tool_choice required or named is for text conversations", param="tool_choice")
    try:
        prompt = engine.prompt_token_ids(request)
    except Exception as exc:
        raise _engine_error(exc) from exc
    opened = prompt + list(_tokenizer(engine)(opening, add_special_tokens=False)["input_ids"])
    return InferRequest(generation=request.generation, adapter=request.adapter, prompt_ids=opened)


def _voice(engine: Engine, audio: AudioOutput) -> str:
    """The engine's name of the voice a spoken request asks for; a model without speech, or a voice it does
    not have, is a 400 that lists the voices there are."""
    if not engine.voices:
        raise ApiError(
            400, 'this server\'s model answers in text only; ask for modalities ["text"]', param="modalities"
        )
    voice = audio.voice.lower()  # Qwen3-Omni's speakers are named in lower case, and found so
    if voice not in engine.voices:
        voices = ", ".join(engine.voices)
        raise ApiError(400, f"unknown voice {audio.voice!r}; this model's voices: {voices}", param="audio.voice")
    return voice


def _require(engine: Engine, feature: str, param: str) -> None:
    """A 400 naming `param` unless `engine` implements `feature`."""
    if feature not in engine.features:
        raise ApiError(400, f"this server's engine ({type(engine).__name__}) does not support '{param}'", param=param)


def _tokenizer(engine: Engine) -> Any:
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        raise ApiError(400, "this server's engine has no tokenizer to use")
    return tokenizer


def _check_token_ids(tokenizer: Any, ids: Sequence[int], param: str) -> None:
    """A 400 for a token id outside the tokenizer's vocabulary (the model would fail on it)."""
    vocabulary = len(tokenizer)
    if any(not 0 <= token < vocabulary for token in ids):
        raise ApiError(400, f"token ids must be from 0 to {vocabulary - 1}", param=param)


def _check_completion_request(engine: Engine, body: CompletionRequest, prompts: list[str | list[int]]) -> None:
    """What a completion request asks of the engine and of its stream, each lack a 400 naming the parameter."""
    if any(not isinstance(p, str) for p in prompts):
        _require(engine, PROMPT_IDS, "prompt")
        tokenizer = getattr(engine, "tokenizer", None)
        if tokenizer is not None:
            for p in prompts:
                _check_token_ids(tokenizer, p, "prompt")  # type: ignore[arg-type]
    if body.logprobs:
        _require(engine, TOP_LOGPROBS, "logprobs")
    if body.max_tokens == 0:
        _require(engine, SCORING, "max_tokens")
    if body.prompt_logprobs is not None:
        _require(engine, SCORING, "prompt_logprobs")
    if body.echo and body.logprobs is not None:
        _require(engine, SCORING, "echo")
    if body.stream:
        unstreamed = {
            "prompt": len(prompts) > 1,
            "echo": body.echo,
            "logprobs": body.logprobs is not None,
            "prompt_logprobs": body.prompt_logprobs is not None,
        }
        for param, asked in unstreamed.items():
            if asked:
                raise ApiError(400, f"stream takes one prompt, without '{param}'", param=param)


def _tokenizer_config(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's configuration as vLLM's ``/tokenizer_info`` gives it: its init arguments that JSON can
    hold (special tokens as text, no file paths) and its class. The chat template is left out: omni's own
    templates write the prompts, not the tokenizer's."""
    config: dict[str, Any] = {}
    for name, value in (getattr(tokenizer, "init_kwargs", None) or {}).items():
        if name.endswith("_file") or name in ("name_or_path", "chat_template"):
            continue
        value = getattr(value, "content", value)  # an AddedToken's text
        if value is None or isinstance(value, str | int | float | bool):
            config[name] = value
    special = {name: getattr(tokenizer, name, None) for name in ("bos_token", "eos_token", "pad_token", "unk_token")}
    return {**config, **special, "tokenizer_class": type(tokenizer).__name__}


def _prompt_text(engine: Engine, prompt: str | list[int]) -> str:
    """A prompt as text, for `echo`: token ids decoded by the engine's tokenizer."""
    if isinstance(prompt, str):
        return prompt
    return _tokenizer(engine).decode(prompt)


def _read_media(row: dict[str, Any], policy: MediaPolicy) -> dict[str, Any]:
    """`row` with every media item read under `policy` into its bytes: the engine never opens a client's
    path or URL itself. An item the policy refuses or that cannot be read is a 400."""
    read = dict(row)
    for modality, column in MEDIA_COLUMNS.items():
        if row.get(column):
            try:
                read[column] = [read_source(item, modality, policy=policy).data for item in row[column]]
            except DataError as exc:
                raise ApiError(400, exc.problem, param="messages") from None
    return read


class _ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def _within(work: Awaitable[T], http: Request, deadline: float) -> T:
    """The result of `work`, which is cancelled when the client disconnects (`_ClientGone`) or `deadline`
    (event-loop time) passes (a 408): a request nobody waits for must not keep its place in a batch."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(http))
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        await asyncio.wait({task, gone}, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    if gone.done() and not gone.cancelled():
        raise _ClientGone
    raise _timeout_error()


async def _disconnected(http: Request) -> None:
    """Returns once the client has disconnected (the request's body has been read already)."""
    while (await http.receive())["type"] != "http.disconnect":
        pass


def _timeout_error() -> ApiError:
    return ApiError(
        408,
        "the request ran past this server's time limit (--request-timeout) and was stopped",
        type="timeout_error",
        code="request_timeout",
    )


def _token_text(engine: Engine) -> TokenText:
    """Token names for log-probability entries: decoded by the engine's tokenizer when it has one (the pt
    engine does), else ``token_id:N`` as vLLM writes them without a tokenizer."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        return lambda token_id: f"token_id:{token_id}"
    return lambda token_id: tokenizer.decode([token_id])


async def _answer(engine: Engine, request: InferRequest) -> InferResponse:
    try:
        return await engine.generate_async(request)
    except Exception as exc:
        raise _engine_error(exc) from exc


def _engine_error(exc: Exception) -> ApiError:
    """An engine failure as an API error: omni's own errors are about the request (400), the rest are ours (500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DataError):  # about the request's conversation; the "row" it names is the request
        return ApiError(400, exc.problem)
    if isinstance(exc, OmniError):
        return ApiError(400, str(exc))
    logger.exception("the engine failed on a request")
    return ApiError(500, f"the engine failed: {type(exc).__name__}: {exc}", type="server_error")


async def _spoken_answer(engine: Engine, request: InferRequest, voice: str | None) -> SpokenAnswer:
    cancel = threading.Event()  # set when the client leaves or time runs out: the worker thread stops speaking
    try:
        return await asyncio.to_thread(engine.speak, request, voice, cancel)
    except Exception as exc:
        raise _engine_error(exc) from exc
    finally:
        cancel.set()


async def _spoken_items(
    engine: Engine, request: InferRequest, voice: str | None
) -> AsyncGenerator[SpeechDelta | SpokenAnswer, None]:
    """`Engine.speak_stream` from a worker thread; leaving early stops its generation."""
    cancel = threading.Event()
    items = engine.speak_stream(request, voice, cancel)
    try:
        while (item := await asyncio.to_thread(next, items, None)) is not None:
            yield item
    finally:
        cancel.set()


async def _speech_stream(
    engine: Engine,
    request: InferRequest,
    voice: str | None,
    http: Request,
    deadline: float,
    chunk: Callable[[list[dict[str, Any]]], dict[str, Any]],
    include_usage: bool,
) -> StreamingResponse:
    """A server-sent-events response speaking the answer, started once its first piece is ready (so a refused
    request gets its status code): ``delta.audio`` chunks carry the transcript as the thinker writes it, then
    base64 pcm16 pieces of the speech as the talker says them, then ``expires_at``."""
    items = _spoken_items(engine, request, voice)
    first = await _first_item(items, http, deadline)

    async def events() -> AsyncIterator[dict[str, Any]]:
        yield chunk(chat_stream_opening(1))
        yield chunk([spoken_stream_choice({"id": f"audio_{uuid.uuid4().hex}"})])
        item, loop = first, asyncio.get_running_loop()
        try:
            while item is not None:
                if isinstance(item, SpokenAnswer):
                    yield chunk([spoken_stream_choice({"expires_at": int(time.time())})])
                    yield chunk([spoken_stream_choice({}, item.finish_reason)])
                    if include_usage:
                        yield {**chunk([]), "usage": spoken_usage(item)}
                elif item.text:
                    yield chunk([spoken_stream_choice({"transcript": item.text})])
                else:
                    data = base64.b64encode(pcm16_bytes(item.audio)).decode("ascii")
                    yield chunk([spoken_stream_choice({"data": data})])
                item = await asyncio.wait_for(_next(items), max(deadline - loop.time(), 0))
        except TimeoutError:
            yield _timeout_error().body()
        except Exception as exc:
            yield _engine_error(exc).body()
        finally:
            await items.aclose()  # a client gone or a timeout: the engine stops speaking now, not when collected

    return StreamingResponse(
        _event_lines(events()), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def _first_item(items: AsyncIterator[Any], http: Request, deadline: float) -> Any:
    """A stream's first item, awaited before any byte is sent: an engine's refusal is still a status code."""
    try:
        return await _within(_next(items), http, deadline)
    except _ClientGone:
        raise
    except Exception as exc:
        raise _engine_error(exc) from exc


async def _stream(
    engine: Engine,
    request: InferRequest,
    http: Request,
    deadline: float,
    chunk: Callable[[list[dict[str, Any]]], dict[str, Any]],
    choice: Callable[[StreamDelta], list[dict[str, Any]]],
    opening: Sequence[dict[str, Any]],
    include_usage: bool,
) -> StreamingResponse:
    """A server-sent-events response for `request`, started once its first item is ready.

    Until then nothing is sent, so a request the engine refuses (a prompt too long, a conversation the
    template rejects) is answered with its status code and error body, as without ``stream``.
    """
    items = aiter(engine.stream_deltas_async(request))
    first = await _first_item(items, http, deadline)
    return StreamingResponse(
        _event_lines(_events(first, items, deadline, chunk, choice, opening, include_usage)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _events(
    first: StreamDelta | InferResponse | None,
    items: AsyncIterator[StreamDelta | InferResponse],
    deadline: float,
    chunk: Callable[[list[dict[str, Any]]], dict[str, Any]],
    choice: Callable[[StreamDelta], list[dict[str, Any]]],
    opening: Sequence[dict[str, Any]],
    include_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    """The stream's objects: `opening`, a chunk per choice `choice` makes of each delta, the usage chunk when
    asked for.

    A failure or the request timeout after the stream started is reported as an error event.
    """
    if opening:
        yield chunk(list(opening))
    item = first
    loop = asyncio.get_running_loop()
    try:
        while item is not None:
            if isinstance(item, InferResponse):
                if include_usage:
                    yield {**chunk([]), "usage": usage(item)}
            elif item.text or item.finish_reason or item.logprobs:
                for each in choice(item):
                    yield chunk([each])
            # Each wait is bounded by the deadline; cancelling it closes the engine's stream (its rows stop).
            item = await asyncio.wait_for(_next(items), max(deadline - loop.time(), 0))
    except TimeoutError:
        yield _timeout_error().body()
    except Exception as exc:
        yield _engine_error(exc).body()


async def _next(items: AsyncIterator[T]) -> T | None:
    try:
        return await anext(items)
    except StopAsyncIteration:
        return None


async def _event_lines(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async for event in events:
        yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


class BodyLimit:
    """ASGI middleware that answers 413 to a request body over `max_bytes`: by its Content-Length before
    any of it is read, else as soon as it grows past the limit (`exempt` paths bound their own)."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt  # paths that bound their bodies themselves

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        too_large = ApiError(413, f"the request body is larger than this server's limit of {self.max_bytes} bytes")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse(too_large.body(), status_code=413)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise too_large  # FastAPI reports it as the cause of a broken body (see `http_error`)
            return message

        await self.app(scope, receive_within_limit, send)


class ApiKeyGuard:
    """ASGI middleware that refuses a request without the API key before anything reads its body.

    Every route but ``/health`` needs the key when one is set: the API, ``/metrics`` and the OpenAPI schema.
    """

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.api_key is None or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), self.api_key.encode()):
            await self.app(scope, receive, send)
            return
        error = ApiError(
            401, "Incorrect or missing API key; send it as `Authorization: Bearer KEY`", code="invalid_api_key"
        )
        await JSONResponse(error.body(), status_code=401)(scope, receive, send)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_validation_error(exc).body(), status_code=400)

    @app.exception_handler(_ClientGone)
    async def client_gone(request: Request, exc: _ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": only the log sees it

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ApiError):  # raised while the body was read (`BodyLimit`)
            return JSONResponse(exc.__cause__.body(), status_code=exc.__cause__.status)
        error = ApiError(exc.status_code, str(exc.detail), code=str(exc.status_code))
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)


def _validation_error(exc: RequestValidationError) -> ApiError:
    """The first problem pydantic found, worded for an API user, with the parameter it concerns."""
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return ApiError(
            400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": ")
        )
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(where) or None
    if first.get("type") == "missing" and param is None:
        return ApiError(400, "the request body is empty; send a JSON object")
    if first.get("type") == "missing":
        return ApiError(400, f"missing required parameter '{param}'", param=param)
    got = first.get("input")
    shown = json.dumps(got)[:100] if got is not None and param else ""
    message = f"invalid '{param}': {first.get('msg')}" if param else f"invalid request body: {first.get('msg')}"
    return ApiError(400, f"{message} (got {shown})" if shown else message, param=param)


class RequestLog:
    """ASGI middleware that logs one line per HTTP request once its response is complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees when the app fails before starting a response

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            client = scope.get("client") or ("-", 0)
            elapsed = (time.perf_counter() - start) * 1000
            logger.info("%s %s %s %d %.0fms", client[0], scope["method"], scope["path"], status, elapsed)
