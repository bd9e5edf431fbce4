"""The `sglang` engine: `sglang.Engine` in-process, or an SGLang OpenAI-compatible server.

In-process, prompts are omni's template token ids (`input_ids=`), as for the `pt` and `vllm` engines.
With `--server-url` the engine attaches to a running server; with `--launch-server` it starts
`python -m sglang.launch_server` on a free local port, waits for its /health, and stops it on close. In
both server modes requests go through the OpenAI API (`omni.infer.remote.RemoteEngine`).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

from omni.api import (
    Choice,
    GenerationConfig,
    InferRequest,
    InferResponse,
    LoopEngine,
    LoopThread,
    ModelOptions,
    OmniError,
    PromptEncoder,
    RemoteEngine,
    ServerModes,
    StreamDelta,
    merged_weights,
)

from omni_plugin_sglang.options import SglangOptions

INSTALL = "pip install 'omni-plugin-sglang[sglang]' (SGLang needs a CUDA or ROCm GPU)"


class SglangServerEngine(RemoteEngine):
    """The sglang engine's server mode: an SGLang OpenAI-compatible server, attached to or launched."""

    @classmethod
    def launch_command(
        cls,
        path: str,
        name: str,
        port: int,
        options: SglangOptions,
        adapters: dict[str, str],
        model_options: ModelOptions | None,
    ) -> list[str]:
        """The `python -m sglang.launch_server` command line serving `path` as model `name` on 127.0.0.1:`port`."""
        import_sglang()
        arguments = engine_arguments(path, options, adapters, model_options)
        command = [sys.executable, "-m", "sglang.launch_server", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--served-model-name", name]
        if options.server_api_key:
            command += ["--api-key", options.server_api_key]
        for field, value in arguments.items():
            flag = "--" + field.replace("_", "-")
            if value is True:
                command.append(flag)
            elif isinstance(value, list):
                command += [flag, *map(str, value)]
            elif value is not False and value is not None:
                command += [flag, str(value)]
        return command


class SglangEngine(ServerModes, LoopEngine):
    """SGLang in-process behind omni's engine interface; options asking for a server give a `SglangServerEngine`."""

    server_engine = SglangServerEngine

    options_class = SglangOptions

    def __init__(self, model: str, **flags: Any) -> None:
        super().__init__(model, **flags)
        model_options, template_options = self.model_options, self.template_options
        sglang = import_sglang()
        self.prompts = PromptEncoder.load(model, model_options, template_options, registry=self.registry)
        self.tokenizer = self.prompts.tokenizer
        self.template = self.prompts.template  # `omni serve` reads tool calls with its parser
        self._loop = LoopThread("omni-sglang-loop")
        arguments = engine_arguments(self.prompts.path, self.options, self.adapter_paths, model_options)
        try:
            # sglang.Engine attaches to the event loop current where it is created: create it on ours.
            self.sgl = self._loop.run(_construct(sglang.Engine, arguments))
        except BaseException:
            self._loop.close()
            raise

    def load_weights(self, model: Any) -> None:
        """Push `model`'s current weights (peft adapters merged) into SGLang with `update_weights_from_tensor`."""
        weights = merged_weights(model, self.registry)
        if weights:
            self.sgl.update_weights_from_tensor(named_tensors=list(weights.items()), flush_cache=True)

    def close(self) -> None:
        if getattr(self, "sgl", None) is not None:
            self.sgl.shutdown()
            self.sgl = None
        self._loop.close()

    async def _deltas(
        self, request: InferRequest, *, stream: bool = True
    ) -> AsyncIterator[StreamDelta | InferResponse]:
        """Each choice runs as its own SGLang request; their chunks are merged by choice index."""
        ids = self.prompts.token_ids(request)
        config = request.generation
        calls = [
            generate_kwargs(ids, config, choice, self.prompts, adapter=request.adapter, stream=stream)
            for choice in range(config.n)
        ]
        outputs: asyncio.Queue[tuple[int, dict[str, Any] | None]] = asyncio.Queue()

        async def run(index: int, kwargs: dict[str, Any]) -> None:
            try:
                result = await self.sgl.async_generate(**kwargs)
                if stream:
                    async for chunk in result:
                        await outputs.put((index, chunk))
                else:
                    await outputs.put((index, result))
            finally:
                await outputs.put((index, None))

        tasks = [asyncio.create_task(run(i, kwargs)) for i, kwargs in enumerate(calls)]
        answers = [ChoiceStream(self.prompts) for _ in calls]
        try:
            remaining = len(calls)
            while remaining:
                index, chunk = await outputs.get()
                if chunk is None:
                    remaining -= 1
                    continue
                delta = answers[index].add(chunk)
                if stream and (delta.text or delta.finish_reason):
                    yield StreamDelta(delta.text, index, delta.finish_reason)
            for task in tasks:
                task.result()  # raises what a request failed with
        finally:
            for task in tasks:
                task.cancel()
        yield response_from(answers, len(ids), config)


async def _construct(factory: Any, arguments: dict[str, Any]) -> Any:
    try:
        return factory(**arguments)
    except (TypeError, ValueError) as exc:
        raise OmniError(f"SGLang could not start: {exc}") from exc


def import_sglang() -> Any:
    """The `sglang` module, or an `OmniError` saying how to install it."""
    try:
        import sglang
    except ImportError as exc:
        raise OmniError(
            f"the sglang engine needs SGLang, which is not importable here ({exc}): {INSTALL}; or pass "
            "--sglang-server-url URL to use a running SGLang server"
        ) from None
    return sglang


def engine_arguments(
    path: str, options: SglangOptions, adapters: dict[str, str], model_options: ModelOptions | None
) -> dict[str, Any]:
    """Keyword arguments for `sglang.Engine` (SGLang's server arguments)."""
    dtype = (model_options or ModelOptions()).torch_dtype
    return {"model_path": path, "tokenizer_path": path, "dtype": dtype, **options.server_arguments(adapters)}


def sampling_params(config: GenerationConfig, prompts: PromptEncoder, choice: int = 0) -> dict[str, Any]:
    """SGLang's `sampling_params` for one choice; a seeded request gives choice i the seed + i."""
    sampling = config.temperature > 0
    params: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "temperature": config.temperature if sampling else 0.0,
        "top_p": config.top_p if sampling else 1.0,
        "top_k": config.top_k if sampling and config.top_k > 0 else -1,  # -1: no cut
        "repetition_penalty": config.repetition_penalty,
        "stop": prompts.stop_strings(config),
        "stop_token_ids": sorted(prompts.end_token_ids),
        "skip_special_tokens": True,
    }
    if config.seed is not None:
        params["sampling_seed"] = config.seed + choice
    return params


def generate_kwargs(
    ids: list[int],
    config: GenerationConfig,
    choice: int,
    prompts: PromptEncoder,
    *,
    adapter: str | None,
    stream: bool,
) -> dict[str, Any]:
    """Keyword arguments of `sglang.Engine.async_generate` for one choice of a request."""
    kwargs: dict[str, Any] = {
        "input_ids": ids,
        "sampling_params": sampling_params(config, prompts, choice),
        "stream": stream,
    }
    if adapter is not None:
        kwargs["lora_path"] = adapter
    if config.logprobs:
        kwargs.update(return_logprob=True, logprob_start_len=len(ids))
    return kwargs


class ChoiceStream:
    """One choice's chunks from SGLang (each carries the text so far) turned into deltas and a `Choice`."""

    def __init__(self, prompts: PromptEncoder) -> None:
        self.prompts = prompts
        self.text = ""
        self.output_ids: list[int] = []
        self.logprobs: list[float] = []
        self.finish_reason: str | None = None

    def add(self, chunk: dict[str, Any]) -> StreamDelta:
        """Take a chunk; returns the text new since the last one and the finish reason once there is one."""
        text = chunk.get("text") or ""
        new = (
            text[len(self.text) :] if text.startswith(self.text) else text
        )  # incremental streaming sends only new text
        self.text = text if text.startswith(self.text) else self.text + text
        meta = chunk.get("meta_info") or {}
        if chunk.get("output_ids") is not None:
            self.output_ids = list(chunk["output_ids"])
        if meta.get("output_token_logprobs"):
            self.logprobs = [float(entry[0]) for entry in meta["output_token_logprobs"]]
        finish = meta.get("finish_reason")
        if finish:
            kind = finish.get("type") if isinstance(finish, dict) else finish
            self.finish_reason = "length" if kind == "length" else "stop"
        return StreamDelta(new, 0, self.finish_reason)

    def choice(self, logprobs: bool) -> Choice:
        ids = self.prompts.cut_at_end(self.output_ids)
        return Choice(self.text, self.finish_reason or "stop", ids, self.logprobs[: len(ids)] if logprobs else None)


def response_from(answers: list[ChoiceStream], prompt_tokens: int, config: GenerationConfig) -> InferResponse:
    choices = [answer.choice(config.logprobs) for answer in answers]
    return InferResponse(choices, prompt_tokens, sum(len(c.token_ids) for c in choices))
