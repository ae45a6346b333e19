"""Client settings: frozen ``Timeouts``, ``Limits``, ``RetryPolicy`` with their defaults.

Given once to :class:`aetiket.Client`; every field has a default meant for real servers
over real networks (the original client's 5 s total timeout broke large requests).
"""

from __future__ import annotations

import dataclasses

__all__ = (
    "DEFAULT_LIMITS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "Limits",
    "RetryPolicy",
    "Timeouts",
)


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds before a request is abandoned (None: no limit).

    ``connect``: to get a connection (pool wait included); ``read``: between two reads
    of the answer; ``total``: a whole API call. Transfers use ``connect`` and ``read``
    only: a big file may take as long as it takes while bytes keep moving.
    """

    connect: float | None = 15.0
    read: float | None = 120.0
    total: float | None = 300.0


@dataclasses.dataclass(frozen=True)
class Limits:
    """The connection pool: ``max_connections`` in all, ``max_per_host`` to one host."""

    max_connections: int = 100
    max_per_host: int = 64
    keepalive: float = 30.0


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How failed idempotent requests are retried: exponential backoff, full jitter.

    Attempt ``n`` (from 1) waits ``uniform(0, min(backoff_max, backoff_base * 2**n))``
    seconds, or the server's Retry-After when it sent one (capped by ``retry_after_max``).
    Retries stop after ``max_attempts`` attempts or ``total`` seconds, whichever first.
    """

    max_attempts: int = 5
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    retry_after_max: float = 60.0
    total: float = 120.0
    statuses: frozenset[int] = frozenset({408, 429, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_LIMITS = Limits()
DEFAULT_RETRY = RetryPolicy()
#: How many records a list call asks for per request.
DEFAULT_PAGE_SIZE = 500
