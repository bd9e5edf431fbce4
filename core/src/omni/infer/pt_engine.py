"""The built-in `pt` engine: transformers `generate` on the loaded PyTorch model.

One model and its adapters are loaded once; a lock serialises generation because the active adapter
is state of the shared model. `generate` batches requests that share an adapter and sampling settings
(left-padded); the async methods hand requests to a `BatchScheduler`, which batches concurrent ones.
"""

from __future__ import annotations

import copy
import dataclasses
import queue
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable, Iterator, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria, StopStringCriteria, TextIteratorStreamer, TextStreamer

from omni.errors import OmniError
from omni.infer.adapters import AdapterSet
from omni.infer.batching import AbandonedRows, BatchScheduler, BatchStreamer, batch_key
from omni.infer.engine import (
    PROMPT_IDS,
    SCORING,
    TOP_LOGPROBS,
    USE_AUDIO_IN_VIDEO,
    Choice,
    Engine,
    GenerationConfig,
    InferRequest,
    InferResponse,
    SpeechDelta,
    SpokenAnswer,
    StreamDelta,
    TokenLogprob,
)
from omni.infer.limits import check_prompt_length
from omni.infer.options import PtEngineOptions
from omni.infer.stops import StopStringFilter, cut_at_stop
from omni.models.loader import load_model
from omni.models.options import ModelOptions
from omni.template import get_template
from omni.template.base import IGNORE_INDEX, Encoded, Template
from omni.template.options import TemplateCliOptions

_STOP_CRITERIA_KEPT = 32
# Most logits (prompts x positions x vocabulary) one scoring forward pass computes: a gibibyte in float32.
_SCORED_LOGITS = 2**28


class PtEngine(Engine):
    """Generation with transformers on one model, with named adapters switched per request."""

    options_class = PtEngineOptions
    features = frozenset({PROMPT_IDS, TOP_LOGPROBS, SCORING, USE_AUDIO_IN_VIDEO})

    def __init__(self, model: str, **flags: Any) -> None:
        super().__init__(model, **flags)
        model_options, template_options = self.model_options, self.template_options
        registry = self.registry
        flags = dataclasses.replace(model_options, model=model) if model_options else ModelOptions(model=model)
        self.loaded = load_model(flags, registry, with_adapters=bool(self.adapter_paths))
        self.tokenizer = self.loaded.tokenizer
        chat = template_options or TemplateCliOptions()
        self.template = get_template(
            chat.template,
            self.loaded.processor,
            chat.template_options(),
            model_spec=self.loaded.spec,
            registry=registry,
        )
        self.adapters = AdapterSet()
        self.model = self.adapters.load(self.loaded.model, self.adapter_paths, registry)
        self.model.eval()
        self.modalities = tuple(self.loaded.spec.modalities)
        self._start()

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, template: Template, *, options: PtEngineOptions | None = None
    ) -> PtEngine:
        """An engine that generates with `model` itself, already loaded (e.g. the model being trained).

        Nothing is loaded or copied: `model` is shared, so it generates with whatever weights it has when
        asked (its active adapters included), and the caller keeps deciding its train/eval mode.
        """
        engine = cls.__new__(cls)
        Engine.__init__(engine, getattr(model, "name_or_path", "") or "", options=options or PtEngineOptions())
        engine.loaded = None  # type: ignore[assignment]
        engine.tokenizer = tokenizer
        engine.template = template
        engine.adapters = AdapterSet()
        engine.model = model
        engine._start()
        return engine

    def _start(self) -> None:
        """The generation state shared by both constructors (model, tokenizer and template are set)."""
        self._lock = threading.Lock()
        self.voices = tuple(getattr(getattr(self.model, "speak", None), "voices", ()))
        self.max_model_len = _context_length(self.model.config)
        # transformers' own cache of stop-string tables misses for fast tokenizers, and rebuilding them costs
        # most of a second per `generate` call: build one criteria per distinct set of stop strings instead,
        # keeping the most recently used few (clients choose the strings).
        self._stop_criteria: OrderedDict[tuple[str, ...], StopStringCriteria] = OrderedDict()
        self.scheduler = BatchScheduler(
            self.run_batch,
            tokenizer=self.tokenizer,
            end_token_ids=_end_token_ids(self.model.generation_config, self.tokenizer),
            stop_strings=lambda request: self._stop_strings(request.generation),
            max_batch_size=self.options.max_batch_size,
            max_wait_ms=self.options.max_wait_ms,
        )

    def generate(self, requests: list[InferRequest]) -> list[InferResponse]:
        """Answer `requests` in order, batching those that share an adapter and sampling settings."""
        responses: dict[int, InferResponse] = {}
        groups: dict[Hashable, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(batch_key(request), []).append(index)
        size = max(1, self.options.max_batch_size)
        with self._lock:
            for indices in groups.values():
                for start in range(0, len(indices), size):
                    chunk = indices[start : start + size]
                    answers = self._generate_batch([requests[i] for i in chunk])
                    responses.update(zip(chunk, answers, strict=True))
        return [responses[i] for i in range(len(requests))]

    def stream(self, request: InferRequest) -> Iterator[str]:
        """Yield the first choice's text as it is generated; stops early when the consumer stops reading."""
        return self._stream(request, threading.Event())

    def speak(
        self, request: InferRequest, voice: str | None = None, cancel: threading.Event | None = None
    ) -> SpokenAnswer:
        """Answer `request` greedily in text and speech, in `voice` (`Engine.speak`).

        Needs a model whose loader gave it a ``speak`` function (a talker, as Qwen3-Omni's); else `OmniError`.
        """
        interrupt = [_Cancelled(cancel)] if cancel is not None else []
        return self._speak(request, self._speaker(voice), voice, interrupt=interrupt)

    def speak_stream(
        self, request: InferRequest, voice: str | None = None, cancel: threading.Event | None = None
    ) -> Iterator[SpeechDelta | SpokenAnswer]:
        """`speak` as it is generated (`Engine.speak_stream`): the text while the thinker writes it, then the
        speech in pieces while the talker says it, then the whole answer."""
        speaker = self._speaker(voice)
        cancel = cancel or threading.Event()
        deltas: queue.Queue[SpeechDelta | SpokenAnswer | BaseException] = queue.Queue()

        def run() -> None:
            try:
                streaming = {
                    "text_streamer": _QueuedText(self.tokenizer, deltas),
                    "on_audio": lambda wave: deltas.put(SpeechDelta(audio=wave)),
                    "interrupt": [_Cancelled(cancel)],
                }
                deltas.put(self._speak(request, speaker, voice, **streaming))
            except BaseException as exc:  # re-raised in the consumer's thread below
                deltas.put(exc)

        worker = threading.Thread(target=run, name="omni-pt-speech", daemon=True)
        worker.start()
        stops = StopStringFilter(self._stop_strings(request.generation))
        try:
            while True:
                item = deltas.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, SpokenAnswer):
                    if rest := stops.flush():
                        yield SpeechDelta(text=rest)
                    yield item
                    return
                if item.text:
                    if text := stops.feed(item.text):
                        yield SpeechDelta(text=text)
                else:
                    yield item
        finally:
            cancel.set()
            worker.join()

    def _speaker(self, voice: str | None) -> Any:
        """The model's ``speak`` function; a model without one, or a voice it lacks, is an `OmniError`."""
        speaker = getattr(self.model, "speak", None)
        if speaker is None:
            raise OmniError(f"{self.model_name} has no speech output (a talker); it answers in text only")
        if voice is not None and voice not in self.voices:
            raise OmniError(f"voice {voice!r} is not one of this model's voices: {', '.join(self.voices)}")
        return speaker

    def _speak(self, request: InferRequest, speaker: Any, voice: str | None, **streaming: Any) -> SpokenAnswer:
        config = request.generation
        with self._lock:
            self.adapters.activate(self.model, request.adapter)
            prompt = self._encode(request)
            ids, wave, rate = speaker(
                self._model_inputs([prompt]),
                max_new_tokens=config.max_new_tokens,
                voice=voice,
                stopping_criteria=self._stopping_criteria(config),
                **streaming,
            )
        choice = self._choice(torch.tensor(ids, dtype=torch.long), config, None)
        return SpokenAnswer(choice.text, choice.token_ids, wave, rate, len(prompt), choice.finish_reason)

    async def generate_async(self, request: InferRequest) -> InferResponse:
        """Answer one request, batched with the requests that arrive alongside it."""
        return await self.scheduler.generate(request)

    async def stream_async(self, request: InferRequest) -> AsyncIterator[str]:
        """Async `stream`, batched with the requests that arrive alongside it."""
        async for item in self.scheduler.stream(request):
            if isinstance(item, StreamDelta) and item.index == 0 and item.text:
                yield item.text

    def stream_deltas_async(self, request: InferRequest) -> AsyncIterator[StreamDelta | InferResponse]:
        """Every choice's deltas, then the response, batched with the requests that arrive alongside it."""
        return self.scheduler.stream(request)

    def run_batch(
        self, requests: list[InferRequest], streamer: BatchStreamer | None, abandoned: AbandonedRows
    ) -> list[InferResponse]:
        """One batched generation for requests that share an adapter and settings (the scheduler's `run_batch`)."""
        with self._lock:
            return self._generate_batch(requests, streamer, [abandoned])

    def stats(self) -> dict[str, int]:
        """The batching scheduler's counters: batches, requests, largest batch, decoding steps, abandoned requests."""
        counters = dataclasses.asdict(self.scheduler.stats)
        return {name: value for name, value in counters.items() if isinstance(value, int)}

    def load_weights(self, model: Any) -> None:
        """Generate with `model` from now on; nothing is copied.

        An engine made by `from_model` around this same `model` already sees every optimizer step (the
        weights are the same tensors), so this only checks that. Another model (same architecture and tokenizer)
        replaces the one generating, shared the same way.
        """
        if model is not self.model:
            with self._lock:
                self.model = model

    def load_weights_file(self, path: str) -> None:
        """Copy the weights of the safetensors file `path` (checkpoint names) into the model, between batches.

        Weights the file leaves out keep their values; a name the model lacks, or a shape that differs, is an
        `OmniError` and changes nothing. An engine serving adapters takes no new base weights.
        """
        from safetensors.torch import load_file

        from omni.infer.weights import check_weights_fit

        if self.adapter_paths:
            raise OmniError("the pt engine serving adapters cannot take new base weights; serve the model alone")
        try:
            weights = load_file(path)
        except Exception as exc:  # safetensors' own errors for a file that is not one
            raise OmniError(f"the weights are not a safetensors file ({exc})") from None
        own = {name: tuple(tensor.shape) for name, tensor in self.model.state_dict().items()}
        check_weights_fit({name: tuple(tensor.shape) for name, tensor in weights.items()}, own)
        with self._lock, torch.no_grad():
            self.model.load_state_dict(weights, strict=False)

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self.model = None
        self.loaded = None  # type: ignore[assignment]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _generate_batch(
        self,
        requests: list[InferRequest],
        streamer: BatchStreamer | None = None,
        stopping: Sequence[StoppingCriteria] = (),
    ) -> list[InferResponse]:
        """Generate for requests that share an adapter and a generation config (caller holds the lock)."""
        config = requests[0].generation
        self.adapters.activate(self.model, requests[0].adapter)
        return self._generate_prompts([self._encode(r) for r in requests], config, streamer, stopping)

    def prompt_token_ids(self, request: InferRequest) -> list[int]:
        """The prompt ids `request` is continued from (the chat template's for a conversation)."""
        return list(self._encode(request, check_length=False).input_ids)

    def _encode(self, request: InferRequest, *, check_length: bool = True) -> Encoded:
        """Prompt ids: the chat template's for a conversation, the tokenizer's for a plain-text prompt, or the
        request's own.

        Raises `PromptTooLong` for a prompt over ``--max-length`` or one that leaves the model's context no
        room for an answer, and for an empty one.
        """
        if request.prompt_ids is not None:
            encoded = Encoded(list(request.prompt_ids), [IGNORE_INDEX] * len(request.prompt_ids))
        elif request.prompt is not None:
            ids = self.tokenizer(request.prompt)["input_ids"]
            encoded = Encoded(ids, [IGNORE_INDEX] * len(ids))
        else:
            encoded = self._template_for(request).encode_prompt(request.row)
        if check_length:
            check_prompt_length(len(encoded), self.template.options.max_length, self.max_model_len)
        return encoded

    def _template_for(self, request: InferRequest) -> Template:
        """The engine's template, or a copy hearing videos' audio tracks as `request.use_audio_in_video` asks."""
        wanted = request.use_audio_in_video
        if wanted is None or wanted == self.template.options.use_audio_in_video:
            return self.template
        template = copy.copy(self.template)
        template.options = dataclasses.replace(self.template.options, use_audio_in_video=wanted)
        return template

    def _generate_prompts(
        self,
        prompts: list[Encoded],
        config: GenerationConfig,
        streamer: BatchStreamer | None = None,
        stopping: Sequence[StoppingCriteria] = (),
    ) -> list[InferResponse]:
        scored = self._prompt_logprobs(prompts, config.prompt_logprobs) if config.prompt_logprobs is not None else None
        if config.max_new_tokens == 0:  # scoring only
            empty = Choice("", "length", [], [] if config.logprobs else None, [] if config.top_logprobs else None)
            return [
                InferResponse([empty] * config.n, len(p), 0, list(p.input_ids), scores)
                for p, scores in zip(prompts, scored or [None] * len(prompts), strict=True)
            ]
        inputs = self._model_inputs(prompts)
        width = inputs["input_ids"].shape[1]
        if self.max_model_len is not None and width + config.max_new_tokens > self.max_model_len:
            # Answers end where the model's context does (finish_reason "length").
            config = dataclasses.replace(config, max_new_tokens=self.max_model_len - width)
        sampled_copies = config.n if config.sampling else 1
        generation_config = self._hf_generation_config(config, num_return_sequences=sampled_copies)
        _seed(config)
        generation_config.update(return_dict_in_generate=True, output_logits=config.logprobs)
        recorder = _StepLogprobs(config.top_logprobs) if streamer is not None and config.logprobs else None
        if recorder is not None:
            streamer.step_logprobs = recorder
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                generation_config=generation_config,
                stopping_criteria=[*self._stopping_criteria(config), *stopping],
                logits_processor=[recorder] if recorder is not None else None,
                streamer=streamer,
            )
        new_tokens = out.sequences[:, width:]
        logprobs = _generated_logprobs(out.logits, new_tokens, config.top_logprobs) if config.logprobs else None
        responses = []
        for i, prompt in enumerate(prompts):
            rows = range(i * sampled_copies, (i + 1) * sampled_copies)
            choices = [self._choice(new_tokens[r], config, None if logprobs is None else logprobs[r]) for r in rows]
            # Greedy decoding gives the same answer every time: n copies of it.
            choices = (choices * config.n)[: config.n] if sampled_copies == 1 else choices
            response = InferResponse(choices, len(prompt), sum(len(c.token_ids) for c in choices))
            if scored is not None:
                response.prompt_token_ids, response.prompt_logprobs = list(prompt.input_ids), scored[i]
            responses.append(response)
        return responses

    def _prompt_logprobs(self, prompts: list[Encoded], top: int) -> list[list[TokenLogprob | None]]:
        """Each prompt token's log-probability given the tokens before it, with its rank and the `top` most
        likely tokens there.

        Prompts are scored in groups whose logits (prompts x longest x vocabulary) stay within
        `_SCORED_LOGITS`, a long prompt alone; each group is right-padded, so every real token keeps its
        position and sees only real tokens before it: the same numbers as scoring each prompt alone.
        """
        if len(prompts) > 1 and any(p.extras for p in prompts):
            raise ValueError("rows with images, audio or video are scored alone (see batching.batch_key)")
        vocabulary = self.model.get_output_embeddings().weight.shape[0]
        scored: list[list[TokenLogprob | None]] = []
        group: list[Encoded] = []
        for prompt in sorted(prompts, key=len, reverse=True):
            if group and (len(group) + 1) * len(group[0]) * vocabulary > _SCORED_LOGITS:
                scored += self._score_group(group, top)
                group = []
            group.append(prompt)
        scored += self._score_group(group, top)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        by_prompt: dict[int, list[TokenLogprob | None]] = dict(zip(order, scored, strict=True))
        return [by_prompt[i] for i in range(len(prompts))]

    def _score_group(self, prompts: list[Encoded], top: int) -> list[list[TokenLogprob | None]]:
        batch = self.tokenizer.pad(
            {"input_ids": [p.input_ids for p in prompts]}, padding=True, padding_side="right", return_tensors="pt"
        )
        inputs: dict[str, Any] = {k: v.to(self.model.device) for k, v in batch.items()}
        if prompts[0].extras:
            inputs.update({k: v.to(self.model.device) if hasattr(v, "to") else v for k, v in prompts[0].extras.items()})
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        scored: list[list[TokenLogprob | None]] = []
        for row, prompt in enumerate(prompts):
            ids = torch.tensor(prompt.input_ids[1:], device=logits.device)
            # Row by row: the log-softmax of the whole group would double its memory.
            steps = logits[row, : len(ids)].float().log_softmax(dim=-1)
            scored.append([None, *_token_logprobs(steps, ids, top, ranked=True)])
        return scored

    def _stream(self, request: InferRequest, cancel: threading.Event) -> Iterator[str]:
        config = request.generation
        with self._lock:
            self.adapters.activate(self.model, request.adapter)
            inputs = self._model_inputs([self._encode(request)])
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
            failure: list[BaseException] = []

            def run() -> None:
                try:
                    _seed(config)
                    with torch.inference_mode():
                        self.model.generate(
                            **inputs,
                            generation_config=self._hf_generation_config(config, num_return_sequences=1),
                            streamer=streamer,
                            stopping_criteria=[*self._stopping_criteria(config), _Cancelled(cancel)],
                        )
                except BaseException as exc:  # re-raised in the consumer's thread below
                    failure.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="omni-pt-stream", daemon=True)
            worker.start()
            stops = StopStringFilter(self._stop_strings(config))
            try:
                for piece in streamer:
                    text = stops.feed(piece)
                    if text:
                        yield text
                    if stops.stopped or cancel.is_set():
                        break
                rest = stops.flush()
                if rest:
                    yield rest
            finally:
                cancel.set()
                worker.join()
            if failure:
                raise failure[0]

    def _model_inputs(self, prompts: list[Encoded]) -> dict[str, Any]:
        """Left-padded ids and attention mask on the model's device, plus a lone row's modality tensors."""
        if len(prompts) > 1 and any(p.extras for p in prompts):
            raise ValueError("rows with images, audio or video are generated alone (see batching.batch_key)")
        batch = self.tokenizer.pad(
            {"input_ids": [p.input_ids for p in prompts]}, padding=True, padding_side="left", return_tensors="pt"
        )
        inputs: dict[str, Any] = {k: v.to(self.model.device) for k, v in batch.items()}
        if prompts[0].extras:
            inputs.update({k: v.to(self.model.device) if hasattr(v, "to") else v for k, v in prompts[0].extras.items()})
        return inputs

    def _hf_generation_config(self, config: GenerationConfig, *, num_return_sequences: int) -> Any:
        """The model's own generation config (its end-of-turn tokens) with the request's settings on top."""
        sampling = config.sampling
        generation_config = copy.deepcopy(self.model.generation_config)
        generation_config.update(
            max_new_tokens=config.max_new_tokens,
            do_sample=sampling,
            temperature=config.temperature if sampling else None,
            top_p=config.top_p if sampling else None,
            top_k=config.top_k if sampling else None,
            repetition_penalty=config.repetition_penalty,
            num_return_sequences=num_return_sequences,
        )
        return generation_config

    def _stop_strings(self, config: GenerationConfig) -> list[str]:
        return list(dict.fromkeys([*config.stop, *self.template.stop_words]))

    def _stopping_criteria(self, config: GenerationConfig) -> list[StoppingCriteria]:
        """Criteria that end a row at any of the request's or the template's stop strings."""
        stops = tuple(self._stop_strings(config))
        if not stops:
            return []
        if stops not in self._stop_criteria:
            self._stop_criteria[stops] = StopStringCriteria(self.tokenizer, list(stops))
            if len(self._stop_criteria) > _STOP_CRITERIA_KEPT:
                self._stop_criteria.popitem(last=False)
        self._stop_criteria.move_to_end(stops)
        return [self._stop_criteria[stops]]

    def _choice(self, tokens: torch.Tensor, config: GenerationConfig, logprobs: list[TokenLogprob] | None) -> Choice:
        """One answer: tokens up to end-of-sequence, text up to the first stop string.

        It finished by "length" only when it used all `max_new_tokens` without ending or meeting a stop string.
        """
        ids = tokens.tolist()
        ends = _end_token_ids(self.model.generation_config, self.tokenizer)
        ids = ids[: next((i for i, t in enumerate(ids) if t in ends), len(ids))]
        text, stopped = cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), self._stop_strings(config))
        kept = None if logprobs is None else logprobs[: len(ids)]
        return Choice(
            text=text,
            finish_reason="stop" if stopped or len(ids) < config.max_new_tokens else "length",
            token_ids=ids,
            logprobs=None if kept is None else [t.logprob for t in kept],
            top_logprobs=[t.top for t in kept] if kept is not None and config.top_logprobs else None,
        )


class _QueuedText(TextStreamer):
    """Puts the answer's text, as the model writes it, on a queue as `SpeechDelta`s."""

    def __init__(self, tokenizer: Any, deltas: queue.Queue[Any]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.deltas = deltas

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.deltas.put(SpeechDelta(text=text))


class _Cancelled(StoppingCriteria):
    """Stops generation once `event` is set (the streaming consumer went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _context_length(config: Any) -> int | None:
    """The most positions the model's language part takes (its ``max_position_embeddings``), when it says."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    length = getattr(text_config, "max_position_embeddings", None)
    return length if isinstance(length, int) else None


def _seed(config: GenerationConfig) -> None:
    if config.seed is not None:
        torch.manual_seed(config.seed)


def _end_token_ids(generation_config: Any, tokenizer: Any) -> set[int]:
    """Token ids after which a sequence is over: end-of-sequence ids and the padding that follows them."""
    eos = generation_config.eos_token_id
    ends = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    if tokenizer.pad_token_id is not None:
        ends.add(tokenizer.pad_token_id)
    return ends


def _generated_logprobs(logits: tuple[torch.Tensor, ...], tokens: torch.Tensor, top: int) -> list[list[TokenLogprob]]:
    """Each generated token's log-probability under the model's raw (unwarped) distribution, with the `top`
    most likely tokens at its step."""
    steps = torch.stack(logits, dim=1).float().log_softmax(dim=-1)
    return [_token_logprobs(steps[row], tokens[row, : steps.shape[1]], top) for row in range(steps.shape[0])]


def _token_logprobs(steps: torch.Tensor, ids: torch.Tensor, top: int, *, ranked: bool = False) -> list[TokenLogprob]:
    """`TokenLogprob`s of `ids` from per-position log-probabilities `steps` (positions x vocabulary): each
    chosen token's, its rank (with `ranked`) and the `top` most likely tokens'."""
    chosen = steps.gather(-1, ids[:, None]).squeeze(-1)
    ranks = (steps > chosen[:, None]).sum(dim=-1) + 1 if ranked else None
    best = steps.topk(top, dim=-1) if top else None
    entries = []
    for position, (token, logprob) in enumerate(zip(ids.tolist(), chosen.tolist(), strict=True)):
        alternatives = (
            dict(zip(best.indices[position].tolist(), best.values[position].tolist(), strict=True)) if best else {}
        )
        rank = None if ranks is None else int(ranks[position])
        entries.append(TokenLogprob(token, logprob, alternatives, rank))
    return entries


class _StepLogprobs(LogitsProcessor):
    """Keeps each decoding step's log-probabilities, for a streamer to send with the step's tokens.

    transformers runs it after its own processors (repetition penalty ...) and before the sampling ones
    (temperature, top-p, top-k), leaving the scores as they are.
    """

    def __init__(self, top: int) -> None:
        self.top = top
        self.latest: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.latest = scores.float().log_softmax(dim=-1)
        return scores

    def entries(self, tokens: torch.Tensor) -> list[TokenLogprob]:
        """The latest step's `TokenLogprob` of each row's token."""
        assert self.latest is not None
        return _token_logprobs(self.latest, tokens.to(self.latest.device), self.top)
