"""The parallel Range download engine (DESIGN.md "Transfer engine"; TRANSFER_PITFALLS.md 3b).

The first request is a ranged GET of the file's head: its answer gives the size, the ETag
and whether Range works. Then connections fetch segments and write them at their offsets
into a preallocated ``<dest>.part`` file; a connection that runs out of work takes half of
the largest segment still running (``plan.SegmentPlan``), so a slow connection never
holds the tail back, unless that one ends within a few round trips anyway. Without
``parallel`` the number of connections follows the round trip of the first answer's
connection: a far server (a window-bound path, each connection capped by its round
trip) gets 16, a near one (where bytes cost CPU, not waiting) gets 4. Once the first
answer gives the size, the other connections start on equal shares of the rest.

Every answer is checked before a byte is written: the status, a Content-Range equal to
what was asked, and the number of bytes. A control record beside the ``.part`` file (the
URL, size, ETag and the ranges written) lets a killed or cancelled download fetch only
what is missing; ``If-Range`` with the ETag tells when the remote changed meanwhile
(``RemoteChanged``, or start over with ``on_change="restart"``). Without a strong ETag
the first answer's Last-Modified is the validator (RFC 9110 8.8.2), in If-Range only when
that answer's Date makes it strong; with neither, the bytes of an earlier run cannot be
trusted and a rerun starts from byte 0. At the end: the size, the SHA-256 when the server
gave one, then an atomic rename onto the destination.

To a plain ``http://`` server without a proxy the ranged GETs after the first take
``_http.PlainConnection``: each connection receives its answer's body straight into its
one block buffer, which goes to the file as it is (a sixth less CPU per byte than the
aiohttp path, and CPU is what bounds a near download). The first answer that is not a
plain 206 (a redirect, a chunked body, a head only aiohttp reads) sends that request, and
the rest of the download, back to the one HTTP path; a 401, a busy answer or a failed
connection only that request (a refresh; the one path's retries).
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal

import aiohttp
import anyio
import anyio.to_thread
import msgspec
from yarl import URL

from .._config import DEFAULT_TRANSFER, TransferConfig
from .._http import (
    HttpCore,
    PlainAnswer,
    PlainConnection,
    retry_after,
    retry_after_of,
    round_trip,
)
from ..errors import (
    ChecksumMismatch,
    DownloadError,
    ProtocolError,
    RangeNotSatisfiable,
    RemoteChanged,
    ServerError,
    TooManyRequests,
    TransferError,
    TransportError,
    collapse,
)
from .fileio import Sink, Writer
from .plan import NEAR, Segment, SegmentPlan, merge
from .progress import ProgressCallback, ProgressTracker
from .throttle import Throttle, shared

__all__ = ("DownloadResult", "download")

#: The first request asks for this much; smaller files are done in one request. (Not
#: more: on a long link a connection's first megabytes crawl through slow start, and its
#: connection, done early and warm, then takes half of a slower one's share.)
PROBE = 4 * 1024 * 1024
#: Default connections to a near server (round trip under NEAR seconds): there the
#: transfer is CPU-bound and more connections only cost (benchmarks/download.py: on
#: the plain path 4 beat 8 by 4-10% on 2 cores).
NEAR_CONNECTIONS = 4
#: Default connections to a far server: each is window-bound (rate ~ window / round
#: trip), so more of them fill the path; aria2's polite cap per server.
FAR_CONNECTIONS = 16
#: An idle connection takes half of a running segment only if that one has more than
#: this many round trips to go: a new request costs a round trip or two and
#: (on a new connection) a cold start, which near the end is slower than waiting.
SPLIT_AFTER = 4
#: Near a server, with a hash to check: the connections take stripes this large in order.
STRIPE = 8 * 1024 * 1024
#: The plain path's receive buffers: each connection's is up to PLAIN_BLOCK (every
#: block written costs a thread hop, which near a server costs more CPU than the copy),
#: all together within PLAIN_BUFFERS, and never under ``block_size``.
PLAIN_BLOCK = 4 * 1024 * 1024
PLAIN_BUFFERS = 32 * 1024 * 1024
#: ... but once it holds ``block_size`` it writes at least this often (seconds): on a slow
#: link progress events and the bandwidth limit keep the step of a block.
PLAIN_WRITE_EVERY = 0.1
#: How many times ``on_change="restart"`` starts over before giving up.
RESTARTS = 3
#: The hash follows the written bytes in steps of at least this much.
HASH_STEP = 16 * 1024 * 1024
#: Write the control record at most this often (seconds).
RECORD_EVERY = 1.0
#: The end of a stream of unknown length (a server without Range and Content-Length).
UNKNOWN_END = 2**63
log = logging.getLogger("aetiket")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)", re.ASCII)
_SHA256 = re.compile(r'"?([0-9a-f]{64})"?')


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    """What a download did."""

    dest: Path
    size: int
    seconds: float
    connections: int
    resumed: bool
    verified: bool
    sha256: str | None

    @property
    def rate(self) -> float:
        """Average bytes per second."""
        return self.size / self.seconds if self.seconds > 0 else math.inf


class ControlRecord(msgspec.Struct, kw_only=True):
    """What a resumed download needs to trust the ``.part`` file beside it.

    ``url`` is the resume key: the URL, or for an eTiKeT file its ``scope/uid`` (its
    download link may name another host next time); If-Range checks the rest.
    ``last_modified``/``date``: the first answer's headers, the validator when there is
    no strong ETag (a record with neither is not resumed).
    """

    url: str
    size: int
    etag: str | None
    done: list[tuple[int, int]]
    created: float = msgspec.field(default_factory=time.time)
    last_modified: str | None = None
    date: str | None = None


@dataclasses.dataclass
class _Remote:
    size: int | None
    etag: str | None  # strong only
    ranges: bool
    last_modified: str | None = None
    date: str | None = None

    def if_range(self) -> str | None:
        """The validator for If-Range (RFC 9110 13.1.5): the strong ETag, else a
        Last-Modified that is strong (the answer's Date a second or more after it)."""
        if self.etag:
            return self.etag
        modified, date = _http_date(self.last_modified), _http_date(self.date)
        if modified is not None and date is not None and date - modified >= 1:
            return self.last_modified
        return None


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _strong(etag: str | None) -> str | None:
    """A weak validator cannot pin a byte range (RFC 9110 8.8.3.2)."""
    return None if etag is None or etag.startswith("W/") else etag


def _same_date(a: str, b: str) -> bool:
    ta, tb = _http_date(a), _http_date(b)
    return a == b if ta is None or tb is None else ta == tb


def _cut(chunks: Sequence[bytes | memoryview], keep: int) -> list[bytes | memoryview]:
    """The first ``keep`` bytes of ``chunks``."""
    out: list[bytes | memoryview] = []
    for chunk in chunks:
        if keep <= 0:
            break
        out.append(chunk[:keep])
        keep -= len(out[-1])
    return out


class _Stalled(Exception):
    pass


class _Line:
    """A worker's plain connection, kept alive from one answer to its next request, and
    its receive buffer (made once: a fresh one per answer would be fresh pages to fault
    in each time)."""

    conn: PlainConnection | None = None
    buf: memoryview | None = None

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _NoRanges(DownloadError):
    """A 200 to the first ranged GETs of a download planned without a probe."""


class _Download:
    def __init__(
        self,
        http: HttpCore,
        url: str,
        dest: Path,
        *,
        config: TransferConfig,
        parallel: int | None,
        segment_size: int,
        progress: ProgressCallback | None,
        expected_size: int | None,
        expected_sha256: str | None,
        on_change: Literal["raise", "restart"],
        name: str,
        key: str | None = None,
        expected: Callable[[], Awaitable[tuple[int | None, str | None]]] | None = None,
        throttles: dict[float, Throttle] | None = None,
    ) -> None:
        self.http = http
        self.url = url
        # For messages: a presigned URL's query is a credential (exceptions get logged).
        self.where = str(URL(url).with_user(None).with_query(None).with_fragment(None))
        self._url = URL(url)
        # The plain path for the ranged GETs after the first (see the module's text).
        self._plain = http.plain_ok(self._url)
        self._plain_block = max(config.block_size, PLAIN_BUFFERS // FAR_CONNECTIONS)
        self.key = key or url
        self.expected = expected
        self.dest = dest
        self.sink = Sink(dest)
        self.control = dest.with_name(dest.name + ".part.json")
        self.config = config
        self.parallel = parallel
        self.segment_size = segment_size
        self.progress = progress
        self.expected_size = expected_size
        self.expected_sha256 = expected_sha256
        self.on_change = on_change
        self.name = name
        self.throttle = shared(throttles, config.bandwidth)
        self.remote = _Remote(size=None, etag=None, ranges=False)
        self.plan: SegmentPlan | None = None
        self.tracker = ProgressTracker(self.name, None, [None], progress)
        self.workers = 0
        self.peak = 0
        self._fanned = False
        self._probed = False  # the first answer of this start came (its _on_probe ran)
        # Planned from the file's record without a probe: until the first 206 confirms
        # them, Range support, the size and the ETag are assumptions.
        self._unconfirmed = False
        self.latency = 0.0
        self.resumed = False
        self._last_record = 0.0
        self._high = 0  # without Range: how far the one stream has ever written
        # The SHA-256 follows the written bytes in order while the download runs, so the
        # check at the end costs no second pass over the file.
        self._digest: hashlib._Hash | None = None
        self._hashed = 0
        self._written = anyio.Event()
        # One record write at a time: two threads on the one temp file would race
        # (the loser's rename finds no file).
        self._saving = anyio.Lock()

    # -- control record

    def _load_record(self) -> ControlRecord | None:
        try:
            record = msgspec.json.decode(self.control.read_bytes(), type=ControlRecord)
        except (FileNotFoundError, msgspec.DecodeError):
            return None
        if record.url != self.key or not self.sink.part.exists():
            return None
        if self.expected_size is not None and record.size != self.expected_size:
            return None
        if record.etag is None and record.last_modified is None:
            return None  # nothing can tell whether the remote still is that version
        return record

    def _write_record(self, record: ControlRecord) -> None:
        tmp = self.control.with_name(self.control.name + ".tmp")
        tmp.write_bytes(msgspec.json.encode(record))
        tmp.replace(self.control)

    async def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.plan is None or self.remote.size is None or not self.remote.ranges:
            return
        if not force and (now - self._last_record < RECORD_EVERY or self._saving.locked()):
            return  # (a save in flight: the next one writes the newer state)
        self._last_record = now
        plan, size = self.plan, self.remote.size
        with anyio.CancelScope(shield=True):
            async with self._saving:
                # The state when the turn comes: the last write is the newest.
                record = ControlRecord(
                    url=self.key,
                    size=size,
                    etag=self.remote.etag,
                    done=plan.done_ranges(),
                    last_modified=self.remote.last_modified,
                    date=self.remote.date,
                )
                await anyio.to_thread.run_sync(self._write_record, record)

    # -- the run

    async def run(self) -> DownloadResult:
        """The download, beside the emitter of its progress events: callbacks never run
        in a connection's path (a slow one delays events, not bytes; one that raises
        ends the download with its own exception)."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.tracker.run)
                result = await self._download()
                await self.tracker.finish()  # the last event; the emitter ends with it
        except BaseException as exc:
            raise self.tracker.outcome(collapse(exc, self._many_failed)) from None
        return result

    async def _download(self) -> DownloadResult:
        started = time.monotonic()
        record = await anyio.to_thread.run_sync(self._load_record)
        if record is not None:
            self.remote = _Remote(
                size=record.size,
                etag=record.etag,
                ranges=True,
                last_modified=record.last_modified,
                date=record.date,
            )
            self.resumed = True
            await self.sink.prepare(record.size, keep=True)
            self.plan = SegmentPlan(record.size, record.done, self.segment_size)
            self.tracker.restart(
                record.size, [record.size], skip=sum(e - s for s, e in merge(record.done))
            )
            try:
                await self._fetch_all(first=None, latency=self.http.round_trip_to(self.url))
            except RemoteChanged:
                if self.on_change != "restart":
                    raise
                self.resumed = False
                await self._follow_remote()
                await self._start_over_on_change()
        else:
            await self._start_over_on_change()
        size = self.remote.size
        assert size is not None
        await self._save(force=True)
        verified, digest = await self._verify(size)
        await self.sink.publish()
        await anyio.to_thread.run_sync(lambda: self.control.unlink(missing_ok=True))
        return DownloadResult(
            dest=self.dest,
            size=size,
            seconds=time.monotonic() - started,
            connections=self.peak,
            resumed=self.resumed,
            verified=verified,
            sha256=digest,
        )

    async def _start_over_on_change(self) -> None:
        """A fresh download; with ``on_change="restart"`` a remote that changes under it
        is fetched again from the start (a few times at most)."""
        for attempt in range(1, RESTARTS + 1):
            try:
                await self._start_over()
                return
            except RemoteChanged:
                if self.on_change != "restart" or attempt == RESTARTS:
                    raise
                await self._follow_remote()

    async def _follow_remote(self) -> None:
        """Restarting after a change: what the file record said (size, hash) is stale; ask
        again (``expected``). A hash the caller gave stays."""
        if self.expected is not None:
            self.expected_size, self.expected_sha256 = await self.expected()

    async def _start_over(self) -> None:
        """A fresh download: probe with the first ranged GET, then fan out; or, when the
        file's record gave the size and the server answered this client before (so its
        distance is known), all connections at once."""
        size, latency = self.expected_size, self.http.round_trip_to(self.url)
        if size is not None and size > PROBE and latency is not None:
            # The probe's answer would cost every other connection two round trips
            # (answer, then their own request) before their first byte.
            self.remote = _Remote(size=size, etag=None, ranges=True)
            self._unconfirmed = True
            await self.sink.prepare(None, keep=False)
            self.plan = SegmentPlan(size, [], self.segment_size)
            self.tracker.restart(size, [size])
            try:
                await self._fetch_all(first=None, latency=latency)
                return
            except _NoRanges:
                pass  # a server without Range after all: the probe's way, one stream
            self.plan, self._digest = None, None
            self._fanned = self._unconfirmed = False
        self.remote = _Remote(size=None, etag=None, ranges=False)
        self._probed = False
        await self.sink.prepare(None, keep=False)  # empty: the probe's connection writes
        await self._fetch_all(first=Segment(0, PROBE))

    async def _fetch_all(self, first: Segment | None, latency: float | None = None) -> None:
        """Run the connections: ``first`` (the probe), or with the plan already known
        (a resume, a size from the record) either all at once when ``latency`` is known
        or one connection first, whose round trip sets the rest."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if first is None:
                    assert self.plan is not None
                    if self._unconfirmed:
                        tg.start_soon(self.sink.preallocate, self.plan.size)
                    self._start_hashing()
                    if latency is not None:
                        self._fan_out(self._connections(latency))
                    else:
                        self.plan.cut(self.parallel or FAR_CONNECTIONS)
                        first = self.plan.take()
                if first is not None:
                    tg.start_soon(self._worker, first)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._save(force=True)
            raise collapse(exc, self._many_failed) from None
        if self.plan is not None and not self.plan.complete:
            raise DownloadError(
                f"{self.name}: the transfer ended with bytes missing "
                f"({self.plan.done_ranges()} of {self.remote.size})"
            )

    def _many_failed(self, message: str, errors: list[Exception]) -> TransferError:
        news = [e for e in errors if isinstance(e, RemoteChanged | _NoRanges)]
        if news:
            return news[0]  # several connections saw the same change: that is the news
        return DownloadError(
            f"{self.name}: connections {message}", segments=dict(enumerate(errors))
        )

    async def _on_probe(self, seg: Segment, remote: _Remote, latency: float) -> None:
        """The first answer is in: plan the rest and start the other connections."""
        self.remote, self._probed, self._high = remote, True, 0
        size, ranges = remote.size, remote.ranges
        if self.expected_size is not None and size is not None and size != self.expected_size:
            raise RemoteChanged(
                f"{self.name}: the server sends {size} bytes, the record says {self.expected_size}"
            )
        await self.sink.prepare(None, keep=True)
        # Reserving the blocks can take most of a second per GiB (tmpfs): it runs beside
        # the transfer, which writes into the same file meanwhile (fallocate keeps data).
        if size is not None and ranges:
            self._tg.start_soon(self.sink.preallocate, size)
        total = size
        self.tracker.restart(total, [total])
        if not ranges or size is None:
            seg.end = size if size is not None else UNKNOWN_END
            return
        seg.end = min(seg.end, size)
        self.plan = SegmentPlan(size, [], self.segment_size, first=seg.end)
        self.plan.adopt(seg)
        self._start_hashing()
        self._fan_out(self._connections(latency))

    def _connections(self, latency: float) -> int:
        """How many connections: ``parallel``, or by the server's round trip."""
        self.latency = latency
        if self.parallel is not None:
            count = self.parallel
        else:
            count = FAR_CONNECTIONS if latency >= NEAR else NEAR_CONNECTIONS
        self._plain_block = max(self.config.block_size, min(PLAIN_BLOCK, PLAIN_BUFFERS // count))
        return count

    def _fan_out(self, count: int) -> None:
        """Start connections up to ``count`` on equal shares of what is left, or, near a
        server and with a hash to check, on stripes taken in order of their offsets: the
        written prefix then grows at the whole rate and the hash keeps up with it (with
        shares only the first one's bytes could be hashed before the end)."""
        assert self.plan is not None
        self._fanned = True
        pieces = count - self.workers
        if self._digest is not None and self.latency < NEAR:
            pieces = max(pieces, -(-self.plan.missing // STRIPE))
        self.plan.cut(pieces)
        # Only for whole shares: splitting a running one would cut its connection.
        for _ in range(min(count - self.workers, self.plan.waiting)):
            self._spawn()

    def _take(self) -> Segment | None:
        assert self.plan is not None
        return self.plan.take(anyio.current_time(), SPLIT_AFTER * self.latency)

    def _spawn(self) -> None:
        seg = self._take()
        if seg is not None:
            self._tg.start_soon(self._worker, seg)

    async def _worker(self, seg: Segment | None) -> None:
        self.workers += 1
        self.peak = max(self.peak, self.workers)
        line = _Line()
        try:
            async with self.sink.writer() as writer:
                while seg is not None:
                    warm = await self._segment(seg, writer, line)
                    if self.plan is None:
                        return  # no Range support: the one stream was everything
                    self.plan.finish(seg)
                    await self._save()
                    if not warm and self.latency >= NEAR:
                        # Its answer was cut (another connection took the tail), which
                        # closed the connection: on a far link a new one starts cold and
                        # would end after the others.
                        return
                    seg = self._take()
        finally:
            line.drop()
            self.workers -= 1

    async def _segment(self, seg: Segment, writer: Writer, line: _Line) -> bool:
        """Fetch ``seg`` to its end, with retries; True if the connection stays open."""
        failures = 0
        warm = False
        while seg.pos < seg.end:
            before = seg.pos
            try:
                warm = await self._fetch(seg, writer, line)
            except (TransportError, ServerError, TooManyRequests, ProtocolError, _Stalled) as exc:
                if seg.pos > before:
                    failures = 0
                failures += 1
                if failures > self.config.max_retries:
                    raise DownloadError(
                        f"{self.name}: bytes {seg.pos}-{seg.end} failed {failures} times in "
                        f"a row; last: {exc}. Run the download again to resume.",
                        segments={seg.pos: exc},
                    ) from exc
                await anyio.sleep(self.http.retry.delay(failures, retry_after_of(exc)))
        return warm

    async def _fetch(self, seg: Segment, writer: Writer, line: _Line) -> bool:
        """One GET of ``seg`` from its position; writes what arrives, checked. True if
        the answer was read to its end (its connection stays open for the next)."""
        # (Without Range and Content-Length the size stays unknown after the first
        # answer: a retry of that stream is no probe, it starts the stream over.)
        probing = not self._probed and self.remote.size is None
        last = seg.end - 1 if seg.end != UNKNOWN_END else None
        headers = {
            "Accept-Encoding": "identity",
            "Range": f"bytes={seg.pos}-{'' if last is None else last}",
        }
        validator = self.remote.if_range()
        if validator and self.resumed and not probing:
            # Resuming bytes of an earlier run: only if the remote is still that version.
            # (Within one run every answer's validators are compared with the first's.)
            headers["If-Range"] = validator
        # (Asked each time: a cookie the server set meanwhile is for aiohttp to send.)
        if self._plain and self.remote.ranges and not probing and self.http.plain_ok(self._url):
            try:
                warm = await self._fetch_plain(seg, writer, line, headers)
            except RangeNotSatisfiable as exc:
                raise self._changed_size(f"416 for bytes {seg.pos}-") from exc
            if warm is not None:
                return warm
        stall = self.config.stall_timeout
        # The stall watch starts with the answer: until then the connect and read
        # timeouts apply, and a Retry-After wait inside send() is no stall.
        with anyio.CancelScope() as scope:
            asked = anyio.current_time()
            try:
                async with self.http.send(
                    "GET", self.url, headers=headers, ok=frozenset({200, 206}), total_timeout=False
                ) as resp:
                    now = anyio.current_time()
                    seg.answered(now)
                    scope.deadline = now + stall
                    if probing:
                        await self._probe_answer(seg, resp, round_trip(resp, now - asked))
                    else:
                        self._check(seg, resp)
                        if not self._fanned and self.plan is not None:  # a resume's first
                            self._fan_out(self._connections(round_trip(resp, now - asked)))
                    return await self._read_into(seg, resp, writer, scope, stall)
            except RangeNotSatisfiable as exc:
                if probing and seg.pos == 0:
                    await self._on_probe(seg, _Remote(0, None, ranges=True), 0.0)  # empty
                    seg.end = 0
                    return True
                # Bytes within the size the record or the first answer gave: the file
                # is shorter now.
                raise self._changed_size(f"416 for bytes {seg.pos}-") from exc
        raise _Stalled(f"{self.name}: no byte for {stall:.0f} s at offset {seg.pos}")

    async def _fetch_plain(
        self, seg: Segment, writer: Writer, line: _Line, headers: dict[str, str]
    ) -> bool | None:
        """``_fetch`` on the plain path: the same checks, the body received straight
        into one block buffer. None when the answer is not a plain 206: the caller then
        asks again the one HTTP way, which deals with it."""
        stall = self.config.stall_timeout
        conn, line.conn = line.conn, None  # back only if its answer is read to the end
        with anyio.CancelScope() as scope:
            asked = anyio.current_time()
            try:
                conn, answer = await self.http.plain_get(conn, self._url, headers)
            except ProtocolError as exc:
                # A head this strict reader does not take (a folded line, bare LFs, a
                # control byte...) but aiohttp may: the rest of the download goes that way.
                self._plain = False
                log.debug("%s: %s; asked again with aiohttp", self.where, exc)
                return None
            except TransportError as exc:
                if self.http.retry.max_attempts < 2:
                    raise
                # The one path tries a GET again (RetryPolicy) before the segment counts a
                # failure: after the first wait, this request is its to retry.
                log.debug("%s: %s; asked again with aiohttp", self.where, exc)
                await anyio.sleep(self.http.retry.delay(1))
                return None
            try:
                if answer.status in self.http.retry.statuses and self.http.retry.max_attempts > 1:
                    # As a failed connection above: the wait (Retry-After), then the one
                    # path's retries.
                    wait = self.http.retry.delay(1, retry_after(answer.headers.get("Retry-After")))
                    conn.close()
                    log.debug(
                        "%s: a %d answer, asked again with aiohttp", self.where, answer.status
                    )
                    await anyio.sleep(wait)
                    return None
                if answer.status in (416, 429) or answer.status >= 500:
                    # As the one path would (after its own retries): the error, whose
                    # Retry-After the segment's retry honours.
                    raise await self.http.plain_error(conn, answer, self._url)
                if not answer.plain and answer.status != 200:  # (a 200 is _check's)
                    # A redirect, a 401 (a refresh), another error, a chunked body: ask
                    # again the one way, which deals with it; after a 401 only that request.
                    self._plain = answer.status == 401
                    log.debug(
                        "%s: a %d answer, asked again with aiohttp", self.where, answer.status
                    )
                    return None
                now = anyio.current_time()
                seg.answered(now)
                scope.deadline = now + stall
                self._check(seg, answer)
                if not self._fanned and self.plan is not None:  # a resume's first
                    self._fan_out(self._connections(conn.round_trip or now - asked))
                if line.buf is None:
                    line.buf = memoryview(bytearray(self._plain_block))
                done = await self._read_plain(seg, conn, answer, line.buf, writer, scope, stall)
                if done and answer.keep_alive:
                    line.conn, conn = conn, None
                return done
            finally:
                if conn is not None:
                    conn.close()
        raise _Stalled(f"{self.name}: no byte for {stall:.0f} s at offset {seg.pos}")

    async def _read_plain(
        self,
        seg: Segment,
        conn: PlainConnection,
        answer: PlainAnswer,
        buf: memoryview,
        writer: Writer,
        scope: anyio.CancelScope,
        stall: float,
    ) -> bool:
        """Receive a plain answer's body into ``buf``, written out each time it is
        full (or holds a block and PLAIN_WRITE_EVERY passed). True if the answer was read
        to its end."""
        assert answer.content_length is not None
        if len(buf) < len(answer.rest):  # (a head read holds at most 16 KiB of body)
            buf = memoryview(bytearray(len(answer.rest)))
        # A bandwidth limit takes its bytes at each write: it keeps the step of a block.
        block = len(buf) if self.throttle is None else max(self.config.block_size, len(answer.rest))
        left = answer.content_length  # bytes of this answer not yet in ``buf``
        n = min(len(answer.rest), left, seg.end - seg.pos)
        buf[:n] = answer.rest[:n]
        left -= n
        seg.ahead = n
        rearm = 0.0
        small = self.config.block_size
        due = time.monotonic() + PLAIN_WRITE_EVERY
        try:
            while left > 0 and seg.pos + n < seg.end:  # the end moves when a split takes the tail
                want = min(block - n, left, seg.end - seg.pos - n)
                try:
                    got = await conn.read_into(buf[n : n + want])
                except OSError as exc:
                    got, broke = 0, f"{type(exc).__name__}: {exc}"
                else:
                    broke = "the server closed the connection"
                if not got:
                    if n:
                        await self._commit(seg, writer, [buf[:n]], n, scope, stall)
                    raise TransportError(
                        f"GET {self.where}: the body broke off at byte {seg.pos}: {broke}"
                    )
                n += got
                left -= got
                seg.ahead = n
                now = time.monotonic()
                if now >= rearm:  # moving the deadline costs a timer: not for every read
                    scope.deadline = anyio.current_time() + stall
                    rearm = now + stall / 8
                if n == block or (n >= small and now >= due):
                    await self._commit(seg, writer, [buf[:n]], n, scope, stall)
                    n = 0
                    due = time.monotonic() + PLAIN_WRITE_EVERY
            if n:
                await self._commit(seg, writer, [buf[:n]], n, scope, stall)
        finally:
            seg.ahead = 0  # bytes not written are not received: a retry fetches them
        if seg.pos < seg.end:
            raise TransportError(
                f"GET {self.where}: the answer ended at byte {seg.pos}, {seg.end - seg.pos} short"
            )
        # More bytes than announced came with the head: the connection is out of step.
        return left == 0 and len(answer.rest) <= answer.content_length

    async def _commit(
        self,
        seg: Segment,
        writer: Writer,
        chunks: Sequence[bytes | memoryview],
        size: int,
        scope: anyio.CancelScope,
        stall: float,
    ) -> None:
        """Write ``size`` received bytes at ``seg.pos``, then count them."""
        over = seg.pos + size - seg.end
        if over > 0:
            # take() leaves received bytes alone (seg.ahead), so this is a guard: bytes
            # past the end are another connection's, never written or counted here.
            size = max(0, size - over)
            chunks, seg.ahead = _cut(chunks, size), size
        if self.throttle is not None:
            scope.deadline = math.inf  # waiting for the bandwidth limit is no stall
            await self.throttle.take(size)
        written = await writer.write(seg.pos, chunks)
        scope.deadline = anyio.current_time() + stall  # a throttled wait is no stall
        seg.pos += written
        seg.ahead = 0
        self._written.set()
        if self.remote.ranges:
            self.tracker.add(written)  # with Range every byte is written once
        elif seg.pos > self._high:  # one stream that may have started over
            self.tracker.add(seg.pos - self._high)
            self._high = seg.pos
        await self._save()

    async def _probe_answer(
        self, seg: Segment, resp: aiohttp.ClientResponse, latency: float
    ) -> None:
        remote = _Remote(
            size=resp.content_length,
            etag=_strong(resp.headers.get("ETag")),
            ranges=False,  # 200: Range is not supported; this one answer is the whole file
            last_modified=resp.headers.get("Last-Modified"),
            date=resp.headers.get("Date"),
        )
        if resp.status == 206:
            start, end, total = _content_range(resp.headers.get("Content-Range"))
            if start != seg.pos or total is None:
                raise ProtocolError(
                    f"GET {self.where}: asked for bytes {seg.pos}-, got "
                    f"Content-Range {resp.headers.get('Content-Range')!r}"
                )
            seg.end = min(seg.end, end + 1)
            remote.size, remote.ranges = total, True
        await self._on_probe(seg, remote, latency)

    def _changed_size(self, answer: str) -> RemoteChanged:
        return RemoteChanged(
            f"{self.name}: the server answers {answer} where {self.remote.size} bytes "
            "were expected; download it again, or use on_change='restart'"
        )

    def _pin(self, resp: aiohttp.ClientResponse | PlainAnswer) -> None:
        """Never mix two versions in one file (a server may ignore If-Range, or not be
        asked): an answer must name the version of the first answer (or the record).
        The strong ETag decides (another one, even weak, is another version); only
        without one, Last-Modified."""
        etag = resp.headers.get("ETag")
        if self.remote.etag:
            if etag and etag != self.remote.etag:
                raise self._changed(f"ETag {etag}, was {self.remote.etag}")
            return
        modified, pinned = resp.headers.get("Last-Modified"), self.remote.last_modified
        if pinned and modified and not _same_date(modified, pinned):
            raise self._changed(f"Last-Modified {modified}, was {pinned}")

    def _changed(self, what: str) -> RemoteChanged:
        return RemoteChanged(
            f"{self.name}: the remote changed ({what}); download it again, or use "
            "on_change='restart'"
        )

    def _check(self, seg: Segment, resp: aiohttp.ClientResponse | PlainAnswer) -> None:
        if resp.status == 200 and not self.remote.ranges:
            # No Range support: the stream starts over at byte 0 (the bytes up to the
            # furthest ever written are not counted again), if the remote is the same.
            self._pin(resp)
            length = resp.content_length
            if self.remote.size is not None and length is not None and length != self.remote.size:
                raise self._changed_size(f"200 with {length} bytes")
            seg.pos = 0
            return
        if resp.status == 200 and self._unconfirmed:
            self.remote.ranges = False  # no control record for ranges that do not exist
            raise _NoRanges(f"GET {self.where}: a 200 to a ranged GET (no Range support)")
        if resp.status == 200:
            self._pin(resp)  # an answer that names another version says so
            validator = self.remote.if_range() if self.resumed else self.remote.etag
            if validator:
                raise self._changed(f"If-Range {validator} no longer matches")
            raise ProtocolError(
                f"GET {self.where}: asked for bytes {seg.pos}-{seg.end - 1}, "
                "the server sent the whole file (200)"
            )
        start, end, total = _content_range(resp.headers.get("Content-Range"))
        if self._unconfirmed:
            if total != self.remote.size:
                raise self._changed_size(f"Content-Range {resp.headers.get('Content-Range')}")
            # The first answer's validators pin the rest.
            self.remote.etag = _strong(resp.headers.get("ETag"))
            self.remote.last_modified = resp.headers.get("Last-Modified")
            self.remote.date = resp.headers.get("Date")
            self._unconfirmed = False
        self._pin(resp)
        length = resp.content_length
        if (
            start != seg.pos
            or end + 1 < seg.end
            or total != self.remote.size
            or (length is not None and length != end - start + 1)
        ):
            raise ProtocolError(
                f"GET {self.where}: asked for bytes {seg.pos}-{seg.end - 1} of "
                f"{self.remote.size}, got Content-Range "
                f"{resp.headers.get('Content-Range')!r}: nothing written"
            )

    async def _read_into(
        self,
        seg: Segment,
        resp: aiohttp.ClientResponse,
        writer: Writer,
        scope: anyio.CancelScope,
        stall: float,
    ) -> bool:
        block = self.config.block_size
        pending: list[bytes] = []
        size = 0
        rearm = 0.0

        async def flush() -> None:
            nonlocal pending, size
            await self._commit(seg, writer, pending, size, scope, stall)
            pending, size = [], 0

        try:
            while seg.pos + size < seg.end:
                try:
                    # readchunk hands over aiohttp's buffers one by one (readany would
                    # join them: a copy, and fresh pages to fault in, per read).
                    chunk, boundary = await resp.content.readchunk()
                except (aiohttp.ClientError, OSError) as exc:
                    if size:
                        await flush()  # what arrived intact before the break is kept
                    raise TransportError(
                        f"GET {self.where}: the body broke off at byte "
                        f"{seg.pos}: {type(exc).__name__}: {exc}"
                    ) from exc
                if not chunk:
                    # (b"", True) ends an HTTP chunk of a chunked body; an empty body's
                    # reader says the same forever, hence the EOF check.
                    if boundary and not resp.content.at_eof():
                        continue
                    break
                now = time.monotonic()
                if now >= rearm:  # moving the deadline costs a timer: not for every chunk
                    scope.deadline = anyio.current_time() + stall
                    rearm = now + stall / 8
                room = seg.end - (seg.pos + size)  # the end moves when a split takes the tail
                if room <= 0:
                    break
                if len(chunk) > room:
                    chunk = chunk[:room]
                pending.append(chunk)
                size += len(chunk)
                seg.ahead = size
                if size >= block:
                    await flush()
            if size:
                await flush()
        finally:
            seg.ahead = 0  # bytes not written are not received: a retry fetches them
        if seg.end == UNKNOWN_END:
            seg.end = seg.pos  # the one stream of a server without Range: it is all there
            self.remote.size = self.tracker.total = seg.pos
        elif seg.pos < seg.end:
            raise TransportError(
                f"GET {self.where}: the answer ended at byte {seg.pos}, {seg.end - seg.pos} short"
            )
        if not self.remote.ranges and not resp.content.at_eof() and await self._more(resp):
            # The whole file again (a retry), longer than the first answer said.
            raise self._changed_size("200 with more bytes")
        if not resp.content.at_eof():
            resp.close()  # the rest of this answer is another connection's: drop it
            return False
        return True

    @staticmethod
    async def _more(resp: aiohttp.ClientResponse) -> bool:
        """Whether a body goes on (read to its end already otherwise)."""
        try:
            return bool(await resp.content.read(1))
        except (aiohttp.ClientError, OSError):
            return False  # broken after the bytes wanted: they are all there

    def _expected_sha256(self) -> str | None:
        if self.expected_sha256 is not None:
            return self.expected_sha256
        match = _SHA256.fullmatch(self.remote.etag or "")
        return match.group(1) if match else None

    def _start_hashing(self) -> None:
        """Hash alongside the download when there is a hash to check it against."""
        if self.config.verify and self._expected_sha256() is not None and self.plan:
            self._digest, self._hashed = hashlib.sha256(), 0
            self._tg.start_soon(self._follow_hash)

    async def _follow_hash(self) -> None:
        """Hash the written prefix of the ``.part`` file as it grows (off the loop)."""
        assert self.plan is not None and self._digest is not None
        size = self.plan.size
        while self._hashed < size:
            self._written = anyio.Event()  # before looking: no write can slip by unseen
            done = self.plan.done_ranges()
            frontier = done[0][1] if done and done[0][0] == 0 else 0
            if frontier - self._hashed < HASH_STEP and frontier < size:
                await self._written.wait()  # hash in big steps: one file open per step
                continue
            self._hashed = await self.sink.hash_into(self._digest, self._hashed, frontier)

    async def _verify(self, size: int) -> tuple[bool, str | None]:
        part_size = (await anyio.to_thread.run_sync(self.sink.part.stat)).st_size
        if part_size != size:
            if part_size > size:
                await self.sink.truncate(size)  # preallocation rounded up
            else:
                raise DownloadError(f"{self.name}: {part_size} bytes on disk, {size} expected")
        if not self.config.verify:
            return False, None
        expected = self._expected_sha256()
        if expected is None:
            return True, None  # size checked; no content hash to compare with
        if self._digest is not None and self._hashed == size:
            digest = self._digest.hexdigest()
        else:
            digest = await self.sink.sha256(size)
        if digest != expected:
            await self.sink.discard()
            await anyio.to_thread.run_sync(lambda: self.control.unlink(missing_ok=True))
            raise ChecksumMismatch(
                f"{self.name}: the bytes hash to {digest}, the server "
                f"says {expected}; the partial file was removed"
            )
        return True, digest


def _content_range(value: str | None) -> tuple[int, int, int | None]:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        raise ProtocolError(f"a 206 answer needs a Content-Range, got {value!r}")
    first, last, total = (int(v) if v != "*" else None for v in match.groups())
    assert first is not None and last is not None
    if last < first or (total is not None and last >= total):
        raise ProtocolError(f"an impossible Content-Range {value!r} (RFC 9110 14.4)")
    return first, last, total


async def download(
    http: HttpCore,
    url: str,
    dest: str | Path,
    *,
    parallel: int | None = None,
    segment_size: int | None = None,
    config: TransferConfig = DEFAULT_TRANSFER,
    progress: ProgressCallback | None = None,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    on_change: Literal["raise", "restart"] = "raise",
    resume_key: str | None = None,
    expected: Callable[[], Awaitable[tuple[int | None, str | None]]] | None = None,
    throttles: dict[float, Throttle] | None = None,
) -> DownloadResult:
    """Download ``url`` (a path on the client's server, or any absolute URL) to ``dest``.

    ``parallel`` fixes the number of connections; None picks 8 for a near server and 16
    for a far one (by the first answer's latency).
    ``segment_size`` is the smallest piece a connection takes over from another.
    ``resume_key`` names the download for a later resume (default: the URL).
    ``expected``: where the expected size and hash came from (the server's record), asked
    again when ``on_change="restart"`` follows a new version.
    ``throttles``: the bandwidth buckets this download shares (``throttle.shared``).
    """
    if parallel is not None and parallel < 1:
        raise ValueError("parallel must be at least 1")
    target = Path(dest)
    job = _Download(
        http,
        str(http.url(url)),
        target,
        config=config,
        parallel=parallel,
        segment_size=segment_size or config.min_part // 4,
        progress=progress,
        expected_size=expected_size,
        expected_sha256=expected_sha256,
        on_change=on_change,
        name=target.name,
        key=resume_key,
        expected=expected,
        throttles=throttles,
    )
    return await job.run()
