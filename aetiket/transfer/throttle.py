"""A bandwidth limit shared by every connection of the engine (a token bucket).

A client's transfers share its bucket (``shared``): the limit a client is configured
with holds for all its uploads and downloads together, however many run at once (a push
of many files included); a call given a limit of its own has that bucket to itself.
"""

from __future__ import annotations

import time

import anyio

__all__ = ("Throttle", "shared")


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


def shared(pool: dict[float, Throttle] | None, rate: float | None) -> Throttle | None:
    """The bucket for ``rate`` in ``pool`` (made on first use); None without a limit.
    Without a pool (a transfer outside a client) the bucket is the transfer's own."""
    if not rate:
        return None
    if pool is None:
        return Throttle(rate)
    if rate not in pool:
        pool[rate] = Throttle(rate)
    return pool[rate]
