"""An asyncio event loop on its own thread, for engines whose async client is bound to the loop it started on.

vLLM's `AsyncLLM` and SGLang's `Engine` attach to one event loop. An engine keeps such a client on a
`LoopThread` and reaches it from anywhere — synchronous code, `omni serve`'s uvicorn loop, a caller's
`asyncio.run` — through `run`, `submit`, `stream_to_loop` and `stream_to_thread`. `LoopEngine` is the
engine interface built on that: an engine supplies one coroutine, `_deltas`, run on its loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from omni.infer.engine import Engine, InferRequest, InferResponse, StreamDelta

T = TypeVar("T")
_END = object()


class LoopThread:
    """An event loop running on a daemon thread until `close`."""

    def __init__(self, name: str = "omni-engine-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coroutine` on the loop; cancelling the returned future cancels it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result (from any thread but the loop's own)."""
        return self.submit(coroutine).result()

    async def run_async(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await `coroutine` run on the loop, from another event loop."""
        return await asyncio.wrap_future(self.submit(coroutine))

    async def stream_to_loop(self, items: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Iterate `items()` (run on this loop) from the caller's event loop.

        Leaving the caller's loop early cancels the producer, so the engine can abort the request.
        """
        here = asyncio.get_running_loop()
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for item in items():
                    here.call_soon_threadsafe(inbox.put_nowait, item)
            except BaseException as exc:  # raised again in the caller's loop
                here.call_soon_threadsafe(inbox.put_nowait, _Failure(exc))
                raise
            finally:
                here.call_soon_threadsafe(inbox.put_nowait, _END)

        running = self.submit(produce())
        try:
            while (item := await inbox.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            running.cancel()

    def stream_to_thread(self, items: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """Iterate `items()` (run on this loop) from synchronous code; stopping early cancels the producer."""
        inbox: queue.Queue[Any] = queue.Queue()

        async def produce() -> None:
            try:
                async for item in items():
                    inbox.put(item)
            except BaseException as exc:
                inbox.put(_Failure(exc))
                raise
            finally:
                inbox.put(_END)

        running = self.submit(produce())
        try:
            while (item := inbox.get()) is not _END:
                if isinstance(item, _Failure):
                    if isinstance(item.error, asyncio.CancelledError):
                        return
                    raise item.error
                yield item
        finally:
            running.cancel()

    def close(self) -> None:
        """Stop the loop and wait for its thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class LoopEngine(Engine):
    """An engine whose async client lives on a `LoopThread` (`self._loop`, set by the subclass's constructor).

    The subclass implements `_deltas(request, stream=...)`: an async generator run on that loop, yielding each
    choice's `StreamDelta`s (with `stream`; none without) and then the whole `InferResponse`. Every entry point
    of the engine interface is built from it.
    """

    _loop: LoopThread

    def generate(self, requests: list[InferRequest]) -> list[InferResponse]:
        """Answer `requests` in order; they are submitted together so the library batches them."""

        async def all_of_them() -> list[InferResponse]:
            return list(await asyncio.gather(*(self._answer(r) for r in requests)))

        return self._loop.run(all_of_them())

    def stream(self, request: InferRequest) -> Iterator[str]:
        """Yield the first choice's text as it is generated; stops generating when the consumer stops reading."""
        for item in self._loop.stream_to_thread(lambda: self._deltas(request)):
            if isinstance(item, StreamDelta) and item.index == 0 and item.text:
                yield item.text

    async def generate_async(self, request: InferRequest) -> InferResponse:
        """Answer one request; concurrent calls are batched by the library."""
        return await self._loop.run_async(self._answer(request))

    async def stream_async(self, request: InferRequest) -> AsyncIterator[str]:
        """Async `stream`: the first choice's text as it is generated."""
        async for item in self.stream_deltas_async(request):
            if isinstance(item, StreamDelta) and item.index == 0 and item.text:
                yield item.text

    def stream_deltas_async(self, request: InferRequest) -> AsyncIterator[StreamDelta | InferResponse]:
        """Every choice's text as `StreamDelta`s while it is generated, then the whole `InferResponse`."""
        return self._loop.stream_to_loop(lambda: self._deltas(request))

    async def _answer(self, request: InferRequest) -> InferResponse:
        final = None
        async for item in self._deltas(request, stream=False):
            final = item
        assert isinstance(final, InferResponse)
        return final

    def _deltas(self, request: InferRequest, *, stream: bool = True) -> AsyncIterator[StreamDelta | InferResponse]:
        raise NotImplementedError
