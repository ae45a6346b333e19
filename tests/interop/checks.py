"""Checks of what the upload engine sent, read from a traced session's requests."""

from __future__ import annotations

import dataclasses

import anyio

import aetiket
from aetiket._config import TransferConfig
from aetiket.transfer import tus
from aetiket.transfer.upload import UploadResult
from tests.interop.conftest import Blob, Sent, Traced, resume_records

OCTETS = "application/offset+octet-stream"


def creations(traced: Traced, endpoint_url: str) -> list[Sent]:
    return [s for s in traced.of("POST") if s.url == endpoint_url]


def check_single(traced: Traced, endpoint_url: str, result: UploadResult, blob: Blob) -> None:
    """One plain upload (no concatenation): one POST, PATCHes to its URL, in order."""
    posts = creations(traced, endpoint_url)
    assert len(posts) == 1, [p.headers for p in posts]
    post = posts[0]
    assert post.status == 201 and post.location == result.url
    assert "Upload-Concat" not in post.headers
    assert post.headers["Upload-Length"] == str(blob.size)
    assert result.part_urls == (result.url,)
    patches = traced.of("PATCH")
    assert all(p.url == result.url for p in patches)
    small = blob.size <= 256 * 1024
    if small:  # creation-with-upload: the bytes go in the POST
        assert post.headers.get("Content-Type") == OCTETS
        assert patches == []
    else:
        assert "Content-Type" not in post.headers
        assert patches
        offsets = [int(p.headers["Upload-Offset"]) for p in patches]
        lengths = [int(p.headers["Content-Length"]) for p in patches]
        assert offsets == [sum(lengths[:i]) for i in range(len(lengths))]
        assert sum(lengths) == blob.size


def check_concat(
    traced: Traced, endpoint_url: str, result: UploadResult, blob: Blob, parts: int
) -> None:
    """``parts`` partial uploads covering the source in order, then one final."""
    posts = creations(traced, endpoint_url)
    partials = [p for p in posts if p.headers.get("Upload-Concat") == "partial"]
    finals = [p for p in posts if p.headers.get("Upload-Concat", "").startswith("final;")]
    assert len(partials) == parts and len(finals) == 1 and len(posts) == parts + 1
    assert len(result.part_urls) == parts
    final = finals[0]
    assert "Upload-Length" not in final.headers  # the parts decide the final's length
    assert final.headers["Upload-Concat"] == "final;" + " ".join(result.part_urls)
    assert result.url not in result.part_urls
    # The URLs are the Locations the server gave (resolved if relative), and only those.
    assert {p.location for p in partials} == set(result.part_urls)
    assert final.location == result.url
    assert all(p.status == 201 for p in posts)
    assert sum(int(p.headers["Upload-Length"]) for p in partials) == blob.size
    # Every partial gets exactly its own bytes, from its offset 0 on.
    sent = dict.fromkeys(result.part_urls, 0)
    for p in traced.of("PATCH"):
        assert p.url in sent, p.url
        assert int(p.headers["Upload-Offset"]) == sent[p.url]
        sent[p.url] += int(p.headers["Content-Length"])
    assert sum(sent.values()) == blob.size


def part_starts(traced: Traced, endpoint_url: str, result: UploadResult) -> dict[str, int]:
    """Where each part (by URL) starts in the source: the parts' lengths, in plan order."""
    if len(result.part_urls) == 1:
        return {result.part_urls[0]: 0}
    lengths = {
        p.location: int(p.headers["Upload-Length"])
        for p in creations(traced, endpoint_url)
        if p.headers.get("Upload-Concat") == "partial"
    }
    starts, at = {}, 0
    for url in result.part_urls:
        starts[url] = at
        at += lengths[url]
    return starts


def check_checksums(
    traced: Traced, endpoint_url: str, result: UploadResult, blob: Blob, algorithm: str | None
) -> None:
    """Every request that carried bytes carried the right ``Upload-Checksum`` (or none)."""
    with_body = [p for p in traced.of("PATCH")] + [
        p for p in creations(traced, endpoint_url) if p.headers.get("Content-Type") == OCTETS
    ]
    assert with_body or blob.size == 0
    if algorithm is None:
        assert all("Upload-Checksum" not in p.headers for p in with_body)
        return
    starts = part_starts(traced, endpoint_url, result)
    for p in traced.of("PATCH"):
        at = starts[p.url] + int(p.headers["Upload-Offset"])
        n = int(p.headers["Content-Length"])
        assert n <= 8 * 1024 * 1024  # a checksummed chunk is held in memory: 8 MiB at most
        assert p.headers["Upload-Checksum"] == tus.checksum_header(
            algorithm, blob.data[at : at + n]
        )
    posts = [p for p in creations(traced, endpoint_url) if p.headers.get("Content-Type") == OCTETS]
    for p in posts:
        assert p.headers["Upload-Checksum"].split(" ")[0] == algorithm
    if len(result.part_urls) == 1 and posts:
        assert posts[0].headers["Upload-Checksum"] == tus.checksum_header(algorithm, blob.data)


async def interrupt_then_resume(
    traced: Traced,
    base_url: str,
    endpoint: str,
    blob: Blob,
    config: TransferConfig,
    *,
    parallel: int,
    after: float = 0.4,
) -> UploadResult:
    """Upload ``blob`` slowly, cancel it after ``after`` seconds, then run it again.

    The second run must pick up the resume record, ask the server (HEAD) where each part
    stands, and send only what is missing. Returns the second run's result.
    """
    endpoint_url = base_url + endpoint
    slow = dataclasses.replace(config, chunk_size=1024 * 1024, bandwidth=blob.size / 1.5)
    async with aetiket.Client(base_url, session=traced.session, transfer=slow) as client:
        with anyio.move_on_after(after) as scope:
            await client.upload(blob.path, endpoint=endpoint, parallel=parallel)
    assert scope.cancelled_caught, "the slow upload finished before it was cancelled"
    assert len(resume_records(config)) == 1  # the parts' URLs are on record
    first = list(traced.sent)
    traced.clear()
    async with aetiket.Client(base_url, session=traced.session, transfer=config) as client:
        result = await client.upload(blob.path, endpoint=endpoint, parallel=parallel)
    assert result.resumed is True and result.verified is True
    assert resume_records(config) == []
    # No new part was created: the same upload URLs were resumed.
    assert not [
        p
        for p in creations(traced, endpoint_url)
        if not p.headers.get("Upload-Concat", "").startswith("final;")
    ]
    assert {p.url for p in first if p.method == "PATCH"} <= set(result.part_urls)
    heads = [h.url for h in traced.of("HEAD")]
    assert set(result.part_urls) <= set(heads)
    resent = sum(int(p.headers["Content-Length"]) for p in traced.of("PATCH"))
    assert 0 < resent < blob.size  # only the rest went again
    return result
