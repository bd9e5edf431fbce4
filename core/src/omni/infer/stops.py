"""Stop strings on generated text: cut a finished answer, or hold back a streamed one until it is safe.

Engines stop generating at a stop string, but the tokens that completed it were already produced; the
answer a user sees ends before the stop string (as in the OpenAI API).
"""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the earliest stop string, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class StopStringFilter:
    """Feed streamed pieces in; get out the text that is certain to come before any stop string.

    Text that could be the start of a stop string is held back until the next piece decides it.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.stopped = False
        self._pending = ""

    def feed(self, piece: str) -> str:
        """The text that can be shown now; after a stop string is seen, always ''."""
        if self.stopped:
            return ""
        self._pending += piece
        text, self.stopped = cut_at_stop(self._pending, self.stops)
        if self.stopped:
            self._pending = ""
            return text
        keep = self._partial_stop_length(self._pending)
        ready, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep :]
        return ready

    def flush(self) -> str:
        """What was held back, once the stream has ended without completing a stop string."""
        rest, self._pending = self._pending, ""
        return "" if self.stopped else rest

    def _partial_stop_length(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
