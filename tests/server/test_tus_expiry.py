"""tus expiration against a real `aetiket serve --upload-expiry 2`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, start_server
from tests.http import OCTETS, Api
from tests.server.tus_support import (
    UPLOADS,
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
    upload_uid,
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


# ---------------------------------------------------------------------------- the sweep of
# complete partials no final names (a parallel upload whose client gave up after its parts)


def _restart(srv: ServerProcess, *extra: str) -> ServerProcess:
    """Stop ``srv`` and start a server on its data: starting sweeps expired uploads (a
    running one sweeps at most every 5 minutes, on upload creation). The caller stops it."""
    assert srv.stop() == 0, srv.log()
    return start_server(srv.data_dir, *extra)


def _data_file(srv: ServerProcess, location: str) -> Path:
    """Where the server keeps an upload's bytes (ServerConfig.uploads_dir)."""
    return srv.data_dir / "uploads" / f"{upload_uid(location)}.bin"


async def _complete_partial(ctx: Ctx, data: bytes) -> str:
    """A partial upload sent whole with its creation (creation-with-upload); its Location."""
    ans = await create(
        ctx.api, len(data), data=data, headers={"Upload-Concat": "partial", **OCTETS}
    )
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data))
    return ans.headers["Location"]


async def test_tus_unjoined_complete_partial_expires_and_is_swept(
    make_server: Callable[..., ServerProcess],
) -> None:
    srv = make_server("--upload-expiry", str(int(EXPIRY)))
    async with context(srv.url, srv.admin_user, srv.admin_password) as ctx:
        fuid = await ctx.file()
        data = pattern(3000, seed=40)
        part = await _complete_partial(ctx, data)
        expired_after = time.time() + EXPIRY  # the server set it earlier than this
        path = UPLOADS + upload_uid(part)
        ans = await head(ctx.api, path)
        assert ans.status == 200
        assert ans.headers["Upload-Offset"] == str(len(data))
        # Complete, but no final names it yet: it still expires, and says when (checked last).
        announced = ans.headers.get("Upload-Expires")
        await asyncio.sleep(max(0.0, expired_after - time.time()) + 0.3)
        assert _data_file(srv, part).exists()  # not swept yet: the running server waits
        # Expired before the sweep, as an incomplete upload is.
        assert (await head(ctx.api, path)).status == 410

        srv2 = _restart(srv, "--upload-expiry", str(int(EXPIRY)))
        try:
            api = Api(ctx.api.session, srv2.url, ctx.api.token)
            assert not _data_file(srv2, part).exists()  # the sweep deleted its data
            assert (await head(api, path)).status == 410
            ans = await patch(api, path, len(data), b"")
            assert ans.status == 410, ans.body
            ans = await create(
                api,
                scope=ctx.scope,
                uid=fuid,
                headers={"Upload-Concat": f"final;{srv2.url}{path}"},
            )
            assert ans.status == 410, ans.body
            detail = ans.json()["detail"]
            assert "expired" in detail and "already used" not in detail, detail
            out = await file_status(api, ctx.scope, fuid)
            assert out["status"] == "unavailable", out
            assert out["uploads"] == []
        finally:
            assert srv2.stop() == 0, srv2.log()
    assert announced is not None
    assert expired_after - EXPIRY - 1 <= expires_at(announced) <= expired_after


async def test_tus_complete_partial_named_by_open_final_is_not_swept(
    make_server: Callable[..., ServerProcess],
) -> None:
    """A complete partial that an open final names (concatenation-unfinished) outlives its
    own expiry and the sweep; a complete partial no final names, as old, does not."""
    expiry = 9.0
    srv = make_server("--upload-expiry", str(int(expiry)))
    async with context(srv.url, srv.admin_user, srv.admin_password) as ctx:
        fuid = await ctx.file()
        data = pattern(5000, seed=41)
        first, rest = data[:2000], data[2000:]
        part_a = await _complete_partial(ctx, first)
        part_c = await _complete_partial(ctx, pattern(1000, seed=42))  # never joined
        expired_after = time.time() + expiry  # the server set both earlier than this
        # The second part starts late enough to still be open after the sweep below.
        await asyncio.sleep(6.0)
        ans = await create(ctx.api, len(rest), headers={"Upload-Concat": "partial"})
        assert ans.status == 201, ans.body
        part_b = ans.headers["Location"]
        ans = await create(
            ctx.api,
            scope=ctx.scope,
            uid=fuid,
            headers={"Upload-Concat": f"final;{part_a} {part_b}"},
        )
        assert ans.status == 201, ans.body
        assert "Upload-Offset" not in ans.headers  # unfinished concatenation
        final = ans.headers["Location"]
        ans = await head(ctx.api, part_a)
        assert ans.status == 200
        assert "Upload-Expires" not in ans.headers  # named by a final: it no longer expires

        await asyncio.sleep(max(0.0, expired_after - time.time()) + 0.3)
        assert (await head(ctx.api, part_a)).status == 200
        assert (await head(ctx.api, part_c)).status == 410

        srv2 = _restart(srv, "--upload-expiry", str(int(expiry)))
        try:
            api = Api(ctx.api.session, srv2.url, ctx.api.token)
            assert not _data_file(srv2, part_c).exists()  # the sweep ran...
            assert _data_file(srv2, part_a).exists()  # ...and kept the named one
            a_path, b_path = (UPLOADS + upload_uid(u) for u in (part_a, part_b))
            ans = await head(api, a_path)
            assert ans.status == 200
            assert ans.headers["Upload-Offset"] == str(len(first))
            assert await patched(api, b_path, 0, rest) == len(rest)
            ans = await head(api, UPLOADS + upload_uid(final))
            assert ans.status == 200
            assert ans.headers["Upload-Offset"] == str(len(data))
            await assert_available(api, ctx.scope, fuid, data)
        finally:
            assert srv2.stop() == 0, srv2.log()
