"""The upload engine against PyPI ``resumable-upload``'s tus server: a generic tus upload
(no scope/file_uid) to ``/files``, in parallel through its concatenation extension and as
one upload. The server answers with a *relative* ``Location`` (``/files/<uuid>``), sends
``Upload-Expires`` and offers checksum ``sha1`` only (its default). The result is checked
on the server's disk (``<upload-dir>/<id>``) and by a GET of the final upload (its
download endpoint)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import aetiket
from aetiket._config import TransferConfig
from aetiket.errors import UploadError
from aetiket.transfer import tus
from tests.interop.checks import (
    check_checksums,
    check_concat,
    check_single,
    interrupt_then_resume,
)
from tests.interop.conftest import (
    Blob,
    KiB,
    MiB,
    Traced,
    TusProcess,
    file_sha256,
    get_sha256,
    make_blob,
    resume_records,
)

pytestmark = pytest.mark.anyio

MIN_PART = 1 * MiB

SIZES = [
    pytest.param(0, id="0B"),
    pytest.param(1, id="1B"),
    pytest.param(255 * KiB, id="255KiB"),
    pytest.param(3 * MiB, id="3MiB"),
    pytest.param(64 * MiB, id="64MiB", marks=pytest.mark.slow),
]
EXPECTED_PARTS = {(3 * MiB, 4): 3, (64 * MiB, 4): 4}


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Blob]:
    folder = tmp_path_factory.mktemp("blobs")

    class Lazy(dict[int, Blob]):
        def __missing__(self, size: int) -> Blob:
            self[size] = make_blob(folder, size, seed=1)
            return self[size]

    return Lazy()


@pytest.fixture
def config(transfer: TransferConfig) -> TransferConfig:
    return dataclasses.replace(transfer, min_part=MIN_PART)


def stored_path(srv: TusProcess, url: str) -> Path:
    """Where the server keeps an upload: ``<upload-dir>/<id>``, the URL's last segment."""
    upload_id = urlsplit(url).path.rsplit("/", 1)[-1]
    return srv.storage / upload_id


async def test_options_offer_concatenation(
    resumable_upload_server: TusProcess, traced: Traced, config: TransferConfig
) -> None:
    srv = resumable_upload_server
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        info = await tus.options(client._http, srv.endpoint)
    assert info.versions == ("1.0.0",)
    assert info.concatenation
    assert {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
        "concatenation",
    } <= info.extensions
    assert info.checksum_algorithms == {"sha1"}
    assert info.checksum() == "sha1"
    assert info.max_size is None


@pytest.mark.parametrize("parallel", [1, 4])
@pytest.mark.parametrize("size", SIZES)
async def test_upload(
    resumable_upload_server: TusProcess,
    traced: Traced,
    config: TransferConfig,
    blobs: dict[int, Blob],
    size: int,
    parallel: int,
) -> None:
    srv = resumable_upload_server
    blob = blobs[size]
    endpoint_url = srv.base_url + srv.endpoint
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        result = await client.upload(
            blob.path, endpoint=srv.endpoint, metadata={"filename": "x.bin"}, parallel=parallel
        )
    parts = EXPECTED_PARTS.get((size, parallel), 1)
    assert len(result.part_urls) == parts
    if parts > 1:
        check_concat(traced, endpoint_url, result, blob, parts)
    else:
        check_single(traced, endpoint_url, result, blob)
    check_checksums(traced, endpoint_url, result, blob, None)
    # The relative Location was resolved against the endpoint, for parts and final alike.
    assert all(u.startswith(endpoint_url + "/") for u in (result.url, *result.part_urls))
    assert (result.size, result.verified, result.resumed) == (blob.size, True, False)
    assert result.sha256 is None  # a generic upload has no server hash to compare with
    # The final upload's metadata is ours, and only ours (part bookkeeping stays on parts).
    async with aetiket.Client(srv.base_url, session=traced.session) as client:
        state = await tus.head(client._http, result.url)
    assert (state.offset, state.length) == (blob.size, blob.size)
    assert state.metadata.get("filename") == b"x.bin"
    if parts > 1:
        assert set(state.metadata) == {"filename"}
        assert state.concat is not None and state.concat.startswith("final;")
    assert state.expires is not None  # --upload-expiry: the server sends Upload-Expires
    # On the server's disk, and read back through its download endpoint.
    assert file_sha256(stored_path(srv, result.url)) == blob.sha256
    assert await get_sha256(traced.session, result.url) == (blob.size, blob.sha256)
    assert resume_records(config) == []


@pytest.mark.parametrize("kind", ["bytes", "fileobj"])
async def test_upload_bytes_and_file_objects(
    resumable_upload_server: TusProcess,
    traced: Traced,
    config: TransferConfig,
    blobs: dict[int, Blob],
    kind: str,
) -> None:
    srv = resumable_upload_server
    blob = blobs[3 * MiB]
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        result = await client.upload(
            blob.source(kind), endpoint=srv.endpoint, metadata={"filename": "x.bin"}, parallel=4
        )
    assert len(result.part_urls) == 3 and result.verified
    assert file_sha256(stored_path(srv, result.url)) == blob.sha256


@pytest.mark.parametrize("parallel", [1, 4])
@pytest.mark.parametrize(
    "size", [pytest.param(255 * KiB, id="255KiB"), pytest.param(20 * MiB, id="20MiB")]
)
async def test_upload_with_checksum_auto_is_sha1(
    resumable_upload_server: TusProcess,
    traced: Traced,
    config: TransferConfig,
    blobs: dict[int, Blob],
    size: int,
    parallel: int,
) -> None:
    """The server checks every Upload-Checksum it gets (460 on a mismatch): all pass."""
    srv = resumable_upload_server
    blob = blobs[size]
    endpoint_url = srv.base_url + srv.endpoint
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        result = await client.upload(
            blob.path, endpoint=srv.endpoint, parallel=parallel, checksum="auto"
        )
    check_checksums(traced, endpoint_url, result, blob, "sha1")
    assert file_sha256(stored_path(srv, result.url)) == blob.sha256


async def test_checksum_it_lacks_is_refused(
    resumable_upload_server: TusProcess, traced: Traced, config: TransferConfig
) -> None:
    srv = resumable_upload_server
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        with pytest.raises(UploadError, match="does not offer checksum 'md5'"):
            await client.upload(b"abc", endpoint=srv.endpoint, checksum="md5")
    assert [s.method for s in traced.sent] == ["OPTIONS"]


@pytest.mark.parametrize("parallel", [1, 4])
async def test_interrupted_upload_resumes(
    resumable_upload_server: TusProcess,
    traced: Traced,
    config: TransferConfig,
    tmp_path: Path,
    parallel: int,
) -> None:
    """Cancelled mid-PATCH, run again: HEAD each part, send the rest, same bytes stored."""
    srv = resumable_upload_server
    blob = make_blob(tmp_path, 8 * MiB, seed=parallel)
    result = await interrupt_then_resume(
        traced, srv.base_url, srv.endpoint, blob, config, parallel=parallel
    )
    assert len(result.part_urls) == (4 if parallel == 4 else 1)
    assert file_sha256(stored_path(srv, result.url)) == blob.sha256
