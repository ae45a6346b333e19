"""A bandwidth limit shared by every connection of the engine (a token bucket)."""

from __future__ import annotations

import time

import anyio

__all__ = ("Throttle",)


class Throttle:
    """At most ``rate`` bytes per second on average, with bursts up to one second's worth.

    ``take(n)`` waits until ``n`` bytes may go. Tasks share the bucket under a lock, so the
    limit holds for the whole engine however many connections run.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("a bandwidth limit must be positive (bytes per second)")
        self.rate = rate
        self._tokens = rate
        self._stamp = time.monotonic()
        self._lock = anyio.Lock()

    async def take(self, n: int) -> None:
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            if self._tokens < 0:
                # Pay the debt while holding the lock: the others queue behind.
                await anyio.sleep(-self._tokens / self.rate)
