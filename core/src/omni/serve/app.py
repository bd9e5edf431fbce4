"""The OpenAI-compatible HTTP app of `omni serve`: FastAPI routes in front of any omni engine.

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``.
Every error is an OpenAI error body with a fitting status (400 invalid request, 401 bad API key, 404
unknown model or route, 500 engine failure); the server keeps serving after any of them.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omni.errors import OmniError
from omni.infer.engine import Engine, InferRequest, InferResponse, StreamDelta
from omni.serve.protocol import (
    ApiError,
    ChatCompletionRequest,
    CompletionRequest,
    TokenText,
    chat_completion,
    chat_stream_choice,
    chat_stream_opening,
    completion_stream_choice,
    stream_chunk,
    text_completion,
    usage,
)

logger = logging.getLogger("omni.serve")


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


def create_app(
    engine: Engine,
    models: ServedModels,
    *,
    api_key: str | None = None,
    default_max_tokens: int = 512,
) -> FastAPI:
    """An app answering OpenAI API requests with `engine`.

    `api_key`, when set, is required as ``Authorization: Bearer KEY`` on every ``/v1`` route.
    `default_max_tokens` bounds answers of requests that set no ``max_tokens``.
    """
    app = FastAPI(title="omni", docs_url=None, redoc_url=None)
    app.add_middleware(RequestLog)
    _add_error_handlers(app)
    started = int(time.time())
    name_token = _token_text(engine)
    guarded = [Depends(_bearer_check(api_key))]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=guarded)
    async def list_models() -> dict[str, Any]:
        cards = [{"id": models.base, "object": "model", "created": started, "owned_by": "omni"}]
        cards += [
            {"id": name, "object": "model", "created": started, "owned_by": "omni", "parent": models.base}
            for name in models.adapters
        ]
        return {"object": "list", "data": cards}

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat_completions(body: ChatCompletionRequest) -> Any:
        adapter = models.adapter_for(body.model)
        if body.stream and body.logprobs:
            raise ApiError(400, "logprobs are only returned without stream", param="logprobs")
        request = InferRequest(body.row(), body.generation(default_max_tokens, logprobs=body.logprobs), adapter)
        head = {"request_id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if not body.stream:
            response = await _answer(engine, request)
            return chat_completion(response, **head, token_text=name_token)
        chunk = functools.partial(stream_chunk, "chat.completion.chunk", **head, include_usage=body.include_usage)
        opening = chat_stream_opening(body.n)
        return _event_stream(_events(engine, request, chunk, chat_stream_choice, opening, body.include_usage))

    @app.post("/v1/completions", dependencies=guarded)
    async def completions(body: CompletionRequest) -> Any:
        adapter = models.adapter_for(body.model)
        if body.stream and body.logprobs is not None:
            raise ApiError(400, "logprobs are only returned without stream", param="logprobs")
        generation = body.generation(default_max_tokens, logprobs=body.logprobs is not None)
        request = InferRequest(generation=generation, adapter=adapter, prompt=body.text())
        head = {"request_id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if not body.stream:
            response = await _answer(engine, request)
            return text_completion(response, **head, token_text=name_token)
        chunk = functools.partial(stream_chunk, "text_completion", **head, include_usage=body.include_usage)
        return _event_stream(_events(engine, request, chunk, completion_stream_choice, [], body.include_usage))

    return app


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
    if isinstance(exc, OmniError):
        return ApiError(400, str(exc))
    logger.exception("the engine failed on a request")
    return ApiError(500, f"the engine failed: {type(exc).__name__}: {exc}", type="server_error")


async def _events(
    engine: Engine,
    request: InferRequest,
    chunk: Callable[[list[dict[str, Any]]], dict[str, Any]],
    choice: Callable[[StreamDelta], dict[str, Any]],
    opening: Sequence[dict[str, Any]],
    include_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    """The stream's objects: `opening`, one chunk per delta, the usage chunk when asked for.

    Headers are sent before generation starts, so a failure midway is reported as an error event.
    """
    if opening:
        yield chunk(list(opening))
    try:
        async for item in engine.stream_deltas_async(request):
            if isinstance(item, InferResponse):
                if include_usage:
                    yield {**chunk([]), "usage": usage(item)}
            elif item.text or item.finish_reason:
                yield chunk([choice(item)])
    except Exception as exc:
        yield _engine_error(exc).body()


def _event_stream(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        async for event in events:
            yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _bearer_check(api_key: str | None) -> Callable[..., Any]:
    async def check(authorization: str | None = Header(None)) -> None:
        if api_key is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(
                401, "Incorrect or missing API key; send it as `Authorization: Bearer KEY`", code="invalid_api_key"
            )

    return check


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_validation_error(exc).body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
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
