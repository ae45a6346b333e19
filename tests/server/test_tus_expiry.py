"""tus expiration against a real `aetiket serve --upload-expiry 2`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.conftest import ServerProcess, start_server
from tests.server.tus_support import (
    Ctx,
    assert_available,
    context,
    create,
    created,
    expires_at,
    file_status,
    head,
    patch,
    patched,
    pattern,
)

pytestmark = pytest.mark.anyio

EXPIRY = 2.0


@pytest.fixture(scope="module")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module (what `make_server("--upload-expiry", "2")` starts)."""
    srv = start_server(
        tmp_path_factory.mktemp("expiry") / "data", "--upload-expiry", str(int(EXPIRY))
    )
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture
async def short(short_server: ServerProcess) -> AsyncIterator[Ctx]:
    srv = short_server
    async with context(srv.url, srv.admin_user, srv.admin_password) as c:
        yield c


async def _sleep_past(deadline: float) -> None:
    """Sleep until safely after ``deadline``, an Upload-Expires value (whole seconds,
    so up to 1 s before the real instant)."""
    await asyncio.sleep(max(0.0, deadline - time.time()) + 1.3)


async def test_tus_expiry_with_make_server(make_server: Callable[..., ServerProcess]) -> None:
    """The flag works on a server started per test too (smoke; details below)."""
    srv = make_server("--upload-expiry", "2")
    async with context(srv.url, srv.admin_user, srv.admin_password) as ctx:
        fuid = await ctx.file()
        ans = await create(ctx.api, 10, scope=ctx.scope, uid=fuid)
        assert ans.status == 201
        assert expires_at(ans.headers["Upload-Expires"]) <= time.time() + EXPIRY + 1


async def test_tus_expiry_headers_then_410(short: Ctx) -> None:
    ctx = short
    data = pattern(4000, seed=30)
    fuid = await ctx.file()
    before = time.time()
    ans = await create(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    assert ans.status == 201, ans.body
    loc = ans.headers["Location"]
    expires = expires_at(ans.headers["Upload-Expires"])
    # HTTP-dates have whole seconds.
    assert before + EXPIRY - 1.5 <= expires <= time.time() + EXPIRY + 1.0

    ans = await patch(ctx.api, loc, 0, data[:1000])
    assert ans.status == 204, ans.body
    assert ans.headers["Upload-Offset"] == "1000"
    patch_expires = expires_at(ans.headers["Upload-Expires"])
    ans = await head(ctx.api, loc)
    assert ans.status == 200
    assert ans.headers["Upload-Offset"] == "1000"
    head_expires = expires_at(ans.headers["Upload-Expires"])
    assert head_expires == patch_expires
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "pending"
    assert "expires" in out["uploads"][0]

    await _sleep_past(max(expires, patch_expires))
    ans = await patch(ctx.api, loc, 1000, data[1000:])
    assert ans.status == 410, ans.body
    assert "detail" in ans.json()
    assert (await head(ctx.api, loc)).status == 410
    # A new upload of the same file then works.
    loc2 = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    assert loc2 != loc
    assert await patched(ctx.api, loc2, 0, data) == len(data)
    await assert_available(ctx.api, ctx.scope, fuid, data)
    # The expired one stays gone.
    assert (await head(ctx.api, loc)).status == 410


async def test_tus_expired_upload_leaves_file_not_pending(short: Ctx) -> None:
    """Pending means an upload is open; an expired one (410) no longer is."""
    ctx = short
    fuid = await ctx.file()
    ans = await create(ctx.api, 10, scope=ctx.scope, uid=fuid)
    assert ans.status == 201
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    await _sleep_past(expires_at(ans.headers["Upload-Expires"]))
    assert (await head(ctx.api, ans.headers["Location"])).status == 410
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable", out


async def test_tus_completed_upload_does_not_expire(short: Ctx) -> None:
    ctx = short
    data = pattern(3000, seed=31)
    fuid = await ctx.file()
    ans = await create(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    loc = ans.headers["Location"]
    ans = await patch(ctx.api, loc, 0, data)
    assert ans.status == 204
    assert "Upload-Expires" not in ans.headers
    await asyncio.sleep(EXPIRY + 1.3)
    ans = await head(ctx.api, loc)
    assert ans.status == 200
    assert ans.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" not in ans.headers
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_expired_partial_cannot_join_a_final(short: Ctx) -> None:
    ctx = short
    fuid = await ctx.file()
    ans = await create(ctx.api, 10, headers={"Upload-Concat": "partial"})
    assert ans.status == 201
    part = ans.headers["Location"]
    assert "Upload-Expires" in ans.headers
    await _sleep_past(expires_at(ans.headers["Upload-Expires"]))
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{part}"}
    )
    assert ans.status == 410, ans.body
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable"
    assert out["uploads"] == []
