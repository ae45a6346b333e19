"""Helpers shared by the tus endpoint tests (tests/server/test_tus*.py).

Plain functions over `tests.http.Api`: they send exactly the headers a test names and
return the raw `Answer`, so the tests assert statuses and headers themselves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import io
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.http import OCTETS, TUS, Answer, Api, tus_metadata

UPLOADS = "/api/v1/uploads/"
EXTENSIONS = {
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "checksum",
    "termination",
    "concatenation",
    "concatenation-unfinished",
    "expiration",
}
MiB = 1024 * 1024
DIGESTS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def checksum(algo: str, data: bytes | memoryview) -> str:
    """An Upload-Checksum header value."""
    return f"{algo} {base64.b64encode(DIGESTS[algo](data).digest()).decode()}"


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking content (cheaper than urandom for small sizes)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


async def stream(data: bytes | memoryview, chunk: int = MiB) -> AsyncIterator[bytes]:
    """A request body streamed from memory in chunks (sent with chunked encoding)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        yield bytes(view[start : start + chunk])


def body(data: Any) -> Any:
    """A sized request body: large bytes go as a BytesIO (aiohttp warns on big raw bytes)."""
    if isinstance(data, (bytes, bytearray, memoryview)) and len(data) > 256 * 1024:
        return io.BytesIO(data)
    return data


async def create(
    api: Api,
    length: int | None = None,
    *,
    scope: str | None = None,
    uid: str | None = None,
    headers: dict[str, str] | None = None,
    data: Any = None,
    **meta: str,
) -> Answer:
    """POST /api/v1/uploads/ with Upload-Length (unless None) and scope/uid metadata."""
    hdrs = dict(TUS)
    if length is not None:
        hdrs["Upload-Length"] = str(length)
    pairs = dict(meta)
    if scope is not None:
        pairs["scope"] = scope
    if uid is not None:
        pairs["uid"] = uid
    if pairs:
        hdrs["Upload-Metadata"] = tus_metadata(**pairs)
    hdrs.update(headers or {})
    return await api.request("POST", UPLOADS, headers=hdrs, data=body(data))


async def created(api: Api, length: int | None = None, **kw: Any) -> str:
    """Create an upload (201 expected) and return its Location."""
    ans = await create(api, length, **kw)
    assert ans.status == 201, f"POST {UPLOADS}: {ans.status} {ans.body[:300]!r}"
    return ans.headers["Location"]


async def patch(
    api: Api, location: str, offset: int, data: Any = b"", headers: dict[str, str] | None = None
) -> Answer:
    return await api.request(
        "PATCH",
        location,
        data=body(data),
        headers={**TUS, **OCTETS, "Upload-Offset": str(offset), **(headers or {})},
    )


async def patched(
    api: Api, location: str, offset: int, data: Any = b"", headers: dict[str, str] | None = None
) -> int:
    """PATCH (204 expected); returns the new Upload-Offset."""
    ans = await patch(api, location, offset, data, headers)
    assert ans.status == 204, f"PATCH {location}: {ans.status} {ans.body[:300]!r}"
    return int(ans.headers["Upload-Offset"])


async def head(api: Api, location: str, headers: dict[str, str] | None = None) -> Answer:
    return await api.request("HEAD", location, headers={**TUS, **(headers or {})})


async def offset_of(api: Api, location: str) -> int:
    ans = await head(api, location)
    assert ans.status == 200, ans.status
    return int(ans.headers["Upload-Offset"])


async def file_status(api: Api, scope: str, fuid: str) -> dict[str, Any]:
    """GET /api/v1/uploads/{scope}/{file_uid}: the FileOut with its uploads."""
    result: dict[str, Any] = await api.ok("GET", f"{UPLOADS}{scope}/{fuid}")
    return result


async def content(api: Api, scope: str, fuid: str) -> bytes:
    """The file's whole content via GET /api/v1/files/{scope}/{uid} (200 expected)."""
    ans = await api.request("GET", f"/api/v1/files/{scope}/{fuid}")
    assert ans.status == 200, f"download: {ans.status} {ans.body[:300]!r}"
    assert int(ans.headers["Content-Length"]) == len(ans.body)
    assert ans.headers["ETag"] == f'"{sha256(ans.body)}"'
    return ans.body


async def assert_available(api: Api, scope: str, fuid: str, data: bytes) -> dict[str, Any]:
    """The file is available with the size, etag and content of ``data``."""
    out = await file_status(api, scope, fuid)
    assert out["status"] == "available", out
    assert out["size"] == len(data)
    assert out["etag"] == sha256(data)
    body = await content(api, scope, fuid)
    assert len(body) == len(data)
    assert sha256(body) == sha256(data)
    return out


def upload_uid(location: str) -> str:
    path = urlsplit(location).path
    assert path.startswith(UPLOADS), location
    return path[len(UPLOADS) :]


def expires_at(value: str) -> float:
    """Upload-Expires (an RFC 9110 HTTP-date) as a POSIX time."""
    assert value.endswith(" GMT"), value
    return parsedate_to_datetime(value).timestamp()


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Await ``check()`` until it returns something truthy (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)


async def member_of(admin: Api, scope: str, username: str) -> None:
    await admin.ok("PUT", f"/api/v1/scopes/{scope}/members/{username}")


# ---------------------------------------------------------------------------- fixtures


@dataclasses.dataclass
class Ctx:
    """A server, its admin, and a regular user who is a member of a fresh scope."""

    url: str
    admin: Api
    api: Api
    scope: str

    async def file(self, **fields: Any) -> str:
        """A new file record (status unavailable) in the scope; returns its uid."""
        return await self.api.new_file(self.scope, **fields)

    async def user(self, *, member: bool = False) -> Api:
        """Another regular user, logged in on the same session (a scope member or not)."""
        name, password = await self.admin.new_user()
        if member:
            await member_of(self.admin, self.scope, name)
        return await Api(self.api.session, self.url).login(name, password)


#: Per server URL: the admin's and one regular user's access tokens. Logging in (password
#: hashing) is the slow part of a test's setup; the tokens outlive the suite (15 min).
_TOKENS: dict[str, tuple[str, str]] = {}


@contextlib.asynccontextmanager
async def context(url: str, admin_user: str, admin_password: str) -> AsyncIterator[Ctx]:
    """A Ctx with a fresh scope; the regular user is shared by the tests of one server."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        if url not in _TOKENS:
            admin = await Api(session, url).login(admin_user, admin_password)
            name, password = await admin.new_user()
            user = await Api(session, url).login(name, password)
            assert admin.token is not None and user.token is not None
            _TOKENS[url] = (admin.token, user.token)
        admin_token, user_token = _TOKENS[url]
        api = Api(session, url, user_token)
        scope = await api.new_scope()
        yield Ctx(url=url, admin=Api(session, url, admin_token), api=api, scope=scope)
