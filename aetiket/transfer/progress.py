"""The one progress event type of every transfer, and the tracker that emits it.

A transfer is made of parts (tus partial uploads, Range segments). For uploads the
tracker keeps, per part, the highest position ever sent: bytes sent again after a failure
are not counted twice, so ``done`` only grows and ends exactly at ``total``. Downloads
count bytes as they are written, and a byte is written once (a download that starts over
from byte 0, because the remote changed or has no Range after all, counts again: see
``restart``).

Counting and calling back are apart. The byte paths (a request body being sent, an answer
being written) only count: ``start_part_at``, ``advance`` and ``add`` are plain calls that
neither wait nor run user code. Callbacks, plain or async functions, run in the tracker's
emitter (``run``): one task per transfer, in the engine's task group, never inside the
byte path. It makes one call at a time, at most one per ``min_interval`` seconds, with the
state of the moment (a slow callback gets fewer events; it never holds a byte back), and
stops at ``finish()``, which the engine awaits once the transfer is complete: the last
event, with ``finished`` true, is delivered exactly once and nothing comes after it. An
exception from a callback ends the emitter, so the task group cancels the transfer and the
caller gets that very exception (``outcome``); a cancelled transfer cancels a callback in
flight like any of its tasks.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable

import anyio

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
    """Counts a transfer's bytes per part; its emitter (``run``) turns the counts into
    throttled :class:`Progress` events for the callback."""

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
        self._callback = callback
        self._min_interval = min_interval
        self._started = time.monotonic()
        self._last_emit = -float("inf")
        self.restart(total, part_totals, skip=skip)
        self._moved = anyio.Event()  # counts changed since the last event
        self._closing = anyio.Event()  # finish() was called
        self._over = anyio.Event()  # the emitter has stopped
        self._emitting = False
        #: The exception a callback raised (the transfer ends with it), if any.
        self.error: Exception | None = None

    @property
    def done(self) -> int:
        return self._done

    def restart(self, total: int | None, part_totals: list[int | None], *, skip: int = 0) -> None:
        """Count from ``skip`` again, for ``total`` bytes (a download that starts over)."""
        self.total = total
        self._part_totals = part_totals
        self._positions = [0] * len(part_totals)
        self._done = skip
        self._part: int | None = None  # the part that moved last

    # -- counting (the byte paths): no await, no user code

    def start_part_at(self, part: int, position: int) -> None:
        """A part resumes at ``position`` (already on the other side: counted as done).
        No event for it alone: the parts' offsets come in one by one, and the first
        event should count them all (it comes with the first bytes that move)."""
        if position > self._positions[part]:
            self._done += position - self._positions[part]
            self._positions[part] = position

    def advance(self, part: int, position: int) -> None:
        """Part ``part`` has sent or received up to ``position`` (its own offset)."""
        old = self._positions[part]
        if position <= old:
            return  # re-sent bytes: already counted
        self._positions[part] = position
        self._done += position - old
        self._part = part
        self._moved.set()

    def add(self, n: int) -> None:
        """``n`` new bytes (downloads: each byte is written once, so this is monotonic)."""
        self._done += n
        self._part = None
        self._moved.set()

    # -- emitting

    async def run(self) -> None:
        """The emitter: run it in the transfer's task group, beside the tasks that move
        the bytes. It returns after delivering the last event (``finish``); an exception
        of the callback comes out of it (and so cancels the transfer)."""
        if self._callback is None or self._closing.is_set():
            return
        self._emitting = True
        try:
            while True:
                await self._moved.wait()
                if self._closing.is_set():
                    break
                wait = self._last_emit + self._min_interval - time.monotonic()
                if wait > 0:
                    with anyio.move_on_after(wait):
                        await self._closing.wait()
                    if self._closing.is_set():
                        break
                self._moved = anyio.Event()  # what moves from now on wakes it again
                self._last_emit = time.monotonic()
                await self._deliver(finished=False)
            await self._deliver(finished=True)
        finally:
            self._emitting = False
            self._over.set()

    async def finish(self) -> None:
        """The last event, ``finished`` true: once, after any call in flight has
        returned, and nothing after it. The emitter delivers it (here, if none runs)."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._moved.set()
        if self._emitting:
            await self._over.wait()
        elif self._callback is not None:
            await self._deliver(finished=True)

    def outcome(self, failure: BaseException) -> BaseException:
        """What a failed transfer raises: the callback's own exception when a callback
        raised (other failures then come from the transfer being torn down under it),
        else ``failure``. A cancellation or an interrupt stays what it is."""
        if self.error is not None and isinstance(failure, Exception):
            return self.error
        return failure

    async def _deliver(self, *, finished: bool) -> None:
        assert self._callback is not None
        part = None if finished else self._part
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
        try:
            result = self._callback(event)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self.error = exc
            raise
