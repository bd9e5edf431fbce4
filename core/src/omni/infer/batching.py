"""Dynamic batching: concurrent async requests answered by shared, batched `generate` calls.

An engine whose `generate` takes a list (the built-in `pt` engine) would answer a server's concurrent
requests one by one. `BatchScheduler` instead collects the requests that arrive close together (within
`max_wait_ms` of the oldest waiting one, up to `max_batch_size`), hands those that can share one call —
same adapter, same generation settings — to the engine's `run_batch` in a worker thread, and delivers
each request its own answer. Streaming requests ride in the same batches: a `BatchStreamer` receives each
decoding step's tokens for the whole batch and sends every streaming row's new text to its request.

Batching is per request, not per decoding step: a request that arrives while a batch is generating waits
for it to finish and then goes out with everything else that arrived meanwhile. (Joining a running batch
needs control of the decoding loop, which transformers' `generate` does not offer.) A request nobody waits
for any more (its client left, or it timed out) is dropped while it waits, and in a running batch its rows
stop at the next decoding step; a batch whose rows have all stopped ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from omni.errors import OmniError
from omni.infer.engine import InferRequest, InferResponse, StreamDelta, TokenLogprob
from omni.infer.stops import StopStringFilter

_MEDIA_COLUMNS = ("images", "audios", "videos")
_alone = itertools.count()


def batch_key(request: InferRequest) -> Hashable:
    """Requests with equal keys may share one `generate` call.

    They must use the same adapter and generation settings, because `generate` takes one configuration
    for the whole batch. Two kinds of request always go alone: seeded sampling (a seed promises the same
    answer every time, which sharing random draws with other requests would break) and rows with images,
    audio or video (their modality tensors are not padded into one batch).
    """
    settings = request.generation
    if (settings.seed is not None and settings.sampling) or any(request.row.get(c) for c in _MEDIA_COLUMNS):
        return ("alone", next(_alone))
    return (request.adapter, json.dumps(dataclasses.asdict(settings), sort_keys=True))


RunBatch = Callable[[list[InferRequest], "BatchStreamer | None", "AbandonedRows"], list[InferResponse]]
"""Answers requests that share a `batch_key` with one batched generation, in order.

When the streamer is not None it must be passed to transformers' ``generate(streamer=...)``, and the
`AbandonedRows` criterion always goes into its ``stopping_criteria``. Called in a worker thread, one call
at a time per scheduler.
"""


@dataclass
class BatchStats:
    """How a scheduler has batched so far: batches run, requests answered, the largest batch."""

    batches: int = 0
    requests: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches had it
    steps: int = 0  # decoding steps run, over all batches
    abandoned: int = 0  # requests dropped because nobody waited for them any more (waiting, or mid-batch)

    def record(self, size: int) -> None:
        self.batches += 1
        self.requests += size
        self.largest = max(self.largest, size)
        self.sizes[size] = self.sizes.get(size, 0) + 1

    @property
    def mean_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


class _ChoiceText:
    """One generated row's text: decoded as tokens arrive, released up to any stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.tokens: list[int] = []
        self.decoded = ""
        self.sent = ""
        self.done = False
        self.logprobs: list[TokenLogprob] = []  # the tokens' log-probabilities not sent yet
        self.logprobs_sent = 0
        self._stops = StopStringFilter(stops)

    def take_logprobs(self) -> tuple[TokenLogprob, ...]:
        """The log-probabilities gathered since the last call, to go with the next delta."""
        taken, self.logprobs = tuple(self.logprobs), []
        self.logprobs_sent += len(taken)
        return taken

    def advance(self, text: str) -> str:
        """Take the row's whole decoded text so far; return the part that can be shown now."""
        if text.endswith("\ufffd"):  # a character split across tokens: wait for its last byte
            return ""
        new, self.decoded = text[len(self.decoded) :], text
        ready = self._stops.feed(new)
        self.done = self._stops.stopped
        self.sent += ready
        return ready


class _StreamSink:
    """Where one streaming request's deltas go: an asyncio queue, fed from the generating thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stops: Sequence[str]) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[StreamDelta | InferResponse | BaseException] = asyncio.Queue()
        self.stops = list(stops)
        self.choices: dict[int, _ChoiceText] = {}
        self.abandoned = False  # the consumer stopped reading

    def choice(self, index: int) -> _ChoiceText:
        return self.choices.setdefault(index, _ChoiceText(self.stops))

    @property
    def started(self) -> bool:
        """Whether the consumer has received text already."""
        return any(choice.sent for choice in self.choices.values())

    def send(self, item: StreamDelta | InferResponse | BaseException) -> None:
        """Queue `item` for the consumer; safe to call from any thread."""
        if not self.abandoned:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def finish(self, response: InferResponse) -> None:
        """Send each choice's text not streamed yet with its finish reason, then the whole response.

        The response is the authority: what it has beyond the streamed text (text held back as a possible
        stop string that was not one, choices that were copies of another row) goes out now, so the deltas
        always add up to the response's text.
        """
        for index, choice in enumerate(response.choices):
            streamed = self.choices.get(index)
            sent = streamed.sent if streamed is not None else ""
            rest = choice.text[len(sent) :] if choice.text.startswith(sent) else ""
            logprobs = tuple(choice.token_logprobs()[streamed.logprobs_sent if streamed is not None else 0 :])
            self.send(StreamDelta(text=rest, index=index, finish_reason=choice.finish_reason, logprobs=logprobs))
        self.send(response)


class BatchStreamer(BaseStreamer):
    """Streams a batched `generate` call: every row's new text goes to the request the row belongs to.

    transformers calls `put` with the prompt ids first (one row per generated sequence, so a request
    sampling n answers owns n consecutive rows), then once per decoding step with each row's new token,
    and `end` at the end. A row stops streaming at an end-of-sequence token or a stop string; rows of
    requests that do not stream are skipped.
    """

    def __init__(self, tokenizer: Any, end_token_ids: Collection[int], sinks: Sequence[_StreamSink | None]) -> None:
        self.tokenizer = tokenizer
        self.end_token_ids = set(end_token_ids)
        self.sinks = list(sinks)
        self._rows: list[tuple[_StreamSink, int, _ChoiceText] | None] | None = None
        # Set by the engine when the streamed requests want log-probabilities: each step's, before `put`.
        self.step_logprobs: Any = None

    def put(self, value: Any) -> None:
        """Take the prompt (first call) or one decoding step's tokens, one per row."""
        if self._rows is None:
            self._rows = self._assign_rows(value.shape[0])
            return
        live = []
        tokens = value.reshape(-1)
        logprobs = self.step_logprobs.entries(tokens) if self.step_logprobs is not None else None
        for position, (row, token) in enumerate(zip(self._rows, tokens.tolist(), strict=True)):
            if row is None or row[2].done or row[0].abandoned:
                continue
            if token in self.end_token_ids:
                row[2].done = True
                continue
            row[2].tokens.append(token)
            if logprobs is not None:
                row[2].logprobs.append(logprobs[position])
            live.append(row)
        if not live:
            return
        # One decode call for the whole step; each row's full text is decoded so that characters and
        # words spanning several tokens come out right.
        texts = self.tokenizer.batch_decode([text.tokens for _, _, text in live], skip_special_tokens=True)
        for (sink, index, text), decoded in zip(live, texts, strict=True):
            delta = text.advance(decoded)
            if delta:
                sink.send(StreamDelta(text=delta, index=index, logprobs=text.take_logprobs()))

    def end(self) -> None:
        """Nothing to flush: the scheduler finishes each stream from the batch's responses."""

    def _assign_rows(self, rows: int) -> list[tuple[_StreamSink, int, _ChoiceText] | None]:
        if rows % len(self.sinks):
            raise OmniError(f"generate produced {rows} rows for {len(self.sinks)} requests; expected a multiple")
        per_request = rows // len(self.sinks)
        assigned: list[tuple[_StreamSink, int, _ChoiceText] | None] = []
        for row in range(rows):
            sink, index = self.sinks[row // per_request], row % per_request
            assigned.append(None if sink is None else (sink, index, sink.choice(index)))
        return assigned


class AbandonedRows(StoppingCriteria):
    """Stops the rows of requests nobody waits for any more at the next decoding step, and counts steps.

    transformers keeps finished rows in the batch as padding and ends the call once every row is finished,
    so a batch of abandoned requests ends at once and the others' rows go on unchanged.
    """

    def __init__(self, batch: Sequence[_Waiting], stats: BatchStats) -> None:
        self.batch = list(batch)
        self.stats = stats
        self._counted: set[int] = set()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.stats.steps += 1
        per_request = max(1, input_ids.shape[0] // len(self.batch))
        gone = [w.abandoned for w in self.batch]
        for index, abandoned in enumerate(gone):
            if abandoned and index not in self._counted:
                self._counted.add(index)
                self.stats.abandoned += 1
        rows = [gone[row // per_request] for row in range(input_ids.shape[0])]
        return torch.tensor(rows, dtype=torch.bool, device=input_ids.device)


@dataclass(eq=False)
class _Waiting:
    """A submitted request waiting for its batch: a future for whole answers, a sink for streamed ones."""

    request: InferRequest
    key: Hashable
    arrival: float
    future: asyncio.Future[InferResponse] | None = None
    sink: _StreamSink | None = None

    @property
    def abandoned(self) -> bool:
        return self.sink.abandoned if self.sink is not None else self.future is None or self.future.done()

    def deliver(self, response: InferResponse) -> None:
        if self.sink is not None:
            self.sink.finish(response)
        elif self.future is not None and not self.future.done():
            self.future.set_result(response)

    def fail(self, error: BaseException) -> None:
        if self.sink is not None:
            self.sink.send(error)
        elif self.future is not None and not self.future.done():
            self.future.set_exception(error)


class BatchScheduler:
    """Answers concurrent async requests with batched `run_batch` calls.

    `tokenizer` and `end_token_ids` turn streamed rows into text; `stop_strings(request)` are the strings
    a request's answer ends before (the template's and the request's own). A batch starts once
    `max_batch_size` compatible requests wait, or `max_wait_ms` after the oldest one arrived. With
    `max_batch_size=1` every request runs alone (the baseline batching is measured against).
    """

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        tokenizer: Any,
        end_token_ids: Collection[int],
        stop_strings: Callable[[InferRequest], Sequence[str]] = lambda request: request.generation.stop,
        max_batch_size: int = 16,
        max_wait_ms: float = 10.0,
        key: Callable[[InferRequest], Hashable] = batch_key,
    ) -> None:
        if max_batch_size < 1:
            raise OmniError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise OmniError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self.run_batch = run_batch
        self.tokenizer = tokenizer
        self.end_token_ids = set(end_token_ids)
        self.stop_strings = stop_strings
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.key = key
        self.stats = BatchStats()
        self._waiting: list[_Waiting] = []
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None

    async def generate(self, request: InferRequest) -> InferResponse:
        """The whole answer to `request`, generated in a batch with the requests arriving alongside it."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, self.key(request), loop.time(), future=loop.create_future())
        self._enqueue(waiting)
        assert waiting.future is not None
        return await waiting.future

    async def stream(self, request: InferRequest) -> AsyncIterator[StreamDelta | InferResponse]:
        """Each choice's text as it is generated, as `StreamDelta`s, then the whole `InferResponse`.

        Every choice's last delta carries its finish reason; the deltas of a choice add up to its text in
        the response. Leaving the loop early stops the deltas (the batch itself runs to its end).
        """
        loop = asyncio.get_running_loop()
        sink = _StreamSink(loop, self.stop_strings(request))
        self._enqueue(_Waiting(request, self.key(request), loop.time(), sink=sink))
        try:
            while True:
                item = await sink.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, InferResponse):
                    return
        finally:
            sink.abandoned = True

    # -- scheduling -----------------------------------------------------------------------------------

    def _enqueue(self, waiting: _Waiting) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            # First use, or use from a new event loop (asyncio.run called again): the old loop is gone.
            self._waiting, self._arrived = [], asyncio.Event()
            self._worker = loop.create_task(self._schedule(), name="omni-batch-scheduler")
        self._waiting.append(waiting)
        assert self._arrived is not None
        self._arrived.set()

    async def _schedule(self) -> None:
        while True:
            batch = await self._next_batch()
            for waiting in batch:
                self._waiting.remove(waiting)
            await self._run(batch)

    async def _next_batch(self) -> list[_Waiting]:
        """The oldest waiting request and those that can join it, once the batch is full or the wait is over."""
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            left = [w for w in self._waiting if w.abandoned]
            if left:
                self.stats.abandoned += len(left)
                self._waiting = [w for w in self._waiting if not w.abandoned]
            if not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            oldest = self._waiting[0]
            batch = [w for w in self._waiting if w.key == oldest.key][: self.max_batch_size]
            remaining = oldest.arrival + self.max_wait - loop.time()
            if len(batch) >= self.max_batch_size or remaining <= 0:
                return batch
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def _run(self, batch: list[_Waiting]) -> None:
        sinks = [w.sink for w in batch]
        streamer = BatchStreamer(self.tokenizer, self.end_token_ids, sinks) if any(sinks) else None
        try:
            abandoned = AbandonedRows(batch, self.stats)
            responses = await asyncio.to_thread(self.run_batch, [w.request for w in batch], streamer, abandoned)
            if len(responses) != len(batch):
                raise OmniError(f"the engine answered {len(responses)} of a batch of {len(batch)} requests")
        except Exception as exc:  # the requests get the error; the scheduler keeps serving
            if len(batch) == 1:
                batch[0].fail(exc)
                return
            # One bad request (say, a conversation the template rejects) must not fail the others: each
            # request that has not streamed anything yet is tried again on its own.
            for waiting in batch:
                if waiting.abandoned:
                    continue
                if waiting.sink is not None and waiting.sink.started:
                    waiting.fail(exc)
                else:
                    await self._run([waiting])
            return
        self.stats.record(len(batch))
        for waiting, response in zip(batch, responses, strict=True):
            waiting.deliver(response)
