"""The one progress event type of every transfer, and the tracker that emits it.

A transfer is made of parts (tus partial uploads, Range segments). For uploads the
tracker keeps, per part, the highest position ever sent: bytes sent again after a failure
are not counted twice, so ``done`` only grows and ends exactly at ``total``. Downloads
count bytes as they are written, and a byte is written once. Callbacks may be plain
or async functions; they run on the transfer's event loop, throttled to ``min_interval``
(the last event, with ``finished`` true, is always delivered).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ("Progress", "ProgressCallback", "ProgressTracker")


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a transfer stands.

    ``name`` says what moves (a path or ``scope/uid``); ``done``/``total`` are bytes of
    the whole transfer (``total`` None while unknown); ``part_done``/``part_total``
    the same for the part ``part`` that moved last (None for whole-transfer events);
    ``elapsed`` seconds since the start.
    """

    name: str
    done: int
    total: int | None
    elapsed: float
    part: int | None = None
    part_done: int = 0
    part_total: int | None = None
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        """0..1, or None while the total is unknown."""
        if not self.total:
            return None if self.total is None else 1.0
        return self.done / self.total

    @property
    def rate(self) -> float:
        """Average bytes per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


class ProgressTracker:
    """Aggregates per-part positions into throttled :class:`Progress` events."""

    def __init__(
        self,
        name: str,
        total: int | None,
        part_totals: list[int | None],
        callback: ProgressCallback | None,
        *,
        min_interval: float = 0.1,
        skip: int = 0,
    ) -> None:
        self.name = name
        self.total = total
        self._part_totals = part_totals
        self._positions = [0] * len(part_totals)
        self._callback = callback
        self._min_interval = min_interval
        self._started = time.monotonic()
        self._last_emit = 0.0
        self._done = skip
        self._skip = skip

    @property
    def done(self) -> int:
        return self._done

    def start_part_at(self, part: int, position: int) -> None:
        """A part resumes at ``position`` (already on the other side: counted as done)."""
        if position > self._positions[part]:
            self._done += position - self._positions[part]
            self._positions[part] = position

    async def advance(self, part: int, position: int) -> None:
        """Part ``part`` has sent or received up to ``position`` (its own offset)."""
        old = self._positions[part]
        if position <= old:
            return  # re-sent bytes: already counted
        self._positions[part] = position
        self._done += position - old
        now = time.monotonic()
        if now - self._last_emit >= self._min_interval:
            self._last_emit = now
            await self._emit(part, finished=False)

    async def add(self, n: int) -> None:
        """``n`` new bytes (downloads: each byte is written once, so this is monotonic)."""
        self._done += n
        now = time.monotonic()
        if now - self._last_emit >= self._min_interval:
            self._last_emit = now
            await self._emit(None, finished=False)

    async def finish(self) -> None:
        """The last event (always delivered)."""
        await self._emit(None, finished=True)

    async def _emit(self, part: int | None, *, finished: bool) -> None:
        if self._callback is None:
            return
        event = Progress(
            name=self.name,
            done=self._done,
            total=self.total,
            elapsed=time.monotonic() - self._started,
            part=part,
            part_done=self._positions[part] if part is not None else 0,
            part_total=self._part_totals[part] if part is not None else None,
            finished=finished,
        )
        result = self._callback(event)
        if inspect.isawaitable(result):
            await result
