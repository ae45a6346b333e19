"""The upload engine against npm ``@tus/server`` with ``@tus/file-store``: a tus server
without concatenation and without checksums. ``parallel=4`` must fall back to one plain
upload (a partial POST would get 501 there). ``Location`` is absolute; the file store
writes each upload to ``<directory>/<id>`` (its metadata next to it as ``<id>.json``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import aetiket
from aetiket._config import TransferConfig
from aetiket.errors import UploadError
from aetiket.transfer import tus
from tests.interop.checks import (
    check_checksums,
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
    make_blob,
    resume_records,
)

pytestmark = pytest.mark.anyio

SIZES = [
    pytest.param(0, id="0B"),
    pytest.param(1, id="1B"),
    pytest.param(255 * KiB, id="255KiB"),
    pytest.param(3 * MiB, id="3MiB"),
    pytest.param(64 * MiB, id="64MiB", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Blob]:
    folder = tmp_path_factory.mktemp("blobs")

    class Lazy(dict[int, Blob]):
        def __missing__(self, size: int) -> Blob:
            self[size] = make_blob(folder, size, seed=2)
            return self[size]

    return Lazy()


@pytest.fixture
def config(transfer: TransferConfig) -> TransferConfig:
    # Small parts, so that with concatenation even 3 MiB would be cut: it must not be.
    return dataclasses.replace(transfer, min_part=1 * MiB)


def stored_path(srv: TusProcess, url: str) -> Path:
    return srv.storage / urlsplit(url).path.rsplit("/", 1)[-1]


async def test_options_lack_concatenation_and_checksum(
    tus_node_server: TusProcess, traced: Traced, config: TransferConfig
) -> None:
    srv = tus_node_server
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        info = await tus.options(client._http, srv.endpoint)
    assert info.versions == ("1.0.0",)
    assert {"creation", "creation-with-upload", "termination"} <= info.extensions
    assert not info.concatenation
    assert "checksum" not in info.extensions and info.checksum() is None


@pytest.mark.parametrize("parallel", [1, 4])
@pytest.mark.parametrize("size", SIZES)
async def test_upload(
    tus_node_server: TusProcess,
    traced: Traced,
    config: TransferConfig,
    blobs: dict[int, Blob],
    size: int,
    parallel: int,
) -> None:
    srv = tus_node_server
    blob = blobs[size]
    endpoint_url = srv.base_url + srv.endpoint
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        result = await client.upload(
            blob.path, endpoint=srv.endpoint, metadata={"filename": "x.bin"}, parallel=parallel
        )
    # One plain upload whatever `parallel` says: no Upload-Concat anywhere.
    assert all("Upload-Concat" not in s.headers for s in traced.sent)
    check_single(traced, endpoint_url, result, blob)
    check_checksums(traced, endpoint_url, result, blob, None)
    assert result.url.startswith(endpoint_url + "/")
    assert (result.size, result.verified, result.resumed) == (blob.size, True, False)
    async with aetiket.Client(srv.base_url, session=traced.session) as client:
        state = await tus.head(client._http, result.url)
    assert (state.offset, state.length) == (blob.size, blob.size)
    assert state.metadata.get("filename") == b"x.bin"
    stored = stored_path(srv, result.url)
    assert file_sha256(stored) == blob.sha256
    info = json.loads(stored.with_name(stored.name + ".json").read_text())
    assert info["size"] == blob.size  # ("offset" there stays 0: the file size is the offset)
    assert info["metadata"]["filename"] == "x.bin"
    assert resume_records(config) == []


@pytest.mark.parametrize("kind", ["bytes", "fileobj"])
async def test_upload_bytes_and_file_objects(
    tus_node_server: TusProcess,
    traced: Traced,
    config: TransferConfig,
    blobs: dict[int, Blob],
    kind: str,
) -> None:
    srv = tus_node_server
    blob = blobs[3 * MiB]
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        result = await client.upload(blob.source(kind), endpoint=srv.endpoint, parallel=4)
    assert result.part_urls == (result.url,) and result.verified
    assert file_sha256(stored_path(srv, result.url)) == blob.sha256


async def test_checksum_auto_sends_none(
    tus_node_server: TusProcess, traced: Traced, config: TransferConfig, blobs: dict[int, Blob]
) -> None:
    srv = tus_node_server
    blob = blobs[3 * MiB]
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        result = await client.upload(blob.path, endpoint=srv.endpoint, checksum="auto")
    check_checksums(traced, srv.base_url + srv.endpoint, result, blob, None)
    assert file_sha256(stored_path(srv, result.url)) == blob.sha256


async def test_checksum_it_lacks_is_refused(
    tus_node_server: TusProcess, traced: Traced, config: TransferConfig
) -> None:
    srv = tus_node_server
    async with aetiket.Client(srv.base_url, session=traced.session, transfer=config) as client:
        with pytest.raises(UploadError, match="does not offer checksum 'sha256'"):
            await client.upload(b"abc", endpoint=srv.endpoint, checksum="sha256")
    assert [s.method for s in traced.sent] == ["OPTIONS"]


@pytest.mark.parametrize("parallel", [1, 4])
async def test_interrupted_upload_resumes(
    tus_node_server: TusProcess,
    traced: Traced,
    config: TransferConfig,
    tmp_path: Path,
    parallel: int,
) -> None:
    """Cancelled mid-PATCH, run again: HEAD, send the rest, same bytes stored."""
    srv = tus_node_server
    blob = make_blob(tmp_path, 8 * MiB, seed=10 + parallel)
    result = await interrupt_then_resume(
        traced, srv.base_url, srv.endpoint, blob, config, parallel=parallel
    )
    assert result.part_urls == (result.url,)
    assert file_sha256(stored_path(srv, result.url)) == blob.sha256
