"""The upload engine over a hostile network, a dying process and a changing source.

Every test uploads to a real `aetiket serve` over loopback, through ``FaultProxy`` where
faults are injected (aetiket/transfer/upload.py; TRANSFER_PITFALLS.md 3a, 3c):

* 50 uploads of random sizes and parallelism, each meeting a seeded mix of resets,
  5xx (and 503 + Retry-After), 409, truncated answers, delays, stalls and a lost partial:
  all end verified, byte-exact on the server, with monotonic progress;
* a stalled PATCH given up after ``stall_timeout``; a 5xx or a lost answer on a POST
  (a partial's: an orphan; the final's: never posted twice);
* an access token that expires mid-transfer;
* a process killed with SIGKILL, rerun with and without its local resume record: it
  sends only what the server is missing;
* a cancelled upload: partials consistent, record kept, the next call resumes;
* a source that changes mid-upload, and two look-alike sources that must not share parts.

Each test has its own resume folder under ``tmp_path`` and small part/chunk sizes, so a
few MiB make many PATCHes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import aetiket
from aetiket import Client, RetryPolicy, TransferConfig
from aetiket.errors import UploadError
from aetiket.models import FileStatus, UploadOut
from aetiket.transfer.fileio import open_source
from aetiket.transfer.plan import plan_slices
from aetiket.transfer.progress import Progress
from aetiket.transfer.upload import FAR_PARTS, UploadResult, default_parallel
from tests.conftest import ServerProcess, admin_scope
from tests.faultproxy import Fault, FaultProxy
from tests.timing import bounded

pytestmark = pytest.mark.anyio

KiB = 1024
MiB = 1024 * KiB
MIN_PART = 256 * KiB
CHUNK = 512 * KiB
BLOCK = 64 * KiB
#: Creation-with-upload threshold of the engine (a part this small goes in its POST).
SMALL = 256 * KiB
UPLOADS = "/api/v1/uploads/"
#: Retries of idempotent requests (HEAD, GET) without waiting to speak of.
FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05)
#: The engine's backoff between failed attempts of a part comes from the client's policy,
#: and its budget is a number of attempts: with faults that hold the server's per-upload
#: lock for seconds (a stalled request the client gave up on), the budget must last that
#: long, so these tests wait a little more.
PATIENT = RetryPolicy(max_attempts=4, backoff_base=0.1, backoff_max=2.0)
CHILD = Path(__file__).with_name("upload_child.py")
ROOT = Path(__file__).resolve().parents[2]


def config(resume_dir: Path, **kw: Any) -> TransferConfig:
    """Small parts and chunks (many PATCHes from a few MiB), a resume folder of its own."""
    kw.setdefault("min_part", MIN_PART)
    kw.setdefault("chunk_size", CHUNK)
    kw.setdefault("block_size", BLOCK)
    return TransferConfig(resume_dir=resume_dir, **kw)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Events:
    """A progress callback that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Progress] = []

    def __call__(self, event: Progress) -> None:
        self.events.append(event)

    def check(self, size: int) -> None:
        """Monotonic ``done``, never past ``size``, ending finished at ``size``."""
        assert self.events, "no progress event at all"
        done = [e.done for e in self.events]
        assert done == sorted(done), f"progress went backwards: {done}"
        assert all(e.total == size for e in self.events)
        assert max(done) <= size
        last = self.events[-1]
        assert last.finished and last.done == size, last


@dataclasses.dataclass
class Env:
    """The session's server, a direct admin client and a fresh scope."""

    server: ServerProcess
    direct: Client
    scope: str
    tmp: Path

    async def new_file(self, name: str = "data.bin") -> str:
        """A fresh file record (no content yet) in a fresh dataset; returns its uid."""
        uid = aetiket.new_uid()
        await self.direct.datasets.create(
            aetiket.DatasetIn(
                name="reliability",
                uid=aetiket.new_uid(),
                scope=self.scope,
                files=[aetiket.FileDatasetIn(name=name, uid=uid)],
            )
        )
        return uid

    async def content_sha256(self, uid: str) -> str:
        """SHA-256 of what GET /api/v1/files/{scope}/{uid} serves."""
        data = await self.direct.files.read(self.scope, uid, max_bytes=64 * MiB)
        return sha256(data)

    async def listing(self, uid: str) -> list[UploadOut]:
        """GET /api/v1/uploads/{scope}/{uid}: the file's uploads."""
        return await self.direct.uploads.list(self.scope, uid)

    def client(self, url: str, cfg: TransferConfig, retry: RetryPolicy = FAST) -> Client:
        return Client(url, token=self.direct.token, retry=retry, transfer=cfg)

    async def check_content(self, uid: str, data: bytes) -> None:
        """The server holds exactly ``data`` as the file's content, and says so.

        (Its status may read ``pending``: a file is pending while any upload of it is
        open, and an abandoned run or an orphaned POST leaves one open until it expires.)
        """
        record = await self.direct.files.get(self.scope, uid)
        assert record.status is not FileStatus.unavailable
        assert (record.size, record.etag) == (len(data), sha256(data))
        assert await self.content_sha256(uid) == sha256(data)


@pytest.fixture
async def env(server: ServerProcess, tmp_path: Path) -> AsyncIterator[Env]:
    async with admin_scope(server, "ur") as (direct, scope, _):
        yield Env(server, direct, scope, tmp_path)


@contextlib.asynccontextmanager
async def env_of(srv: ServerProcess, tmp: Path) -> AsyncIterator[Env]:
    """An Env on a server of the test's own (``make_server``): admin, fresh scope."""
    async with admin_scope(srv, "own") as (direct, scope, _):
        yield Env(srv, direct, scope, tmp)


def partials(listing: list[UploadOut], size: int) -> list[UploadOut]:
    """The partial uploads in a listing (a final, whose length is the whole, left out)."""
    return [u for u in listing if u.concat and u.length != size]


async def settled_listing(env: Env, uid: str, *, quiet: float = 0.3) -> list[UploadOut]:
    """The upload listing once it stops changing (an interrupted PATCH lands late)."""
    previous = await env.listing(uid)
    with anyio.fail_after(20):
        while True:
            await anyio.sleep(quiet)
            current = await env.listing(uid)
            if [(u.uid, u.offset) for u in current] == [(u.uid, u.offset) for u in previous]:
                return current
            previous = current


def record_files(resume_dir: Path) -> list[Path]:
    return sorted(resume_dir.glob("*.json")) if resume_dir.exists() else []


# ---------------------------------------------------------------------------- 1. faults


@dataclasses.dataclass(frozen=True)
class Planned:
    """One injected fault: what, on which requests."""

    label: str
    fault: Fault
    method: str
    nth: int


def plan_faults(rng: random.Random, index: int, size: int, parallel: int) -> list[Planned]:
    """A seeded mix of a few faults for one upload: resets mid-PATCH, 5xx, 409, truncated
    answers, delays on every upload; 503 + Retry-After, a stall, a lost partial on some."""
    slices = plan_slices(size, parallel, MIN_PART)
    # PATCHes the upload makes without faults (parts up to SMALL go in their POST).
    patches = sum(math.ceil((e - s) / CHUNK) for s, e in slices if e - s > SMALL)
    posts = len(slices) + (1 if len(slices) > 1 else 0)

    def nth_patch() -> int:
        return rng.randint(1, max(1, patches))

    kinds = ["reset", "5xx", "409", "truncate-listing", "truncate-patch", "delay", "5xx-head"]
    extra = []
    if index % 10 == 3:
        extra.append("503-retry-after")
    if index % 12 == 5:
        extra.append("stall")
    if index % 5 == 1:
        extra.append("lost")
        kinds.remove("5xx-head")  # both would aim at the first HEAD
    chosen = rng.sample(kinds, k=rng.randint(2, 4)) + extra
    out: list[Planned] = []
    for kind in chosen:
        if kind == "reset":
            cut = rng.randint(0, CHUNK + KiB)  # up to past the body: the ambiguous case
            fault = Fault(cut_request_after=cut, cut_pause=0.05)
            out.append(Planned(kind, fault, "PATCH", nth_patch()))
        elif kind == "5xx":
            status = rng.choice([500, 502, 503])
            out.append(Planned(kind, Fault(answer=status), "PATCH", nth_patch()))
        elif kind == "503-retry-after":
            fault = Fault(answer=503, answer_headers={"Retry-After": "1"})
            out.append(Planned(kind, fault, "PATCH", nth_patch()))
        elif kind == "409":
            out.append(Planned(kind, Fault(answer=409), "PATCH", nth_patch()))
        elif kind == "truncate-listing":
            # GET /api/v1/uploads/{scope}/{uid}: the recovery lookup and the verification.
            fault = Fault(truncate_after=rng.randint(0, 40))
            out.append(Planned(kind, fault, "GET", rng.randint(1, 2)))
        elif kind == "truncate-patch":
            # A 204 has no body: the answer arrives whole, then the connection closes.
            out.append(Planned(kind, Fault(truncate_after=0), "PATCH", nth_patch()))
        elif kind == "delay":
            method = rng.choice(["PATCH", "POST"])
            nth = nth_patch() if method == "PATCH" else rng.randint(1, posts)
            out.append(Planned(kind, Fault(delay=rng.uniform(0.05, 0.4)), method, nth))
        elif kind == "5xx-head":
            # HEADs only follow a failure: pair it with one. (A HEAD answer has no body.)
            out.append(Planned("5xx", Fault(answer=500), "PATCH", nth_patch()))
            fault = Fault(answer=rng.choice([502, 503]), answer_body=b"")
            out.append(Planned(kind, fault, "HEAD", 1))
        elif kind == "stall":
            fault = Fault(stall_request=(rng.randint(0, 128 * KiB), 2.5))
            out.append(Planned(kind, fault, "PATCH", nth_patch()))
        elif kind == "lost":
            # The server lost a partial (expired, swept): 404/410 on the HEAD after a failure.
            out.append(Planned("5xx", Fault(answer=500), "PATCH", nth_patch()))
            fault = Fault(answer=rng.choice([404, 410]), answer_body=b"")
            out.append(Planned(kind, fault, "HEAD", 1))
    return out


def fault_sizes(rng: random.Random, count: int) -> list[int]:
    """Random sizes 0 .. ~6 MiB, with the edges (empty, one byte, around a part) in."""
    sizes = [0, 1, SMALL, SMALL + 1, 2 * MIN_PART - 1, 6 * MiB]
    while len(sizes) < count:
        sizes.append(rng.randint(0, 6 * MiB))
    rng.shuffle(sizes)
    return sizes


@bounded(150)
async def test_fifty_uploads_through_a_seeded_mix_of_faults_all_end_verified(env: Env) -> None:
    rng = random.Random(20240611)
    sizes = fault_sizes(rng, 50)
    limiter = anyio.CapacityLimiter(10)
    applied: dict[str, int] = {}
    results: dict[int, UploadResult] = {}
    failures: list[str] = []

    async def one(index: int, size: int) -> None:
        local = random.Random(rng.random())  # drawn up front: the mix does not depend on timing
        data = local.randbytes(size)
        parallel = local.randint(1, 8)
        planned = plan_faults(local, index, size, parallel)
        uid = await env.new_file(f"f{index}.bin")
        events = Events()
        cfg = config(env.tmp / f"resume{index}", parallel=parallel, stall_timeout=1.0)
        async with limiter, FaultProxy(env.server.url) as proxy:
            rules = [
                (p.label, proxy.add(p.fault, method=p.method, path=UPLOADS, nth=p.nth))
                for p in planned
            ]
            try:
                async with env.client(proxy.url, cfg, PATIENT) as client:
                    result = await client.upload(
                        data, scope=env.scope, file_uid=uid, progress=events
                    )
                assert result.verified
                assert result.size == size
                assert result.sha256 == sha256(data)
                await env.check_content(uid, data)
                events.check(size)
            except Exception as exc:
                failures.append(
                    f"upload {index} ({size} bytes, parallel {parallel}, faults "
                    f"{[(p.label, p.method, p.nth) for p in planned]}): {exc!r}\n  "
                    + "\n  ".join(map(str, proxy.log))
                )
                return
            for label, rule in rules:
                applied[label] = applied.get(label, 0) + rule.applied
        results[index] = result

    async with anyio.create_task_group() as tg:
        for index, size in enumerate(sizes):
            tg.start_soon(one, index, size)

    assert not failures, f"{len(failures)} of 50 uploads failed:\n" + "\n".join(failures)
    assert len(results) == 50
    # The mix really happened: every kind of fault met some request.
    for label in (
        "reset",
        "5xx",
        "409",
        "truncate-listing",
        "truncate-patch",
        "delay",
        "5xx-head",
        "503-retry-after",
        "stall",
        "lost",
    ):
        assert applied.get(label, 0) > 0, (label, applied)


@bounded(60)
async def test_a_stalled_patch_is_given_up_after_stall_timeout(env: Env) -> None:
    """A PATCH that moves no byte for ``stall_timeout`` is abandoned and resumed
    (TransferConfig: "a request that moves no byte for this long is aborted and
    resumed"), whether the bytes stuck in the engine or in the socket buffers."""
    data = random.Random(7).randbytes(2 * MiB)
    uid = await env.new_file()
    cfg = config(env.tmp / "resume", parallel=1, stall_timeout=1.0)
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(Fault(stall_request=(1000, 4.0)), method="PATCH", path=UPLOADS, nth=2)
        # The default policy: the upload outwaits the lock the abandoned PATCH holds.
        async with env.client(proxy.url, cfg, RetryPolicy()) as client:
            started = time.monotonic()
            result = await client.upload(data, scope=env.scope, file_uid=uid)
            elapsed = time.monotonic() - started
        log = list(proxy.log)
    assert result.verified
    await env.check_content(uid, data)
    stalled = [i for i, e in enumerate(log) if e.fault and "stall_request" in e.fault]
    # The proxy logs a forwarded request when upstream answers: after the 4 s stall. A
    # client that gave up after 1 s has asked for the offset (HEAD) long before that.
    heads = [i for i, e in enumerate(log) if e.method == "HEAD"]
    assert heads and (not stalled or heads[0] < stalled[0]), (
        f"the stalled PATCH was waited out ({elapsed:.1f} s), not given up after 1 s:\n"
        + "\n".join(map(str, log))
    )


async def _upload_through(
    env: Env, fault: Fault, nth: int, *, size: int = 3 * MiB, parallel: int = 3, verify: bool = True
) -> tuple[UploadResult | BaseException, bytes, str, FaultProxy]:
    """Upload ``size`` random bytes in ``parallel`` parts with ``fault`` on the nth POST."""
    data = random.Random(size + nth).randbytes(size)
    uid = await env.new_file()
    cfg = config(env.tmp / "resume", parallel=parallel, verify=verify)
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(fault, method="POST", path=UPLOADS, nth=nth)
        async with env.client(proxy.url, cfg) as client:
            try:
                outcome: Any = await client.upload(data, scope=env.scope, file_uid=uid)
            except Exception as exc:
                outcome = exc
    return outcome, data, uid, proxy


@bounded(60)
async def test_the_default_parallelism_follows_the_servers_round_trip(env: Env) -> None:
    """Without ``parallel``: one upload to a near server (on loopback a concatenation
    costs more than connections bring), FAR_PARTS partial uploads to a far one. The round
    trip is the kernel's (TCP_INFO) of the OPTIONS connection: a proxy that holds answers
    back does not make loopback far."""
    data = random.Random(7).randbytes(4 * MiB)
    cfg = config(env.tmp / "resume")
    assert cfg.parallel is None
    for url in (env.server.url, None):
        uid = await env.new_file()
        async with contextlib.AsyncExitStack() as stack:
            if url is None:
                proxy = await stack.enter_async_context(FaultProxy(env.server.url))
                proxy.add(Fault(delay=0.05), method="OPTIONS")
                url = proxy.url
            client = await stack.enter_async_context(env.client(url, cfg))
            result = await client.upload(data, scope=env.scope, file_uid=uid)
        assert len(result.part_urls) == 1 and result.verified
        await env.check_content(uid, data)
    assert [default_parallel(rtt) for rtt in (0.00003, 0.0049, 0.005, 0.05)] == [
        1,
        1,
        FAR_PARTS,
        FAR_PARTS,
    ]


@bounded(60)
async def test_patches_refused_as_too_large_are_halved_until_they_pass(env: Env) -> None:
    """A body limit on the way (a proxy answering 413 to large PATCHes): the engine halves
    its PATCHes and goes on; a 413 at the smallest size is an UploadError that says so."""
    data = random.Random(413).randbytes(3 * MiB)
    uid = await env.new_file()
    cfg = config(env.tmp / "resume", parallel=1, chunk_size=4 * MiB)
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(Fault(answer=413), method="PATCH", times=2)  # 3 MiB, then 1.5 MiB
        async with env.client(proxy.url, cfg) as client:
            result = await client.upload(data, scope=env.scope, file_uid=uid)
        patches = [e for e in proxy.log if e.method == "PATCH"]
    assert result.verified
    await env.check_content(uid, data)
    # Refused at 3 MiB and 1.5 MiB, then 1 MiB PATCHes (the floor): 3 of them.
    assert [e.status for e in patches] == [413, 413, 204, 204, 204]

    uid = await env.new_file()
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(Fault(answer=413), method="PATCH")
        async with env.client(proxy.url, cfg) as client:
            with pytest.raises(UploadError, match="1048576 bytes was refused"):
                await client.upload(data, scope=env.scope, file_uid=uid)


@bounded(60)
async def test_a_5xx_answer_to_the_final_post_is_retried(env: Env) -> None:
    """A 503 on the final POST (nothing concatenated: the partials are intact) is a
    transient failure like any other, not the end of an upload whose bytes are all sent."""
    outcome, data, uid, proxy = await _upload_through(env, Fault(answer=503), nth=4)
    posts = [e for e in proxy.log if e.method == "POST"]
    assert not isinstance(outcome, BaseException), f"{outcome!r}\n" + "\n".join(map(str, posts))
    assert outcome.verified
    await env.check_content(uid, data)


@bounded(60)
async def test_a_lost_answer_to_a_partial_post_still_ends_verified(env: Env) -> None:
    """The server created a partial but its answer was lost: the engine makes another,
    and the orphan (open until it expires) must not make the verification fail."""
    outcome, data, uid, _ = await _upload_through(env, Fault(reset_after=True), nth=1)
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.verified
    await env.check_content(uid, data)
    listing = await env.listing(uid)
    assert any(not u.completed for u in listing)  # the orphan is there


@bounded(60)
async def test_a_lost_answer_to_the_final_post_is_not_posted_again(env: Env) -> None:
    """The final POST joined the parts but its answer was lost: the file holding the
    source's bytes is success; a second final is never sent (tus/tusd#1364)."""
    outcome, data, uid, proxy = await _upload_through(env, Fault(reset_after=True), nth=4)
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.verified
    await env.check_content(uid, data)
    assert proxy.count("POST", UPLOADS) == 4  # three partials, one final
    finals = [u for u in await env.listing(uid) if u.length == len(data) and u.concat]
    assert len(finals) == 1


@bounded(60)
async def test_a_lost_final_answer_without_verification_finds_the_joined_file(env: Env) -> None:
    """verify=False has no source hash to prove the file by: the engine finds the final
    upload that joined its partials in the file's upload list (the second POST was
    refused: the partials are used) and ends with it, not with an error."""
    outcome, data, uid, _ = await _upload_through(env, Fault(reset_after=True), nth=4, verify=False)
    assert not isinstance(outcome, BaseException), outcome
    assert not outcome.verified  # nothing was checked, as asked
    finals = [u for u in await env.listing(uid) if u.length == len(data) and u.concat]
    assert len(finals) == 1
    assert outcome.url.endswith(finals[0].uid)
    await env.check_content(uid, data)


@pytest.mark.parametrize("parallel", [1, 3])
@bounded(60)
async def test_a_source_uploaded_again_after_another_is_sent_again(env: Env, parallel: int) -> None:
    """A, then B, then A again to one file, without local records: the file's upload list
    still holds A's finished upload(s) with A's fingerprint; they are history, not
    something to resume (resuming them sent nothing and failed the check)."""
    rng = random.Random(parallel)
    a_data, b_data = rng.randbytes(3 * MiB), rng.randbytes(3 * MiB)
    uid = await env.new_file()
    for i, data in enumerate((a_data, b_data, a_data)):
        cfg = config(env.tmp / f"resume-{i}", parallel=parallel)  # no local record
        async with FaultProxy(env.server.url) as proxy, env.client(proxy.url, cfg) as client:
            result = await client.upload(data, scope=env.scope, file_uid=uid)
            assert proxy.bytes_up >= len(data)
        assert not result.resumed and result.verified
        await env.check_content(uid, data)


@bounded(30)
async def test_an_upload_to_an_immutable_file_fails_at_once(env: Env) -> None:
    """The server refuses new uploads of an immutable file that has content (409): that
    is its final word, not retried until the budget is spent."""
    uid = aetiket.new_uid()
    await env.direct.datasets.create(
        aetiket.DatasetIn(
            name="immutable",
            uid=aetiket.new_uid(),
            scope=env.scope,
            files=[aetiket.FileDatasetIn(name="fixed.bin", uid=uid, immutable=True)],
        )
    )
    data = random.Random(9).randbytes(2 * MiB)
    cfg = config(env.tmp / "resume", parallel=2)
    async with env.client(env.server.url, cfg, retry=PATIENT) as client:
        await client.upload(data, scope=env.scope, file_uid=uid)
    async with FaultProxy(env.server.url) as proxy:
        async with env.client(proxy.url, cfg, retry=PATIENT) as client:
            other = random.Random(10).randbytes(2 * MiB)
            with pytest.raises(UploadError, match="refused a new upload") as caught:
                await client.upload(other, scope=env.scope, file_uid=uid)
        posts = [e.status for e in proxy.log if e.method == "POST"]
    # One refusal ends the upload (the other part may be cancelled before its answer).
    assert posts in ([409], [409, 409]), posts
    assert "409" in str(caught.value)
    await env.check_content(uid, data)


# ---------------------------------------------------------------------------- 2. token expiry


@bounded(30)
async def test_a_token_refused_even_when_fresh_ends_the_upload(env: Env) -> None:
    """401 to every PATCH, also right after a refresh: not an expiry. The upload stops
    with the refusal (it refreshed and retried forever before)."""
    uid = await env.new_file()
    cfg = config(env.tmp / "resume", parallel=2)
    async with FaultProxy(env.server.url) as proxy:
        proxy.add(Fault(answer=401), method="PATCH")
        async with Client(proxy.url, retry=FAST, transfer=cfg) as client:
            await client.login(env.server.admin_user, env.server.admin_password)
            data = random.Random(11).randbytes(2 * MiB)
            with pytest.raises(UploadError, match="keeps refusing the token"):
                await client.upload(data, scope=env.scope, file_uid=uid)
        refreshes = proxy.count("POST", "/api/v1/refresh")
    assert 1 <= refreshes <= 4, refreshes  # two parts, at most two refreshes each


@bounded(30)
async def test_an_upload_outliving_its_access_token_completes(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    srv = make_server("--access-token-ttl", "2")
    data = random.Random(2).randbytes(5 * MiB)
    async with env_of(srv, tmp_path) as e:
        direct, scope = e.direct, e.scope
        uid = await e.new_file()
        cfg = config(tmp_path / "resume", parallel=4, bandwidth=1 * MiB)
        events = Events()
        async with FaultProxy(srv.url) as proxy:
            async with Client(proxy.url, retry=FAST, transfer=cfg) as client:
                await client.login(srv.admin_user, srv.admin_password)
                started = time.monotonic()
                result = await client.upload(data, scope=scope, file_uid=uid, progress=events)
                elapsed = time.monotonic() - started
            statuses = [(e.method, e.status) for e in proxy.log]
        await direct.refresh()  # its own token expired meanwhile too
        assert result.verified and result.sha256 == sha256(data)
        assert elapsed > 3  # it did outlive the 2 s token
        assert any(status == 401 for _, status in statuses), statuses  # the token expired
        assert proxy.count("POST", "/api/v1/refresh") >= 1
        events.check(len(data))
        await e.check_content(uid, data)


@bounded(60)
async def test_an_upload_longer_than_the_expiry_completes_while_bytes_move(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Uploads expire after the server's expiry without bytes, not that long after they
    began: a 2 s expiry, an upload of ~4 s in 1 MiB PATCHes (a day-long upload over a
    slow link, scaled down). It expired mid-way, and every restart expired again."""
    srv = make_server("--upload-expiry", "2")
    data = random.Random(13).randbytes(5 * MiB)
    async with env_of(srv, tmp_path) as e:
        uid = await e.new_file()
        cfg = config(tmp_path / "resume", parallel=1, chunk_size=1 * MiB, bandwidth=1 * MiB)
        async with FaultProxy(srv.url) as proxy, e.client(proxy.url, cfg) as client:
            started = time.monotonic()
            result = await client.upload(data, scope=e.scope, file_uid=uid)
            elapsed = time.monotonic() - started
        assert elapsed > 3, f"{elapsed:.1f} s: not longer than the expiry, nothing shown"
        assert [x.status for x in proxy.log if x.status == 410] == []
        assert result.verified
        await e.check_content(uid, data)


@pytest.mark.parametrize("rerun_via", ["record", "listing"])
@bounded(60)
async def test_an_upload_the_server_failed_to_complete_is_completed_by_the_rerun(
    make_server: Callable[..., ServerProcess], tmp_path: Path, rerun_via: str
) -> None:
    """Every byte arrived but storing the file failed (here: the server's content folder
    is in the way, as a full disk would be). The upload keeps its bytes, so a rerun has
    nothing to send: it asks the server to complete it (an empty PATCH at the end) once
    the storage is back, instead of failing the check until the upload expires."""
    srv = make_server()
    data = random.Random(12).randbytes(3 * MiB)
    content = srv.data_dir / "content"
    async with env_of(srv, tmp_path) as e:
        scope = e.scope
        uid = await e.new_file()
        cfg = config(tmp_path / "resume", parallel=1, max_retries=1)
        away = content.with_name("content.away")
        await anyio.Path(content).rename(away)
        await anyio.Path(content).write_bytes(b"not a folder")  # storing the file fails
        async with e.client(srv.url, cfg) as client:
            with pytest.raises((UploadError, aetiket.errors.ChecksumMismatch)):
                await client.upload(data, scope=scope, file_uid=uid)
        listing = await e.listing(uid)
        assert [(u.offset, u.completed) for u in listing] == [(len(data), False)]
        await anyio.Path(content).unlink()
        await anyio.Path(away).rename(content)  # the storage is back
        if rerun_via == "record":  # the same endpoint: the local resume record
            async with e.client(srv.url, cfg) as client:
                result = await client.upload(data, scope=scope, file_uid=uid)
        else:  # another endpoint: rebuilt from the file's upload list
            async with FaultProxy(srv.url) as proxy, e.client(proxy.url, cfg) as client:
                result = await client.upload(data, scope=scope, file_uid=uid)
            assert proxy.bytes_up == 0  # nothing sent again
        assert result.resumed and result.verified
        await e.check_content(uid, data)


# ---------------------------------------------------------------------------- 3. kill -9


def child_command(
    env: Env, url: str, uid: str, path: Path, resume_dir: Path, bandwidth: float | None
) -> list[str]:
    cmd = [
        sys.executable,
        str(CHILD),
        "--url", url,
        "--auth-url", env.server.url,
        "--user", env.server.admin_user,
        f"--password={env.server.admin_password}",
        "--scope", env.scope,
        "--uid", uid,
        "--path", str(path),
        "--resume-dir", str(resume_dir),
        "--parallel", "4",
        "--chunk-size", str(CHUNK),
        "--min-part", str(MIN_PART),
        "--block-size", str(BLOCK),
        "--checksum", "sha256",
    ]  # fmt: skip
    if bandwidth is not None:
        cmd += ["--bandwidth", str(bandwidth)]
    return cmd


def spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start the child in the background, its stderr to ``log``."""
    with open(log, "wb") as err:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)


async def run_child(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run the child to its end; its JSON result (fails with its stderr otherwise)."""
    with anyio.fail_after(60):
        done = await anyio.run_process(cmd, check=False, cwd=ROOT)
    await anyio.Path(log).write_bytes(done.stderr)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


@pytest.mark.parametrize("keep_record", [True, False], ids=["with-record", "server-listing"])
@bounded(90)
async def test_a_killed_upload_resumes_sending_only_what_is_missing(
    env: Env, tmp_path: Path, keep_record: bool
) -> None:
    rng = random.Random(99 if keep_record else 100)
    size = 6 * MiB + rng.randint(0, 64 * KiB)
    data = rng.randbytes(size)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    uid = await env.new_file()
    resume_dir = tmp_path / "resume"
    nparts = len(plan_slices(size, 4, MIN_PART))
    async with FaultProxy(env.server.url) as proxy:
        # Throttled (the first second's worth goes at once), so there is a middle to kill in.
        cmd = child_command(env, proxy.url, uid, path, resume_dir, bandwidth=1.5 * MiB)
        process = await anyio.to_thread.run_sync(spawn, cmd, tmp_path / "child1.log")
        try:
            with anyio.fail_after(30):
                while sum(u.offset for u in partials(await env.listing(uid), size)) == 0:
                    assert process.poll() is None, (tmp_path / "child1.log").read_text()
                    await anyio.sleep(0.05)
            await anyio.sleep(rng.uniform(0.0, 1.2))
            assert process.poll() is None, "the child finished before it could be killed"
        finally:
            process.kill()  # SIGKILL: no cleanup of any kind
            await anyio.to_thread.run_sync(process.wait)
        listing = await settled_listing(env, uid)
        parts = partials(listing, size)
        assert all(u.offset <= (u.length or 0) for u in parts)
        assert not any(u.completed and u.length == size for u in listing)  # not finished
        missing = size - sum(u.offset for u in parts)
        assert 0 < missing < size
        if keep_record:
            [record] = record_files(resume_dir)  # the record outlived the process, with
            saved = await anyio.Path(record).read_text()  # every URL that got bytes in it
            assert all(u.uid in saved for u in parts if u.offset), saved
        else:
            shutil.rmtree(resume_dir, ignore_errors=True)

        before = proxy.bytes_up
        out = await run_child(cmd, tmp_path / "child2.log")  # the same command again
        sent = proxy.bytes_up - before

    assert out["verified"] and out["resumed"], out
    assert out["sha256"] == sha256(data) and out["size"] == size
    await env.check_content(uid, data)
    assert record_files(resume_dir) == []  # done: the record is gone
    slack = nparts * CHUNK
    assert sent - missing <= slack, (
        f"the rerun sent {sent} bytes for {missing} missing ({nparts} parts of "
        f"{size}): more than one chunk per part again"
    )
    assert sent >= missing - slack, (sent, missing)


# ---------------------------------------------------------------------------- 4. cancel


def _serve_tasks() -> list[asyncio.Task[Any]]:
    """The proxy's live connection tasks (one per client connection still open)."""
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and getattr(t.get_coro(), "__qualname__", "") == "FaultProxy._serve"
    ]


@bounded(60)
async def test_a_cancelled_upload_leaves_consistent_partials_and_resumes(env: Env) -> None:
    size = 6 * MiB + 12345
    data = random.Random(4).randbytes(size)
    path = env.tmp / "source.bin"
    path.write_bytes(data)  # a file: its handles must be closed on cancellation too
    uid = await env.new_file()
    resume_dir = env.tmp / "resume"
    cfg = config(resume_dir, parallel=4, bandwidth=3 * MiB)
    nparts = len(plan_slices(size, 4, MIN_PART))
    baseline = {t for t in asyncio.all_tasks() if not t.done()}
    cancelled_at: list[float] = []
    async with FaultProxy(env.server.url) as proxy:
        async with env.client(proxy.url, cfg) as client:
            with anyio.CancelScope() as cancel:

                def on_progress(event: Progress) -> None:
                    if event.done >= 0.4 * size and not cancelled_at:
                        cancelled_at.append(time.monotonic())
                        cancel.cancel()

                await client.upload(path, scope=env.scope, file_uid=uid, progress=on_progress)
            assert cancel.cancelled_caught, "the upload finished before it was cancelled"
            assert time.monotonic() - cancelled_at[0] < 1.0  # promptly
            # Nothing of the engine runs on: only the test's own tasks and the proxy's.
            await anyio.sleep(0.1)
            left = {t for t in asyncio.all_tasks() if not t.done()} - baseline
            left -= set(_serve_tasks())
            left.discard(asyncio.current_task())  # type: ignore[arg-type]
            assert not left, left

            listing = await settled_listing(env, uid)
            parts = partials(listing, size)
            assert parts
            for item in parts:  # HEAD-able, and consistent with the listing
                state = await client.uploads.status(f"{proxy.url}{UPLOADS}{item.uid}")
                assert state.offset is not None and state.length is not None
                assert state.offset <= state.length == item.length
                assert state.offset == item.offset
            assert len(record_files(resume_dir)) == 1
            missing = size - sum(u.offset for u in parts)
            assert 0 < missing < size

            before = proxy.bytes_up
            events = Events()
            result = await client.upload(path, scope=env.scope, file_uid=uid, progress=events)
            sent = proxy.bytes_up - before
        # The client is closed: every connection it had is closed too.
        for _ in range(250):
            if not _serve_tasks():
                break
            await anyio.sleep(0.02)
        assert not _serve_tasks(), "connections of the closed client are still open"

    assert result.resumed and result.verified
    assert result.sha256 == sha256(data)
    await env.check_content(uid, data)
    events.check(size)
    assert events.events[0].done >= size - missing - nparts * CHUNK  # resumed, not restarted
    assert sent - missing <= nparts * CHUNK, (sent, missing)
    assert record_files(resume_dir) == []


# ---------------------------------------------------------------------------- 5. source safety


@bounded(60)
@pytest.mark.parametrize("given", ["path", "file object"])
async def test_a_source_growing_during_the_upload_is_refused(env: Env, given: str) -> None:
    """Appended to while it goes: refused, whether given by path or as an open file
    (a file object was never checked: its first bytes went, and it was 'verified')."""
    size = 4 * MiB
    path = env.tmp / "growing.bin"
    path.write_bytes(random.Random(5).randbytes(size))
    uid = await env.new_file()
    cfg = config(env.tmp / "resume", parallel=3, bandwidth=3 * MiB)
    grown, started = anyio.Event(), anyio.Event()

    def grow() -> None:
        with open(path, "ab") as f:
            f.write(b"more measurement data\n" * 1000)

    async with anyio.create_task_group() as tg:

        async def grower() -> None:
            await anyio.to_thread.run_sync(grow)
            grown.set()

        def on_progress(event: Progress) -> None:
            if event.done >= 0.3 * size and not grown.is_set() and not started.is_set():
                started.set()
                tg.start_soon(grower)

        async with env.client(env.server.url, cfg) as client:
            source: Any = path
            if given == "file object":
                source = await anyio.to_thread.run_sync(path.open, "rb")
            try:
                with pytest.raises(UploadError) as caught:
                    await client.upload(source, scope=env.scope, file_uid=uid, progress=on_progress)
            finally:
                if given == "file object":
                    source.close()
    assert grown.is_set(), "the file was not grown during the upload"
    assert "changed" in str(caught.value), caught.value
    # Nothing was published as the file's content.
    record = await env.direct.files.get(env.scope, uid)
    assert record.status not in (FileStatus.available, FileStatus.secured)
    assert not record.size


@bounded(10)
async def test_a_text_mode_file_is_refused_before_anything_is_sent(env: Env) -> None:
    path = env.tmp / "notes.txt"
    path.write_text("sample A1, 4 K\n")
    uid = await env.new_file()
    async with FaultProxy(env.server.url) as proxy:
        async with env.client(proxy.url, config(env.tmp / "resume")) as client:
            text = await anyio.to_thread.run_sync(path.open)
            with text, pytest.raises(TypeError, match="open it with 'rb'"):
                await client.upload(text, scope=env.scope, file_uid=uid)
        assert not proxy.log


@bounded(60)
async def test_look_alike_sources_never_share_partial_uploads(env: Env) -> None:
    """Same size, same first MiB, same mtime; the rest differs: B must not resume A."""
    rng = random.Random(6)
    size = 5 * MiB
    head = rng.randbytes(1 * MiB)
    a_data = head + rng.randbytes(size - len(head))
    b_data = head + rng.randbytes(size - len(head))
    a_path, b_path = env.tmp / "a" / "scan.h5", env.tmp / "b" / "scan.h5"
    for p, d in ((a_path, a_data), (b_path, b_data)):
        p.parent.mkdir()
        p.write_bytes(d)
    stamp = time.time_ns()
    os.utime(a_path, ns=(stamp, stamp))
    os.utime(b_path, ns=(stamp, stamp))
    a_src, b_src = await open_source(a_path), await open_source(b_path)
    assert await a_src.fingerprint() != await b_src.fingerprint()

    uid = await env.new_file("scan.h5")
    resume_dir = env.tmp / "resume"
    cfg = config(resume_dir, parallel=4, bandwidth=3 * MiB)
    async with FaultProxy(env.server.url) as proxy, env.client(proxy.url, cfg) as client:
        with anyio.CancelScope() as cancel:

            def on_progress(event: Progress) -> None:
                if event.done >= 0.4 * size:
                    cancel.cancel()

            await client.upload(a_path, scope=env.scope, file_uid=uid, progress=on_progress)
        assert cancel.cancelled_caught
        a_parts = partials(await settled_listing(env, uid), size)
        assert sum(u.offset for u in a_parts) > 0
        assert len(record_files(resume_dir)) == 1

        before = proxy.bytes_up
        result = await client.upload(b_path, scope=env.scope, file_uid=uid)
        sent = proxy.bytes_up - before
    assert not result.resumed
    assert result.verified and result.sha256 == sha256(b_data)
    await env.check_content(uid, b_data)
    assert sent >= size  # every byte of B went: nothing of A was taken for it
    assert not set(result.part_urls) & {f"{proxy.url}{UPLOADS}{u.uid}" for u in a_parts}
