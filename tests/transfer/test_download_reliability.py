"""The download engine over a flaky network: aetiket.Client -> FaultProxy -> `aetiket serve`.

What is checked (aetiket/transfer/download.py; TRANSFER_PITFALLS.md 3b): downloads of
random sizes through resets, truncated bodies, 503 + Retry-After, wrong Content-Range
headers and stalls end byte-identical, or with the right error when the fault outlasts the
retries; never with a complete-looking wrong file at the destination. A remote that
changes between two requests raises ``RemoteChanged`` (``on_change="restart"``: a correct
new file). Sizes around the 4 MiB probe; progress events. A download killed with SIGKILL,
or cancelled, fetches only what is missing when run again. File names from the server
stay inside the destination folder; the token never goes to another origin.

"Reset mid-body" needs a connection reset after some body bytes, which one FaultProxy
does not do: two proxies in a row do it. The inner one ends the body early with a FIN
(``truncate_after``); the outer one, still owing the client the rest of the announced
body, resets the client's connection (``_serve`` resets on a broken upstream).

"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from aiohttp import web

import aetiket
from aetiket import Client
from aetiket._config import TransferConfig
from aetiket.errors import (
    AetiketError,
    ChecksumMismatch,
    DownloadError,
    RemoteChanged,
    TransferError,
)
from aetiket.transfer.download import NEAR_CONNECTIONS, PROBE, STRIPE, DownloadResult
from aetiket.transfer.progress import Progress
from tests.conftest import ServerProcess, admin_scope
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.timing import bounded

pytestmark = [pytest.mark.anyio]

KiB = 1024
MiB = 1024 * KiB
BLOCK = TransferConfig().block_size
#: Every content GET goes to this path prefix (file records are read from /uploads/).
CONTENT = "/api/v1/files/"
CHILD = Path(__file__).with_name("download_child.py")
SENTINEL = b"an older file that must survive a failed download\n"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def record_done(dest: Path) -> int:
    """Bytes the control record beside ``dest`` says are written."""
    record = json.loads(dest.with_name(dest.name + ".part.json").read_bytes())
    return sum(end - start for start, end in record["done"])


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def part_files(dest: Path) -> set[str]:
    return {dest.name + ".part", dest.name + ".part.json"}


def content_range(value: str | None) -> tuple[int, int, int] | None:
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", value or "")
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def shift_start(value: str | None) -> str | None:
    """A Content-Range that starts one byte later than the body does."""
    parsed = content_range(value)
    if parsed is None:
        return value
    first, last, total = parsed
    return f"bytes {first + 1}-{last}/{total}"


def short_end(value: str | None) -> str | None:
    """A Content-Range that ends one byte earlier than the body does."""
    parsed = content_range(value)
    if parsed is None:
        return value
    first, last, total = parsed
    return f"bytes {first}-{last - 1}/{total}"


@dataclasses.dataclass(frozen=True)
class Blob:
    """A file record of the test's scope with uploaded content."""

    uid: str
    name: str
    size: int
    sha256: str


class Env:
    """A direct admin client, a scope and a dataset of the session's server."""

    def __init__(
        self, server: ServerProcess, direct: Client, scope: str, dataset: str, tmp: Path
    ) -> None:
        self.server, self.direct, self.scope, self.dataset, self.tmp = (
            server,
            direct,
            scope,
            dataset,
            tmp,
        )

    async def blob(self, size: int, *, seed: int, name: str = "blob.bin") -> Blob:
        """A new file record whose content is ``size`` seeded random bytes."""
        uid = aetiket.new_uid()
        await self.direct.files.create(
            aetiket.FileIn(name=name, uid=uid, dataset_uid=self.dataset, scope=self.scope)
        )
        return await self.fill(Blob(uid, name, size, ""), seed=seed)

    async def fill(self, blob: Blob, *, seed: int) -> Blob:
        """Upload (again) ``blob.size`` seeded random bytes as the content of ``blob``."""
        data = random.Random(seed).randbytes(blob.size)
        await self.direct.upload(data, scope=self.scope, file_uid=blob.uid)
        return dataclasses.replace(blob, sha256=hashlib.sha256(data).hexdigest())

    def client(self, url: str, **transfer: Any) -> Client:
        """A client of ``url`` (a proxy) with the admin's token."""
        return Client(url, token=self.direct.token, transfer=TransferConfig(**transfer))


@pytest.fixture
async def env(server: ServerProcess, tmp_path: Path) -> AsyncIterator[Env]:
    config = TransferConfig(resume_dir=tmp_path / "resume")
    async with admin_scope(server, "dl", dataset="downloads", transfer=config) as (
        direct,
        scope,
        dataset,
    ):
        assert dataset is not None
        yield Env(server, direct, scope, dataset, tmp_path)


def check_progress(events: list[Progress], size: int) -> None:
    """Events never go back, the last one is ``finished`` with ``done == total == size``."""
    assert events, "no progress event"
    dones = [e.done for e in events]
    assert dones == sorted(dones), f"progress went back: {dones}"
    assert all(0 <= d <= size for d in dones)
    assert events[-1].finished
    assert events[-1].done == size
    assert events[-1].total == size
    assert all(not e.finished for e in events[:-1])


# ---------------------------------------------------------------------------- the mix

SURVIVABLE = ("reset", "truncate", "503", "content-range", "stall")
FATAL = ("truncate-always", "content-range-always")


@dataclasses.dataclass
class Case:
    """One download of the mix: its size, connections, faults and expected end."""

    index: int
    size: int
    parallel: int | None
    faults: list[tuple[str, int, int]]  # (kind, nth content GET, body offset)
    fatal: str | None
    old_file: bool  # the destination exists before (and must survive a failure)


def mix(count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    edges = [0, 1, PROBE - 1, PROBE, PROBE + 1, 2 * PROBE]
    cases = []
    for i in range(count):
        roll = rng.random()
        if i < len(edges):
            size = edges[i]
        elif roll < 0.2:
            size = rng.randint(0, 64 * KiB)
        elif roll < 0.5:
            size = rng.randint(64 * KiB, PROBE)
        else:
            size = rng.randint(PROBE, 8 * MiB + 512 * KiB)
        fatal = rng.choice(FATAL) if i % 8 == 7 and size > 0 else None
        faults = []
        if fatal is None:
            for kind in rng.sample(SURVIVABLE, rng.randint(0, 3)):
                faults.append((kind, rng.randint(1, 3), rng.randint(0, min(size, 2 * MiB))))
        cases.append(
            Case(
                index=i,
                size=size,
                parallel=rng.choice([None, 1, 4, 8]),
                faults=faults,
                fatal=fatal,
                old_file=rng.random() < 0.5,
            )
        )
    return cases


def inject(case: Case, outer: FaultProxy, inner: FaultProxy) -> list[tuple[str, Rule]]:
    """Add the case's faults to the proxies; returns (kind, rule) pairs."""
    rules = []
    for kind, nth, offset in case.faults:
        if kind == "reset":
            rule = inner.add(Fault(truncate_after=offset), method="GET", path=CONTENT, nth=nth)
        elif kind == "truncate":
            rule = outer.add(Fault(truncate_after=offset), method="GET", path=CONTENT, nth=nth)
        elif kind == "503":
            rule = outer.add(
                Fault(answer=503, answer_headers={"Retry-After": "1"}),
                method="GET",
                path=CONTENT,
                nth=nth,
            )
        elif kind == "content-range":
            change = shift_start if offset % 2 else short_end
            rule = outer.add(
                Fault(set_headers={"Content-Range": change}), method="GET", path=CONTENT, nth=nth
            )
        else:
            assert kind == "stall"
            rule = outer.add(Fault(stall=(offset, 2.5)), method="GET", path=CONTENT, nth=nth)
        rules.append((kind, rule))
    if case.fatal == "truncate-always":
        rules.append((case.fatal, outer.add(Fault(truncate_after=0), method="GET", path=CONTENT)))
    elif case.fatal == "content-range-always":
        rules.append(
            (
                case.fatal,
                outer.add(
                    Fault(set_headers={"Content-Range": shift_start}), method="GET", path=CONTENT
                ),
            )
        )
    return rules


@bounded(80)
async def test_fifty_downloads_through_faults_end_identical_or_with_the_right_error(
    env: Env,
) -> None:
    cases = mix(50, seed=20240611)
    blobs: dict[int, Blob] = {}
    limiter = anyio.CapacityLimiter(4)

    async def upload(case: Case) -> None:
        async with limiter:
            blobs[case.index] = await env.blob(case.size, seed=case.index, name=f"f{case.index}")

    async with anyio.create_task_group() as tg:
        for case in cases:
            tg.start_soon(upload, case)

    applied: dict[str, int] = {}
    outcomes: dict[int, str] = {}
    limiter = anyio.CapacityLimiter(6)

    async def run(case: Case) -> None:
        blob = blobs[case.index]
        folder = env.tmp / f"d{case.index}"
        folder.mkdir()
        dest = folder / "out.bin"
        if case.old_file:
            dest.write_bytes(SENTINEL)
        events: list[Progress] = []
        kinds = {kind for kind, _, _ in case.faults}
        transfer: dict[str, Any] = {"stall_timeout": 1.0 if "stall" in kinds else 30.0}
        if case.fatal:
            transfer["max_retries"] = 2
        label = f"case {case}"
        async with (
            limiter,
            FaultProxy(env.server.url) as inner,
            FaultProxy(inner.url) as outer,
            env.client(outer.url, **transfer) as client,
        ):
            rules = inject(case, outer, inner)
            try:
                result = await client.download(
                    env.scope, blob.uid, dest, parallel=case.parallel, progress=events.append
                )
            except AetiketError as exc:
                assert case.fatal, f"{label}: {type(exc).__name__}: {exc}"
                assert isinstance(exc, DownloadError), f"{label}: {exc!r}"
                if case.old_file:
                    assert dest.read_bytes() == SENTINEL, label
                else:
                    assert not dest.exists(), label
                assert listing(folder) <= {dest.name} | part_files(dest), label
                outcomes[case.index] = "error"
            else:
                assert case.fatal is None, f"{label}: completed despite {case.fatal}"
                assert result.size == blob.size, label
                assert sha256_of(dest) == blob.sha256, label
                assert result.verified and result.sha256 == blob.sha256, label
                assert not result.resumed, label
                assert 1 <= result.connections <= (case.parallel or 16), label
                assert listing(folder) == {dest.name}, label
                check_progress(events, blob.size)
                outcomes[case.index] = "ok"
            for kind, rule in rules:
                applied[kind] = applied.get(kind, 0) + rule.applied

    async with anyio.create_task_group() as tg:
        for case in cases:
            tg.start_soon(run, case)

    assert len(outcomes) == len(cases)
    assert sorted(i for i, o in outcomes.items() if o == "error") == [
        c.index for c in cases if c.fatal
    ]
    # Every kind of fault really happened somewhere in the mix.
    for kind in (*SURVIVABLE, *FATAL):
        assert applied.get(kind, 0) > 0, f"no {kind} fault was applied: {applied}"


# ---------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("parallel", [None, 4])
@pytest.mark.parametrize(
    "size",
    [0, 1, PROBE - 1, PROBE, PROBE + 1],
    ids=["0B", "1B", "probe-1", "probe", "probe+1"],
)
@bounded(30)
async def test_sizes_around_the_probe_and_progress(
    env: Env, size: int, parallel: int | None
) -> None:
    blob = await env.blob(size, seed=size)
    dest = env.tmp / "out" / "file.bin"  # the folder is created by the download
    events: list[Progress] = []
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        result = await client.download(
            env.scope, blob.uid, dest, parallel=parallel, progress=events.append
        )
    assert result.size == size
    assert result.dest == dest
    assert sha256_of(dest) == blob.sha256
    assert result.verified and result.sha256 == blob.sha256
    assert listing(dest.parent) == {dest.name}
    check_progress(events, size)
    gets = [e for e in proxy.log if e.path.startswith(CONTENT)]
    if size <= PROBE:
        # The first request asks for the first 4 MiB: a file no larger is one request
        # (no other connection starts to split it).
        assert len(gets) == 1, gets
        assert result.connections == 1
        assert gets[0].status == (416 if size == 0 else 206)
    else:
        # One byte more: a second connection fetches it.
        assert len(gets) == 2, gets
        assert result.connections == 2
        assert {e.status for e in gets} == {206}


@bounded(30)
async def test_near_a_server_with_a_hash_connections_take_stripes_in_order(env: Env) -> None:
    """On loopback, with the server's SHA-256 to check, the rest after the first answer
    is cut in stripes of STRIPE taken in order (the hash follows the written prefix), by
    at most NEAR_CONNECTIONS connections."""
    size = PROBE + 10 * STRIPE
    blob = await env.blob(size, seed=5)
    dest = env.tmp / "striped.bin"
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        result = await client.download(env.scope, blob.uid, dest)
    assert result.verified and result.sha256 == blob.sha256
    assert sha256_of(dest) == blob.sha256
    gets = [e for e in proxy.log if e.path.startswith(CONTENT)]
    # The first answer, ten stripes (and at the end an idle connection may take half of
    # a stripe still running).
    assert len(gets) >= 11, gets
    assert result.connections == NEAR_CONNECTIONS


@bounded(30)
async def test_a_size_from_the_record_starts_every_connection_at_once(env: Env) -> None:
    """client.download has the size from the file's record and the server's distance
    from that record's answer: no probe. The first GET is held by the proxy for a
    second; with a probe the others would wait for its answer, here they all arrive
    while it is held."""
    hold = 1.0
    size = 3 * STRIPE + 123
    blob = await env.blob(size, seed=12)
    dest = env.tmp / "at-once.bin"
    asked: list[tuple[float, str]] = []

    def seen(value: str | None) -> str | None:
        asked.append((time.monotonic(), value or ""))
        return value

    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        proxy.add(Fault(set_request_headers={"Range": seen}), method="GET", path=CONTENT)
        proxy.add(Fault(delay=hold), method="GET", path=CONTENT, nth=1)
        result = await client.download(env.scope, blob.uid, dest)
    assert result.verified and result.sha256 == blob.sha256
    assert sha256_of(dest) == blob.sha256
    assert f"bytes=0-{PROBE - 1}" not in [r for _, r in asked]
    first = asked[0][0]
    while_held = [r for t, r in asked if t - first < hold / 2]
    assert len(while_held) == result.connections == NEAR_CONNECTIONS, asked


@bounded(30)
async def test_a_size_from_the_record_and_no_range_support_falls_back_to_one_stream(
    env: Env,
) -> None:
    """The same start at once against a server that ignores Range (the proxy removes
    the header): the 200s stop that attempt, and one stream fetches the file."""
    size = 2 * STRIPE + 5
    blob = await env.blob(size, seed=13)
    dest = env.tmp / "no-ranges.bin"
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        rule = proxy.add(Fault(set_request_headers={"Range": None}), method="GET", path=CONTENT)
        result = await client.download(env.scope, blob.uid, dest)
    assert result.verified and result.sha256 == blob.sha256
    assert sha256_of(dest) == blob.sha256
    assert rule.applied > 1  # the planned GETs, then the one stream
    assert {e.status for e in proxy.log if e.path.startswith(CONTENT)} <= {200, None}
    assert listing(env.tmp) - {"resume"} == {dest.name}  # no .part, no control record


# ---------------------------------------------------------------------------- bad bodies


@bounded(30)
async def test_a_body_with_other_bytes_under_right_headers_fails_the_checksum(env: Env) -> None:
    """The proxy asks the server for bytes 1.. but tells the client they are bytes 0..:
    every header check passes, only the hash can tell. ChecksumMismatch, nothing kept."""
    size = 3 * MiB
    blob = await env.blob(size, seed=7)
    dest = env.tmp / "out.bin"
    dest.write_bytes(SENTINEL)
    shifted = Fault(
        set_request_headers={"Range": "bytes=1-"},
        set_headers={"Content-Range": f"bytes 0-{size - 2}/{size}"},
    )
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        rule = proxy.add(shifted, method="GET", path=CONTENT, nth=1)
        with pytest.raises(ChecksumMismatch):
            await client.download(env.scope, blob.uid, dest, parallel=2)
    assert rule.applied == 1
    assert dest.read_bytes() == SENTINEL
    assert listing(env.tmp) - {"resume"} == {dest.name}  # the .part and record removed


@pytest.mark.parametrize("size", [3 * MiB, PROBE + 3 * MiB], ids=["probe", "at-once"])
@bounded(30)
async def test_a_first_answer_whose_size_disagrees_with_the_record_raises_remote_changed(
    env: Env, size: int
) -> None:
    blob = await env.blob(size, seed=8)
    dest = env.tmp / "out.bin"

    def bigger(value: str | None) -> str | None:
        parsed = content_range(value)
        assert parsed is not None
        first, last, total = parsed
        return f"bytes {first}-{last}/{total + 1000}"

    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        proxy.add(Fault(set_headers={"Content-Range": bigger}), method="GET", path=CONTENT, nth=1)
        with pytest.raises(RemoteChanged):
            await client.download(env.scope, blob.uid, dest)
    assert not dest.exists()


@pytest.mark.parametrize("late", [False, True], ids=["first", "after-206s"])
@bounded(30)
async def test_a_416_within_the_known_size_is_a_remote_change(env: Env, late: bool) -> None:
    """All connections start from the record's size; the server has fewer bytes (the
    proxy answers one GET with the 416 of a shorter file), before any 206 or after
    others confirmed the size: RemoteChanged either way, nothing kept."""
    size = PROBE + 3 * MiB
    blob = await env.blob(size, seed=14)
    dest = env.tmp / "shorter.bin"
    shorter = Fault(
        answer=416,
        answer_headers={"Content-Range": f"bytes */{PROBE}"},
        delay=0.5 if late else 0.0,
    )
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        rule = proxy.add(shorter, method="GET", path=CONTENT, nth=2)
        with pytest.raises(RemoteChanged, match="416"):
            await client.download(env.scope, blob.uid, dest)
    assert rule.applied == 1
    assert not dest.exists()


@bounded(30)
async def test_an_invalid_content_range_never_yields_a_truncated_file(env: Env) -> None:
    size = 3 * MiB
    blob = await env.blob(size, seed=9)
    dest = env.tmp / "out.bin"
    lie = Fault(  # a weak-looking server: no content hash in the ETag, a self-contradiction
        set_headers={"Content-Range": f"bytes 0-{size - 1}/{size - 1000}", "ETag": '"v1"'}
    )
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        proxy.add(lie, method="GET", path=CONTENT)
        url = f"{proxy.url}{CONTENT}{env.scope}/{blob.uid}"
        with pytest.raises(TransferError):
            await client.download_url(url, dest)
    assert not dest.exists()


# ---------------------------------------------------------------------------- the remote changes


@pytest.mark.parametrize(
    "on_change",
    [
        "raise",
        "restart",
    ],
)
@bounded(30)
async def test_an_etag_that_changes_on_later_answers_is_a_remote_change(
    env: Env, on_change: str
) -> None:
    blob = await env.blob(10 * MiB, seed=10)
    dest = env.tmp / "out.bin"
    dest.write_bytes(SENTINEL)
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        # Later answers say they come from another version of the file.
        proxy.add(Fault(set_headers={"ETag": '"v2"'}), method="GET", path=CONTENT, nth=range(2, 99))
        if on_change == "raise":
            with pytest.raises(RemoteChanged):
                await client.download(env.scope, blob.uid, dest, parallel=4, on_change="raise")
            assert dest.read_bytes() == SENTINEL
            assert listing(env.tmp) - {"resume"} <= {dest.name} | part_files(dest)
        else:
            result = await client.download(
                env.scope, blob.uid, dest, parallel=4, on_change="restart"
            )
            assert result.sha256 == blob.sha256
            assert sha256_of(dest) == blob.sha256


@pytest.mark.parametrize(
    "on_change",
    [
        "raise",
        "restart",
    ],
)
@bounded(30)
async def test_content_replaced_during_a_download(env: Env, on_change: str) -> None:
    """A re-upload of other bytes of the same size while the second segment stalls: its
    retry carries If-Range with the old ETag and gets 200."""
    blob = await env.blob(8 * MiB, seed=11)
    dest = env.tmp / "out.bin"
    stalled = anyio.Event()
    new: Blob | None = None

    async def replace() -> None:
        nonlocal new
        await stalled.wait()
        new = await env.fill(blob, seed=12)

    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        rule = proxy.add(
            Fault(stall=(256 * KiB, 3.0), truncate_after=512 * KiB),
            method="GET",
            path=CONTENT,
            nth=2,
        )

        async def watch() -> None:
            for _ in range(200):
                if rule.applied:
                    stalled.set()
                    return
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            tg.start_soon(replace)
            if on_change == "raise":
                with pytest.raises(RemoteChanged):
                    await client.download(env.scope, blob.uid, dest, parallel=2)
                assert not dest.exists()
                assert listing(env.tmp) - {"resume"} <= part_files(dest)
            else:
                result = await client.download(
                    env.scope, blob.uid, dest, parallel=2, on_change="restart"
                )
                assert new is not None
                assert result.sha256 == new.sha256
                assert sha256_of(dest) == new.sha256


@bounded(40)
async def test_content_replaced_between_a_cancelled_run_and_the_next(env: Env) -> None:
    blob = await env.blob(12 * MiB, seed=13)
    dest = env.tmp / "out.bin"
    dest.write_bytes(SENTINEL)
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        with anyio.move_on_after(1.0) as scope:
            await client.download(env.scope, blob.uid, dest, parallel=4, bandwidth=4 * MiB)
        assert scope.cancelled_caught
        assert dest.read_bytes() == SENTINEL
        assert 0 < record_done(dest) < blob.size
        new = await env.fill(blob, seed=14)
        assert new.sha256 != blob.sha256

        # One connection meets the change (several at once: see the next test).
        with pytest.raises(RemoteChanged):
            await client.download(env.scope, blob.uid, dest, parallel=1, on_change="raise")
        assert dest.read_bytes() == SENTINEL  # nothing of either version published
        assert listing(env.tmp) - {"resume"} == {dest.name} | part_files(dest)

        result = await client.download(env.scope, blob.uid, dest, parallel=1, on_change="restart")
    assert not result.resumed
    assert result.sha256 == new.sha256
    assert sha256_of(dest) == new.sha256
    assert listing(env.tmp) - {"resume"} == {dest.name}


@bounded(40)
async def test_several_connections_meeting_a_change_still_raise_remote_changed(
    env: Env,
) -> None:
    blob = await env.blob(12 * MiB, seed=23)
    dest = env.tmp / "out.bin"
    async with FaultProxy(env.server.url) as proxy:
        async with env.client(proxy.url) as client:
            with anyio.move_on_after(1.0):
                await client.download(env.scope, blob.uid, dest, parallel=8, bandwidth=4 * MiB)
        assert 0 < record_done(dest) < blob.size
        await env.fill(blob, seed=24)
        # Hold every answer a moment, so that they come back together.
        proxy.add(Fault(delay=0.3), method="GET", path=CONTENT)
        errors = []
        for _ in range(6):
            async with env.client(proxy.url) as client:  # fresh connections each time
                try:
                    await client.download(env.scope, blob.uid, dest, parallel=8)
                except TransferError as exc:
                    errors.append(type(exc).__name__)
    assert errors == ["RemoteChanged"] * 6


# ---------------------------------------------------------------------------- retry timing


@bounded(30)
async def test_retry_after_is_honoured_with_a_shorter_stall_timeout(env: Env) -> None:
    blob = await env.blob(1 * MiB, seed=15)
    dest = env.tmp / "out.bin"
    async with (
        FaultProxy(env.server.url) as proxy,
        env.client(proxy.url, stall_timeout=1.0) as client,
    ):
        proxy.add(
            Fault(answer=503, answer_headers={"Retry-After": "3"}),
            method="GET",
            path=CONTENT,
            times=1,
        )
        started = time.monotonic()
        result = await client.download(env.scope, blob.uid, dest, parallel=1)
        elapsed = time.monotonic() - started
    assert result.sha256 == blob.sha256
    assert elapsed >= 2.9, f"the retry came after {elapsed:.1f} s, Retry-After said 3"


@bounded(30)
async def test_a_bandwidth_limit_slower_than_the_stall_timeout_still_completes(
    env: Env,
) -> None:
    blob = await env.blob(1 * MiB + 256 * KiB, seed=16)
    dest = env.tmp / "out.bin"
    async with env.client(env.server.url, stall_timeout=1.0, max_retries=2) as client:
        result = await client.download(env.scope, blob.uid, dest, parallel=1, bandwidth=256 * KiB)
    assert result.sha256 == blob.sha256


@bounded(30)
async def test_a_clients_bandwidth_limit_holds_for_its_transfers_together(env: Env) -> None:
    """TransferConfig.bandwidth is for all of a client's transfers: two downloads at once
    share it (each had a bucket of its own: twice the limit). 4 MiB at 2 MiB/s with one
    second's burst cannot take less than a second."""
    blobs = [await env.blob(2 * MiB, seed=s, name=f"b{s}.bin") for s in (21, 22)]
    async with env.client(env.server.url, bandwidth=2 * MiB) as client:
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for blob in blobs:
                tg.start_soon(
                    functools.partial(
                        client.download, env.scope, blob.uid, env.tmp / blob.name, parallel=2
                    )
                )
        elapsed = time.monotonic() - started
    assert elapsed >= 0.9, f"two downloads under one 2 MiB/s limit took {elapsed:.2f} s"
    for blob in blobs:
        data = await anyio.Path(env.tmp / blob.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == blob.sha256


# ---------------------------------------------------------------------------- the plain path
# Ranged GETs to a plain http origin take _http.PlainConnection (see download.py).

PLAIN_OPENED = "a new plain connection"


def plain_opened(caplog: pytest.LogCaptureFixture) -> int:
    return sum(PLAIN_OPENED in r.getMessage() for r in caplog.records)


def content_gets(proxy: FaultProxy) -> list[int | None]:
    return [e.status for e in proxy.log if e.method == "GET" and e.path.startswith(CONTENT)]


async def plain_download(
    env: Env,
    caplog: pytest.LogCaptureFixture,
    *,
    seed: int,
    parallel: int,
    faults: Callable[[FaultProxy, Blob], object] = lambda proxy, blob: None,
    **transfer: Any,
) -> FaultProxy:
    """Download a blob of 5 stripes through a proxy given ``faults``; checks the bytes."""
    blob = await env.blob(5 * STRIPE, seed=seed)
    dest = env.tmp / "out.bin"
    caplog.set_level("DEBUG", logger="aetiket")
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url, **transfer) as client:
        faults(proxy, blob)
        result = await client.download(env.scope, blob.uid, dest, parallel=parallel)
    assert result.sha256 == blob.sha256 == sha256_of(dest)
    return proxy


@bounded(30)
async def test_the_plain_path_keeps_its_connections_alive(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await plain_download(env, caplog, seed=30, parallel=2)
    assert content_gets(proxy) == [206] * 5  # stripes, two connections taking them in turn
    assert plain_opened(caplog) == 2
    assert proxy.connections == 3  # and the file record's


@bounded(30)
async def test_a_kept_alive_connection_the_server_closed_is_no_failure(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A server whose keep-alive timeout ran out between two answers: the next request
    meets a closed connection. Asked again at once on a new one, that is no failure
    (none is allowed here)."""

    def close_after(proxy: FaultProxy, blob: Blob) -> None:
        proxy.add(Fault(close_after=True), method="GET", path=CONTENT)

    proxy = await plain_download(
        env, caplog, seed=31, parallel=2, faults=close_after, max_retries=0
    )
    assert content_gets(proxy) == [206] * 5
    assert plain_opened(caplog) == 5


@bounded(30)
async def test_a_redirect_on_the_plain_path_sends_the_rest_the_one_way(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    def redirect(proxy: FaultProxy, blob: Blob) -> None:
        here = f"{CONTENT}{env.scope}/{blob.uid}"
        proxy.add(Fault(answer=307, answer_headers={"Location": here}), path=here, nth=2)

    proxy = await plain_download(env, caplog, seed=32, parallel=1, faults=redirect)
    assert content_gets(proxy) == [206, 307, 206, 206, 206, 206]  # asked again at once
    assert plain_opened(caplog) == 1
    assert sum("asked again with aiohttp" in r.getMessage() for r in caplog.records) == 1


@bounded(30)
async def test_plain_connections_keep_within_the_clients_limits(env: Env) -> None:
    """aiohttp's pool does not see them: they have their own count of Limits."""
    blob = await env.blob(5 * STRIPE, seed=34)
    async with FaultProxy(env.server.url) as proxy:
        client = Client(proxy.url, token=env.direct.token, limits=aetiket.Limits(max_per_host=2))
        async with client:
            result = await client.download(env.scope, blob.uid, env.tmp / "out.bin", parallel=4)
    assert result.sha256 == blob.sha256 == sha256_of(env.tmp / "out.bin")
    assert proxy.peak <= 3, proxy.peak  # 2 plain, 1 of aiohttp's pool (the file record)


@bounded(30)
async def test_a_503_on_the_plain_path_waits_its_retry_after(env: Env) -> None:
    """Not asked again at once by the one path: the segment's retry waits."""
    blob = await env.blob(2 * STRIPE, seed=33)
    dest = env.tmp / "out.bin"
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        proxy.add(Fault(answer=503, answer_headers={"Retry-After": "2"}), path=CONTENT, times=1)
        started = time.monotonic()
        result = await client.download(env.scope, blob.uid, dest, parallel=1)
        elapsed = time.monotonic() - started
    assert result.sha256 == blob.sha256 == sha256_of(dest)
    assert content_gets(proxy) == [503, 206, 206]
    assert elapsed >= 1.9, f"asked again after {elapsed:.1f} s, Retry-After said 2"


# ---------------------------------------------------------------------------- kill and cancel


async def _wait_for_progress(dest: Path, proc: anyio.abc.Process, least: int) -> int:
    """Poll the control record until it shows at least ``least`` bytes; returns them."""
    for _ in range(400):
        assert proc.returncode is None, f"the child ended early with {proc.returncode}"
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            done = record_done(dest)
            if done >= least:
                return done
        await anyio.sleep(0.05)
    raise AssertionError(f"no progress in the control record of {dest}")


async def _settled(proxy: FaultProxy) -> int:
    """proxy.bytes_down once it stops moving (a dead client's answers run out)."""
    last = -1
    for _ in range(50):
        if proxy.bytes_down == last:
            break
        last = proxy.bytes_down
        await anyio.sleep(0.1)
    return proxy.bytes_down


@pytest.mark.parametrize(
    "rerun_via",
    [
        "same-proxy",
        "new-proxy",
    ],
)
@bounded(60)
async def test_kill_9_mid_download_then_the_rerun_fetches_only_what_is_missing(
    env: Env, rerun_via: str
) -> None:
    size = 24 * MiB
    parallel = 4
    blob = await env.blob(size, seed=17)
    dest = env.tmp / "killed.bin"
    out = (env.tmp / "child.out").open("wb")
    err = (env.tmp / "child.err").open("wb")
    async with FaultProxy(env.server.url) as first:
        cmd = [
            sys.executable,
            str(CHILD),
            "--url",
            first.url,
            # "=" form: a url-safe token may start with "-", which argparse takes for a flag.
            f"--token={env.direct.token or ''}",
            "--scope",
            env.scope,
            "--uid",
            blob.uid,
            "--dest",
            str(dest),
            "--parallel",
            str(parallel),
            "--bandwidth",
            str(4 * MiB),
        ]
        proc = await anyio.open_process(cmd, stdout=out, stderr=err, cwd=CHILD.parents[2])
        try:
            await _wait_for_progress(dest, proc, least=6 * MiB)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
            await proc.aclose()
            out.close()
            err.close()
        assert proc.returncode == -signal.SIGKILL
        missing = size - record_done(dest)  # what the record on disk says is missing
        assert 0 < missing < size - 6 * MiB + 1
        assert not dest.exists()

        async def rerun(proxy: FaultProxy) -> tuple[DownloadResult, int]:
            base = await _settled(proxy)
            async with env.client(proxy.url) as client:
                result = await client.download(env.scope, blob.uid, dest, parallel=parallel)
            return result, proxy.bytes_down - base

        if rerun_via == "same-proxy":
            result, fetched = await rerun(first)
        else:
            async with FaultProxy(env.server.url) as second:
                result, fetched = await rerun(second)
    assert sha256_of(dest) == blob.sha256
    assert result.sha256 == blob.sha256
    assert result.resumed
    # Only what was missing, plus what split segments had in flight (one block each) and
    # the small JSON of the file record.
    assert fetched <= missing + parallel * BLOCK + 64 * KiB, (fetched, missing)
    assert listing(env.tmp) - {"resume", "child.out", "child.err"} == {dest.name}


@bounded(40)
async def test_a_cancelled_download_keeps_its_part_and_resumes(env: Env) -> None:
    size = 16 * MiB
    blob = await env.blob(size, seed=18)
    dest = env.tmp / "out.bin"
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url) as client:
        with anyio.move_on_after(1.5) as scope:
            await client.download(env.scope, blob.uid, dest, parallel=4, bandwidth=4 * MiB)
        assert scope.cancelled_caught
        assert not dest.exists()
        assert listing(env.tmp) - {"resume"} == part_files(dest)
        done = record_done(dest)
        assert 0 < done < size
        base = await _settled(proxy)
        events: list[Progress] = []
        result = await client.download(
            env.scope, blob.uid, dest, parallel=4, progress=events.append
        )
        fetched = proxy.bytes_down - base
    assert result.resumed
    assert result.sha256 == blob.sha256
    assert sha256_of(dest) == blob.sha256
    assert listing(env.tmp) - {"resume"} == {dest.name}
    assert fetched <= size - done + 4 * BLOCK + 64 * KiB
    check_progress(events, size)
    assert events[0].done >= done  # the resumed bytes count as done from the start


@bounded(30)
async def test_no_file_handle_outlives_a_failed_or_cancelled_download(env: Env) -> None:
    """Workers cancelled while they open or close their .part handle (a sibling failed,
    or the caller cancelled) must not leave the handle to the garbage collector."""
    blob = await env.blob(7 * MiB, seed=22)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        async with FaultProxy(env.server.url) as proxy:
            # Headers arrive, no body byte ever does: every connection fails at once.
            proxy.add(Fault(truncate_after=0), method="GET", path=CONTENT)
            async with env.client(proxy.url, max_retries=0) as client:
                for i in range(3):
                    with pytest.raises(DownloadError):
                        await client.download(env.scope, blob.uid, env.tmp / f"f{i}", parallel=8)
                    await anyio.sleep(0.1)
                proxy.clear()
                for i in range(3):
                    with anyio.move_on_after(0.05 + 0.02 * i):
                        await client.download(
                            env.scope, blob.uid, env.tmp / f"c{i}", parallel=8, bandwidth=MiB
                        )
        await anyio.sleep(0.2)  # the threads that were opening files are done
        gc.collect()
    leaks = [str(w.message) for w in caught if ".part" in str(w.message)]
    assert not leaks, leaks


# ---------------------------------------------------------------------------- destination


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/abs/path", "path"),
        ("..\\x", "x"),
        ("..", None),  # nothing left: the file's uid
        ("sub/dir/../../..", None),
        (".hidden", "hidden"),
        ("C:\\Windows\\evil.dll", "evil.dll"),
    ],
)
@bounded(30)
async def test_a_server_file_name_never_leaves_the_destination_folder(
    env: Env, name: str, expected: str | None
) -> None:
    blob = await env.blob(100 * KiB, seed=19, name=name)
    folder = env.tmp / "a" / "b" / "into"
    folder.mkdir(parents=True)
    async with env.client(env.server.url) as client:
        result = await client.download(env.scope, blob.uid, folder)
    landed = result.dest.resolve()
    assert landed.parent == folder.resolve()
    assert landed.name == (expected or blob.uid)
    assert sha256_of(landed) == blob.sha256
    assert listing(folder) == {landed.name}
    assert listing(env.tmp / "a") == {"b"}
    assert listing(env.tmp / "a" / "b") == {"into"}


# ---------------------------------------------------------------------------- token


@contextlib.asynccontextmanager
async def serving(
    path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[int]:
    """An aiohttp server of ``handler`` at ``path`` on 127.0.0.1; yields its port."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def elsewhere(tmp_path: Path) -> AsyncIterator[tuple[str, list[dict[str, str]], bytes]]:
    """An aiohttp file server on another origin that records the headers it gets."""
    data = random.Random(20).randbytes(5 * MiB + 3)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "file.bin").write_bytes(data)
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return web.FileResponse(folder / request.match_info["name"])

    async with serving("/{name}", handler) as port:
        yield f"http://127.0.0.1:{port}", seen, data


@bounded(30)
async def test_the_token_never_goes_to_another_origin(
    env: Env, elsewhere: tuple[str, list[dict[str, str]], bytes]
) -> None:
    url, seen, data = elsewhere
    digest = hashlib.sha256(data).hexdigest()
    blob = await env.blob(10 * KiB, seed=21)
    async with env.client(env.server.url) as client:
        # The client's own origin gets the token (the server demands it) ...
        own = await client.download(env.scope, blob.uid, env.tmp / "own.bin")
        assert own.sha256 == blob.sha256
        # ... another origin never does.
        result = await client.download_url(f"{url}/file.bin", env.tmp / "other.bin", parallel=4)
    assert seen, "the other server got no request"
    assert all("Authorization" not in headers for headers in seen), seen
    assert sha256_of(env.tmp / "other.bin") == digest
    assert result.size == len(data)
    # aiohttp's ETag is not a content hash: the size is what could be checked.
    assert result.verified and result.sha256 is None
    assert {h.get("Accept-Encoding") for h in seen} == {"identity"}

    async with Client(env.server.url) as anonymous:  # never logged in
        checked = await anonymous.download_url(
            f"{url}/file.bin", env.tmp / "anon.bin", sha256=digest
        )
    assert checked.verified and checked.sha256 == digest
    assert sha256_of(env.tmp / "anon.bin") == digest


@bounded(30)
async def test_a_cookie_the_server_sets_goes_with_the_later_requests(tmp_path: Path) -> None:
    """The plain path sends no cookies: once the server set one, aiohttp asks."""
    data = random.Random(22).randbytes(PROBE + 4 * MiB)
    (tmp_path / "file.bin").write_bytes(data)
    cookies: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        cookies.append(request.cookies.get("session"))
        response = web.FileResponse(tmp_path / "file.bin")
        response.set_cookie("session", "s1")
        return response

    async with serving("/file.bin", handler) as port:
        # (A name: aiohttp keeps no cookie of an IP address.)
        url = f"http://localhost:{port}/file.bin"
        async with Client(url) as client:
            await client.download_url(url, tmp_path / "out.bin", parallel=4)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert cookies[0] is None and len(cookies) >= 2
    assert cookies[1:] == ["s1"] * (len(cookies) - 1), cookies


def test_the_child_script_is_importable() -> None:
    """download_child.py parses its arguments (a broken child would only show as a hang)."""
    proc = subprocess.run(
        [sys.executable, str(CHILD), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "--bandwidth" in proc.stdout
    assert os.access(CHILD, os.R_OK)
