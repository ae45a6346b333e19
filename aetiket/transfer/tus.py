"""The tus 1.0.0 protocol client: one function per request, no retries in it.

tus.io/protocols/resumable-upload; ETIKET_API.md "Uploads". Each function sends one
request through ``HttpCore.send`` and parses the answer's headers strictly: a missing or
malformed header the protocol requires is a ``ProtocolError`` naming it. Retrying,
resuming and parallelism belong to the upload engine built on these.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Final

import aiohttp
import aiohttp.payload
from yarl import URL

from .._http import HttpCore, Idempotency, round_trip
from ..errors import ProtocolError
from ..models import encode_tus_metadata, parse_tus_metadata, parse_tus_uint

__all__ = (
    "CHECKSUM_ALGORITHMS",
    "TUS_VERSION",
    "Created",
    "Patched",
    "ServerInfo",
    "UploadState",
    "checksum_header",
    "create",
    "head",
    "options",
    "patch",
    "terminate",
)

TUS_VERSION: Final = "1.0.0"
OCTETS: Final = "application/offset+octet-stream"
#: Checksum algorithms aetiket can compute, best first.
CHECKSUM_ALGORITHMS: Final = ("sha256", "sha1", "md5")
_TUS = {"Tus-Resumable": TUS_VERSION}


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """What OPTIONS says a tus server supports."""

    versions: tuple[str, ...]
    extensions: frozenset[str]
    max_size: int | None
    checksum_algorithms: frozenset[str]
    #: How far the server is: the round trip of the OPTIONS answer's connection (see
    #: ``_http.round_trip``), in seconds.
    latency: float = 0.0

    @property
    def concatenation(self) -> bool:
        return "concatenation" in self.extensions

    def checksum(self) -> str | None:
        """The best algorithm both sides know, or None without the checksum extension."""
        if "checksum" not in self.extensions:
            return None
        return next((a for a in CHECKSUM_ALGORITHMS if a in self.checksum_algorithms), None)


@dataclasses.dataclass(frozen=True)
class Created:
    """A new upload: its absolute URL and what the server said of it."""

    url: str
    offset: int | None
    expires: datetime | None
    etag: str | None = None


@dataclasses.dataclass(frozen=True)
class Patched:
    """A PATCH's answer: the new offset, and the ETag once the upload is complete (an
    eTiKeT server gives its file's SHA-256 there)."""

    offset: int
    etag: str | None = None


@dataclasses.dataclass(frozen=True)
class UploadState:
    """HEAD of an upload. ``offset`` is None for a final upload still being joined."""

    offset: int | None
    length: int | None
    concat: str | None
    metadata: dict[str, bytes]
    expires: datetime | None
    etag: str | None = None


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _uint(resp: aiohttp.ClientResponse, name: str, *, required: bool) -> int | None:
    value = resp.headers.get(name)
    if value is None:
        if required:
            raise ProtocolError(f"{resp.method} {resp.url}: the answer has no {name} header")
        return None
    try:
        return parse_tus_uint(value)
    except ValueError:
        raise ProtocolError(f"{resp.method} {resp.url}: malformed {name}: {value[:40]!r}") from None


def _expires(resp: aiohttp.ClientResponse) -> datetime | None:
    value = resp.headers.get("Upload-Expires")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # informative only: a bad date does not break an upload
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _etag(resp: aiohttp.ClientResponse) -> str | None:
    """A strong ETag's value without quotes (a weak one says nothing of the bytes)."""
    value = resp.headers.get("ETag", "")
    if len(value) < 3 or not (value.startswith('"') and value.endswith('"')):
        return None
    return value[1:-1]


def checksum_header(algorithm: str, data: bytes | memoryview) -> str:
    """``Upload-Checksum`` for ``data``."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(digest).decode()}"


async def options(http: HttpCore, endpoint: str) -> ServerInfo:
    """OPTIONS on the creation endpoint: versions, extensions, limits, checksums."""
    asked = time.monotonic()
    async with http.send("OPTIONS", endpoint, auth=False, ok=frozenset({200, 204})) as resp:
        versions = tuple(_list(resp.headers.get("Tus-Version")))
        if not versions:
            raise ProtocolError(f"OPTIONS {resp.url}: no Tus-Version header: not a tus server")
        if TUS_VERSION not in versions:
            raise ProtocolError(
                f"OPTIONS {resp.url}: the server speaks tus {', '.join(versions)}, "
                f"not {TUS_VERSION}"
            )
        return ServerInfo(
            versions=versions,
            extensions=frozenset(_list(resp.headers.get("Tus-Extension"))),
            max_size=_uint(resp, "Tus-Max-Size", required=False),
            checksum_algorithms=frozenset(
                a.lower() for a in _list(resp.headers.get("Tus-Checksum-Algorithm"))
            ),
            latency=round_trip(resp, time.monotonic() - asked),
        )


async def create(
    http: HttpCore,
    endpoint: str,
    *,
    length: int | None,
    metadata: Mapping[str, str | bytes] | None = None,
    partial: bool = False,
    final_of: Sequence[str] = (),
    body: bytes | None = None,
    checksum: str | None = None,
) -> Created:
    """POST a new upload (creation; ``body``: creation-with-upload).

    ``length`` None defers the length (or, with ``final_of``, lets the partials decide).
    ``partial`` makes a partial upload; ``final_of`` the final upload joining those URLs.
    """
    headers = dict(_TUS)
    if final_of:
        headers["Upload-Concat"] = "final;" + " ".join(final_of)
    else:
        if partial:
            headers["Upload-Concat"] = "partial"
        if length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(length)
    if metadata:
        headers["Upload-Metadata"] = encode_tus_metadata(metadata)
    if body is not None:
        headers["Content-Type"] = OCTETS
        if checksum:
            headers["Upload-Checksum"] = checksum_header(checksum, body)
    async with http.send(
        "POST",
        endpoint,
        headers=headers,
        body=body,
        idempotency=Idempotency.UNSAFE,
        ok=frozenset({201}),
    ) as resp:
        location = resp.headers.get("Location")
        if not location:
            raise ProtocolError(f"POST {resp.url}: 201 without a Location header")
        # A relative Location is legal tus: resolve it against the request URL.
        url = str(resp.url.join(URL(location)))
        return Created(
            url=url,
            offset=_uint(resp, "Upload-Offset", required=False),
            expires=_expires(resp),
            etag=_etag(resp),
        )


async def head(http: HttpCore, url: str) -> UploadState:
    """HEAD an upload: its offset (the server's word, the only one to resume from)."""
    async with http.send("HEAD", url, headers=_TUS, ok=frozenset({200, 204})) as resp:
        concat = resp.headers.get("Upload-Concat")
        is_final = bool(concat and concat.startswith("final"))
        try:
            metadata = parse_tus_metadata(resp.headers.get("Upload-Metadata"))
        except ValueError as exc:
            raise ProtocolError(f"HEAD {url}: {exc}") from None
        return UploadState(
            offset=_uint(resp, "Upload-Offset", required=not is_final),
            length=_uint(resp, "Upload-Length", required=False),
            concat=concat,
            metadata=metadata,
            expires=_expires(resp),
            etag=_etag(resp),
        )


async def patch(
    http: HttpCore,
    url: str,
    offset: int,
    data: bytes | AsyncIterable[bytes] | aiohttp.payload.Payload,
    *,
    size: int,
    length: int | None = None,
    checksum: str | None = None,
) -> Patched:
    """PATCH ``size`` bytes at ``offset``; returns the server's new offset (and ETag).

    ``data`` is bytes, an async iterable streamed as it is read, or an aiohttp payload
    (the engine's bodies, see :meth:`.fileio.Reader.body`). ``checksum`` is a
    ready ``Upload-Checksum`` value (see :func:`checksum_header`: the digest must be known
    before the body goes). ``length`` declares a deferred length. A new offset other than
    ``offset + size`` is a ``ProtocolError``.
    """
    headers = {
        **_TUS,
        "Content-Type": OCTETS,
        "Upload-Offset": str(offset),
        "Content-Length": str(size),
    }
    if length is not None:
        headers["Upload-Length"] = str(length)
    if checksum is not None:
        headers["Upload-Checksum"] = checksum
    whole = isinstance(data, bytes)
    async with http.send(
        "PATCH",
        url,
        headers=headers,
        body=data if isinstance(data, bytes) else None,
        data=None if whole else data,
        idempotency=Idempotency.UNSAFE,
        ok=frozenset({200, 204}),
        total_timeout=False,
    ) as resp:
        new = _uint(resp, "Upload-Offset", required=True)
        assert new is not None
        if new != offset + size:
            raise ProtocolError(
                f"PATCH {url}: sent {size} bytes at offset {offset}, but the server's "
                f"offset is now {new}"
            )
        return Patched(new, _etag(resp))


async def terminate(http: HttpCore, url: str) -> None:
    """DELETE an upload (termination): the server frees what it holds."""
    async with http.send("DELETE", url, headers=_TUS, ok=frozenset({200, 204})):
        pass
