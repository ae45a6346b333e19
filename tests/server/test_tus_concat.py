"""tus concatenation and concatenation-unfinished against a real `aetiket serve`."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.conftest import ServerProcess
from tests.http import Api
from tests.server.helpers import assert_error
from tests.server.tus_support import (
    UPLOADS,
    Ctx,
    MiB,
    assert_available,
    context,
    create,
    created,
    eventually,
    file_status,
    head,
    offset_of,
    patch,
    patched,
    pattern,
    sha256,
    stream,
    upload_uid,
)

pytestmark = pytest.mark.anyio


SIZE = 64 * MiB


@pytest.fixture(scope="module")
def source() -> bytes:
    return os.urandom(SIZE)


def slices(total: int, n: int) -> list[tuple[int, int]]:
    """``n`` contiguous, unequal (odd-sized) slices covering ``total`` bytes."""
    step = total // n
    cuts = [0] + [i * step + (i * 7919) % 4099 - 2000 for i in range(1, n)] + [total]
    return list(itertools.pairwise(cuts))


async def _partial(api: Api, data: memoryview, meta: dict[str, str]) -> str:
    """A partial upload of ``data`` (created, then sent in one streamed PATCH)."""
    loc = await created(api, len(data), headers={"Upload-Concat": "partial"}, **meta)
    ans = await patch(api, loc, 0, stream(data))
    assert ans.status == 204, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data))
    return loc


@pytest.mark.slow
@pytest.mark.parametrize("with_meta", [False, True], ids=["bare-partials", "meta-partials"])
async def test_tus_parallel_upload_64mib(ctx: Ctx, source: bytes, with_meta: bool) -> None:
    fuid = await ctx.file()
    view = memoryview(source)
    parts = slices(SIZE, 8)
    meta = {"scope": ctx.scope, "uid": fuid} if with_meta else {}
    locs = await asyncio.gather(*(_partial(ctx.api, view[a:b], meta) for a, b in parts))
    for loc, (a, b) in zip(locs, parts, strict=True):
        ans = await head(ctx.api, loc)
        assert ans.status == 200
        assert ans.headers["Upload-Concat"] == "partial"
        assert ans.headers["Upload-Offset"] == ans.headers["Upload-Length"] == str(b - a)
    # Absolute URLs for one, paths (tus allows both) for the other.
    names = locs if not with_meta else [urlsplit(loc).path for loc in locs]
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": "final;" + " ".join(names)}
    )
    assert ans.status == 201, ans.body
    final = ans.headers["Location"]
    assert final.startswith(ctx.url + UPLOADS)
    assert final not in locs
    out = await eventually(lambda: _available(ctx.api, ctx.scope, fuid), timeout=30)
    assert out["size"] == SIZE
    assert out["etag"] == hashlib.sha256(source).hexdigest()
    ans = await head(ctx.api, final)
    assert ans.status == 200
    assert ans.headers["Upload-Concat"] == "final;" + " ".join(locs)
    assert ans.headers["Upload-Offset"] == ans.headers["Upload-Length"] == str(SIZE)
    await assert_available(ctx.api, ctx.scope, fuid, source)
    listed = {u["uid"]: u for u in out["uploads"]}
    assert listed[upload_uid(final)]["concat"] is True
    assert listed[upload_uid(final)]["completed"] is True
    assert listed[upload_uid(final)]["length"] == SIZE
    partial_uids = {upload_uid(loc) for loc in locs}
    if with_meta:  # partials naming the file are listed with it
        assert set(listed) == partial_uids | {upload_uid(final)}
        for uid in partial_uids:
            assert listed[uid]["concat"] is True and listed[uid]["completed"] is True
    else:
        assert set(listed) == {upload_uid(final)}


async def _available(api: Api, scope: str, fuid: str) -> dict[str, object] | None:
    out = await file_status(api, scope, fuid)
    return out if out["status"] == "available" else None


async def test_tus_concatenation_unfinished(ctx: Ctx) -> None:
    data = pattern(3 * MiB + 1001, seed=40)
    fuid = await ctx.file()
    cuts = [(0, MiB + 1), (MiB + 1, 2 * MiB + 500), (2 * MiB + 500, len(data))]
    locs = [await created(ctx.api, b - a, headers={"Upload-Concat": "partial"}) for a, b in cuts]
    # The first partial done, the second half-way, the third not started.
    await patched(ctx.api, locs[0], 0, data[: cuts[0][1]])
    a1, b1 = cuts[1]
    half = (b1 - a1) // 2
    await patched(ctx.api, locs[1], 0, data[a1 : a1 + half])

    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": "final;" + " ".join(locs)}
    )
    assert ans.status == 201, ans.body
    final = ans.headers["Location"]
    assert "Upload-Offset" not in ans.headers  # not concatenated yet
    ans = await head(ctx.api, final)
    assert ans.status == 200
    assert ans.headers["Upload-Concat"] == "final;" + " ".join(locs)
    assert ans.headers["Upload-Length"] == str(len(data))
    assert "Upload-Offset" not in ans.headers
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "pending"
    assert [(u["concat"], u["completed"]) for u in out["uploads"]] == [(True, False)]

    await patched(ctx.api, locs[1], half, data[a1 + half : b1])
    ans = await head(ctx.api, final)
    assert "Upload-Offset" not in ans.headers
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    # The last partial completes: the final is concatenated and the file available.
    a2, b2 = cuts[2]
    await patched(ctx.api, locs[2], 0, data[a2:b2])
    await eventually(lambda: _available(ctx.api, ctx.scope, fuid), timeout=10)
    ans = await head(ctx.api, final)
    assert ans.status == 200
    assert ans.headers["Upload-Offset"] == ans.headers["Upload-Length"] == str(len(data))
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_partial_metadata_is_checked(ctx: Ctx) -> None:
    """A partial may carry no metadata; when it names a file, the file rules apply."""
    fuid = await ctx.file()
    stranger = await ctx.user()
    ans = await create(stranger, 5, headers={"Upload-Concat": "partial"}, scope=ctx.scope, uid=fuid)
    assert ans.status == 403, ans.body
    ans = await create(
        ctx.api, 5, headers={"Upload-Concat": "partial"}, scope=ctx.scope, uid="no-such-file"
    )
    assert ans.status == 404, ans.body
    ans = await create(ctx.api, 5, headers={"Upload-Concat": "partial"}, scope=ctx.scope)
    assert ans.status == 400, ans.body
    ans = await create(stranger, 5, headers={"Upload-Concat": "partial"})
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == "0"
    assert "Upload-Expires" in ans.headers
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable" and out["uploads"] == []


async def test_tus_final_needs_partial_lengths(ctx: Ctx) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, headers={"Upload-Concat": "partial", "Upload-Defer-Length": "1"})
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{loc}"}
    )
    assert ans.status == 400, ans.body
    assert (await file_status(ctx.api, ctx.scope, fuid))["uploads"] == []


async def test_tus_final_of_another_users_partial_403(ctx: Ctx) -> None:
    fuid = await ctx.file()
    other = await ctx.user(member=True)  # a member of the scope, but not the partial's owner
    theirs = await created(
        other, 5, headers={"Upload-Concat": "partial"}, scope=ctx.scope, uid=fuid
    )
    await patched(other, theirs, 0, b"abcde")
    mine = await created(ctx.api, 5, headers={"Upload-Concat": "partial"})
    await patched(ctx.api, mine, 0, b"fghij")
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{mine} {theirs}"}
    )
    assert ans.status == 403, ans.body
    bare = await created(other, 5, headers={"Upload-Concat": "partial"})
    await patched(other, bare, 0, b"klmno")
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{bare}"}
    )
    assert ans.status == 403, ans.body
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert all(not u["concat"] or u["uid"] == upload_uid(theirs) for u in out["uploads"])
    assert out["status"] != "available"
    # The owner of a partial may join it (a member of the scope).
    ans = await create(
        other, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{bare} {theirs}"}
    )
    assert ans.status == 201, ans.body
    await assert_available(ctx.api, ctx.scope, fuid, b"klmnoabcde")


async def test_tus_patch_on_a_final_403(ctx: Ctx) -> None:
    fuid = await ctx.file()
    part = await created(ctx.api, 10, headers={"Upload-Concat": "partial"})
    final = await created(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{part}"}
    )
    ans = await patch(ctx.api, final, 0, b"0123456789")
    assert ans.status == 403, ans.body
    await patched(ctx.api, part, 0, b"0123456789")
    ans = await patch(ctx.api, final, 10, b"x")
    assert ans.status == 403, ans.body
    await assert_available(ctx.api, ctx.scope, fuid, b"0123456789")


@pytest.mark.parametrize("extra", [{"Upload-Length": "10"}, {"Upload-Defer-Length": "1"}])
async def test_tus_final_with_a_length_400(ctx: Ctx, extra: dict[str, str]) -> None:
    fuid = await ctx.file()
    part = await created(ctx.api, 10, headers={"Upload-Concat": "partial"})
    await patched(ctx.api, part, 0, b"0123456789")
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{part}", **extra}
    )
    assert ans.status == 400, ans.body
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable" and out["uploads"] == []


async def test_tus_final_bad_references(ctx: Ctx) -> None:
    fuid = await ctx.file()
    plain = await created(ctx.api, 3, scope=ctx.scope, uid=fuid)
    await patched(ctx.api, plain, 0, b"abc")
    part = await created(ctx.api, 3, headers={"Upload-Concat": "partial"})
    for value, status in [
        ("final;", 400),  # no partials
        ("final", 400),  # malformed
        ("partial;x", 400),  # malformed
        (f"final;{plain}", 400),  # not a partial
        (f"final;{ctx.url}/api/v1/files/x/y", 400),  # not an upload URL
        (f"final;{ctx.url}{UPLOADS}{'q' * 32}", 404),  # no such upload
        (f"final;{part} {ctx.url}{UPLOADS}{'q' * 32}", 404),
    ]:
        ans = await create(ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": value})
        assert ans.status == status, (value, ans.status, ans.body)
    # A final needs scope/uid metadata like any non-partial upload.
    ans = await create(ctx.api, headers={"Upload-Concat": f"final;{part}"})
    assert ans.status == 400, ans.body
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert [u["concat"] for u in out["uploads"]] == [False]
    assert out["status"] == "available"


async def test_tus_final_takes_no_body(ctx: Ctx) -> None:
    fuid = await ctx.file()
    part = await created(ctx.api, 3, headers={"Upload-Concat": "partial"})
    await patched(ctx.api, part, 0, b"abc")
    ans = await create(
        ctx.api,
        scope=ctx.scope,
        uid=fuid,
        data=b"abc",
        headers={
            "Upload-Concat": f"final;{part}",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert ans.status == 403, ans.body  # tus leaves it open; aetiket refuses like a PATCH
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "unavailable"


async def test_tus_partials_in_order_of_the_final_header(ctx: Ctx) -> None:
    """The final's content follows the order of its Upload-Concat list, not creation."""
    fuid = await ctx.file()
    a = await created(ctx.api, 3, headers={"Upload-Concat": "partial"})
    b = await created(ctx.api, 4, headers={"Upload-Concat": "partial"})
    await patched(ctx.api, b, 0, b"BBBB")
    await patched(ctx.api, a, 0, b"AAA")
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{b} {a}"}
    )
    assert ans.status == 201, ans.body
    await assert_available(ctx.api, ctx.scope, fuid, b"BBBBAAA")
    assert sha256(b"BBBBAAA") == (await file_status(ctx.api, ctx.scope, fuid))["etag"]


async def test_tus_terminate_partial_and_final(ctx: Ctx) -> None:
    fuid = await ctx.file()
    part = await created(ctx.api, 10, headers={"Upload-Concat": "partial"})
    final = await created(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{part}"}
    )
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    assert (await ctx.api.request("DELETE", final)).status == 204
    assert (await head(ctx.api, final)).status == 404
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable" and out["uploads"] == []
    assert (await ctx.api.request("DELETE", part)).status == 204
    assert (await head(ctx.api, part)).status == 404


async def test_tus_reusing_consumed_partials_does_not_leave_the_file_pending(ctx: Ctx) -> None:
    """tus lets a server delete partials after concatenation; a second final naming them
    may then fail, but must not leave a dangling open upload (file stuck `pending`)."""
    fuid = await ctx.file()
    part = await created(ctx.api, 6, headers={"Upload-Concat": "partial"})
    await patched(ctx.api, part, 0, b"abcdef")
    assert (
        await create(ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{part}"})
    ).status == 201
    await assert_available(ctx.api, ctx.scope, fuid, b"abcdef")
    ans = await create(
        ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Concat": f"final;{part}"}
    )
    assert ans.status in (201, 410), ans.body
    await assert_available(ctx.api, ctx.scope, fuid, b"abcdef")
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert all(u["completed"] for u in out["uploads"]), out["uploads"]
    if ans.status == 201:
        assert await offset_of(ctx.api, ans.headers["Location"]) == 6


def _final_of(locs: list[str]) -> dict[str, str]:
    return {"Upload-Concat": "final;" + " ".join(locs)}


async def test_tus_partial_joins_one_final_only(ctx: Ctx) -> None:
    """A second final naming partials another final holds is 409, also before the join:
    the join appends to the first partial's data (the content is a hard link to it), so
    two finals joining the same partials would corrupt each other's content."""
    data = pattern(2 * MiB + 333, seed=50)
    cut = MiB + 7
    fuid, other = await ctx.file(), await ctx.file()
    locs = [
        await created(ctx.api, n, headers={"Upload-Concat": "partial"})
        for n in (cut, len(data) - cut)
    ]
    await patched(ctx.api, locs[0], 0, data[:cut])
    ans = await create(ctx.api, scope=ctx.scope, uid=fuid, headers=_final_of(locs))
    assert ans.status == 201, ans.body
    final = ans.headers["Location"]
    # The client retries after a timeout (same file), or names them for another file.
    for target in (fuid, other):
        ans = await create(ctx.api, scope=ctx.scope, uid=target, headers=_final_of(locs))
        detail = assert_error(ans, 409)
        assert upload_uid(locs[0]) in detail and upload_uid(final) in detail, detail
    await patched(ctx.api, locs[1], 0, data[cut:])
    await eventually(lambda: _available(ctx.api, ctx.scope, fuid), timeout=10)
    await assert_available(ctx.api, ctx.scope, fuid, data)
    # Joined: the partials are used up (410, as before).
    ans = await create(ctx.api, scope=ctx.scope, uid=other, headers=_final_of(locs))
    assert_error(ans, 410)
    out = await file_status(ctx.api, ctx.scope, other)
    assert out["status"] == "unavailable" and out["uploads"] == []
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert [u["uid"] for u in out["uploads"] if u["concat"]] == [upload_uid(final)]


async def test_tus_final_posted_twice_at_once(ctx: Ctx) -> None:
    """A final re-POSTed while the first one's join runs: one 201, one 409, and the
    content is the source's (before, both joined into the first partial's data)."""
    data = os.urandom(16 * MiB)
    cut = 8 * MiB + 3
    fuid = await ctx.file()
    locs = [
        await created(ctx.api, n, headers={"Upload-Concat": "partial"})
        for n in (cut, len(data) - cut)
    ]
    await patched(ctx.api, locs[0], 0, data[:cut])
    await patched(ctx.api, locs[1], 0, data[cut:])
    answers = await asyncio.gather(
        *(create(ctx.api, scope=ctx.scope, uid=fuid, headers=_final_of(locs)) for _ in range(2))
    )
    assert sorted(a.status for a in answers) == [201, 409], [(a.status, a.body) for a in answers]
    await assert_available(ctx.api, ctx.scope, fuid, data)
    assert (await file_status(ctx.api, ctx.scope, fuid))["etag"] == sha256(data)


async def test_tus_dropped_final_releases_its_partials(ctx: Ctx, server: ServerProcess) -> None:
    """A final whose join fails is dropped, and its partials may join another final."""
    parts = [pattern(1000 + i, seed=60 + i) for i in range(3)]
    fuid = await ctx.file()
    locs = [await created(ctx.api, len(p), headers={"Upload-Concat": "partial"}) for p in parts]
    await patched(ctx.api, locs[0], 0, parts[0])
    await patched(ctx.api, locs[1], 0, parts[1])
    final = await created(ctx.api, scope=ctx.scope, uid=fuid, headers=_final_of(locs))
    # The first partial's data is lost: the join (when the last partial completes) fails.
    (server.data_dir / "uploads" / f"{upload_uid(locs[0])}.bin").unlink()
    await patched(ctx.api, locs[2], 0, parts[2])
    assert (await head(ctx.api, final)).status == 404
    ans = await create(ctx.api, scope=ctx.scope, uid=fuid, headers=_final_of(locs[1:]))
    assert ans.status == 201, ans.body
    await assert_available(ctx.api, ctx.scope, fuid, parts[1] + parts[2])


async def test_tus_parallel_upload_behind_a_path_prefix(
    make_server: Callable[..., ServerProcess],
) -> None:
    """With a public URL that has a path (a proxy serving the API under /etiket), the
    final names the partials by the Locations the server gave out."""
    public = "https://etiket.example.org/etiket"
    srv = make_server("--public-url", public)
    data = pattern(3000, seed=70)
    async with context(srv.url, srv.admin_user, srv.admin_password) as ctx:
        fuid = await ctx.file()
        locs = []
        for a, b in [(0, 1234), (1234, len(data))]:
            loc = await created(ctx.api, b - a, headers={"Upload-Concat": "partial"})
            assert loc.startswith(public + UPLOADS), loc
            # No proxy here: the test talks to the server at the path the proxy would.
            await patched(ctx.api, loc[len(public) :], 0, data[a:b])
            locs.append(loc)
        ans = await create(ctx.api, scope=ctx.scope, uid=fuid, headers=_final_of(locs))
        assert ans.status == 201, ans.body
        final = ans.headers["Location"]
        assert final.startswith(public + UPLOADS), final
        await assert_available(ctx.api, ctx.scope, fuid, data)
        ans = await head(ctx.api, final[len(public) :])
        assert ans.status == 200
        assert ans.headers["Upload-Concat"] == "final;" + " ".join(locs)
