"""The engine interface behind `infer`, `serve`, `eval` and RL rollouts."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omni.registry import Registry
    from omni.template.base import Template

# Temperatures below this decode greedily, as in vLLM: dividing logits by them would overflow.
MIN_SAMPLING_TEMPERATURE = 1e-5

# Optional request features an engine names in `Engine.features` when it implements them; a server refuses a
# request that needs one its engine lacks (a 400 naming the parameter).
PROMPT_IDS = "prompt_ids"  # `InferRequest.prompt_ids`: a prompt given as token ids
TOP_LOGPROBS = "top_logprobs"  # `GenerationConfig.top_logprobs` above 0: the most likely tokens at each step
SCORING = "scoring"  # `GenerationConfig.prompt_logprobs`, and `max_new_tokens` 0 (score the prompt only)
USE_AUDIO_IN_VIDEO = "use_audio_in_video"  # `InferRequest.use_audio_in_video`: chosen per request


@dataclass
class GenerationConfig:
    """How to decode one request: length, sampling, stop strings, choices and log-probabilities asked for."""

    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k cut
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False  # the chosen tokens' log-probabilities (`Choice.logprobs`)
    top_logprobs: int = 0  # with logprobs: this many most likely tokens per step too (`Choice.top_logprobs`)
    # The prompt tokens' log-probabilities and this many most likely tokens at each position
    # (`InferResponse.prompt_logprobs`); None: not computed.
    prompt_logprobs: int | None = None

    @property
    def sampling(self) -> bool:
        """Whether tokens are sampled (temperature at least `MIN_SAMPLING_TEMPERATURE`) rather than greedy."""
        return self.temperature >= MIN_SAMPLING_TEMPERATURE


@dataclass
class InferRequest:
    """One conversation to continue. `row` is in the messages format (images/audios/videos included).

    With `prompt` set, that text is continued as it is, without the chat template, and `row` is unused
    (OpenAI's `/v1/completions`); with `prompt_ids` set, those token ids are (engines that list `PROMPT_IDS`
    in their `features`).
    """

    row: dict[str, Any] = field(default_factory=dict)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    adapter: str | None = None  # name of a loaded adapter; None means the base model
    prompt: str | None = None
    prompt_ids: list[int] | None = None
    # Whether each video's audio track is heard too (templates of models that hear video); None: the engine's
    # template flag (`--use-audio-in-video`) decides.
    use_audio_in_video: bool | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One position's token with its log-probability, its rank (1: the most likely) when known, and the
    most likely tokens there with theirs, most likely first."""

    token_id: int
    logprob: float
    top: dict[int, float] = field(default_factory=dict)
    rank: int | None = None


@dataclass
class Choice:
    """One answer to a request: its text, why it ended, its token ids and (when asked) their log-probabilities."""

    text: str
    finish_reason: str  # "stop" or "length"
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    # With `GenerationConfig.top_logprobs`: per token, the most likely tokens' log-probabilities, most likely first.
    top_logprobs: list[dict[int, float]] | None = None

    def token_logprobs(self) -> list[TokenLogprob]:
        """The generated tokens with their log-probabilities (and top alternatives); empty without logprobs."""
        tops = self.top_logprobs or [{}] * len(self.logprobs or [])
        return [TokenLogprob(t, lp, top) for t, lp, top in zip(self.token_ids, self.logprobs or [], tops, strict=False)]


@dataclass(frozen=True)
class StreamDelta:
    """New text of one choice while it is generated; its last delta carries the `finish_reason`.

    With `GenerationConfig.logprobs`, `logprobs` holds the tokens generated since the previous delta (a delta
    may hold tokens whose text comes later); a choice's deltas add up to its tokens.
    """

    text: str
    index: int = 0  # which choice (of a request's n)
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass
class InferResponse:
    """An engine's answer to one request: its choices and token counts (OpenAI `usage`)."""

    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int
    # With `GenerationConfig.prompt_logprobs`: the prompt's ids, and per position its `TokenLogprob` (None for
    # the first, which nothing predicts).
    prompt_token_ids: list[int] | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None


@dataclass
class SpokenAnswer:
    """An answer in text and speech: its text and token ids, the mono float32 waveform and its sampling rate."""

    text: str
    token_ids: list[int]
    waveform: Any  # a 1-D numpy array of samples in [-1, 1]
    sampling_rate: int
    prompt_tokens: int
    finish_reason: str  # "stop" or "length"


@dataclass(frozen=True)
class SpeechDelta:
    """A piece of a spoken answer while it is generated: new text, or the next samples of its waveform."""

    text: str = ""
    audio: Any = None  # a 1-D numpy array of float32 samples, following the previous delta's


class Engine:
    """Implemented by every spec registered through `register_engines`.

    Constructed with the model (name, local path or hub id), named adapters to load once and pick per
    request, the spec's options, the user's model flags (`omni.models.options.ModelOptions`: dtype,
    attention implementation, device map) and template flags (`omni.template.options.TemplateCliOptions`:
    template name, system prompt, prompt length); None means their defaults. An engine with options names
    their dataclass in `options_class`, so that None means its defaults too. `registry` is where it looks up
    models, templates and tuners: the command's (None: the process's plugin host, for library use).
    """

    options_class: type | None = None
    # The most tokens a prompt and its answer may hold together, when the engine knows it (servers bound
    # max_tokens and prompts by it).
    max_model_len: int | None = None
    # What the model takes in ("text", "image", "audio", "video"); None when the engine does not say.
    modalities: tuple[str, ...] | None = None
    # The optional request features it implements (`PROMPT_IDS`, `TOP_LOGPROBS`, `SCORING`, `USE_AUDIO_IN_VIDEO`).
    features: frozenset[str] = frozenset()
    # The voices its model answers aloud in (`speak`), the default first; empty when it answers in text only.
    voices: tuple[str, ...] = ()
    # The omni template its prompts are written with, when it uses one: `omni serve` renders a request's tools
    # through it and reads calls back with its `tool_parser` (None: requests with tools are refused).
    template: Template | None = None

    def __init__(
        self,
        model: str,
        *,
        adapters: dict[str, str] | None = None,
        options: Any = None,
        model_options: Any = None,
        template_options: Any = None,
        registry: Registry | None = None,
    ) -> None:
        if registry is None:
            from omni.plugins import get_registry

            registry = get_registry()
        self.registry = registry
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

    def speak(
        self, request: InferRequest, voice: str | None = None, cancel: threading.Event | None = None
    ) -> SpokenAnswer:
        """Answer `request` greedily in text and in speech, in `voice` (one of `voices`; None: the first).

        Setting `cancel` stops generating (what is spoken so far is returned). An engine whose model cannot
        speak (empty `voices`) raises `OmniError`.
        """
        raise NotImplementedError

    def speak_stream(
        self, request: InferRequest, voice: str | None = None, cancel: threading.Event | None = None
    ) -> Iterator[SpeechDelta | SpokenAnswer]:
        """`speak` while it is generated: the text's `SpeechDelta`s, the waveform's, then the whole `SpokenAnswer`
        (its waveform is the audio deltas joined). Setting `cancel` (or closing the iterator) stops generating."""
        raise NotImplementedError

    def prompt_token_ids(self, request: InferRequest) -> list[int]:
        """The token ids the engine would continue for `request` (its template's for a conversation), without
        generating; what a server's ``/tokenize`` answers."""
        raise NotImplementedError

    def load_weights(self, model: Any) -> None:
        """Generate with `model`'s current weights from now on, without reloading the engine.

        What RL rollouts call after each optimizer step. `model` is the training model: a transformers
        model of the engine's architecture, possibly wrapped by a tuner (peft); the engine takes its
        weights as they are now (adapters merged in, for engines that serve merged weights) and leaves
        `model` itself unchanged. By default the merged weights (`merged_weights`) are written to a safetensors
        file in shared memory and given to `load_weights_file`.
        """
        from omni.infer.weights import weights_file

        with weights_file(model, self.registry) as path:
            if path is not None:
                self.load_weights_file(path)

    def load_weights_file(self, path: str) -> None:
        """Generate with the weights in the safetensors file `path` from now on, without reloading the engine.

        The file holds every weight of the model under its checkpoint name, as `merged_weights` names them
        (what `load_weights` writes, and what `omni rollout` receives from a trainer). Requests in flight may
        finish on a mix of old and new weights: call it between generations. Raises `OmniError` for weights the
        model does not have; NotImplementedError where the engine cannot take new weights.
        """
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Counters of the engine's work so far (batches, requests, abandoned requests ...) for a server's
        ``/metrics``; empty when the engine keeps none."""
        return {}

    def close(self) -> None:
        """Release the model and any worker processes."""
