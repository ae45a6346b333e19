"""Progress callbacks never run in a transfer's byte path (aetiket/transfer/progress.py).

Every test transfers over loopback to a real `aetiket serve`, through ``FaultProxy``
where the transfer must last long enough for several events (answers held back) or the
requests must be counted. Checked, for uploads and downloads alike:

* a callback that raises ends the transfer with that very exception, promptly, and no
  request is sent after it (before, an upload took it for a network fault of the PATCH
  body, sent the part again and again, and ended with an UploadError);
* a slow async callback is never entered twice at once, is never cancelled by a body
  whose answer came in, holds no byte back, and gets the last event (finished, all
  bytes) after the transfer is complete;
* events never go back and end with exactly one ``finished`` event, and none after it;
* a cancelled transfer does not wait for a slow callback: it is cancelled with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import aetiket
from aetiket import Client, RetryPolicy, TransferConfig
from aetiket.transfer.progress import Progress
from tests.conftest import ServerProcess, admin_scope
from tests.faultproxy import Fault, FaultProxy
from tests.timing import bounded

pytestmark = pytest.mark.anyio

KiB = 1024
MiB = 1024 * KiB
UPLOADS = "/api/v1/uploads/"
#: Every content GET of a download goes under this path.
CONTENT = "/api/v1/files/"
FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05)


def upload_config(tmp: Path, parallel: int) -> TransferConfig:
    """Small parts and PATCHes: a few MiB make many requests."""
    return TransferConfig(
        resume_dir=tmp / "resume",
        parallel=parallel,
        min_part=256 * KiB,
        chunk_size=512 * KiB,
        block_size=64 * KiB,
    )


@dataclasses.dataclass
class Env:
    server: ServerProcess
    direct: Client
    scope: str
    dataset: str
    tmp: Path

    async def new_file(self) -> str:
        """A file record without content."""
        uid = aetiket.new_uid()
        await self.direct.files.create(
            aetiket.FileIn(name="data.bin", uid=uid, dataset_uid=self.dataset, scope=self.scope)
        )
        return uid

    async def blob(self, data: bytes) -> str:
        """A file record with ``data`` as its content."""
        uid = await self.new_file()
        await self.direct.upload(data, scope=self.scope, file_uid=uid)
        return uid

    async def content_sha256(self, uid: str) -> str:
        data = await self.direct.files.read(self.scope, uid, max_bytes=64 * MiB)
        return hashlib.sha256(data).hexdigest()

    def client(self, url: str, cfg: TransferConfig | None = None) -> Client:
        cfg = cfg or TransferConfig(resume_dir=self.tmp / "resume", block_size=64 * KiB)
        return Client(url, token=self.direct.token, retry=FAST, transfer=cfg)


@pytest.fixture
async def env(server: ServerProcess, tmp_path: Path) -> AsyncIterator[Env]:
    async with admin_scope(server, "pc", dataset="progress") as (direct, scope, dataset):
        assert dataset is not None
        yield Env(server, direct, scope, dataset, tmp_path)


def started(proxy: FaultProxy, method: str, prefix: str) -> int:
    """Requests of ``method`` under ``prefix`` that reached the proxy so far."""
    return sum(n for (m, path), n in proxy.seen.items() if m == method and path.startswith(prefix))


class Raises:
    """A callback that raises its own ValueError on its ``nth`` call, noting what the
    proxy had seen by then."""

    def __init__(self, proxy: FaultProxy, method: str, prefix: str, nth: int = 3) -> None:
        self.proxy, self.method, self.prefix, self.nth = proxy, method, prefix, nth
        self.calls = 0
        self.error = ValueError("the callback's own error")
        self.raised_at = 0.0
        self.requests_then = 0
        self.events: list[Progress] = []

    def __call__(self, event: Progress) -> None:
        self.calls += 1
        self.events.append(event)
        if self.calls == self.nth:
            self.raised_at = time.monotonic()
            self.requests_then = started(self.proxy, self.method, self.prefix)
            raise self.error


class Slow:
    """An async callback that sleeps in every call, counting overlaps and cancellations."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.events: list[Progress] = []
        self.active = 0
        self.most = 0
        self.cancelled = 0

    async def __call__(self, event: Progress) -> None:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await anyio.sleep(self.seconds)
            self.events.append(event)
        except BaseException:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1


def check_events(events: list[Progress], size: int) -> None:
    """Never back, never past ``size``, exactly one ``finished`` event: the last, at
    ``size``."""
    assert events, "no progress event"
    dones = [e.done for e in events]
    assert dones == sorted(dones), f"progress went back: {dones}"
    assert all(e.total == size for e in events)
    assert max(dones) <= size
    assert [e.finished for e in events].count(True) == 1
    assert events[-1].finished and events[-1].done == size, events[-1]


# ---------------------------------------------------------------------------- a callback raises


@bounded(60)
async def test_an_upload_whose_callback_raises_ends_with_that_exception(env: Env) -> None:
    size, parallel = 8 * MiB, 2
    data = random.Random(1).randbytes(size)
    uid = await env.new_file()
    async with FaultProxy(env.server.url) as proxy:
        # Each PATCH's answer held back: 8 PATCHes per part take well over a second.
        proxy.add(Fault(delay=0.2), method="PATCH")
        callback = Raises(proxy, "PATCH", UPLOADS)
        async with env.client(proxy.url, upload_config(env.tmp, parallel)) as client:
            with pytest.raises(ValueError) as caught:
                await client.upload(data, scope=env.scope, file_uid=uid, progress=callback)
            ended = time.monotonic()
            await anyio.sleep(0.5)  # anything still on its way would show by now
    assert caught.value is callback.error  # itself: not wrapped, not a network fault
    assert callback.calls == 3  # no event after it
    assert not callback.events[-1].finished  # it raised mid-transfer
    assert ended - callback.raised_at < 5
    # No PATCH started after the error. The proxy shares the event loop and reads a
    # request a little after the client wrote it: each part's next PATCH, sent before the
    # error, may be counted after it. (Taken for a network fault, the error made a part
    # send its body again, up to max_retries times.)
    assert started(proxy, "PATCH", UPLOADS) - callback.requests_then <= parallel
    record = await env.direct.files.get(env.scope, uid)
    assert record.etag is None or record.etag != hashlib.sha256(data).hexdigest()


@bounded(60)
async def test_a_download_whose_callback_raises_ends_with_that_exception(env: Env) -> None:
    size = 8 * MiB
    data = random.Random(2).randbytes(size)
    uid = await env.blob(data)
    dest = env.tmp / "out.bin"
    async with FaultProxy(env.server.url) as proxy:
        callback = Raises(proxy, "GET", CONTENT + env.scope)
        async with env.client(proxy.url) as client:
            with pytest.raises(ValueError) as caught:
                # 2 MiB/s: the download lasts seconds, the third event comes early.
                await client.download(
                    env.scope, uid, dest, parallel=2, bandwidth=2 * MiB, progress=callback
                )
            ended = time.monotonic()
            await anyio.sleep(0.5)
    assert caught.value is callback.error
    assert callback.calls == 3
    assert not callback.events[-1].finished
    assert ended - callback.raised_at < 5
    assert started(proxy, "GET", CONTENT + env.scope) - callback.requests_then <= 2
    assert not dest.exists()  # nothing published; the .part stays for a resume
    assert dest.with_name(dest.name + ".part").exists()


# ---------------------------------------------------------------------------- a slow callback


@bounded(60)
async def test_a_slow_async_callback_runs_alone_and_gets_the_last_event(env: Env) -> None:
    size, parallel = 8 * MiB + 4321, 4
    data = random.Random(3).randbytes(size)
    uid = await env.new_file()
    slow = Slow(0.5)
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(Fault(delay=0.3), method="PATCH")  # 5 PATCHes a part: over a second
        async with env.client(proxy.url, upload_config(env.tmp, parallel)) as client:
            result = await client.upload(data, scope=env.scope, file_uid=uid, progress=slow)
    assert result.verified and len(result.part_urls) == parallel
    assert await env.content_sha256(uid) == hashlib.sha256(data).hexdigest()
    assert slow.most == 1, "the callback ran twice at once"
    assert slow.cancelled == 0, "the callback was cancelled"
    assert slow.events[-1].finished and slow.events[-1].done == size
    check_events(slow.events, size)


@bounded(60)
async def test_a_cancelled_transfer_does_not_wait_for_a_slow_callback(env: Env) -> None:
    size = 4 * MiB
    data = random.Random(4).randbytes(size)
    uid = await env.new_file()
    slow = Slow(60)
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(Fault(delay=0.2), method="PATCH")
        async with env.client(proxy.url, upload_config(env.tmp, 2)) as client:
            with anyio.move_on_after(1) as scope:
                await client.upload(data, scope=env.scope, file_uid=uid, progress=slow)
            at = time.monotonic()
    assert scope.cancelled_caught
    assert time.monotonic() - at < 2
    assert slow.cancelled == 1 and slow.active == 0  # cancelled with the transfer


# ---------------------------------------------------------------------------- the events


@bounded(60)
async def test_upload_events_grow_and_end_with_one_finished_event(env: Env) -> None:
    size = 6 * MiB + 17
    data = random.Random(5).randbytes(size)
    uid = await env.new_file()
    events: list[Progress] = []
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(Fault(delay=0.05), method="PATCH")
        async with env.client(proxy.url, upload_config(env.tmp, 3)) as client:
            result = await client.upload(
                data, scope=env.scope, file_uid=uid, progress=events.append
            )
            seen = len(events)
            await anyio.sleep(0.3)
    assert result.verified
    assert len(events) == seen, "an event after the finished one"
    assert len(events) > 2
    check_events(events, size)
    moved = [e for e in events if e.part is not None]
    assert moved and all(0 < e.part_done <= (e.part_total or 0) for e in moved)


@bounded(60)
async def test_download_events_grow_and_end_with_one_finished_event(env: Env) -> None:
    size = 6 * MiB + 17
    data = random.Random(6).randbytes(size)
    uid = await env.blob(data)
    dest = env.tmp / "events.bin"
    events: list[Progress] = []

    async def record(event: Progress) -> None:  # an async callback this time
        events.append(event)

    async with env.client(env.server.url) as client:
        result = await client.download(
            env.scope, uid, dest, parallel=3, bandwidth=3 * MiB, progress=record
        )
        seen = len(events)
        await anyio.sleep(0.3)
    assert result.verified and dest.read_bytes() == data
    assert len(events) == seen, "an event after the finished one"
    assert len(events) > 2
    check_events(events, size)
