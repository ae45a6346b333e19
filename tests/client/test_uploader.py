"""The original client's upload style, awaited (``aetiket.UploadClient``): chunk by chunk
against the session's real server; what the server holds is checked byte for byte."""

from __future__ import annotations

import hashlib
import io
import random

import anyio
import pytest

import aetiket
from tests.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.anyio

KiB = 1024


async def new_file(admin: aetiket.Client, scope: str) -> str:
    uid = aetiket.new_uid()
    await admin.datasets.create(
        aetiket.DatasetIn(
            name="uploader",
            uid=aetiket.new_uid(),
            scope=scope,
            files=[aetiket.FileDatasetIn(name="chunks.bin", uid=uid)],
        )
    )
    return uid


async def test_upload_stops_exactly_at_stop_at(admin: aetiket.Client, scope: str) -> None:
    """tuspy's ``upload(stop_at=n)`` leaves exactly n bytes on the server: the last chunk
    before n is cut short there (it overshot by up to a chunk)."""
    data = random.Random(1).randbytes(1500 * KiB)
    uid = await new_file(admin, scope)
    up = aetiket.UploadClient(admin, scope=scope).uploader(
        file_stream=io.BytesIO(data), file_uid=uid, chunk_size=300 * KiB
    )
    assert await up.upload_chunk() == 300 * KiB
    await up.upload(stop_at=1000 * KiB)
    assert up.offset == 1000 * KiB
    listing = await admin.uploads.list(scope, uid)
    assert [u.offset for u in listing] == [1000 * KiB]  # the server's word agrees
    await up.upload(stop_at=1000 * KiB)  # already there: nothing more
    assert up.offset == 1000 * KiB
    await up.upload()
    assert up.offset == len(data)
    content = await admin.files.read(scope, uid, max_bytes=4 * len(data))
    assert hashlib.sha256(content).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_a_chunk_cut_off_by_a_cancel_is_not_an_error_next_time(
    admin: aetiket.Client, scope: str
) -> None:
    """A notebook cell interrupted while its chunk's answer was on the way: the server
    has the chunk, the uploader does not know. The next call meets 409, takes the
    server's offset and goes on (it raised Conflict once more)."""
    data = random.Random(2).randbytes(900 * KiB)
    uid = await new_file(admin, scope)
    async with FaultProxy(admin.base_url) as proxy:
        proxy.add(Fault(delay=2.0), method="PATCH", nth=1)  # the answer, not the body, waits
        async with aetiket.Client(proxy.url, token=admin.token) as client:
            up = aetiket.UploadClient(client, scope=scope).uploader(
                file_stream=io.BytesIO(data), file_uid=uid, chunk_size=300 * KiB
            )
            with anyio.move_on_after(1.0) as cell:
                await up.upload_chunk()
            assert cell.cancelled_caught and up.offset == 0
            listing = await admin.uploads.list(scope, uid)
            assert [u.offset for u in listing] == [300 * KiB]  # the first chunk did land
            assert await up.upload_chunk() == 600 * KiB
            await up.upload()
        statuses = [e.status for e in proxy.log if e.method == "PATCH"]
    assert 409 in statuses, statuses
    content = await admin.files.read(scope, uid, max_bytes=4 * len(data))
    assert hashlib.sha256(content).hexdigest() == hashlib.sha256(data).hexdigest()
