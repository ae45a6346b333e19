"""A fault-injecting HTTP/1.1 reverse proxy for tests (STYLE.md "Tests": real HTTP only).

``FaultProxy`` listens on 127.0.0.1 (a port the OS picks) and forwards every client
connection to one upstream ``host:port``, one request at a time, parsing just enough
HTTP/1.1 to act per request: the request line, headers, ``Content-Length`` and chunked
bodies (both ways), 1xx interim answers, bodies delimited by the connection's end, and
keep-alive. ``Expect: 100-continue`` and upgrades are not supported.

::

    async with FaultProxy(server.url) as proxy:
        proxy.add(Fault(reset_before=True), method="GET", path="/api/v1/datasets/", nth=(2, 3))
        async with aetiket.Client(proxy.url) as client: ...
        assert proxy.count("POST", "/api/v1/refresh", forwarded=True) == 1

Rules (``proxy.add`` returns a ``Rule``; ``proxy.remove``/``proxy.clear`` take them away;
all of it may change while requests run) match a request by ``method``, by ``path`` (a
prefix) or ``regex`` (``re.search``), both on the path without its query, and by count:
``nth`` says which of the requests the rule matched (from 1) get the fault, ``times=N``
is ``nth=range(1, N + 1)``; neither: every one. Every rule counts every request it
matches; the first rule (in order of adding) whose count fires applies its fault, one
rule per request. A ``Fault``'s fields combine; those that do something:

* ``reset_before``: reset the client's connection (TCP RST); nothing reaches upstream.
* ``answer`` (``answer_headers``, ``answer_body``): answer this status itself (e.g. 503
  with ``{"Retry-After": "1"}``, 429, 502), without forwarding; the connection is kept.
* ``cut_request_after=N``: forward the head and N body bytes, then close both sides
  (upstream gets a FIN after the N bytes, the client a reset). ``cut_pause`` seconds
  between the last byte and the FIN let upstream consume the bytes first (an aiohttp
  server drops body bytes still buffered when the end arrives).
* ``stall_request=(N, seconds)``: pause the request body for ``seconds`` after N bytes.
* ``set_request_headers``: rewrite request headers (see ``set_headers``).
* ``reset_after``: forward the whole request, let upstream answer (and read its whole
  answer), then reset the client's connection: upstream did the work, the client cannot
  know (the ambiguous case).
* ``delay=seconds``: wait before sending the answer's head (a forwarded or own answer).
* ``set_headers``: rewrite response headers: ``{name: value}`` sets, ``None`` removes,
  a callable maps the current value (or None) to the new one (e.g. Upload-Offset,
  Content-Range, ETag). Framing follows the upstream's headers, whatever is rewritten.
* ``truncate_after=N``: send at most N bytes of the response body, then close.
* ``stall=(N, seconds)``: pause the response body for ``seconds`` after N bytes.
* ``close_after``: send the whole answer, then close the client's connection (a FIN, and
  no ``Connection: close`` before it: a server whose keep-alive timeout ran out).

Body byte counts are the bytes on the wire after the head (chunk framing included).
Observations: ``seen`` / ``forwarded`` count requests per ``(method, path)`` (arrived at
the proxy / sent on upstream, ``count()`` reads them), ``bytes_up`` / ``bytes_down`` the
body bytes forwarded each way, ``connections`` the client connections accepted
(``peak``: the most open at once), ``log``
one ``LogEntry(method, path, status, fault, forwarded)`` per request (status: what the
client was sent, None for a reset or cut), and each ``Rule``'s ``matched`` / ``applied``.
Leaving the ``async with`` closes the listener and cancels and awaits every connection
task.

Mind that aiohttp's client sends an idempotent request (GET, HEAD, PUT, DELETE, ...) once
more by itself when its connection is reset or closed before an answer: one call may then
show as two requests here (and meet a count-limited rule twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import re
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

__all__ = ("Fault", "FaultProxy", "LogEntry", "Rule")

HeaderChange = str | None | Callable[[str | None], str | None]
Headers = list[tuple[str, str]]
Framing = int | Literal["chunked", "eof"]
_CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Fault:
    """What to do to one request (see the module docstring); fields combine."""

    reset_before: bool = False
    answer: int | None = None
    answer_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    answer_body: bytes | None = None
    cut_request_after: int | None = None
    cut_pause: float = 0.0
    stall_request: tuple[int, float] | None = None
    set_request_headers: Mapping[str, HeaderChange] = dataclasses.field(default_factory=dict)
    reset_after: bool = False
    delay: float = 0.0
    set_headers: Mapping[str, HeaderChange] = dataclasses.field(default_factory=dict)
    truncate_after: int | None = None
    stall: tuple[int, float] | None = None
    close_after: bool = False

    def __str__(self) -> str:
        """The fields that do something, e.g. ``answer=503 delay=2.0`` (for the log)."""
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value not in (None, False, 0, {}):
                shown = dict(value) if isinstance(value, Mapping) else value
                parts.append(f"{field.name}={shown!r}")
        return " ".join(parts) or "none"


@dataclasses.dataclass
class Rule:
    """A fault and the requests it applies to; ``matched``/``applied`` count them."""

    fault: Fault
    method: str | None = None
    path: str | None = None
    regex: re.Pattern[str] | None = None
    nth: frozenset[int] | None = None
    matched: int = 0
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path is None or path.startswith(self.path))
            and (self.regex is None or self.regex.search(path) is not None)
        )


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """One request: what the client got (``status`` None: no answer) and the fault."""

    method: str
    path: str
    status: int | None
    fault: str | None
    forwarded: bool


class _Cut(Exception):
    """A truncate/cut fault's byte budget ran out: close the connection."""


class _Broken(Exception):
    """A peer broke the protocol or closed mid-message."""


class _Sink:
    """Writes body pieces to one side, counting bytes, stalling and cutting as told."""

    def __init__(
        self,
        writer: asyncio.StreamWriter | None,
        count: Callable[[int], None],
        limit: int | None = None,
        stall: tuple[int, float] | None = None,
    ) -> None:
        self.writer, self.count, self.limit, self.stall = writer, count, limit, stall
        self.sent = 0

    async def put(self, piece: bytes) -> None:
        if self.writer is None:  # draining a body nobody will see
            return
        if self.stall is not None and self.sent <= self.stall[0] < self.sent + len(piece):
            split = self.stall[0] - self.sent
            await self._write(piece[:split])
            await asyncio.sleep(self.stall[1])
            self.stall, piece = None, piece[split:]
        if self.limit is not None and self.sent + len(piece) >= self.limit:
            await self._write(piece[: self.limit - self.sent])
            raise _Cut
        await self._write(piece)

    async def _write(self, data: bytes) -> None:
        if data and self.writer is not None:
            self.writer.write(data)
            await self.writer.drain()
            self.sent += len(data)
            self.count(len(data))


async def _read_head(reader: asyncio.StreamReader) -> list[str] | None:
    """The lines of a message head; None when the peer closed before a new message."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _Broken("the peer closed mid-head") from None
        return None
    except asyncio.LimitOverrunError:
        raise _Broken("message head too large") from None
    return raw.decode("latin-1").split("\r\n")[:-2]


def _headers(lines: list[str]) -> Headers:
    out = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise _Broken(f"bad header line {line!r}")
        out.append((name.strip(), value.strip()))
    return out


def _get(headers: Headers, name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers if k.lower() == lowered), None)


def _rewrite(headers: Headers, changes: Mapping[str, HeaderChange]) -> Headers:
    out = list(headers)
    for name, change in changes.items():
        value = change(_get(out, name)) if callable(change) else change
        out = [(k, v) for k, v in out if k.lower() != name.lower()]
        if value is not None:
            out.append((name, value))
    return out


def _head(first: str, headers: Headers) -> bytes:
    return "".join([first, "\r\n", *(f"{k}: {v}\r\n" for k, v in headers), "\r\n"]).encode(
        "latin-1"
    )


def _framing(headers: Headers, *, request_method: str | None = None, status: int = 0) -> Framing:
    """How the body ends: after N bytes, with the last chunk, or with the connection."""
    if request_method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return 0
    if "chunked" in (_get(headers, "Transfer-Encoding") or "").lower():
        return "chunked"
    length = _get(headers, "Content-Length")
    if length is not None:
        return int(length)
    return "eof" if request_method is not None else 0


def _closes(version: str, headers: Headers) -> bool:
    conn = (_get(headers, "Connection") or "").lower()
    return "keep-alive" not in conn if version == "HTTP/1.0" else "close" in conn


async def _relay(reader: asyncio.StreamReader, framing: Framing, sink: _Sink) -> None:
    """Read one body framed as ``framing`` from ``reader`` into ``sink``, as on the wire."""

    async def exact(n: int) -> None:
        while n > 0:
            piece = await reader.read(min(n, _CHUNK))
            if not piece:
                raise _Broken("the peer closed mid-body")
            n -= len(piece)
            await sink.put(piece)

    if framing == "eof":
        while piece := await reader.read(_CHUNK):
            await sink.put(piece)
    elif framing == "chunked":
        try:
            while True:
                line = await reader.readuntil(b"\r\n")
                await sink.put(line)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                        await sink.put(line)  # trailers
                    await sink.put(line)
                    return
                await exact(size + 2)
        except (asyncio.IncompleteReadError, ValueError):
            raise _Broken("bad or broken chunked body") from None
    else:
        await exact(framing)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _close(writer: asyncio.StreamWriter | None) -> None:
    """Close gracefully: what was written still arrives, then a FIN."""
    if writer is not None and not writer.is_closing():
        writer.close()
    if writer is not None:
        with contextlib.suppress(OSError, RuntimeError):
            await writer.wait_closed()


class _Upstream:
    """The upstream connection that serves one client connection (opened when needed)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if (
            self.reader is None
            or self.writer is None
            or self.writer.is_closing()
            or self.reader.at_eof()  # upstream ended an idle keep-alive connection
        ):
            if self.writer is not None:
                self.writer.close()  # the old one, ended by the upstream: release it
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer


class FaultProxy:
    """The proxy (see the module docstring); ``async with`` starts and stops it."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream must be an http:// URL, got {upstream_url!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.rules: list[Rule] = []
        self.seen: Counter[tuple[str, str]] = Counter()
        self.forwarded: Counter[tuple[str, str]] = Counter()
        self.log: list[LogEntry] = []
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        self.peak = 0
        self._open = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- rules and observations

    def add(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str | None = None,
        regex: str | None = None,
        nth: int | Iterable[int] | None = None,
        times: int | None = None,
    ) -> Rule:
        """Apply ``fault`` to the requests matched (see the module docstring)."""
        if nth is not None and times is not None:
            raise ValueError("give nth or times, not both")
        which = (
            frozenset(range(1, times + 1))
            if times is not None
            else frozenset([nth])
            if isinstance(nth, int)
            else frozenset(nth)
            if nth is not None
            else None
        )
        rule = Rule(
            fault,
            method=method,
            path=path,
            regex=re.compile(regex) if regex is not None else None,
            nth=which,
        )
        self.rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        self.rules.remove(rule)

    def clear(self) -> None:
        """Drop every rule (the counters and the log stay)."""
        self.rules.clear()

    def count(self, method: str, path: str, *, forwarded: bool = False) -> int:
        """Requests of ``method path`` that arrived (or, ``forwarded``, went upstream)."""
        return (self.forwarded if forwarded else self.seen)[(method, path)]

    def _pick(self, method: str, path: str) -> Rule | None:
        chosen = None
        for rule in list(self.rules):
            if rule.matches(method, path):
                rule.matched += 1
                if chosen is None and (rule.nth is None or rule.matched in rule.nth):
                    chosen = rule
        if chosen is not None:
            chosen.applied += 1
        return chosen

    def _up(self, n: int) -> None:
        self.bytes_up += n

    def _down(self, n: int) -> None:
        self.bytes_down += n

    # -- lifecycle

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening, cancel every connection task and wait for them."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for _ in range(100):  # a connection accepted just now starts its task a tick later
            await asyncio.sleep(0)
            if not self._tasks:
                break
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- connections

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closing or task is None:
            cwriter.close()
            return
        self._tasks.add(task)
        self.connections += 1
        self._open += 1
        self.peak = max(self.peak, self._open)
        upstream = _Upstream(*self.upstream)
        try:
            while await self._exchange(creader, cwriter, upstream):
                pass
        except (_Broken, OSError, ValueError, asyncio.IncompleteReadError):
            _reset(cwriter)
        finally:
            for writer in (cwriter, upstream.writer):
                if writer is not None:
                    writer.close()
            self._open -= 1
            self._tasks.discard(task)

    async def _exchange(
        self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter, upstream: _Upstream
    ) -> bool:
        """Serve one request; True when the client connection stays open for another."""
        lines = await _read_head(creader)
        if lines is None:
            return False
        method, target, version = lines[0].split(" ", 2)
        headers = _headers(lines[1:])
        path = urlsplit(target).path
        key = (method, path)
        self.seen[key] += 1
        rule = self._pick(method, path)
        fault = rule.fault if rule is not None else Fault()
        label = str(fault) if rule is not None else None

        def record(status: int | None, forwarded: bool) -> None:
            self.log.append(LogEntry(method, path, status, label, forwarded))

        framing = _framing(headers)
        if fault.reset_before:
            record(None, False)
            _reset(cwriter)
            return False
        if fault.answer is not None:
            await _relay(creader, framing, _Sink(None, self._up))  # keep the stream in step
            body = fault.answer_body
            if body is None:
                body = b'{"detail": "fault proxy: %d"}' % fault.answer
            try:
                reason = http.HTTPStatus(fault.answer).phrase
            except ValueError:
                reason = "Fault"
            await asyncio.sleep(fault.delay)
            record(fault.answer, False)
            own = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            # A HEAD answer carries the headers of a body, never the body itself.
            cwriter.write(
                _head(f"HTTP/1.1 {fault.answer} {reason}", _rewrite(own, fault.answer_headers))
                + (b"" if method == "HEAD" else body)
            )
            await cwriter.drain()
            return not _closes(version, headers)

        try:
            ureader, uwriter = await upstream.open()
        except OSError:
            body = b'{"detail": "fault proxy: upstream unreachable"}'
            cwriter.write(
                _head(
                    "HTTP/1.1 502 Bad Gateway",
                    [
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                    ],
                )
                + body
            )
            await cwriter.drain()
            record(502, False)
            return False
        uwriter.write(_head(lines[0], _rewrite(headers, fault.set_request_headers)))
        self.forwarded[key] += 1
        try:
            await _relay(
                creader,
                framing,
                _Sink(uwriter, self._up, fault.cut_request_after, fault.stall_request),
            )
            if fault.cut_request_after is not None:
                raise _Cut
        except _Cut:
            record(None, True)
            await asyncio.sleep(fault.cut_pause)
            await _close(uwriter)  # upstream gets the N bytes, then the end
            _reset(cwriter)
            return False
        await uwriter.drain()

        while True:  # pass 1xx interim answers on
            rlines = await _read_head(ureader)
            if rlines is None:
                record(None, True)
                raise _Broken("upstream closed without answering")
            rversion, status_text = rlines[0].split(" ", 2)[:2]
            status = int(status_text)
            rheaders = _headers(rlines[1:])
            if 100 <= status < 200 and status != 101:
                cwriter.write(_head(rlines[0], rheaders))
                continue
            break
        rframing = _framing(rheaders, request_method=method, status=status)
        if fault.reset_after:
            await _relay(ureader, rframing, _Sink(None, self._down))
            record(None, True)
            _reset(cwriter)
            return False
        await asyncio.sleep(fault.delay)
        record(status, True)  # what the client is sent (it may have given up waiting)
        cwriter.write(_head(rlines[0], _rewrite(rheaders, fault.set_headers)))
        try:
            await _relay(
                ureader, rframing, _Sink(cwriter, self._down, fault.truncate_after, fault.stall)
            )
            await cwriter.drain()
            if fault.truncate_after is not None:
                raise _Cut
        except _Cut:
            await _close(cwriter)
            return False
        if fault.close_after:
            await _close(cwriter)
            return False
        if rframing == "eof" or _closes(rversion, rheaders):
            await _close(uwriter)
            return False
        return not _closes(version, headers)
