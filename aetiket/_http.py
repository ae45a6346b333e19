"""The one place that talks aiohttp: session, URLs, auth, retries, errors, JSON.

Every request of the client goes through :meth:`HttpCore.send` (an open response, for
streaming) or :meth:`HttpCore.call` (a decoded model). Both:

* join paths to the base URL; send the bearer token only to the base URL's origin;
* refresh the access token once on a 401 when a refresh token is known, single flight:
  however many requests hit an expired token at once, one refresh request is made;
* retry what is safe to retry (see :class:`Idempotency`) on connection errors and the
  policy's statuses (429 and 503 honour Retry-After) with exponential backoff and full
  jitter, within the policy's attempts and total time;
* map failures to ``aetiket.errors``: ``TransportError`` leaves for no answer,
  ``ApiError`` leaves (with the server's ``detail``) for error statuses,
  ``ResponseDecodeError`` for a body that does not fit the model.

Downloads have a second, narrow way for their ranged GETs to a plain ``http://`` origin
without a proxy: :class:`PlainConnection`, one keep-alive HTTP/1.1 connection whose
answer body is received straight into the download's block buffer (no parser, no copy
per chunk; a sixth less CPU per byte than the aiohttp path). It takes only the plain
case: an answer other than a 206 with a Content-Length is raised as the error the one
path would raise (``plain_error``), or left to :meth:`HttpCore.send`, which asks again and
handles it (redirects, refresh, retries) the one way.

Tokens never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import enum
import errno
import io
import logging
import math
import os
import re
import socket
import ssl as ssl_module
import struct
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

import aiohttp
import anyio
import msgspec
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._config import DEFAULT_LIMITS, DEFAULT_RETRY, DEFAULT_TIMEOUTS, Limits, RetryPolicy, Timeouts
from ._version import __version__
from .errors import (
    ApiError,
    ConnectError,
    ProtocolError,
    ResponseDecodeError,
    TransportError,
    TransportTimeout,
    Unauthorized,
    error_for_status,
)
from .models import Token

__all__ = (
    "HttpCore",
    "Idempotency",
    "PlainAnswer",
    "PlainConnection",
    "encode_params",
    "parse_head",
    "retry_after",
    "retry_after_of",
)

log = logging.getLogger("aetiket")

T = TypeVar("T")
_MAX_ERROR_BODY = 64 * 1024
_MAX_REDIRECTS = 5
_INLINE_BODY = 512 * 1024
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


class Idempotency(enum.Enum):
    """What may be replayed after a failure.

    ``SAFE``: the request may be sent again after any retryable failure (GET, HEAD, PUT,
    DELETE, and PATCH bodies that set fields). ``CREATE``: a create with a client-chosen
    identifier; replayed like SAFE, and the caller checks a resulting 409 against its own
    record. ``UNSAFE``: replayed only when it certainly never left (the connection could
    not be made).
    """

    SAFE = "safe"
    CREATE = "create"
    UNSAFE = "unsafe"


def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.json.Decoder(kind)
    return dec


def encode_params(query: msgspec.Struct | Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters from a query struct or mapping: None left out, lists repeated,
    booleans as ``true``/``false``, datetimes in ISO 8601."""
    if query is None:
        return []
    data = msgspec.to_builtins(query) if isinstance(query, msgspec.Struct) else dict(query)
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            if isinstance(item, bool):
                out.append((key, "true" if item else "false"))
            elif isinstance(item, datetime):
                out.append((key, item.isoformat()))
            else:
                out.append((key, str(item)))
    return out


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def retry_after_of(error: BaseException) -> float | None:
    """The Retry-After an ``ApiError`` came with, in seconds (None without one)."""
    if isinstance(error, ApiError):
        return retry_after(error.headers.get("Retry-After"))
    return None


#: Where Linux's struct tcp_info keeps tcpi_rtt (microseconds): after 8 one-byte fields
#: and 15 32-bit ones (a layout the kernel keeps stable for its users).
_TCPI_RTT = 68


def round_trip(resp: aiohttp.ClientResponse, elapsed: float) -> float:
    """How far the server is: the kernel's smoothed round-trip time of the answer's
    connection (TCP_INFO, Linux), else ``elapsed`` (the request's time, which also holds
    the first connect and any slowness of either side)."""
    # The connection goes back to the pool as soon as a short body is in (an OPTIONS
    # answer): its protocol (aiohttp's own attribute, hence getattr) still knows it.
    protocol = getattr(resp, "_protocol", None)
    transport = getattr(protocol, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    return _tcp_rtt(sock) or elapsed


def _tcp_rtt(sock: Any) -> float | None:
    """The kernel's smoothed round trip of a TCP socket (Linux), None where unknown."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if sock is None or tcp_info is None or sys.platform != "linux":
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
        rtt: int = struct.unpack_from("I", info, _TCPI_RTT)[0]
    except (OSError, struct.error):
        return None
    return rtt / 1e6 if rtt else None


# ------------------------------------------------------------- the plain HTTP/1.1 path

#: The most a response head may take (aiohttp's own limit is 8 KiB per line).
_MAX_HEAD = 64 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?", re.ASCII)
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
#: The blank line that ends a head: CRLF, or a bare LF (RFC 9112 2.2 lets a recipient
#: take one; aiohttp does), so that such a head is not read on into its body.
_HEAD_END = re.compile(rb"\r?\n\r?\n")


@dataclasses.dataclass(frozen=True)
class PlainAnswer:
    """The status and headers of an answer on a :class:`PlainConnection`, with the
    body bytes that came in the same reads as the head (``rest``)."""

    status: int
    headers: CIMultiDictProxy[str]
    content_length: int | None
    keep_alive: bool
    rest: bytes = b""

    @property
    def plain(self) -> bool:
        """A 206 whose body is exactly Content-Length raw bytes: the only answer this
        path reads. (Anything else goes to ``HttpCore.send``.)"""
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        return (
            self.status == 206
            and self.content_length is not None
            and "Transfer-Encoding" not in self.headers
            and encoding == "identity"
        )


def parse_head(head: bytes) -> PlainAnswer:
    """Parse an HTTP/1.x response head (status line and header fields, without the blank
    line that ends it) strictly: RFC 9112 syntax, no folded lines, one Content-Length."""
    lines = head.split(b"\r\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise ProtocolError(f"control bytes in header {name.decode()!r}")
        headers.add(name.decode("ascii"), value.decode("latin-1"))
    lengths = {v.strip() for v in headers.getall("Content-Length", [])}
    length: int | None = None
    if lengths:
        if len(lengths) > 1 or not all(v.isdigit() and v.isascii() for v in lengths):
            raise ProtocolError(f"bad Content-Length: {sorted(lengths)!r}")
        length = int(lengths.pop())
    tokens = {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",")}
    keep_alive = ("keep-alive" in tokens) if status.group(1) == b"0" else ("close" not in tokens)
    return PlainAnswer(int(status.group(2)), CIMultiDictProxy(headers), length, keep_alive)


class PlainConnection:
    """One HTTP/1.1 connection over a plain non-blocking socket, for ranged GETs whose
    body the caller receives straight into its own buffer (:meth:`read_into`).

    It sends a request, reads and parses the answer's head (:meth:`get`), and leaves the
    body on the socket. It never follows redirects, refreshes or retries: answers that
    need any of that are for ``HttpCore.send``. Open it with ``HttpCore.open_plain``.
    """

    def __init__(
        self,
        sock: socket.socket,
        host_header: str,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self._sock = sock
        self._host = host_header
        self._on_close: Callable[[], None] | None = on_close
        self.used = False  # a kept-alive connection the server may have closed meanwhile

    def __repr__(self) -> str:
        return f"PlainConnection({self._host!r})"

    @property
    def round_trip(self) -> float | None:
        """The kernel's smoothed round trip of this connection (Linux), else None."""
        return _tcp_rtt(self._sock)

    def close(self) -> None:
        """Close the socket and give back its place in the client's limits (once)."""
        self._sock.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    async def get(self, target: str, headers: Mapping[str, str]) -> PlainAnswer:
        """Send ``GET target`` with ``headers`` and read the answer's head. Raises
        ``TransportError`` when the connection fails first."""
        lines = [f"GET {target} HTTP/1.1", f"Host: {self._host}"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r}: line breaks are not allowed")
            lines.append(f"{name}: {value}")
        # UTF-8, as aiohttp sends them (a value beyond latin-1 is no error there).
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        reused, self.used = self.used, True
        try:
            await self._send_all(request)
            head, rest = await self._read_head()
        except OSError as exc:
            stale = reused and exc.errno in (errno.ECONNRESET, errno.EPIPE, None)
            raise (_Stale if stale else TransportError)(
                f"GET {self._host}: {type(exc).__name__}: {exc}"
            ) from exc
        answer = parse_head(head)
        return dataclasses.replace(answer, rest=rest)

    async def read_into(self, view: memoryview) -> int:
        """Receive what has arrived into ``view`` (at least one byte, waiting for it);
        0 when the server closed the connection. Socket errors raise ``OSError``."""
        sock, filled = self._sock, 0
        while True:
            try:
                got = sock.recv_into(view[filled:])
            except BlockingIOError:
                if filled:
                    return filled
                await anyio.wait_readable(sock)
                continue
            if not got:
                return filled
            filled += got
            if filled == len(view):
                return filled

    async def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                await anyio.wait_writable(self._sock)

    async def _read_head(self) -> tuple[bytes, bytes]:
        got = bytearray()
        buf = bytearray(16 * 1024)
        while True:
            n = await self.read_into(memoryview(buf))
            if not n:
                raise ConnectionResetError("the connection closed before an answer")
            start = max(0, len(got) - 3)
            got += buf[:n]
            end = _HEAD_END.search(got, start)
            if end is not None:
                return bytes(got[: end.start()]), bytes(got[end.end() :])
            if len(got) > _MAX_HEAD:
                raise ProtocolError(f"GET {self._host}: an answer head over {_MAX_HEAD} bytes")


class _Stale(TransportError):
    """A kept-alive plain connection that the server had closed: not a failure, ask
    again on a fresh one."""


def _error_of(
    status: int, headers: Mapping[str, str], raw: bytes, method: str, url: URL
) -> ApiError:
    """The ``ApiError`` for an error answer: its status, the ``detail`` of its body."""
    detail: Any = None
    try:
        body = msgspec.json.decode(raw)
        detail = body.get("detail") if isinstance(body, dict) else body
    except msgspec.DecodeError:
        detail = raw.decode("utf-8", "replace").strip()[:500] or None
    keep = {
        k: headers[k]
        for k in ("Retry-After", "Content-Range", "Upload-Offset", "Tus-Version")
        if k in headers
    }
    return error_for_status(
        status,
        detail,
        url=str(url.with_query(None)),
        method=method,
        request_id=headers.get("X-Request-ID"),
        headers=keep,
    )


class _Tokens:
    """The current token pair and how many times it was refreshed."""

    __slots__ = ("access", "generation", "refresh")

    def __init__(self, access: str | None, refresh: str | None) -> None:
        self.access = access
        self.refresh = refresh
        self.generation = 0

    def __repr__(self) -> str:
        return f"_Tokens(access={'***' if self.access else None}, generation={self.generation})"


class HttpCore:
    """Owns (or borrows) one aiohttp session and sends every request of a Client."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        limits: Limits = DEFAULT_LIMITS,
        retry: RetryPolicy = DEFAULT_RETRY,
        session: aiohttp.ClientSession | None = None,
        connector: aiohttp.BaseConnector | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        proxy: str | None = None,
        trust_env: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        url = URL(base_url.rstrip("/"))
        if not url.is_absolute() or url.scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = url
        self.origin = url.origin()
        self.timeouts = timeouts
        self.limits = limits
        self.retry = retry
        self.proxy = proxy
        self._proxies: dict[tuple[str, str], str | None] = {}
        self._ssl = ssl
        self._trust_env = trust_env
        # identity: answers are read as sent (a ranged body must never be decompressed).
        self._headers = {
            "User-Agent": f"aetiket/{__version__}",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        self._tokens = _Tokens(token, refresh_token)
        self._refresh_lock = anyio.Lock()
        self._session = session
        self._connector = connector
        self._owns_session = session is None
        # How far each origin is, from its first answer: a later transfer there plans
        # all its connections up front instead of waiting for a first answer of its own.
        self._round_trips: dict[URL, float] = {}
        self._plain_total: anyio.CapacityLimiter | None = None
        self._plain_hosts: dict[URL, anyio.CapacityLimiter] = {}

    def __repr__(self) -> str:
        return f"HttpCore(base_url={str(self.base_url)!r})"

    def round_trip_to(self, url: str | URL) -> float | None:
        """The round trip to ``url``'s origin as measured on its first answer (see
        ``round_trip``), or None before any answer from there."""
        return self._round_trips.get(URL(url).origin())

    # -- lifecycle

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("The client is not open: use `async with aetiket.Client(...)`")
        return self._session

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = self._connector or aiohttp.TCPConnector(
            limit=self.limits.max_connections,
            limit_per_host=self.limits.max_per_host,
            keepalive_timeout=self.limits.keepalive,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            connector_owner=self._connector is None,
            # The environment's proxy is looked up here, once per host (aiohttp's own
            # trust_env costs two thread-pool trips per request, and lets a ~/.netrc
            # entry clash with the bearer header).
            trust_env=False,
            # Transfers see the bytes as they are; a ranged answer is never decompressed.
            auto_decompress=False,
            # A deep read buffer keeps the socket filling while a download block goes to
            # disk (aiohttp pauses reading past twice this).
            read_bufsize=1024 * 1024,
        )
        # aiohttp silently re-sends GET/PUT/DELETE once after a reset of a kept-alive
        # connection; every replay must be ours, counted and flagged (ApiError.replayed).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            session, self._session = self._session, None
            await session.close()

    # -- tokens

    @property
    def authenticated(self) -> bool:
        return self._tokens.access is not None

    def set_tokens(self, access: str | None, refresh: str | None) -> None:
        self._tokens.access, self._tokens.refresh = access, refresh
        self._tokens.generation += 1

    @property
    def refresh_token(self) -> str | None:
        return self._tokens.refresh

    @property
    def access_token(self) -> str | None:
        return self._tokens.access

    async def login(self, username: str, password: str) -> Token:
        """POST /api/v1/token with the OAuth2 password form; keeps the pair."""
        token = await self.call(
            "POST",
            "/api/v1/token",
            form={
                "grant_type": "password",
                "username": username,
                "password": password,
                "scope": "",
            },
            expect=Token,
            auth=False,
            idempotency=Idempotency.UNSAFE,
        )
        self.set_tokens(token.access_token, token.refresh_token)
        return cast(Token, token)

    async def refresh(self) -> Token:
        """Trade the refresh token for a new pair now (single flight with 401 refreshes)."""
        async with self._refresh_lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> Token:
        refresh = self._tokens.refresh
        if refresh is None:
            raise Unauthorized("No refresh token: log in first")
        try:
            token: Token = await self.call(
                "POST",
                "/api/v1/refresh",
                form={"grant_type": "refresh_token", "refresh_token": refresh},
                expect=Token,
                auth=False,
                # Redeeming rotates the token: replay only if it certainly never left.
                idempotency=Idempotency.UNSAFE,
            )
        except Unauthorized:
            raise Unauthorized(
                "The session expired (the refresh token was refused): log in again"
            ) from None
        self.set_tokens(token.access_token, token.refresh_token)
        log.debug("access token refreshed")
        return token

    @property
    def token_generation(self) -> int:
        """Bumped at every new token pair: note it before a request, pass it to
        :meth:`refresh_after` when the request met 401."""
        return self._tokens.generation

    async def refresh_after(self, generation: int) -> None:
        """Refresh unless another task already did since ``generation`` was sent."""
        async with self._refresh_lock:
            if self._tokens.generation != generation:
                return
            await self._refresh_locked()

    # -- requests

    def url(self, path: str) -> URL:
        """``path`` joined to the base URL (an absolute URL is taken as it is)."""
        if path.startswith(("http://", "https://")):
            return URL(path)
        return self.base_url.with_path(self.base_url.path.rstrip("/") + "/" + path.lstrip("/"))

    def same_origin(self, url: URL) -> bool:
        return url.origin() == self.origin

    def _timeout(self, *, total: bool) -> aiohttp.ClientTimeout:
        t = self.timeouts
        return aiohttp.ClientTimeout(
            total=t.total if total else None, connect=t.connect, sock_read=t.read
        )

    @asynccontextmanager
    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        idempotency: Idempotency = Idempotency.SAFE,
        ok: frozenset[int] | None = None,
        total_timeout: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request (with auth, refresh and retries) and yield the open response.

        Statuses >= 400 (or outside ``ok`` when given) raise the matching ``ApiError``.
        ``data`` may be a streaming payload: such a request is never replayed.
        """
        url = self.url(path)
        started = time.monotonic()
        attempt = 0
        refreshed = False
        replayable = data is None
        replayed = False  # sent again after a failure that may have reached the server
        origin = url.origin()
        while True:
            attempt += 1
            generation = self._tokens.generation
            send_headers = self._headers_for(origin, headers, auth)
            wait: float | None = None
            asked = time.monotonic()
            try:
                resp = await self._request(
                    method,
                    url,
                    params,
                    body if body is not None else data,
                    send_headers,
                    total_timeout,
                )
            except TransportError as exc:
                certain_unsent = isinstance(exc, ConnectError)
                may_retry = replayable and (certain_unsent or idempotency is not Idempotency.UNSAFE)
                if not may_retry or not self._budget_left(attempt, started):
                    raise
                wait = self.retry.delay(attempt)
                replayed = replayed or not certain_unsent
                log.debug("%s %s: %s; retry %d in %.2fs", method, url.path, exc, attempt, wait)
            else:
                status = resp.status
                if origin not in self._round_trips:
                    self._round_trips[origin] = round_trip(resp, time.monotonic() - asked)
                # A streamed body cannot be sent twice: its 401 goes to the caller, who
                # refreshes (refresh_after) and resumes from the server's offset.
                if status == 401 and auth and replayable and not refreshed and self._tokens.refresh:
                    resp.release()
                    refreshed = True
                    await self.refresh_after(generation)
                    attempt -= 1  # a refresh is not a failed attempt
                    continue
                if (
                    status in self.retry.statuses
                    and replayable
                    and idempotency is not Idempotency.UNSAFE
                    and self._budget_left(attempt, started)
                ):
                    wait = self.retry.delay(attempt, retry_after(resp.headers.get("Retry-After")))
                    replayed = True
                    resp.release()
                    log.debug(
                        "%s %s: %d; retry %d in %.2fs", method, url.path, status, attempt, wait
                    )
                else:
                    try:
                        if status >= 400 or (ok is not None and status not in ok):
                            error = await self._error(resp, method, url)
                            error.replayed = replayed
                            raise error
                        yield resp
                    finally:
                        resp.release()
                    return
            await anyio.sleep(wait)

    def _headers_for(
        self, origin: URL, headers: Mapping[str, str] | None, auth: bool
    ) -> dict[str, str]:
        """The client's headers, ``headers``, and the bearer token for its own origin."""
        out = {**self._headers, **(headers or {})}
        if auth and self._tokens.access and origin == self.origin:
            out["Authorization"] = f"Bearer {self._tokens.access}"
        return out

    def plain_ok(self, url: URL) -> bool:
        """Whether GETs of ``url`` may take the plain path (:class:`PlainConnection`):
        ``http://``, no proxy, no credentials in the URL, no cookie for it, and the
        client's own connector (a session or connector the caller gave may route or sign
        requests in ways only aiohttp knows)."""
        return (
            url.scheme == "http"
            and url.raw_host is not None
            and url.user is None  # (Basic auth in the URL is aiohttp's to send)
            and self._owns_session
            and self._connector is None
            and sys.platform != "win32"  # (waiting on a raw socket needs a selector loop)
            and self._proxy_for(url) is None
            and not self.session.cookie_jar.filter_cookies(url)  # (sent by aiohttp only)
        )

    async def plain_get(
        self,
        conn: PlainConnection | None,
        url: URL,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[PlainConnection, PlainAnswer]:
        """``GET url`` on ``conn`` (kept alive from an earlier answer) or on a new
        connection, with the client's headers and token (its own origin only); the body
        is left for the caller to read. A kept-alive connection that the server closed
        meanwhile is replaced once. Only for URLs that ``plain_ok`` accepts."""
        origin = url.origin()
        send = self._headers_for(origin, headers, auth=True)
        target = url.raw_path_qs or "/"
        for _ in range(2):
            if conn is None:
                conn = await self._connect_plain(url)
            try:
                with anyio.fail_after(self.timeouts.read):
                    return conn, await conn.get(target, send)
            except TimeoutError as exc:
                conn.close()
                raise TransportTimeout(
                    f"GET {url.with_query(None)}: no answer in {self.timeouts.read} s"
                ) from exc
            except _Stale:
                conn.close()
                conn = None
            except BaseException:
                conn.close()
                raise
        raise TransportError(f"GET {url.with_query(None)}: the connection closed at once, twice")

    def _plain_limiters(self, origin: URL) -> list[anyio.CapacityLimiter]:
        """The limiters that keep plain connections within ``Limits`` (their own count:
        aiohttp's pool does not see them), made on first use (in the event loop)."""
        if self._plain_total is None:
            self._plain_total = anyio.CapacityLimiter(self.limits.max_connections or math.inf)
        if origin not in self._plain_hosts:
            self._plain_hosts[origin] = anyio.CapacityLimiter(self.limits.max_per_host or math.inf)
        return [self._plain_hosts[origin], self._plain_total]

    async def _connect_plain(self, url: URL) -> PlainConnection:
        """A new plain connection to ``url``'s origin, once ``Limits`` leave room for it."""
        borrower = object()
        held: list[anyio.CapacityLimiter] = []

        def release() -> None:
            for limiter in held:
                limiter.release_on_behalf_of(borrower)
            held.clear()

        try:
            for limiter in self._plain_limiters(url.origin()):
                await limiter.acquire_on_behalf_of(borrower)
                held.append(limiter)
            host, sock = await self._open_socket(url)
        except BaseException:
            release()
            raise
        log.debug("GET %s: a new plain connection", host)
        return PlainConnection(sock, host, release)

    async def _open_socket(self, url: URL) -> tuple[str, socket.socket]:
        """A connected non-blocking socket to ``url``'s host, and its Host header."""
        host, port = url.raw_host or "", url.explicit_port or 80
        where = f"GET {url.with_query(None)}"
        try:
            with anyio.fail_after(self.timeouts.connect):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                error: OSError | None = None
                for family, kind, proto, _, address in infos:
                    sock = socket.socket(family, kind, proto)
                    try:
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        code = sock.connect_ex(address)
                        if code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                            await anyio.wait_writable(sock)
                            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code:
                            raise OSError(code, os.strerror(code))
                    except OSError as exc:
                        sock.close()
                        error = exc
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    netloc = host if url.explicit_port is None else f"{host}:{port}"
                    if ":" in host:  # an IPv6 literal
                        netloc = f"[{host}]" if url.explicit_port is None else f"[{host}]:{port}"
                    return netloc, sock
        except TimeoutError as exc:
            raise ConnectError(f"{where}: cannot connect to {host}:{port} (timed out)") from exc
        except OSError as exc:  # the name does not resolve
            error = exc
        reason = (error.strerror or str(error)) if error is not None else "no address"
        raise ConnectError(f"{where}: cannot connect to {host}:{port} ({reason})")

    def _proxy_for(self, url: URL) -> str | None:
        """The explicit proxy, else the environment's (HTTP(S)_PROXY, NO_PROXY) for the host."""
        if self.proxy is not None or not self._trust_env:
            return self.proxy
        key = (url.scheme, url.host or "")
        if key not in self._proxies:
            proxies = urllib.request.getproxies()
            chosen = proxies.get(url.scheme)
            if chosen and urllib.request.proxy_bypass(url.host or ""):
                chosen = None
            self._proxies[key] = chosen
        return self._proxies[key]

    def _budget_left(self, attempt: int, started: float) -> bool:
        return attempt < self.retry.max_attempts and (time.monotonic() - started < self.retry.total)

    async def _request(
        self,
        method: str,
        url: URL,
        params: Sequence[tuple[str, str]] | None,
        data: Any,
        headers: dict[str, str],
        total_timeout: bool,
    ) -> aiohttp.ClientResponse:
        """One request; redirects followed only within the origin (with the token)."""
        timeout = self._timeout(total=total_timeout)
        if isinstance(data, bytes) and len(data) > _INLINE_BODY:
            # aiohttp warns that big bytes bodies block the loop; a fresh BytesIO per
            # attempt is streamed instead (and stays replayable).
            data = io.BytesIO(data)
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                resp = await self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    allow_redirects=False,
                    timeout=timeout,
                    proxy=self._proxy_for(url),
                )
            except asyncio.TimeoutError as exc:
                raise TransportTimeout(f"{method} {url.with_query(None)}: timed out") from exc
            except aiohttp.ClientConnectorError as exc:
                raise ConnectError(
                    f"{method} {url.with_query(None)}: cannot connect to "
                    f"{url.host}:{url.port} ({exc.os_error.strerror or exc.os_error})"
                ) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise TransportError(
                    f"{method} {url.with_query(None)}: {type(exc).__name__}: {exc}"
                ) from exc
            if resp.status not in (301, 302, 303, 307, 308) or "Location" not in resp.headers:
                return resp
            target = url.join(URL(resp.headers["Location"]))
            resp.release()
            if not self.same_origin(target):
                # Never carry the token elsewhere; the caller may fetch the URL itself.
                headers.pop("Authorization", None)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, data = "GET", None
            url, params = target, None
        raise TransportError(f"{method} {url}: more than {_MAX_REDIRECTS} redirects")

    async def _error(self, resp: aiohttp.ClientResponse, method: str, url: URL) -> ApiError:
        try:
            raw = await self.read_body(resp, limit=_MAX_ERROR_BODY)
        except (ValueError, TransportError):
            raw = b""  # an error answer too big or broken: the status still tells
        return _error_of(resp.status, resp.headers, raw, method, url)

    async def plain_error(self, conn: PlainConnection, answer: PlainAnswer, url: URL) -> ApiError:
        """The ``ApiError`` for an error answer on the plain path, with the detail of
        its body when that is short (the connection is spent either way)."""
        raw = answer.rest
        length = answer.content_length
        chunked = "Transfer-Encoding" in answer.headers
        if length is not None and 0 < length <= _MAX_ERROR_BODY and not chunked:
            buf = bytearray(length or 0)
            n = min(len(raw), len(buf))
            buf[:n] = raw[:n]
            try:
                with anyio.fail_after(self.timeouts.read):
                    while n < len(buf):
                        got = await conn.read_into(memoryview(buf)[n:])
                        if not got:
                            break
                        n += got
            except (TimeoutError, OSError):
                pass  # the status still tells
            raw = bytes(buf[:n])
        return _error_of(answer.status, answer.headers, raw, "GET", url)

    async def read_body(self, resp: aiohttp.ClientResponse, *, limit: int | None = None) -> bytes:
        """The whole body of an open response; a broken or oversized body is an error."""
        where = f"{resp.method} {resp.url.with_query(None)}"
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := await resp.content.readany():
                size += len(chunk)
                if limit is not None and size > limit:
                    raise ValueError(f"{where}: the answer is larger than {limit} bytes")
                chunks.append(chunk)
        except asyncio.TimeoutError as exc:
            raise TransportTimeout(f"{where}: timed out reading the answer") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"{where}: the answer broke off ({type(exc).__name__}: {exc})"
            ) from exc
        return b"".join(chunks)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: msgspec.Struct | Mapping[str, Any] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        expect: Any = None,
        auth: bool = True,
        idempotency: Idempotency = Idempotency.SAFE,
    ) -> Any:
        """Send a JSON API request and decode the answer into ``expect`` (a model type,
        ``list[Model]``, or None to ignore the body).

        An answer that breaks off mid-body is fetched again when the request is SAFE.
        """
        headers: dict[str, str] = {"Accept": "application/json"}
        body: bytes | None = None
        if json is not None:
            body = _encoder.encode(json)
            headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(dict(form)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        query = encode_params(params)
        for attempt in range(1, self.retry.max_attempts + 1):
            async with self.send(
                method,
                path,
                params=query,
                body=body,
                headers=headers,
                auth=auth,
                idempotency=idempotency,
            ) as resp:
                try:
                    raw = await self.read_body(resp)
                except TransportError:
                    if idempotency is not Idempotency.SAFE or attempt == self.retry.max_attempts:
                        raise
                    continue
                if expect is None:
                    return None
                try:
                    return _decoder(expect).decode(raw)
                except msgspec.DecodeError as exc:
                    raise ResponseDecodeError(
                        f"{method} {resp.url.with_query(None)}: the answer does not fit "
                        f"{getattr(expect, '__name__', expect)}: {exc}"
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover
