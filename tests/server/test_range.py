"""GET and HEAD of /api/v1/files/{scope}/{uid}: Range, If-Range and 416 (RFC 9110 section 14,
section 13.1.5; ETIKET_API.md "Files"), against the real server.

One module-wide upload (5000 bytes of text/csv) and one empty file; every answer is
compared byte for byte with the source slice, and its headers checked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import hashlib
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from tests.conftest import ServerProcess
from tests.http import OCTETS, TUS, Answer, Api, api_for, tus_metadata

pytestmark = pytest.mark.anyio

SIZE = 5000
MIMETYPE = "text/csv"


@dataclasses.dataclass
class Stored:
    url: str
    token: str
    scope: str
    uid: str
    data: bytes
    empty_uid: str
    modified: datetime  # FileOut.modified of the 5000-byte file

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.data).hexdigest()}"'

    @property
    def path(self) -> str:
        return f"/api/v1/files/{self.scope}/{self.uid}"

    @property
    def empty_path(self) -> str:
        return f"/api/v1/files/{self.scope}/{self.empty_uid}"


async def _upload(api: Api, scope: str, uid: str, data: bytes) -> None:
    ans = await api.request(
        "POST",
        "/api/v1/uploads/",
        headers={
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": tus_metadata(scope=scope, uid=uid),
        },
    )
    assert ans.status == 201, ans.body
    if data:
        ans = await api.request(
            "PATCH",
            ans.headers["Location"],
            data=data,
            headers={**TUS, **OCTETS, "Upload-Offset": "0"},
        )
        assert ans.status == 204, ans.body
        assert ans.headers["Upload-Offset"] == str(len(data))


async def _store(url: str, user: str, password: str) -> Stored:
    async with api_for(url, user, password) as api:
        scope = await api.new_scope()
        data = random.Random(9110).randbytes(SIZE)
        uid = await api.new_file(scope, mimetype=MIMETYPE)
        await _upload(api, scope, uid, data)
        empty_uid = await api.new_file(scope, mimetype="application/x-empty")
        await _upload(api, scope, empty_uid, b"")
        info = await api.ok("GET", f"/api/v1/uploads/{scope}/{uid}")
        assert info["status"] == "available" and info["size"] == SIZE
        empty = await api.ok("GET", f"/api/v1/uploads/{scope}/{empty_uid}")
        assert empty["status"] == "available" and empty["size"] == 0, empty
        assert api.token is not None
        return Stored(
            url=url,
            token=api.token,
            scope=scope,
            uid=uid,
            data=data,
            empty_uid=empty_uid,
            modified=datetime.fromisoformat(info["modified"]),
        )


@pytest.fixture(scope="module")
def stored(server: ServerProcess) -> Stored:
    return asyncio.run(_store(server.url, server.admin_user, server.admin_password))


@pytest.fixture
async def api(stored: Stored) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Api(session, stored.url, stored.token)


def http_date(value: datetime) -> str:
    return email.utils.format_datetime(value.astimezone(timezone.utc), usegmt=True)


def check_content_headers(ans: Answer, stored: Stored, data: bytes) -> None:
    assert ans.headers["Accept-Ranges"] == "bytes"
    assert ans.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert not ans.headers["ETag"].startswith("W/")
    last_modified = email.utils.parsedate_to_datetime(ans.headers["Last-Modified"])
    assert ans.headers["Last-Modified"].endswith(" GMT")
    if data is stored.data:
        assert ans.headers["Last-Modified"] == http_date(stored.modified)
        assert ans.headers["Content-Type"] == MIMETYPE
    assert last_modified <= datetime.now(timezone.utc) + timedelta(seconds=1)


def check_partial(ans: Answer, stored: Stored, method: str, first: int, last: int) -> None:
    assert ans.status == 206, (ans.status, ans.body[:200])
    assert ans.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert ans.headers["Content-Length"] == str(last - first + 1)
    check_content_headers(ans, stored, stored.data)
    if method == "GET":
        assert ans.body == stored.data[first : last + 1]
    else:
        assert ans.body == b""


def check_whole(ans: Answer, stored: Stored, method: str, data: bytes | None = None) -> None:
    data = stored.data if data is None else data
    assert ans.status == 200, (ans.status, ans.body[:200])
    assert "Content-Range" not in ans.headers
    assert ans.headers["Content-Length"] == str(len(data))
    check_content_headers(ans, stored, data)
    if method == "GET":
        assert ans.body == data
    else:
        assert ans.body == b""


METHODS = pytest.mark.parametrize("method", ["GET", "HEAD"])


@METHODS
@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),  # first
        ("bytes=1000-1999", 1000, 1999),  # middle
        ("bytes=4900-4999", 4900, 4999),  # last
        ("bytes=-100", SIZE - 100, SIZE - 1),  # suffix
        ("bytes=500-", 500, SIZE - 1),  # open-ended
        ("bytes=4999-", 4999, 4999),  # the last byte
        ("bytes=0-0", 0, 0),  # the first byte
        ("bytes=-1", SIZE - 1, SIZE - 1),
        ("bytes=4000-999999", 4000, SIZE - 1),  # past the end: clamped
        ("bytes=4999-5000", 4999, SIZE - 1),
        ("bytes=-99999", 0, SIZE - 1),  # a suffix longer than the file: the whole file
        (f"bytes=0-{SIZE - 1}", 0, SIZE - 1),  # the whole file: still 206
        ("bytes=0-", 0, SIZE - 1),
        ("BYTES=10-19", 10, 19),  # the unit is case-insensitive
    ],
)
async def test_range(
    api: Api, stored: Stored, method: str, header: str, first: int, last: int
) -> None:
    ans = await api.request(method, stored.path, headers={"Range": header})
    check_partial(ans, stored, method, first, last)


@METHODS
async def test_no_range_is_the_whole_file(api: Api, stored: Stored, method: str) -> None:
    ans = await api.request(method, stored.path)
    check_whole(ans, stored, method)


async def test_head_has_the_headers_of_get(api: Api, stored: Stored) -> None:
    for headers in ({}, {"Range": "bytes=100-199"}, {"Range": "bytes=-7"}):
        got = await api.request("GET", stored.path, headers=headers)
        head = await api.request("HEAD", stored.path, headers=headers)
        assert head.body == b""
        assert head.status == got.status
        for name in (
            "Content-Length",
            "Content-Range",
            "Content-Type",
            "Accept-Ranges",
            "ETag",
            "Last-Modified",
        ):
            assert head.headers.get(name) == got.headers.get(name), name


# ---------------------------------------------------------------------------- If-Range


@METHODS
async def test_if_range_current_etag(api: Api, stored: Stored, method: str) -> None:
    ans = await api.request(
        method, stored.path, headers={"Range": "bytes=10-20", "If-Range": stored.etag}
    )
    check_partial(ans, stored, method, 10, 20)


@METHODS
@pytest.mark.parametrize(
    "if_range",
    [
        '"0000000000000000000000000000000000000000000000000000000000000000"',  # stale
        "W/{etag}",  # weak: never matches (RFC 9110 13.1.5)
        "{bare}",  # not an entity-tag, not a date
        "not a date",
    ],
)
async def test_if_range_mismatch_sends_everything(
    api: Api, stored: Stored, method: str, if_range: str
) -> None:
    value = if_range.format(etag=stored.etag, bare=stored.etag.strip('"'))
    ans = await api.request(
        method, stored.path, headers={"Range": "bytes=10-20", "If-Range": value}
    )
    check_whole(ans, stored, method)


@METHODS
async def test_if_range_last_modified(api: Api, stored: Stored, method: str) -> None:
    ans = await api.request(
        method, stored.path, headers={"Range": "bytes=-10", "If-Range": http_date(stored.modified)}
    )
    check_partial(ans, stored, method, SIZE - 10, SIZE - 1)


@METHODS
@pytest.mark.parametrize("delta", [-86400, -1, 1])
async def test_if_range_other_date_sends_everything(
    api: Api, stored: Stored, method: str, delta: int
) -> None:
    ans = await api.request(
        method,
        stored.path,
        headers={
            "Range": "bytes=-10",
            "If-Range": http_date(stored.modified + timedelta(seconds=delta)),
        },
    )
    check_whole(ans, stored, method)


async def test_if_range_without_range_is_ignored(api: Api, stored: Stored) -> None:
    ans = await api.request("GET", stored.path, headers={"If-Range": stored.etag})
    check_whole(ans, stored, "GET")


async def test_if_range_mismatch_overrides_416(api: Api, stored: Stored) -> None:
    # A failed If-Range means "send me the whole thing": the Range is never evaluated.
    ans = await api.request(
        "GET", stored.path, headers={"Range": f"bytes={SIZE}-", "If-Range": '"stale"'}
    )
    check_whole(ans, stored, "GET")


# ---------------------------------------------------------------------------- 416 and ignored


@METHODS
@pytest.mark.parametrize(
    "header",
    [
        f"bytes={SIZE}-",
        f"bytes={SIZE}-{SIZE + 100}",
        "bytes=999999-",
        "bytes=-0",
    ],
)
async def test_unsatisfiable(api: Api, stored: Stored, method: str, header: str) -> None:
    ans = await api.request(method, stored.path, headers={"Range": header})
    assert ans.status == 416, (ans.status, ans.body[:200])
    assert ans.headers["Content-Range"] == f"bytes */{SIZE}"
    if method == "GET":
        assert ans.headers["Content-Type"].startswith("application/json")
        detail = ans.json()["detail"]
        assert isinstance(detail, str) and detail
    else:
        assert ans.body == b""


@METHODS
@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-99,200-299",  # several ranges: served whole (aetiket serves one range)
        "bytes=0-0,-1",
        "bytes=abc",
        "bytes=1-a",
        "bytes=99-0",  # last < first: invalid
        "bytes=",
        "bytes=-",
        "bytes 0-99",
        "items=0-99",  # an unknown unit must be ignored
        "=0-99",
        "bytes=0-99;x",
        "bytes=\u0661-\u0662",  # ARABIC-INDIC digits are not DIGIT
    ],
)
async def test_malformed_range_sends_everything(
    api: Api, stored: Stored, method: str, header: str
) -> None:
    ans = await api.request(method, stored.path, headers={"Range": header})
    check_whole(ans, stored, method)


# ---------------------------------------------------------------------------- empty file


@METHODS
async def test_empty_file(api: Api, stored: Stored, method: str) -> None:
    ans = await api.request(method, stored.empty_path)
    check_whole(ans, stored, method, data=b"")
    assert ans.headers["Content-Type"] == "application/x-empty"


@METHODS
@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-0", "bytes=1-5"])
async def test_empty_file_ranges_are_unsatisfiable(
    api: Api, stored: Stored, method: str, header: str
) -> None:
    ans = await api.request(method, stored.empty_path, headers={"Range": header})
    assert ans.status == 416, (ans.status, ans.body[:200])
    assert ans.headers["Content-Range"] == "bytes */0"
    if method == "GET":
        assert isinstance(ans.json()["detail"], str)


@METHODS
async def test_empty_file_suffix_range_sends_everything(
    api: Api, stored: Stored, method: str
) -> None:
    # RFC 9110 14.1.1: on a zero-length representation a suffix-range with a non-zero
    # length is the only satisfiable range-spec; it selects the (empty) whole, which a
    # 206 cannot describe, so the Range is ignored: 200 with the empty body.
    ans = await api.request(method, stored.empty_path, headers={"Range": "bytes=-5"})
    check_whole(ans, stored, method, data=b"")


async def test_content_not_uploaded_yet_is_409(api: Api, stored: Stored) -> None:
    uid = await api.new_file(stored.scope)
    for headers in ({}, {"Range": "bytes=0-9"}):
        ans = await api.request("GET", f"/api/v1/files/{stored.scope}/{uid}", headers=headers)
        assert ans.status == 409
        assert isinstance(ans.json()["detail"], str)
