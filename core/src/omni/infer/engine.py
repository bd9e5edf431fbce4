"""The engine interface behind `infer`, `serve`, `eval` and RL rollouts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

# Temperatures below this decode greedily, as in vLLM: dividing logits by them would overflow.
MIN_SAMPLING_TEMPERATURE = 1e-5


@dataclass
class GenerationConfig:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k cut
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False

    @property
    def sampling(self) -> bool:
        """Whether tokens are sampled (temperature at least `MIN_SAMPLING_TEMPERATURE`) rather than greedy."""
        return self.temperature >= MIN_SAMPLING_TEMPERATURE


@dataclass
class InferRequest:
    """One conversation to continue. `row` is in the messages format (images/audios/videos included).

    With `prompt` set, that text is continued as it is, without the chat template, and `row` is unused
    (OpenAI's `/v1/completions`).
    """

    row: dict[str, Any] = field(default_factory=dict)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    adapter: str | None = None  # name of a loaded adapter; None means the base model
    prompt: str | None = None


@dataclass
class Choice:
    text: str
    finish_reason: str  # "stop" or "length"
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None


@dataclass(frozen=True)
class StreamDelta:
    """New text of one choice while it is generated; its last delta carries the `finish_reason`."""

    text: str
    index: int = 0  # which choice (of a request's n)
    finish_reason: str | None = None


@dataclass
class InferResponse:
    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int


class Engine:
    """Implemented by every spec registered through `register_engines`.

    Constructed with the model (name, local path or hub id), named adapters to load once and pick per
    request, the spec's options, the user's model flags (`omni.models.options.ModelOptions`: dtype,
    attention implementation, device map) and template flags (`omni.template.options.TemplateCliOptions`:
    template name, system prompt, prompt length); None means their defaults. An engine with options names
    their dataclass in `options_class`, so that None means its defaults too.
    """

    options_class: type | None = None
    # The most tokens a prompt and its answer may hold together, when the engine knows it (servers bound
    # max_tokens and prompts by it).
    max_model_len: int | None = None
    # What the model takes in ("text", "image", "audio", "video"); None when the engine does not say.
    modalities: tuple[str, ...] | None = None

    def __init__(
        self,
        model: str,
        *,
        adapters: dict[str, str] | None = None,
        options: Any = None,
        model_options: Any = None,
        template_options: Any = None,
    ) -> None:
        self.model_name = model
        self.adapter_paths = dict(adapters or {})
        self.options = options if options is not None or self.options_class is None else self.options_class()
        self.model_options = model_options
        self.template_options = template_options

    def generate(self, requests: list[InferRequest]) -> list[InferResponse]:
        """Answer a batch of requests (in order)."""
        raise NotImplementedError

    def stream(self, request: InferRequest) -> Iterator[str]:
        """Yield the answer's text as it is generated."""
        raise NotImplementedError

    async def generate_async(self, request: InferRequest) -> InferResponse:
        """Answer one request; concurrent calls may be batched together by the engine."""
        raise NotImplementedError

    def stream_async(self, request: InferRequest) -> AsyncIterator[str]:
        """Async version of `stream`."""
        raise NotImplementedError

    def stream_deltas_async(self, request: InferRequest) -> AsyncIterator[StreamDelta | InferResponse]:
        """Every choice's text as `StreamDelta`s while it is generated, then the whole `InferResponse`.

        What `serve` streams: the deltas of a choice add up to its text in the response, its last delta
        carries its finish reason, and the response carries the token counts.
        """
        raise NotImplementedError

    def load_weights(self, model: Any) -> None:
        """Generate with `model`'s current weights from now on, without reloading the engine.

        What RL rollouts call after each optimizer step. `model` is the training model: a transformers
        model of the engine's architecture, possibly wrapped by a tuner (peft); the engine takes its
        weights as they are now (adapters merged in, for engines that serve merged weights) and leaves
        `model` itself unchanged.
        """
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Counters of the engine's work so far (batches, requests, abandoned requests ...) for a server's
        ``/metrics``; empty when the engine keeps none."""
        return {}

    def close(self) -> None:
        """Release the model and any worker processes."""
