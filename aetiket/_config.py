"""Client settings: frozen ``Timeouts``, ``Limits``, ``RetryPolicy`` with their defaults.

Given once to :class:`aetiket.Client`; every field has a default meant for real servers
over real networks (the original client's 5 s total timeout broke large requests).
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
from pathlib import Path

__all__ = (
    "DEFAULT_LIMITS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "DEFAULT_TRANSFER",
    "Limits",
    "RetryPolicy",
    "Timeouts",
    "TransferConfig",
    "default_home",
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

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (full jitter, or Retry-After)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))


MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """How uploads and downloads move bytes.

    ``parallel``: partial uploads per file; None picks by the server's latency (its
    OPTIONS answer): one upload to a near server (loopback, LAN: there a concatenation
    costs more than parallel connections bring), 8 to a far one (each connection is
    window-bound on a long round trip). Downloads choose theirs per call.
    ``chunk_size``: bytes per tus PATCH request at most (a part may take several). Large
    by default (1 GiB, as tus-js-client sends a whole file): each PATCH costs a round trip
    and the server's per-request work, and a broken PATCH keeps what arrived anyway. A
    413 (a proxy's body limit, e.g. nginx's ``client_max_body_size``) halves the PATCHes
    (down to 1 MiB); setting it smaller spares those refused requests.
    ``min_part``: no part (or segment) smaller than this; fewer parts for small files.
    ``block_size``: bytes read from or written to disk at a time (memory per connection).
    ``checksum``: per-PATCH Upload-Checksum: ``"auto"`` (the best the server offers),
    an algorithm name, or ``None`` (the default: ``verify`` already proves the whole file,
    and a second hash of every byte on both sides halves the rate where CPU is the limit).
    With a checksum a PATCH holds its chunk (8 MiB) in memory. ``verify``: check the
    size and the content's SHA-256 (the eTiKeT ETag) at the end.
    ``stall_timeout``: a request that moves no byte for this long is aborted and resumed.
    ``max_retries``: consecutive failures of one part without progress before giving up
    (progress resets the count). ``bandwidth``: bytes/s for all of a client's transfers
    together, however many run at once (None: no limit; a call given ``bandwidth=`` has
    that limit to itself). ``resume_dir``: where resume records live (None:
    ``default_home()/resume``).
    """

    parallel: int | None = None
    chunk_size: int = 1024 * MiB
    min_part: int = 8 * MiB
    block_size: int = 1 * MiB
    checksum: str | None = None
    verify: bool = True
    stall_timeout: float = 60.0
    max_retries: int = 8
    bandwidth: float | None = None
    resume_dir: Path | None = None

    def __post_init__(self) -> None:
        if (self.parallel is not None and self.parallel < 1) or min(
            self.chunk_size, self.block_size
        ) < 1:
            raise ValueError("parallel, chunk_size and block_size must be positive")


def default_home() -> Path:
    """aetiket's own data: ``$AETIKET_HOME``, else the user data dir (XDG on Linux)."""
    env = os.environ.get("AETIKET_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "aetiket"


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_LIMITS = Limits()
DEFAULT_RETRY = RetryPolicy()
DEFAULT_TRANSFER = TransferConfig()
#: How many records a list call asks for per request.
DEFAULT_PAGE_SIZE = 500
