"""The `lmdeploy` engine: `lmdeploy.pipeline` in-process, or an LMDeploy OpenAI-compatible api_server.

In-process, the prompt is the text of omni's template (its token ids decoded), passed with
`do_preprocess=False` so LMDeploy applies no chat template of its own. With `--server-url` the engine
attaches to a running api_server; with `--launch-server` it starts `lmdeploy serve api_server` on a free
local port, waits for its /health and stops it on close. Server modes speak the OpenAI API
(`omni.infer.remote.RemoteEngine`).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from omni.api import (
    Choice,
    Engine,
    GenerationConfig,
    InferRequest,
    InferResponse,
    ModelOptions,
    OmniError,
    PromptEncoder,
    RemoteEngine,
    ServerModes,
    StreamDelta,
    cut_at_stop,
)

from omni_plugin_lmdeploy.options import LmdeployOptions

INSTALL = "pip install 'omni-plugin-lmdeploy[lmdeploy]' (LMDeploy needs a CUDA GPU)"


class LmdeployServerEngine(RemoteEngine):
    """The lmdeploy engine's server mode: an LMDeploy api_server, attached to or launched."""

    @classmethod
    def launch_command(
        cls,
        path: str,
        name: str,
        port: int,
        options: LmdeployOptions,
        adapters: dict[str, str],
        model_options: ModelOptions | None,
    ) -> list[str]:
        """The `lmdeploy serve api_server` command line serving `path` as model `name` on 127.0.0.1:`port`."""
        import_lmdeploy()
        _, fields = backend_config(options, adapters)
        command = [sys.executable, "-m", "lmdeploy", "serve", "api_server", path, "--server-name", "127.0.0.1"]
        command += ["--server-port", str(port), "--model-name", name]
        command += ["--backend", options.resolved_backend(bool(adapters))]
        for field, value in fields.items():
            if field == "adapters":
                command += ["--adapters", *(f"{a}={p}" for a, p in value.items())]
            else:
                command += ["--" + field.replace("_", "-"), str(value)]
        if options.server_api_key:
            command += ["--api-keys", options.server_api_key]
        return command


class LmdeployEngine(ServerModes, Engine):
    """LMDeploy in-process behind omni's engine interface; options asking for a server give a `LmdeployServerEngine`."""

    server_engine = LmdeployServerEngine

    options_class = LmdeployOptions

    def __init__(self, model: str, **flags: Any) -> None:
        super().__init__(model, **flags)
        model_options, template_options = self.model_options, self.template_options
        lmdeploy = import_lmdeploy()
        self.prompts = PromptEncoder.load(model, model_options, template_options, registry=self.registry)
        self.tokenizer = self.prompts.tokenizer
        self.template = self.prompts.template  # `omni serve` reads tool calls with its parser
        config_class, config = backend_config(self.options, self.adapter_paths)
        self.pipe = lmdeploy.pipeline(
            self.prompts.path, backend_config=getattr(lmdeploy, config_class)(**config), log_level="ERROR"
        )
        self._generation_config = lmdeploy.GenerationConfig

    def generate(self, requests: list[InferRequest]) -> list[InferResponse]:
        """Answer `requests` in order: one pipeline call per adapter, each choice of a request its own prompt."""
        answers: dict[int, InferResponse] = {}
        by_adapter: dict[str | None, list[int]] = {}
        for index, request in enumerate(requests):
            by_adapter.setdefault(request.adapter, []).append(index)
        for adapter, indices in by_adapter.items():
            prompts, configs, owners = [], [], []
            for index in indices:
                request = requests[index]
                text = prompt_text(self.prompts, request)
                for choice in range(request.generation.n):
                    prompts.append(text)
                    configs.append(self._config(request.generation, choice))
                    owners.append(index)
            outputs = self.pipe(prompts, gen_config=configs, do_preprocess=False, **_adapter(adapter))
            grouped: dict[int, list[Any]] = {}
            for owner, output in zip(owners, outputs, strict=True):
                grouped.setdefault(owner, []).append(output)
            for index, outputs_of_request in grouped.items():
                answers[index] = self._response(requests[index], outputs_of_request)
        return [answers[i] for i in range(len(requests))]

    def stream(self, request: InferRequest) -> Iterator[str]:
        for item in self._stream_items(request):
            if isinstance(item, StreamDelta) and item.index == 0 and item.text:
                yield item.text

    async def generate_async(self, request: InferRequest) -> InferResponse:
        return (await asyncio.to_thread(self.generate, [request]))[0]

    async def stream_async(self, request: InferRequest) -> AsyncIterator[str]:
        async for item in self.stream_deltas_async(request):
            if isinstance(item, StreamDelta) and item.index == 0 and item.text:
                yield item.text

    async def stream_deltas_async(self, request: InferRequest) -> AsyncIterator[StreamDelta | InferResponse]:
        """The pipeline's `stream_infer` runs on a worker thread; its deltas cross to the caller's loop."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        done = object()

        def produce() -> None:
            try:
                for item in self._stream_items(request):
                    loop.call_soon_threadsafe(inbox.put_nowait, item)
            except Exception as exc:  # raised again in the caller's loop
                loop.call_soon_threadsafe(inbox.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(inbox.put_nowait, done)

        threading.Thread(target=produce, name="omni-lmdeploy-stream", daemon=True).start()
        while (item := await inbox.get()) is not done:
            if isinstance(item, Exception):
                raise item
            yield item

    def load_weights(self, model: Any) -> None:
        raise OmniError(
            "the lmdeploy engine cannot take new weights from a training model in place; generate RL rollouts "
            "with --infer-backend vllm, sglang or pt"
        )

    def close(self) -> None:
        if getattr(self, "pipe", None) is not None:
            self.pipe.close()
            self.pipe = None

    def _stream_items(self, request: InferRequest) -> Iterator[StreamDelta | InferResponse]:
        n = request.generation.n
        text = prompt_text(self.prompts, request)
        configs = [self._config(request.generation, choice) for choice in range(n)]
        pieces: list[list[Any]] = [[] for _ in range(n)]
        stream = self.pipe.stream_infer(
            [text] * n, gen_config=configs, do_preprocess=False, **_adapter(request.adapter)
        )
        for output in stream:
            index = getattr(output, "index", 0)
            pieces[index].append(output)
            if output.text:
                yield StreamDelta(text=output.text, index=index)
        response = self._response(request, [merge_pieces(p) for p in pieces])
        for index, choice in enumerate(response.choices):
            sent = "".join(p.text or "" for p in pieces[index])
            rest = choice.text[len(sent) :] if choice.text.startswith(sent) else ""
            yield StreamDelta(text=rest, index=index, finish_reason=choice.finish_reason)
        yield response

    def _config(self, config: GenerationConfig, choice: int) -> Any:
        return self._generation_config(**generation_config(config, self.prompts, choice))

    def _response(self, request: InferRequest, outputs: list[Any]) -> InferResponse:
        prompt_tokens = len(self.prompts.token_ids(request))
        choices = [choice_from(output, self.prompts, request.generation) for output in outputs]
        return InferResponse(choices, prompt_tokens, sum(len(c.token_ids) for c in choices))


def import_lmdeploy() -> Any:
    """The `lmdeploy` module, or an `OmniError` saying how to install it."""
    try:
        import lmdeploy
    except ImportError as exc:
        raise OmniError(
            f"the lmdeploy engine needs LMDeploy, which is not importable here ({exc}): {INSTALL}; or pass "
            "--lmdeploy-server-url URL to use a running LMDeploy api_server"
        ) from None
    return lmdeploy


def backend_config(options: LmdeployOptions, adapters: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The name of LMDeploy's engine config class (`TurbomindEngineConfig`, `PytorchEngineConfig`) and its fields."""
    backend = options.resolved_backend(bool(adapters))
    if adapters and backend == "turbomind":
        raise OmniError("--backend turbomind cannot serve LoRA adapters; use --backend pytorch with --adapters")
    fields: dict[str, Any] = {"tp": options.tp, "cache_max_entry_count": options.cache_max_entry_count}
    for name in ("session_len", "max_batch_size"):
        if getattr(options, name) is not None:
            fields[name] = getattr(options, name)
    if options.quant_policy:
        fields["quant_policy"] = options.quant_policy
    if adapters:
        fields["adapters"] = dict(adapters)
    return ("PytorchEngineConfig" if backend == "pytorch" else "TurbomindEngineConfig"), fields


def prompt_text(prompts: PromptEncoder, request: InferRequest) -> str:
    """The prompt as text for LMDeploy to tokenize: omni's template ids decoded, or the raw prompt.

    A leading BOS token is left out when the tokenizer adds one itself, so it is not doubled.
    """
    if request.prompt is not None:
        return request.prompt
    ids = prompts.token_ids(request)
    tokenizer = prompts.tokenizer
    bos = tokenizer.bos_token_id
    if ids and bos is not None and ids[0] == bos and tokenizer("a")["input_ids"][:1] == [bos]:
        ids = ids[1:]
    return tokenizer.decode(ids)


def generation_config(config: GenerationConfig, prompts: PromptEncoder, choice: int = 0) -> dict[str, Any]:
    """Fields of `lmdeploy.GenerationConfig` for one choice; a seeded request gives choice i the seed + i."""
    sampling = config.temperature > 0
    fields: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": sampling,
        "temperature": config.temperature if sampling else 1.0,
        "top_p": config.top_p if sampling else 1.0,
        "top_k": config.top_k if sampling else 1,
        "repetition_penalty": config.repetition_penalty,
        "stop_words": prompts.stop_strings(config) or None,
        "stop_token_ids": sorted(prompts.end_token_ids) or None,
        "skip_special_tokens": True,
    }
    if config.seed is not None:
        fields["random_seed"] = config.seed + choice
    if config.logprobs:
        fields["logprobs"] = 1  # LMDeploy returns the top-k entries; the chosen token's is among them
    return fields


def choice_from(output: Any, prompts: PromptEncoder, config: GenerationConfig) -> Choice:
    """An LMDeploy `Response` (text, token_ids, finish_reason, logprobs) as omni's `Choice`."""
    ids = prompts.cut_at_end(list(output.token_ids or []))
    text, stopped = cut_at_stop(output.text or "", prompts.stop_strings(config))
    logprobs = None
    if config.logprobs and output.logprobs:
        logprobs = [float(step.get(token, float("nan"))) for token, step in zip(ids, output.logprobs, strict=False)]
    finish = "length" if output.finish_reason == "length" and not stopped else "stop"
    return Choice(text, finish, ids, logprobs)


def merge_pieces(pieces: list[Any]) -> Any:
    """One `Response`-like object from a stream's pieces (each carries only its new text and tokens)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        text="".join(p.text or "" for p in pieces),
        token_ids=[t for p in pieces for t in (p.token_ids or [])],
        logprobs=[step for p in pieces for step in (p.logprobs or [])] or None,
        finish_reason=next((p.finish_reason for p in reversed(pieces) if p.finish_reason), None),
    )


def _adapter(name: str | None) -> dict[str, Any]:
    return {"adapter_name": name} if name is not None else {}
