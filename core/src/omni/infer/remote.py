"""An engine that answers through an OpenAI-compatible server: one it attaches to, or one it launches.

Engine plugins whose libraries ship their own server (SGLang's `sglang.launch_server`, LMDeploy's
`lmdeploy serve api_server`) use this for their server mode; `omni serve` itself is such a server too, and
`omni rollout` one that takes new weights: `RemoteEngine.rollout_server` attaches to it for RL rollouts
(token-id prompts in, token ids back, `load_weights` posting the training model's weights).
Conversations go to ``/v1/chat/completions`` (the server applies the model's chat template; images and
audio travel as OpenAI content parts), raw prompts to ``/v1/completions``; answers come back as omni's
`InferResponse`, streamed answers as `StreamDelta`s read from the server-sent events.
"""

from __future__ import annotations

import base64
import contextlib
import json
import mimetypes
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from omni.data.convert import MEDIA_COLUMNS, MEDIA_TAG
from omni.encoders.sources import MediaContext, read_source
from omni.errors import OmniError
from omni.infer.engine import (
    PROMPT_IDS,
    Choice,
    Engine,
    GenerationConfig,
    InferRequest,
    InferResponse,
    StreamDelta,
)
from omni.infer.weights import ROLLOUT_WEIGHTS_PATH, weights_file
from omni.models.options import ModelOptions
from omni.models.resolve import resolve_model
from omni.plugins import get_registry

if TYPE_CHECKING:
    from omni.registry import Registry

_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


class ServerProcess:
    """A server started as a subprocess, its output kept in a log file for error messages."""

    def __init__(
        self, command: Sequence[str], url: str, *, health_path: str = "/health", timeout_s: float = 600
    ) -> None:
        """Start `command` and wait until ``GET url + health_path`` answers 200; `OmniError` if it exits or times out."""
        self.command = list(command)
        self.url = url.rstrip("/")
        self.log = tempfile.NamedTemporaryFile(prefix="omni-server-", suffix=".log", delete=False)  # noqa: SIM115
        try:
            self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise OmniError(f"could not start {' '.join(self.command)}: {exc}") from None
        deadline = time.monotonic() + timeout_s
        while not _healthy(self.url + health_path):
            if self.process.poll() is not None:
                raise OmniError(
                    f"the server command exited with status {self.process.returncode} before it was ready: "
                    f"{' '.join(self.command)}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.close()
                raise OmniError(
                    f"the server was not ready at {self.url}{health_path} after {timeout_s:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines the server printed."""
        text = Path(self.log.name).read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 30 s) and remove its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (for a server about to be launched)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def local_tokenizer(path: str) -> Any:
    """The tokenizer of a local model folder (token ids for answers); None for a name only the server knows."""
    if not Path(path).is_dir():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


class ServerModes:
    """Mixin for an in-process engine that has a server mode too: one registered engine name covers both.

    Constructing the engine class itself with `options.server_url` or `options.launch_server` set gives
    `server_engine.open(...)` (a `RemoteEngine`) instead of an in-process engine.
    """

    server_engine: type[RemoteEngine]

    def __new__(cls, model: str, *, options: Any = None, **kwargs: Any) -> Any:
        if "server_engine" in cls.__dict__ and options is not None and (options.server_url or options.launch_server):
            return cls.server_engine.open(model, options=options, **kwargs)
        return super().__new__(cls)


def _healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=5).status_code == 200
    return False


class RemoteEngine(Engine):
    """omni's engine interface over an OpenAI-compatible server at `url`.

    `served_model` is the model name the server answers to for the base model; adapters are requested by
    their names (the server must serve them under those names). `tokenizer`, when given, turns answers
    into token ids (the OpenAI API returns text). `server` is a launched server this engine owns and stops
    on `close`. `rollout` (set by `rollout_server`) says the server is an `omni rollout` server: prompts go as
    token ids, answers come back as the server's token ids, and `load_weights` posts the model's weights.
    """

    def __init__(
        self,
        model: str,
        *,
        url: str,
        served_model: str | None = None,
        api_key: str | None = None,
        adapters: dict[str, str] | None = None,
        options: Any = None,
        model_options: Any = None,
        template_options: Any = None,
        registry: Registry | None = None,
        tokenizer: Any = None,
        server: ServerProcess | None = None,
        max_concurrency: int = 64,
        rollout: bool = False,
    ) -> None:
        super().__init__(
            model,
            adapters=adapters,
            options=options,
            model_options=model_options,
            template_options=template_options,
            registry=registry,
        )
        self.url = url.rstrip("/")
        self.served_model = served_model or model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.tokenizer = tokenizer
        self.server = server
        self.max_concurrency = max_concurrency
        self.rollout = rollout
        if rollout:
            self.features = self.features | {PROMPT_IDS}
        self._client = httpx.Client(base_url=self.url, headers=self.headers, timeout=_TIMEOUT)

    @classmethod
    def rollout_server(
        cls, url: str, *, api_key: str | None = None, wait_s: float = 0, registry: Registry | None = None
    ) -> RemoteEngine:
        """The engine of the `omni rollout` server at `url`, waiting up to `wait_s` seconds for it to answer.

        `OmniError` in one line naming `url` when nothing answers there in time, or when what answers is not an
        `omni rollout` server (plain `omni serve`, another OpenAI server, a wrong API key).
        """
        url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        deadline = time.monotonic() + wait_s
        while True:
            try:
                answer = httpx.get(url + ROLLOUT_WEIGHTS_PATH, headers=headers, timeout=10)
                break
            except httpx.TransportError as exc:
                if time.monotonic() >= deadline:
                    waited = f" within {wait_s:g} s" if wait_s else ""
                    raise OmniError(
                        f"no rollout server answers at {url}{waited} ({exc}); start one with `omni rollout --model "
                        "MODEL --port PORT` and point the trainer at it"
                    ) from None
                time.sleep(1)
        info = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code == 401:
            raise OmniError(f"the rollout server at {url} refused the API key ({_error_message(info)})")
        if answer.status_code != 200 or info.get("object") != "omni.rollout":
            reason = _error_message(info) if info else answer.text[:200]
            raise OmniError(
                f"{url} is not an omni rollout server (GET {ROLLOUT_WEIGHTS_PATH}: {answer.status_code} {reason}); "
                "start the server with `omni rollout`, not `omni serve`"
            )
        return cls(info["model"], url=url, api_key=api_key, registry=registry, rollout=True)

    @classmethod
    def open(
        cls,
        model: str,
        *,
        options: Any,
        adapters: dict[str, str] | None = None,
        model_options: Any = None,
        template_options: Any = None,
        registry: Registry | None = None,
    ) -> RemoteEngine:
        """The engine for `options.server_url`, or for a server launched with `launch_command` on a free port.

        `options` has the fields `server_url`, `server_api_key` and `server_startup_timeout`. A launched server
        serves `model` under its own name and is stopped on `close`.
        """
        adapters = dict(adapters or {})
        if registry is None:
            registry = get_registry()
        server = None
        url = options.server_url
        path = model
        if url is None:
            source = model_options or ModelOptions()  # a hub id resolves as every command resolves it
            path = str(resolve_model(model, registry, model_type=source.model_type, use_hf=source.use_hf).path_or_id)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = cls.launch_command(path, model, port, options, adapters, model_options)
            server = ServerProcess(command, url, timeout_s=options.server_startup_timeout)
        return cls(
            model,
            url=url,
            served_model=model,
            api_key=options.server_api_key,
            adapters=adapters,
            options=options,
            model_options=model_options,
            template_options=template_options,
            registry=registry,
            tokenizer=local_tokenizer(path),
            server=server,
        )

    @classmethod
    def launch_command(
        cls, path: str, name: str, port: int, options: Any, adapters: dict[str, str], model_options: Any
    ) -> list[str]:
        """The command line serving `path` as model `name` on 127.0.0.1:`port` (for `open` to launch)."""
        raise OmniError(f"{cls.__name__} cannot launch a server: give it the URL of a running one")

    # -- the engine interface -------------------------------------------------------------------------

    def generate(self, requests: list[InferRequest]) -> list[InferResponse]:
        """Answer `requests` in order, sent concurrently so the server can batch them."""
        if len(requests) <= 1:
            return [self._post(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(self._post, requests))

    def stream(self, request: InferRequest) -> Iterator[str]:
        """Yield the first choice's text as the server streams it."""
        path, body = self.request_body(request, stream=True)
        with _reaching(self.url), self._client.stream("POST", path, json=body) as response:
            _raise_for_status(response, self.url, response.read() if response.is_error else b"")
            for event in _events(response.iter_lines()):
                for choice in event.get("choices") or []:
                    text = _choice_text(choice)
                    if choice.get("index", 0) == 0 and text:
                        yield text

    async def generate_async(self, request: InferRequest) -> InferResponse:
        """Answer one request."""
        path, body = self.request_body(request, stream=False)
        with _reaching(self.url):
            async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=_TIMEOUT) as client:
                response = await client.post(path, json=body)
        _raise_for_status(response, self.url, response.content)
        return self.response_from(response.json(), request.generation)

    async def stream_async(self, request: InferRequest) -> AsyncIterator[str]:
        """Async `stream`."""
        async for item in self.stream_deltas_async(request):
            if isinstance(item, StreamDelta) and item.index == 0 and item.text:
                yield item.text

    async def stream_deltas_async(self, request: InferRequest) -> AsyncIterator[StreamDelta | InferResponse]:
        """Each choice's deltas as the server streams them, then the whole response."""
        path, body = self.request_body(request, stream=True)
        collected = _StreamedAnswer(request.generation.n)
        with _reaching(self.url):
            async with (
                httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=_TIMEOUT) as client,
                client.stream("POST", path, json=body) as response,
            ):
                _raise_for_status(response, self.url, await response.aread() if response.is_error else b"")
                async for line in response.aiter_lines():
                    event = _event(line)
                    if event is _DONE:
                        break
                    if event is not None:
                        for delta in collected.add(event):
                            yield delta
        yield collected.response(self._token_ids)

    def load_weights(self, model: Any) -> None:
        """Post `model`'s merged weights (a safetensors file) to the `omni rollout` server, which loads them before
        it answers again; any other server cannot take them (`OmniError`)."""
        if not self.rollout:
            raise OmniError(
                f"a server reached over the OpenAI API ({self.url}) cannot take new weights from a training model; "
                "serve the model with `omni rollout` (rlhf --rollout-engine server), or use the engine in-process"
            )
        with weights_file(model, self.registry) as path:
            if path is None:
                return
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(Path(path).stat().st_size)}
            with _reaching(self.url):
                response = self._client.post(ROLLOUT_WEIGHTS_PATH, content=_file_pieces(path), headers=headers)
        _raise_for_status(response, self.url, response.content)

    def close(self) -> None:
        """Close the connection pool; stop the server if this engine launched it."""
        self._client.close()
        if self.server is not None:
            self.server.close()
            self.server = None

    # -- translation ----------------------------------------------------------------------------------

    def request_body(self, request: InferRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        """The route and JSON body for `request`: chat completions for a conversation, completions for a prompt."""
        body: dict[str, Any] = {"model": request.adapter or self.served_model, **sampling_fields(request.generation)}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
            body.pop("logprobs", None)
        elif self.rollout:
            body["return_token_ids"] = True  # the ids sampled, as RL trains on them (vLLM's extension too)
        prompt = request.prompt if request.prompt is not None else request.prompt_ids
        if prompt is not None:
            if "logprobs" in body:
                body["logprobs"] = 0
            return "/v1/completions", {**body, "prompt": prompt}
        return "/v1/chat/completions", {**body, "messages": openai_messages(request.row)}

    def response_from(self, body: dict[str, Any], config: GenerationConfig) -> InferResponse:
        """An OpenAI chat or text completion object as omni's `InferResponse`."""
        choices = []
        for choice in sorted(body.get("choices") or [], key=lambda c: c.get("index", 0)):
            text = _choice_text(choice)
            choices.append(
                Choice(
                    text=text,
                    finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                    token_ids=choice["token_ids"] if "token_ids" in choice else self._token_ids(text),
                    logprobs=_logprobs(choice.get("logprobs")) if config.logprobs else None,
                )
            )
        used = body.get("usage") or {}
        completion = used.get("completion_tokens", sum(len(c.token_ids) for c in choices))
        return InferResponse(choices, used.get("prompt_tokens", 0), completion)

    def _post(self, request: InferRequest) -> InferResponse:
        path, body = self.request_body(request, stream=False)
        with _reaching(self.url):
            response = self._client.post(path, json=body)
        _raise_for_status(response, self.url, response.content)
        return self.response_from(response.json(), request.generation)

    def _token_ids(self, text: str) -> list[int]:
        if self.tokenizer is None or not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def _file_pieces(path: str, size: int = 1 << 23) -> Iterator[bytes]:
    """The file's bytes in pieces of `size` (an upload that never holds the whole file in memory)."""
    with open(path, "rb") as file:
        while piece := file.read(size):
            yield piece


def sampling_fields(config: GenerationConfig) -> dict[str, Any]:
    """`config` as OpenAI request fields; vLLM's extensions (top_k, repetition_penalty) only when they are set."""
    fields: dict[str, Any] = {
        "max_tokens": config.max_new_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "n": config.n,
    }
    if config.top_k:
        fields["top_k"] = config.top_k
    if config.repetition_penalty != 1.0:
        fields["repetition_penalty"] = config.repetition_penalty
    if config.seed is not None:
        fields["seed"] = config.seed
    if config.stop:
        fields["stop"] = list(config.stop)
    if config.logprobs:
        fields["logprobs"] = True
    return fields


def openai_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A messages-format row as OpenAI messages: `<image>`/`<audio>`/`<video>` tags become content parts.

    The row's media files are sent inline (base64 data URLs), so the server needs no access to them.
    """
    context = MediaContext.of_row(row)
    media = {modality: iter(row.get(column) or []) for modality, column in MEDIA_COLUMNS.items()}
    messages = []
    for message in row.get("messages") or []:
        content = message.get("content")
        if not isinstance(content, str) or not MEDIA_TAG.search(content):
            messages.append(dict(message))
            continue
        parts: list[dict[str, Any]] = []
        for index, piece in enumerate(MEDIA_TAG.split(content)):
            if index % 2 == 0:
                if piece:
                    parts.append({"type": "text", "text": piece})
                continue
            item = next(media[piece], None)
            if item is None:
                raise OmniError(f"a message has more <{piece}> tags than the row has {MEDIA_COLUMNS[piece]}")
            parts.append(_media_part(piece, item, context))
        messages.append({**message, "content": parts})
    return messages


def _media_part(modality: str, item: Any, context: MediaContext) -> dict[str, Any]:
    if isinstance(item, str) and item.startswith(("http://", "https://", "data:")):
        url = item
        if modality == "audio" and item.startswith("data:"):
            mime, _, data = item[len("data:") :].partition(";base64,")
            return {"type": "input_audio", "input_audio": {"data": data, "format": mime.rpartition("/")[2] or "wav"}}
    else:
        blob = read_source(item, modality, context)
        mime = mimetypes.guess_type(blob.name)[0] or {"image": "image/png", "audio": "audio/wav"}.get(modality, "")
        data = base64.b64encode(blob.data).decode()
        if modality == "audio":
            return {"type": "input_audio", "input_audio": {"data": data, "format": mime.rpartition("/")[2] or "wav"}}
        url = f"data:{mime};base64,{data}"
    kind = {"image": "image_url", "video": "video_url", "audio": "audio_url"}[modality]
    return {"type": kind, kind: {"url": url}}


class _StreamedAnswer:
    """Accumulates a streamed answer's choices from its events."""

    def __init__(self, n: int) -> None:
        self.texts = [""] * n
        self.finishes: list[str | None] = [None] * n
        self.usage: dict[str, int] = {}

    def add(self, event: dict[str, Any]) -> list[StreamDelta]:
        if event.get("usage"):
            self.usage = event["usage"]
        deltas = []
        for choice in event.get("choices") or []:
            index = choice.get("index", 0)
            if index >= len(self.texts):
                continue
            text = _choice_text(choice)
            finish = choice.get("finish_reason")
            if finish is not None:
                finish = "length" if finish == "length" else "stop"
                self.finishes[index] = finish
            self.texts[index] += text
            if text or finish:
                deltas.append(StreamDelta(text=text, index=index, finish_reason=finish))
        return deltas

    def response(self, token_ids: Any) -> InferResponse:
        choices = [
            Choice(text, finish or "stop", token_ids(text))
            for text, finish in zip(self.texts, self.finishes, strict=True)
        ]
        completion = self.usage.get("completion_tokens", sum(len(c.token_ids) for c in choices))
        return InferResponse(choices, self.usage.get("prompt_tokens", 0), completion)


def _choice_text(choice: dict[str, Any]) -> str:
    """The text of a chat or text completion choice, whole or streamed."""
    if "text" in choice:
        return choice.get("text") or ""
    holder = choice.get("message") or choice.get("delta") or {}
    return holder.get("content") or ""


def _logprobs(logprobs: dict[str, Any] | None) -> list[float] | None:
    if not logprobs:
        return None
    if "content" in logprobs:  # chat: one entry per token
        return [entry["logprob"] for entry in logprobs.get("content") or []]
    return list(logprobs.get("token_logprobs") or [])


_DONE: Any = object()


def _event(line: str) -> Any:
    """The JSON object of a server-sent `data:` line, `_DONE` at `[DONE]`, None for other lines.

    An error event (the server failed after the stream began) raises `OmniError`.
    """
    if not line.startswith("data:"):
        return None
    data = line[len("data:") :].strip()
    if data == "[DONE]":
        return _DONE
    event = json.loads(data)
    if "error" in event:
        raise OmniError(f"the server failed while streaming: {_error_message(event)}")
    return event


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The events of server-sent lines, up to `[DONE]`."""
    for line in lines:
        event = _event(line)
        if event is _DONE:
            return
        if event is not None:
            yield event


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """Turns "nothing listens there" into a user error naming the URL."""
    try:
        yield
    except httpx.ConnectError as exc:
        raise OmniError(f"cannot reach the server at {url} ({exc}); is it running, and is the URL right?") from None


def _raise_for_status(response: httpx.Response, url: str, content: bytes) -> None:
    if not response.is_error:
        return
    try:
        message = _error_message(json.loads(content))
    except ValueError:
        message = content.decode(errors="replace")[:500]
    where = f"the server at {url}"
    if response.status_code < 500:
        raise OmniError(f"{where} rejected the request ({response.status_code}): {message}")
    raise RuntimeError(f"{where} failed ({response.status_code}): {message}")


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error or body.get("detail") or body.get("message") or body)
    return str(body)
