"""The download engine against a small origin the test controls (aiohttp on loopback).

What is checked (aetiket/transfer/download.py): a server without Range whose body has no
length (chunked) and breaks is fetched again from byte 0, never written at the break's
offset; such a server sending another or a longer file on the retry is RemoteChanged. A
split of a running segment never writes or counts a byte twice. Without a strong ETag
the first answer's Last-Modified pins the version (If-Range with it when the Date makes
it strong); with no validator at all a rerun starts from byte 0. A presigned URL's query
never shows in an exception.

Faults on the wire go through tests/faultproxy.py; what the origin serves (its versions
and headers) is the origin's own state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import hashlib
import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from aetiket import Client, Progress
from aetiket._config import TransferConfig
from aetiket.errors import AetiketError, DownloadError, RemoteChanged
from aetiket.transfer.download import PLAIN_BLOCK, PROBE
from tests.faultproxy import Fault, FaultProxy

pytestmark = [pytest.mark.anyio]

KiB = 1024
MiB = 1024 * KiB
PATH = "/f.bin"
#: A Last-Modified long before any Date the origin sends: a strong validator.
LONG_AGO = email.utils.formatdate(1_600_000_000, usegmt=True)
LATER = email.utils.formatdate(1_600_000_010, usegmt=True)


@dataclasses.dataclass
class Version:
    """What the origin serves: bytes and the validators of their answers."""

    data: bytes
    etag: str | None = None
    last_modified: str | None = None
    date: str | None = None  # None: aiohttp's own (now)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def version(size: int, seed: int, **headers: str | None) -> Version:
    return Version(random.Random(seed).randbytes(size), **headers)


class Origin:
    """``GET /f.bin`` on 127.0.0.1: with Range (and If-Range) or without, with a
    Content-Length or chunked. The n-th GET gets ``versions[n]`` (the last one stays)."""

    def __init__(self) -> None:
        self.versions: list[Version] = []
        self.ranges = True
        self.if_range = True  # False: Range is served whatever If-Range says
        self.chunked = False
        self.requests: list[dict[str, str]] = []
        self.served = 0  # body bytes handed to aiohttp
        self.url = ""

    def _if_range_holds(self, value: str | None, v: Version) -> bool:
        if value is None or not self.if_range:
            return True
        if value.startswith('"') or value.startswith("W/"):
            return value == v.etag and not value.startswith("W/")
        return value == v.last_modified

    async def handle(self, request: web.Request) -> web.StreamResponse:
        v = self.versions[min(len(self.requests), len(self.versions) - 1)]
        self.requests.append(dict(request.headers))
        headers = {
            name: value
            for name, value in (
                ("ETag", v.etag),
                ("Last-Modified", v.last_modified),
                ("Date", v.date),
                ("Accept-Ranges", "bytes" if self.ranges else None),
            )
            if value is not None
        }
        body, status, size = v.data, 200, len(v.data)
        spec = request.headers.get("Range") if self.ranges else None
        if spec and self._if_range_holds(request.headers.get("If-Range"), v):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", spec)
            assert match, spec
            first = int(match[1])
            last = min(int(match[2]) if match[2] else size - 1, size - 1)
            if first >= size:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
            body, status = body[first : last + 1], 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        self.served += len(body)
        if not self.chunked:
            return web.Response(status=status, body=body, headers=headers)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.enable_chunked_encoding()  # no Content-Length: the body's end is its last chunk
        await resp.prepare(request)
        for at in range(0, len(body), 64 * KiB):
            await resp.write(body[at : at + 64 * KiB])
        await resp.write_eof()
        return resp

    def range_starts(self) -> list[int]:
        return [int(re.findall(r"\d+", h["Range"])[0]) for h in self.requests if "Range" in h]


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    server = Origin()
    app = web.Application()
    app.router.add_get(PATH, server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def client(**transfer: Any) -> Client:
    """A client of another origin (no token goes anywhere)."""
    return Client("http://127.0.0.1:1", transfer=TransferConfig(**transfer))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_progress(events: list[Progress], size: int) -> None:
    """Never back, never past the size, and the last event says exactly the size."""
    dones = [e.done for e in events]
    assert dones == sorted(dones), dones
    assert max(dones) <= size, (max(dones), size)
    assert events[-1].finished and events[-1].done == size and events[-1].total == size


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def record_done(dest: Path) -> int:
    record = json.loads(dest.with_name(dest.name + ".part.json").read_bytes())
    return sum(end - start for start, end in record["done"])


# ---------------------------------------------------------------------------- no Range


async def test_a_chunked_answer_without_range_that_breaks_is_fetched_again_from_byte_0(
    origin: Origin, tmp_path: Path
) -> None:
    """No Range, no Content-Length: the size is unknown after the first answer. Its
    retry is the whole file again and must land at byte 0 (it was written at the
    break's offset: a longer, corrupt file published)."""
    origin.ranges, origin.chunked = False, True
    v = version(3 * MiB + 5, seed=1)
    origin.versions = [v]
    dest = tmp_path / "out.bin"
    events: list[Progress] = []
    with anyio.fail_after(30):
        async with FaultProxy(origin.url) as proxy, client() as c:
            rule = proxy.add(Fault(truncate_after=MiB), method="GET", path=PATH, nth=1)
            result = await c.download_url(f"{proxy.url}{PATH}", dest, progress=events.append)
    assert rule.applied == 1
    assert [e.status for e in proxy.log] == [200, 200]
    assert result.size == len(v.data)
    assert sha256_of(dest) == v.sha256
    check_progress(events, len(v.data))  # the bytes fetched again are not counted twice
    assert listing(tmp_path) == {"out.bin"}


@pytest.mark.parametrize("on_change", ["raise", "restart"])
@pytest.mark.parametrize("change", ["grown", "replaced"])
async def test_a_server_without_range_sending_another_file_on_the_retry(
    origin: Origin, tmp_path: Path, change: str, on_change: str
) -> None:
    """The first whole-file answer breaks; the retry's answer is another version (a
    longer file, or another ETag): RemoteChanged, or with on_change='restart' the new
    file whole (not the first answer's length of it)."""
    origin.ranges = False
    old = version(2 * MiB, seed=2, etag='"v1"')
    new = version(3 * MiB if change == "grown" else 2 * MiB, seed=3, etag='"v2"')
    if change == "grown":
        new.etag = old.etag  # only the length tells
    origin.versions = [old, new]
    dest = tmp_path / "out.bin"
    with anyio.fail_after(30):
        async with FaultProxy(origin.url) as proxy, client() as c:
            proxy.add(Fault(truncate_after=MiB), method="GET", path=PATH, nth=1)
            url = f"{proxy.url}{PATH}"
            if on_change == "raise":
                with pytest.raises(RemoteChanged):
                    await c.download_url(url, dest, on_change="raise")
                assert not dest.exists()
                return
            result = await c.download_url(url, dest, on_change="restart")
    assert sha256_of(dest) == new.sha256
    assert result.size == len(new.data)
    assert len(origin.requests) == 3  # the broken one, the other version, the restart


# ---------------------------------------------------------------------------- splits


@pytest.mark.parametrize("path", ["aiohttp", "plain"])
async def test_a_split_never_writes_or_counts_a_byte_twice(
    origin: Origin, tmp_path: Path, path: str
) -> None:
    """segment_size far below the write size: a connection holds bytes received but not
    yet written. The second connection stalls with one write done and 3/4 MiB held; the
    first one, idle, takes half of what is left of it. That half must start after the
    held bytes (they were written twice and counted twice: progress past the size).
    On the aiohttp path a write is a block (1 MiB here), on the plain path (a client
    with its own connector never takes it) a buffer of PLAIN_BLOCK."""
    written = MiB if path == "aiohttp" else PLAIN_BLOCK
    held = written + 3 * MiB // 4
    v = version(PROBE + written + MiB, seed=4, etag='"s"')
    origin.versions = [v]
    dest = tmp_path / "out.bin"
    events: list[Progress] = []
    config = TransferConfig(block_size=MiB)
    connector = aiohttp.TCPConnector() if path == "aiohttp" else None
    with anyio.fail_after(30):
        async with (
            FaultProxy(origin.url) as proxy,
            Client("http://127.0.0.1:1", transfer=config, connector=connector) as c,
            contextlib.AsyncExitStack() as stack,
        ):
            if connector is not None:
                stack.push_async_callback(connector.close)  # the caller's to close
            # The probe waits near its end so that the second connection is stalled
            # (one write done, 3/4 MiB held) when the probe's connection looks for work.
            proxy.add(Fault(stall=(3 * MiB, 0.5)), method="GET", path=PATH, nth=1)
            proxy.add(Fault(stall=(held, 2.0)), method="GET", path=PATH, nth=2)
            result = await c.download_url(
                f"{proxy.url}{PATH}",
                dest,
                parallel=2,
                segment_size=64 * KiB,
                progress=events.append,
            )
    assert sha256_of(dest) == v.sha256
    assert result.size == len(v.data)
    check_progress(events, len(v.data))
    starts = origin.range_starts()
    # The probe, the second share, then splits of the stalled one (while it is held,
    # the first connection may take half of what is left twice), all after its bytes.
    assert starts[:2] == [0, PROBE] and len(starts) >= 3, starts
    assert min(starts[2:]) >= PROBE + held, starts


# ---------------------------------------------------------------------------- validators


async def _cancelled_run(origin: Origin, dest: Path) -> None:
    """A first run cancelled midway: a .part file and its record stay."""
    with anyio.fail_after(30):
        async with client() as c:
            with anyio.move_on_after(1.0) as scope:
                await c.download_url(f"{origin.url}{PATH}", dest, parallel=2, bandwidth=4 * MiB)
    assert scope.cancelled_caught
    assert 0 < record_done(dest) < len(origin.versions[0].data)


@pytest.mark.parametrize("kind", ["strong-date", "weak-date", "if-range-ignored"])
async def test_only_last_modified_pins_the_version_across_runs(
    origin: Origin, tmp_path: Path, kind: str
) -> None:
    """No ETag, a Last-Modified; the content is replaced (same size) between a cancelled
    run and the rerun. The rerun must not resume into a mix of both: RemoteChanged (a
    strong date goes in If-Range, the origin answers 200; a weak one is compared with
    the 206's Last-Modified, as is a strong one when the origin ignores If-Range)."""
    size = 12 * MiB
    weak = kind == "weak-date"
    old = version(size, seed=5, last_modified=LONG_AGO, date=LONG_AGO if weak else None)
    new = version(size, seed=6, last_modified=LATER, date=LATER if weak else None)
    origin.versions = [old]
    origin.if_range = kind != "if-range-ignored"
    dest = tmp_path / "out.bin"
    await _cancelled_run(origin, dest)
    origin.versions, origin.requests = [new], []
    with anyio.fail_after(30):
        async with client() as c:
            with pytest.raises(RemoteChanged, match=r"^out\.bin: "):
                await c.download_url(f"{origin.url}{PATH}", dest, parallel=2)
            assert not dest.exists()
            if_ranges = {h.get("If-Range") for h in origin.requests}
            assert if_ranges == ({None} if weak else {LONG_AGO}), if_ranges
            result = await c.download_url(f"{origin.url}{PATH}", dest, on_change="restart")
    assert not result.resumed
    assert sha256_of(dest) == new.sha256


async def test_a_strong_last_modified_resumes_with_if_range(origin: Origin, tmp_path: Path) -> None:
    """Unchanged content, only Last-Modified (strong: the Date is years later): the rerun
    resumes with ``If-Range: <Last-Modified>`` and fetches what is missing."""
    v = version(12 * MiB, seed=7, last_modified=LONG_AGO)
    origin.versions = [v]
    dest = tmp_path / "out.bin"
    await _cancelled_run(origin, dest)
    missing = len(v.data) - record_done(dest)
    origin.requests, origin.served = [], 0
    with anyio.fail_after(30):
        async with client() as c:
            result = await c.download_url(f"{origin.url}{PATH}", dest, parallel=2)
    assert result.resumed
    assert sha256_of(dest) == v.sha256
    assert {h.get("If-Range") for h in origin.requests} == {LONG_AGO}
    # What was missing, and what split segments had in flight (a block each).
    assert origin.served <= missing + 2 * TransferConfig().block_size


@pytest.mark.parametrize("etag", ['W/"1"', None], ids=["weak-etag", "no-validator"])
async def test_without_a_validator_a_rerun_starts_from_byte_0(
    origin: Origin, tmp_path: Path, etag: str | None
) -> None:
    """Nothing can tell whether the bytes of the cancelled run are still the remote's:
    the rerun fetches it all again (it resumed into a mix of two versions)."""
    size = 12 * MiB
    origin.versions = [version(size, seed=8, etag=etag)]
    dest = tmp_path / "out.bin"
    await _cancelled_run(origin, dest)
    new = version(size, seed=9, etag=etag)
    origin.versions, origin.requests = [new], []
    with anyio.fail_after(30):
        async with client() as c:
            result = await c.download_url(f"{origin.url}{PATH}", dest, parallel=2)
    assert not result.resumed
    assert sha256_of(dest) == new.sha256
    assert origin.range_starts()[0] == 0


# ---------------------------------------------------------------------------- secrets


SECRET = "X-Amz-Signature=0f1e2d3c4b5a"


def _texts(exc: BaseException) -> list[str]:
    """str and repr of an error, its causes and its segments' errors."""
    out: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        out += [str(e), repr(e)]
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
        if isinstance(e, DownloadError):
            todo += list(e.segments.values())
    return out


@pytest.mark.parametrize("fault", ["content-range", "broken-body"])
async def test_a_presigned_urls_query_never_shows_in_an_exception(
    origin: Origin, tmp_path: Path, fault: str
) -> None:
    origin.versions = [version(2 * MiB, seed=10, etag='"p"')]
    dest = tmp_path / "out.bin"
    if fault == "content-range":
        bad = Fault(set_headers={"Content-Range": "bytes 1-10/2097152"})
    else:
        bad = Fault(truncate_after=1000)
    with anyio.fail_after(30):
        async with FaultProxy(origin.url) as proxy, client(max_retries=0) as c:
            proxy.add(bad, method="GET", path=PATH)
            with pytest.raises(AetiketError) as caught:
                await c.download_url(f"{proxy.url}{PATH}?{SECRET}&X-Amz-Date=20250101", dest)
    texts = _texts(caught.value)
    assert any(f"{proxy.url}{PATH}" in t for t in texts), texts  # which URL: still said
    assert not [t for t in texts if "0f1e2d3c4b5a" in t], texts
