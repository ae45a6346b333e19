"""tus 1.0.0 at /api/v1/uploads/ against a real `aetiket serve`: the core protocol,
creation (with upload, deferred length), checksums, locking, interruption, termination and
ownership. Concatenation and expiry have their own modules."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.http import OCTETS, TUS, Api, tus_metadata
from tests.server.tus_support import (
    EXTENSIONS,
    UPLOADS,
    Ctx,
    MiB,
    assert_available,
    checksum,
    content,
    create,
    created,
    eventually,
    expires_at,
    file_status,
    head,
    offset_of,
    patch,
    patched,
    pattern,
    sha256,
    stream,
)

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- discovery


async def test_tus_options_needs_no_token(ctx: Ctx) -> None:
    anonymous = Api(ctx.api.session, ctx.url)
    for path in (UPLOADS, UPLOADS + "a" * 32):
        ans = await anonymous.request("OPTIONS", path)
        assert ans.status == 204, (path, ans.status, ans.body)
        assert "1.0.0" in [v.strip() for v in ans.headers["Tus-Version"].split(",")]
        assert {v.strip() for v in ans.headers["Tus-Extension"].split(",")} >= EXTENSIONS
        assert int(ans.headers["Tus-Max-Size"]) > 0
        assert {v.strip() for v in ans.headers["Tus-Checksum-Algorithm"].split(",")} >= {
            "sha1",
            "md5",
            "sha256",
        }


async def test_tus_options_exact_offer(ctx: Ctx) -> None:
    ans = await Api(ctx.api.session, ctx.url).request("OPTIONS", UPLOADS)
    assert ans.status == 204
    assert ans.headers["Tus-Version"] == "1.0.0"
    assert sorted(ans.headers["Tus-Extension"].split(",")) == sorted(EXTENSIONS)
    assert ans.headers["Tus-Max-Size"].isdigit()
    assert sorted(ans.headers["Tus-Checksum-Algorithm"].split(",")) == ["md5", "sha1", "sha256"]


async def test_tus_requests_need_a_token(ctx: Ctx) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, 10, scope=ctx.scope, uid=fuid)
    anonymous = Api(ctx.api.session, ctx.url)
    for ans in (
        await create(anonymous, 10, scope=ctx.scope, uid=fuid),
        await head(anonymous, loc),
        await patch(anonymous, loc, 0, b"0123456789"),
        await anonymous.request("DELETE", loc),
    ):
        assert ans.status == 401
        assert ans.headers["WWW-Authenticate"] == "Bearer"
    assert await offset_of(ctx.api, loc) == 0


# ---------------------------------------------------------------------------- Tus-Resumable


@pytest.mark.parametrize("version", [None, "0.2.2", "1.0", "1.0.1"])
@pytest.mark.parametrize("method", ["POST", "HEAD", "PATCH"])
async def test_tus_resumable_required(ctx: Ctx, method: str, version: str | None) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, 4, scope=ctx.scope, uid=fuid)
    headers = {} if version is None else {"Tus-Resumable": version}
    if method == "POST":
        headers |= {
            "Upload-Length": "4",
            "Upload-Metadata": tus_metadata(scope=ctx.scope, uid=fuid),
        }
        ans = await ctx.api.request("POST", UPLOADS, headers=headers)
    elif method == "HEAD":
        ans = await ctx.api.request("HEAD", loc, headers=headers)
    else:
        ans = await ctx.api.request(
            "PATCH", loc, data=b"abcd", headers={**headers, **OCTETS, "Upload-Offset": "0"}
        )
    assert ans.status == 412, ans.body
    assert "1.0.0" in ans.headers["Tus-Version"].split(",")
    # Nothing was processed: one upload (the first) at offset 0.
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert [u["offset"] for u in out["uploads"]] == [0]
    assert out["status"] == "pending"


async def test_tus_delete_and_listing_without_tus_resumable(ctx: Ctx) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, 4, scope=ctx.scope, uid=fuid)
    ans = await ctx.api.request("GET", f"{UPLOADS}{ctx.scope}/{fuid}")
    assert ans.status == 200
    ans = await ctx.api.request("DELETE", loc)
    assert ans.status == 204, ans.body
    assert (await head(ctx.api, loc)).status == 404


# ---------------------------------------------------------------------------- creation


async def test_tus_creation_location_and_head(ctx: Ctx) -> None:
    fuid = await ctx.file()
    meta = tus_metadata(scope=ctx.scope, uid=fuid, filename="data.bin")
    ans = await ctx.api.request(
        "POST", UPLOADS, headers={**TUS, "Upload-Length": "1000", "Upload-Metadata": meta}
    )
    assert ans.status == 201, ans.body
    assert ans.headers["Tus-Resumable"] == "1.0.0"
    loc = ans.headers["Location"]
    parts = urlsplit(loc)
    assert parts.scheme == "http" and parts.netloc == urlsplit(ctx.url).netloc
    assert parts.path.startswith(UPLOADS) and len(parts.path) > len(UPLOADS)
    assert "/" not in parts.path[len(UPLOADS) :]
    assert ans.headers["Upload-Offset"] == "0"
    expires = expires_at(ans.headers["Upload-Expires"])
    assert expires > time.time() + 3600  # the default expiry is a day

    ans = await head(ctx.api, loc)
    assert ans.status == 200
    assert ans.body == b""
    assert ans.headers["Tus-Resumable"] == "1.0.0"
    assert ans.headers["Upload-Offset"] == "0"
    assert ans.headers["Upload-Length"] == "1000"
    assert ans.headers["Upload-Metadata"] == meta
    assert ans.headers["Cache-Control"] == "no-store"
    assert "Upload-Concat" not in ans.headers
    assert "Upload-Defer-Length" not in ans.headers

    # Two uploads get two different locations.
    other = await created(ctx.api, 1000, scope=ctx.scope, uid=fuid)
    assert other != loc


async def test_tus_creation_unknown_file_or_scope_404(ctx: Ctx) -> None:
    ans = await create(ctx.api, 10, scope=ctx.scope, uid="no-such-file")
    assert ans.status == 404, ans.body
    assert "detail" in ans.json()
    ans = await create(ctx.api, 10, scope="no-such-scope-x", uid="no-such-file")
    assert ans.status == 404, ans.body


async def test_tus_creation_not_a_member_403(ctx: Ctx) -> None:
    fuid = await ctx.file()
    stranger = await ctx.user()
    ans = await create(stranger, 10, scope=ctx.scope, uid=fuid)
    assert ans.status == 403, ans.body
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable" and out["uploads"] == []
    # A member who did not create the file may upload it.
    member = await ctx.user(member=True)
    ans = await create(member, 10, scope=ctx.scope, uid=fuid)
    assert ans.status == 201, ans.body


@pytest.mark.parametrize("meta", [None, "", "scope", "uid", "filename ZGF0YQ=="])
async def test_tus_creation_needs_scope_and_uid(ctx: Ctx, meta: str | None) -> None:
    fuid = await ctx.file()
    pairs = {"scope": ctx.scope, "uid": fuid}
    headers = {**TUS, "Upload-Length": "10"}
    if meta in ("scope", "uid"):
        headers["Upload-Metadata"] = tus_metadata(**{meta: pairs[meta]})
    elif meta is not None:
        headers["Upload-Metadata"] = meta
    ans = await ctx.api.request("POST", UPLOADS, headers=headers)
    assert ans.status == 400, ans.body
    assert (await file_status(ctx.api, ctx.scope, fuid))["uploads"] == []


@pytest.mark.parametrize(
    "bad_pair",
    [
        "name not-base64!",  # the value is not base64
        "name YQ== YQ==",  # three parts
        "name YQ==,,x",  # an empty pair between commas
        " ",  # a blank pair
        "scope YQ==",  # a repeated key
    ],
)
async def test_tus_creation_malformed_metadata_400(ctx: Ctx, bad_pair: str) -> None:
    fuid = await ctx.file()
    meta = f"{tus_metadata(scope=ctx.scope, uid=fuid)},{bad_pair}"
    ans = await ctx.api.request(
        "POST", UPLOADS, headers={**TUS, "Upload-Length": "10", "Upload-Metadata": meta}
    )
    assert ans.status == 400, (meta, ans.status, ans.body)
    assert (await file_status(ctx.api, ctx.scope, fuid))["uploads"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Upload-Length": "-1"},
        {"Upload-Length": "ten"},
        {"Upload-Length": "1.5"},
        {"Upload-Length": "0x10"},
        {"Upload-Length": ""},
        {},  # neither length nor defer
        {"Upload-Length": "10", "Upload-Defer-Length": "1"},  # both
        {"Upload-Defer-Length": "0"},
        {"Upload-Defer-Length": "yes"},
    ],
)
async def test_tus_creation_bad_length_400(ctx: Ctx, headers: dict[str, str]) -> None:
    fuid = await ctx.file()
    ans = await ctx.api.request(
        "POST",
        UPLOADS,
        headers={**TUS, **headers, "Upload-Metadata": tus_metadata(scope=ctx.scope, uid=fuid)},
    )
    assert ans.status == 400, (headers, ans.status, ans.body)
    assert (await file_status(ctx.api, ctx.scope, fuid))["uploads"] == []


async def test_tus_creation_too_large_413(ctx: Ctx) -> None:
    opts = await ctx.api.request("OPTIONS", UPLOADS)
    max_size = int(opts.headers["Tus-Max-Size"])
    fuid = await ctx.file()
    ans = await create(ctx.api, max_size + 1, scope=ctx.scope, uid=fuid)
    assert ans.status == 413, ans.body
    assert (await file_status(ctx.api, ctx.scope, fuid))["uploads"] == []
    # Exactly Tus-Max-Size is accepted.
    ans = await create(ctx.api, max_size, scope=ctx.scope, uid=fuid)
    assert ans.status == 201, ans.body
    # A deferred length above the maximum is refused when it is declared.
    loc = await created(ctx.api, headers={"Upload-Defer-Length": "1"}, scope=ctx.scope, uid=fuid)
    ans = await patch(ctx.api, loc, 0, b"", headers={"Upload-Length": str(max_size + 1)})
    assert ans.status == 413, ans.body


# ---------------------------------------------------------------------------- uploading


async def test_tus_upload_in_one_patch_and_file_status(ctx: Ctx) -> None:
    data = pattern(3 * MiB + 17, seed=1)
    fuid = await ctx.file()
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable"
    assert out["uploads"] == []
    assert "size" not in out and "etag" not in out
    assert (await ctx.api.request("GET", f"/api/v1/files/{ctx.scope}/{fuid}")).status == 409

    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    uid = urlsplit(loc).path[len(UPLOADS) :]
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "pending"
    assert len(out["uploads"]) == 1
    up = out["uploads"][0]
    assert up["uid"] == uid
    assert (up["offset"], up["length"], up["concat"], up["completed"]) == (
        0,
        len(data),
        False,
        False,
    )
    assert "expires" in up
    assert (await ctx.api.request("GET", f"/api/v1/files/{ctx.scope}/{fuid}")).status == 409

    ans = await patch(ctx.api, loc, 0, data)
    assert ans.status == 204, ans.body
    assert ans.body == b""
    assert ans.headers["Tus-Resumable"] == "1.0.0"
    assert ans.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" not in ans.headers  # complete: it no longer expires

    out = await assert_available(ctx.api, ctx.scope, fuid, data)
    up = out["uploads"][0]
    assert (up["uid"], up["offset"], up["length"], up["concat"], up["completed"]) == (
        uid,
        len(data),
        len(data),
        False,
        True,
    )
    ans = await head(ctx.api, loc)
    assert ans.status == 200
    assert ans.headers["Upload-Offset"] == ans.headers["Upload-Length"] == str(len(data))
    assert "Upload-Expires" not in ans.headers


async def test_tus_upload_in_many_patches(ctx: Ctx) -> None:
    sizes = [MiB, 1, 777, MiB - 1, 65537, 3, 2 * MiB + 5, 12345]
    data = pattern(sum(sizes), seed=2)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    offset = 0
    for i, size in enumerate(sizes):
        body = data[offset : offset + size]
        # Alternate a sized body and a chunked (streamed) one.
        sent = body if i % 2 == 0 else stream(body, chunk=64 * 1024)
        ans = await patch(ctx.api, loc, offset, sent)
        assert ans.status == 204, (i, ans.status, ans.body)
        offset += size
        assert ans.headers["Upload-Offset"] == str(offset)
        if offset < len(data):
            assert "Upload-Expires" in ans.headers
            assert await offset_of(ctx.api, loc) == offset
            status = await file_status(ctx.api, ctx.scope, fuid)
            assert status["status"] == "pending"
            assert status["uploads"][0]["offset"] == offset
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_creation_with_upload_whole(ctx: Ctx) -> None:
    data = pattern(MiB + 3, seed=3)
    fuid = await ctx.file()
    ans = await create(ctx.api, len(data), scope=ctx.scope, uid=fuid, data=data, headers=OCTETS)
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" not in ans.headers
    assert ans.headers["Location"].startswith(ctx.url + UPLOADS)
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_creation_with_upload_part_then_patch(ctx: Ctx) -> None:
    data = pattern(2 * MiB + 9, seed=4)
    fuid = await ctx.file()
    first = MiB + 1
    ans = await create(
        ctx.api, len(data), scope=ctx.scope, uid=fuid, data=stream(data[:first]), headers=OCTETS
    )
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == str(first)
    assert "Upload-Expires" in ans.headers
    loc = ans.headers["Location"]
    assert await offset_of(ctx.api, loc) == first
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    assert await patched(ctx.api, loc, first, data[first:]) == len(data)
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_creation_with_upload_checks_content_type_and_length(ctx: Ctx) -> None:
    fuid = await ctx.file()
    ans = await create(
        ctx.api,
        10,
        scope=ctx.scope,
        uid=fuid,
        data=b"0123456789",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert ans.status == 415, ans.body
    ans = await create(ctx.api, 10, scope=ctx.scope, uid=fuid, data=b"0123456789A", headers=OCTETS)
    assert ans.status == 400, ans.body
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] != "available"


async def test_tus_creation_with_upload_checksum(ctx: Ctx) -> None:
    """creation-with-upload: "similar rules as for the PATCH request apply" (tus 1.0.0)."""
    data = pattern(1000, seed=5)
    fuid = await ctx.file()
    ans = await create(
        ctx.api,
        len(data),
        scope=ctx.scope,
        uid=fuid,
        data=data,
        headers={**OCTETS, "Upload-Checksum": checksum("sha256", data)},
    )
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data))
    await assert_available(ctx.api, ctx.scope, fuid, data)
    # A wrong digest must not be stored: 460, or at most an upload created empty.
    fuid = await ctx.file()
    ans = await create(
        ctx.api,
        len(data),
        scope=ctx.scope,
        uid=fuid,
        data=data,
        headers={**OCTETS, "Upload-Checksum": checksum("sha256", b"other")},
    )
    assert ans.status == 460 or (ans.status == 201 and ans.headers["Upload-Offset"] == "0"), (
        ans.status,
        dict(ans.headers),
    )
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] != "available"


async def test_tus_creation_defer_length(ctx: Ctx) -> None:
    data = pattern(MiB + 2 * 1000 + 1, seed=6)
    fuid = await ctx.file()
    ans = await create(ctx.api, scope=ctx.scope, uid=fuid, headers={"Upload-Defer-Length": "1"})
    assert ans.status == 201, ans.body
    loc = ans.headers["Location"]
    ans = await head(ctx.api, loc)
    assert ans.status == 200
    assert ans.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in ans.headers
    assert ans.headers["Upload-Offset"] == "0"
    listed = (await file_status(ctx.api, ctx.scope, fuid))["uploads"][0]
    # Unknown yet. The original client's UploadOut.from_dict pops "length" unconditionally,
    # so it must be present: null, not omitted.
    assert listed["length"] is None

    assert await patched(ctx.api, loc, 0, data[:MiB]) == MiB
    ans = await head(ctx.api, loc)
    assert ans.headers["Upload-Defer-Length"] == "1"
    assert ans.headers["Upload-Offset"] == str(MiB)
    # The length arrives with a later PATCH, which does not yet finish the upload.
    ans = await patch(
        ctx.api, loc, MiB, data[MiB : MiB + 1000], headers={"Upload-Length": str(len(data))}
    )
    assert ans.status == 204, ans.body
    assert ans.headers["Upload-Offset"] == str(MiB + 1000)
    ans = await head(ctx.api, loc)
    assert ans.headers["Upload-Length"] == str(len(data))
    assert "Upload-Defer-Length" not in ans.headers
    # Once set, the length cannot change.
    ans = await patch(ctx.api, loc, MiB + 1000, b"x", headers={"Upload-Length": "99999999"})
    assert ans.status == 400, ans.body
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    assert await patched(ctx.api, loc, MiB + 1000, data[MiB + 1000 :]) == len(data)
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_creation_defer_length_declared_by_empty_last_patch(ctx: Ctx) -> None:
    data = pattern(5000, seed=7)
    fuid = await ctx.file()
    loc = await created(ctx.api, headers={"Upload-Defer-Length": "1"}, scope=ctx.scope, uid=fuid)
    assert await patched(ctx.api, loc, 0, data) == len(data)
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    # A length smaller than what was received is refused.
    ans = await patch(ctx.api, loc, len(data), b"", headers={"Upload-Length": "10"})
    assert ans.status == 400, ans.body
    assert await patched(
        ctx.api, loc, len(data), b"", headers={"Upload-Length": str(len(data))}
    ) == len(data)
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_creation_defer_length_with_upload(ctx: Ctx) -> None:
    """creation-with-upload and creation-defer-length together (a body, length unknown)."""
    data = pattern(4000, seed=8)
    fuid = await ctx.file()
    ans = await create(
        ctx.api,
        scope=ctx.scope,
        uid=fuid,
        data=data[:1500],
        headers={**OCTETS, "Upload-Defer-Length": "1"},
    )
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == "1500"
    loc = ans.headers["Location"]
    assert await patched(
        ctx.api, loc, 1500, data[1500:], headers={"Upload-Length": str(len(data))}
    ) == len(data)
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_zero_length_upload_completes_at_creation(ctx: Ctx) -> None:
    fuid = await ctx.file()
    ans = await create(ctx.api, 0, scope=ctx.scope, uid=fuid)
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == "0"
    assert "Upload-Expires" not in ans.headers
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "available"
    assert out["size"] == 0
    assert out["etag"] == sha256(b"")
    assert out["uploads"][0]["completed"] is True
    assert await content(ctx.api, ctx.scope, fuid) == b""
    ans = await head(ctx.api, ans.headers["Location"])
    assert ans.status == 200
    assert ans.headers["Upload-Offset"] == ans.headers["Upload-Length"] == "0"


async def test_tus_zero_length_via_deferred_length(ctx: Ctx) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, headers={"Upload-Defer-Length": "1"}, scope=ctx.scope, uid=fuid)
    assert await patched(ctx.api, loc, 0, b"", headers={"Upload-Length": "0"}) == 0
    await assert_available(ctx.api, ctx.scope, fuid, b"")


async def test_tus_reupload_replaces_content(ctx: Ctx) -> None:
    old, new = pattern(3000, seed=9), pattern(2000, seed=10)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(old), scope=ctx.scope, uid=fuid)
    await patched(ctx.api, loc, 0, old)
    await assert_available(ctx.api, ctx.scope, fuid, old)
    loc2 = await created(ctx.api, len(new), scope=ctx.scope, uid=fuid)
    # While the new upload is open the file is pending; the old content is not replaced.
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    await patched(ctx.api, loc2, 0, new[:1000])
    await patched(ctx.api, loc2, 1000, new[1000:])
    out = await assert_available(ctx.api, ctx.scope, fuid, new)
    assert [u["completed"] for u in out["uploads"]] == [True, True]


# ---------------------------------------------------------------------------- checksum


@pytest.mark.parametrize("algo", ["sha1", "md5", "sha256", "SHA256"])
async def test_tus_checksum_correct(ctx: Ctx, algo: str) -> None:
    data = pattern(MiB + 333, seed=11)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    cut = 700_001
    for start, end in ((0, cut), (cut, len(data))):
        chunk = data[start:end]
        header = checksum(algo.lower(), chunk)
        header = algo + header[len(algo) :]
        ans = await patch(ctx.api, loc, start, chunk, headers={"Upload-Checksum": header})
        assert ans.status == 204, ans.body
        assert ans.headers["Upload-Offset"] == str(end)
    await assert_available(ctx.api, ctx.scope, fuid, data)


@pytest.mark.parametrize("algo", ["sha1", "md5", "sha256"])
async def test_tus_checksum_mismatch_460_discards_chunk(ctx: Ctx, algo: str) -> None:
    data = pattern(2 * MiB + 77, seed=12)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    cut = MiB + 5
    assert (
        await patched(
            ctx.api, loc, 0, data[:cut], headers={"Upload-Checksum": checksum(algo, data[:cut])}
        )
        == cut
    )
    # The rest, corrupted, with the digest of the right bytes: 460, nothing kept.
    rest = data[cut:]
    corrupt = bytes([rest[0] ^ 0xFF]) + rest[1:]
    ans = await patch(ctx.api, loc, cut, corrupt, headers={"Upload-Checksum": checksum(algo, rest)})
    assert ans.status == 460, ans.body
    assert await offset_of(ctx.api, loc) == cut
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "pending"
    assert out["uploads"][0]["offset"] == cut
    # The right bytes then succeed and the content is right.
    ans = await patch(ctx.api, loc, cut, rest, headers={"Upload-Checksum": checksum(algo, rest)})
    assert ans.status == 204, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data))
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_checksum_mismatch_on_first_chunk(ctx: Ctx) -> None:
    data = pattern(300_000, seed=13)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    ans = await patch(
        ctx.api,
        loc,
        0,
        data[:100_000],
        headers={"Upload-Checksum": checksum("md5", data[100_000:200_000])},
    )
    assert ans.status == 460
    assert await offset_of(ctx.api, loc) == 0
    # A shorter chunk than the rejected one, then the rest: no stale bytes survive.
    await patched(ctx.api, loc, 0, data[:50_000])
    await patched(
        ctx.api,
        loc,
        50_000,
        data[50_000:],
        headers={"Upload-Checksum": checksum("sha1", data[50_000:])},
    )
    await assert_available(ctx.api, ctx.scope, fuid, data)


@pytest.mark.parametrize(
    "header",
    [
        "crc32 AAAAAA==",
        "sha512 " + "A" * 88,
        "sha256",
        "sha256 not-base64!",
        "sha256 AAAA",  # base64, but not 32 bytes
    ],
)
async def test_tus_checksum_bad_header_400(ctx: Ctx, header: str) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, 4, scope=ctx.scope, uid=fuid)
    ans = await patch(ctx.api, loc, 0, b"abcd", headers={"Upload-Checksum": header})
    assert ans.status == 400, (header, ans.status, ans.body)
    assert await offset_of(ctx.api, loc) == 0


# ---------------------------------------------------------------------------- PATCH errors


async def test_tus_patch_offset_mismatch_409(ctx: Ctx) -> None:
    data = pattern(10_000, seed=14)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    ans = await patch(ctx.api, loc, 1, data[1:100])
    assert ans.status == 409, ans.body
    assert await offset_of(ctx.api, loc) == 0
    await patched(ctx.api, loc, 0, data[:4000])
    for wrong in (0, 3999, 4001, 10_000):
        ans = await patch(ctx.api, loc, wrong, data[wrong : wrong + 10])
        assert ans.status == 409, (wrong, ans.body)
    assert await offset_of(ctx.api, loc) == 4000
    await patched(ctx.api, loc, 4000, data[4000:])
    await assert_available(ctx.api, ctx.scope, fuid, data)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/octet-stream", "text/plain", "application/offset+octet-streams"],
)
async def test_tus_patch_wrong_content_type_415(ctx: Ctx, content_type: str | None) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, 4, scope=ctx.scope, uid=fuid)
    headers = {**TUS, "Upload-Offset": "0"}  # no Content-Type: aiohttp sends octet-stream
    if content_type is not None:
        headers["Content-Type"] = content_type
    ans = await ctx.api.request("PATCH", loc, data=b"abcd", headers=headers)
    assert ans.status == 415, (content_type, ans.body)
    assert await offset_of(ctx.api, loc) == 0


async def test_tus_patch_bad_offset_header_400(ctx: Ctx) -> None:
    fuid = await ctx.file()
    loc = await created(ctx.api, 4, scope=ctx.scope, uid=fuid)
    for value in ("-1", "x", ""):
        ans = await ctx.api.request(
            "PATCH", loc, data=b"abcd", headers={**TUS, **OCTETS, "Upload-Offset": value}
        )
        assert ans.status == 400, (value, ans.body)
    ans = await ctx.api.request("PATCH", loc, data=b"abcd", headers={**TUS, **OCTETS})
    assert ans.status == 400, ans.body
    assert await offset_of(ctx.api, loc) == 0


async def test_tus_patch_past_length_400(ctx: Ctx) -> None:
    data = pattern(1000, seed=15)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    ans = await patch(ctx.api, loc, 0, data + b"!")
    assert ans.status == 400, ans.body
    assert await offset_of(ctx.api, loc) == 0
    await patched(ctx.api, loc, 0, data[:600])
    ans = await patch(ctx.api, loc, 600, data[600:] + b"!")  # sized body
    assert ans.status == 400, ans.body
    assert await offset_of(ctx.api, loc) == 600
    ans = await patch(ctx.api, loc, 600, stream(data[600:] + b"!!", chunk=100))  # chunked body
    assert ans.status == 400, ans.body
    assert await offset_of(ctx.api, loc) == 600
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    await patched(ctx.api, loc, 600, data[600:])
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_patch_completed_upload(ctx: Ctx) -> None:
    data = pattern(5000, seed=16)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    await patched(ctx.api, loc, 0, data)
    # More bytes at the end: refused (the upload is complete).
    ans = await patch(ctx.api, loc, len(data), b"more")
    assert ans.status == 409, ans.body
    # A stale offset: the usual mismatch.
    ans = await patch(ctx.api, loc, 0, data)
    assert ans.status == 409, ans.body
    # An empty PATCH at the final offset is harmless.
    assert await patched(ctx.api, loc, len(data), b"") == len(data)
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_unknown_upload_404(ctx: Ctx) -> None:
    loc = f"{ctx.url}{UPLOADS}{'z' * 32}"
    assert (await head(ctx.api, loc)).status == 404
    assert (await patch(ctx.api, loc, 0, b"abc")).status == 404
    assert (await ctx.api.request("DELETE", loc)).status == 404


# ---------------------------------------------------------------------------- concurrency


async def test_tus_concurrent_patch_409(ctx: Ctx) -> None:
    data = pattern(3 * MiB + 11, seed=17)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    first_sent = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield data[:MiB]
        first_sent.set()
        await asyncio.sleep(1.0)
        yield data[MiB:]

    first = asyncio.create_task(patch(ctx.api, loc, 0, slow()))
    await asyncio.wait_for(first_sent.wait(), 10)
    await asyncio.sleep(0.2)  # the server is inside the first PATCH now
    assert not first.done()
    second = await patch(ctx.api, loc, 0, data[:1000])
    assert second.status == 409, second.body
    third = await patch(ctx.api, loc, 0, data)  # even a complete body is refused meanwhile
    assert third.status == 409, third.body
    assert not first.done()
    ans = await first
    assert ans.status == 204, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data))
    await assert_available(ctx.api, ctx.scope, fuid, data)


# ---------------------------------------------------------------------------- interruption


async def _interrupted_patch(
    url: str,
    token: str,
    location: str,
    offset: int,
    declared: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    """Send a PATCH announcing ``declared`` bytes, send only ``body``, then hang up."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    assert host is not None and port is not None
    reader, writer = await asyncio.open_connection(host, port)
    lines = [
        f"PATCH {urlsplit(location).path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Authorization: Bearer {token}",
        "Tus-Resumable: 1.0.0",
        "Content-Type: application/offset+octet-stream",
        f"Upload-Offset: {offset}",
        f"Content-Length: {declared}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    view = memoryview(body)
    for start in range(0, len(view), 256 * 1024):
        writer.write(view[start : start + 256 * 1024])
        await writer.drain()
    await asyncio.sleep(0.5)  # let the server read all of it
    assert not reader.at_eof()  # no answer yet: the server still waits for the rest
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.mark.parametrize("sent", [300_001, 5 * MiB + 123])
async def test_tus_interrupted_patch_keeps_received_bytes(ctx: Ctx, sent: int) -> None:
    data = pattern(8 * MiB, seed=18)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    assert ctx.api.token is not None
    await _interrupted_patch(ctx.url, ctx.api.token, loc, 0, len(data), data[:sent])

    async def stored() -> int | None:
        off = await offset_of(ctx.api, loc)
        return off if off == sent else None

    await eventually(stored, timeout=5)
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "pending"
    assert out["uploads"][0]["offset"] == sent
    # Resume from there (the lock of the broken PATCH is gone).
    ans = await patch(ctx.api, loc, sent, stream(data[sent:]))
    assert ans.status == 204, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data))
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_interrupted_patch_with_checksum_keeps_nothing(ctx: Ctx) -> None:
    data = pattern(6 * MiB + 1, seed=19)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    first = MiB
    await patched(ctx.api, loc, 0, data[:first])
    assert ctx.api.token is not None
    rest = data[first:]
    await _interrupted_patch(
        ctx.url,
        ctx.api.token,
        loc,
        first,
        len(rest),
        rest[: 4 * MiB + 7],
        headers={"Upload-Checksum": checksum("sha256", rest)},
    )
    await asyncio.sleep(0.3)
    assert await offset_of(ctx.api, loc) == first

    async def resumed() -> int | None:  # the broken PATCH may hold the lock a moment
        ans = await patch(
            ctx.api, loc, first, rest, headers={"Upload-Checksum": checksum("sha256", rest)}
        )
        return ans.status if ans.status != 409 else None

    assert await eventually(resumed, timeout=5) == 204
    await assert_available(ctx.api, ctx.scope, fuid, data)


# ---------------------------------------------------------------------------- termination


async def test_tus_termination(ctx: Ctx) -> None:
    data = pattern(4000, seed=20)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    await patched(ctx.api, loc, 0, data[:1000])
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    ans = await ctx.api.request("DELETE", loc)  # without Tus-Resumable
    assert ans.status == 204, ans.body
    assert ans.body == b""
    assert (await head(ctx.api, loc)).status == 404
    assert (await patch(ctx.api, loc, 1000, data[1000:])).status == 404
    assert (await ctx.api.request("DELETE", loc, headers=TUS)).status == 404
    out = await file_status(ctx.api, ctx.scope, fuid)
    assert out["status"] == "unavailable"
    assert out["uploads"] == []
    # A fresh upload of the file then works.
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    await patched(ctx.api, loc, 0, data)
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_termination_of_a_reupload_keeps_the_content(ctx: Ctx) -> None:
    data = pattern(4000, seed=21)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    await patched(ctx.api, loc, 0, data)
    loc2 = await created(ctx.api, 10, scope=ctx.scope, uid=fuid)
    await patched(ctx.api, loc2, 0, b"01234")
    assert (await file_status(ctx.api, ctx.scope, fuid))["status"] == "pending"
    assert (await ctx.api.request("DELETE", loc2, headers=TUS)).status == 204
    out = await assert_available(ctx.api, ctx.scope, fuid, data)
    assert [u["completed"] for u in out["uploads"]] == [True]


# ---------------------------------------------------------------------------- ownership


async def test_tus_stranger_cannot_touch_an_upload(ctx: Ctx) -> None:
    data = pattern(3000, seed=22)
    fuid = await ctx.file()
    loc = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    await patched(ctx.api, loc, 0, data[:1000])
    stranger = await ctx.user()
    assert (await head(stranger, loc)).status == 403
    assert (await patch(stranger, loc, 1000, data[1000:])).status == 403
    assert (await stranger.request("DELETE", loc)).status == 403
    assert (await stranger.request("GET", f"{UPLOADS}{ctx.scope}/{fuid}")).status == 403
    assert await offset_of(ctx.api, loc) == 1000
    await patched(ctx.api, loc, 1000, data[1000:])
    await assert_available(ctx.api, ctx.scope, fuid, data)


async def test_tus_stranger_cannot_touch_a_bare_partial(ctx: Ctx) -> None:
    loc = await created(ctx.api, 10, headers={"Upload-Concat": "partial"})
    stranger = await ctx.user()
    assert (await head(stranger, loc)).status == 403
    assert (await patch(stranger, loc, 0, b"0123456789")).status == 403
    assert (await stranger.request("DELETE", loc)).status == 403
    ans = await head(ctx.api, loc)
    assert ans.status == 200
    assert ans.headers["Upload-Offset"] == "0"
    assert ans.headers["Upload-Concat"] == "partial"


async def test_tus_removed_member_loses_access(ctx: Ctx) -> None:
    """The access rule holds for an upload's own creator once they leave the scope."""
    fuid = await ctx.file()
    name, password = await ctx.admin.new_user()
    await ctx.admin.ok("PUT", f"/api/v1/scopes/{ctx.scope}/members/{name}")
    member = await Api(ctx.api.session, ctx.url).login(name, password)
    loc = await created(member, 10, scope=ctx.scope, uid=fuid)
    await ctx.admin.ok("DELETE", f"/api/v1/scopes/{ctx.scope}/members/{name}")
    assert (await patch(member, loc, 0, b"0123456789")).status == 403
    assert await offset_of(ctx.api, loc) == 0  # the scope's members still see it
