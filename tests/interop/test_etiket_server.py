"""The upload engine against our own server (``aetiket serve``): parallel (concatenation)
and single uploads of every size class, from a path, bytes and a file object, with and
without per-PATCH checksums. The content is read back with a plain GET of
``/api/v1/files/{scope}/{uid}`` and compared by SHA-256."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aetiket
from aetiket import DatasetIn, FileIn, FileStatus, ScopeIn, new_uid
from aetiket._config import TransferConfig
from aetiket.errors import UploadError
from aetiket.transfer import tus
from aetiket.transfer.upload import UploadResult
from tests.conftest import ServerProcess
from tests.interop.checks import check_checksums, check_concat, check_single
from tests.interop.conftest import Blob, KiB, MiB, Traced, get_sha256, make_blob, resume_records

pytestmark = pytest.mark.anyio

#: Parts are at least this big here (the default, 8 MiB, would leave 3 MiB in one part).
MIN_PART = 1 * MiB

SIZES = [
    pytest.param(0, id="0B"),
    pytest.param(1, id="1B"),
    pytest.param(255 * KiB, id="255KiB"),
    pytest.param(3 * MiB, id="3MiB"),
    pytest.param(64 * MiB, id="64MiB", marks=pytest.mark.slow),
]

#: (size, parallel) -> number of parts: no part under MIN_PART, at most `parallel` parts.
EXPECTED_PARTS = {
    (3 * MiB, 4): 3,
    (3 * MiB, 8): 3,
    (20 * MiB, 4): 4,
    (64 * MiB, 4): 4,
    (64 * MiB, 8): 8,
}


def expected_parts(size: int, parallel: int) -> int:
    return EXPECTED_PARTS.get((size, parallel), 1)


@dataclasses.dataclass
class Etiket:
    server: ServerProcess
    client: aetiket.Client
    traced: Traced
    transfer: TransferConfig
    scope: str
    dataset: str

    @property
    def endpoint_url(self) -> str:
        return f"{self.server.url}/api/v1/uploads/"

    async def new_file(self, name: str = "data.bin") -> str:
        uid = new_uid()
        await self.client.files.create(
            FileIn(name=name, uid=uid, dataset_uid=self.dataset, scope=self.scope)
        )
        return uid

    async def content_sha256(self, uid: str) -> tuple[int, str]:
        """The stored content, read back with a plain GET (not through aetiket)."""
        return await get_sha256(
            self.traced.session,
            f"{self.server.url}/api/v1/files/{self.scope}/{uid}",
            {"Authorization": f"Bearer {self.client.token}"},
        )


@pytest.fixture
async def etiket(
    server: ServerProcess, traced: Traced, transfer: TransferConfig
) -> AsyncIterator[Etiket]:
    """The session's server, its admin logged in on a traced session, a fresh dataset."""
    config = dataclasses.replace(transfer, min_part=MIN_PART)
    async with aetiket.Client(server.url, session=traced.session, transfer=config) as client:
        await client.login(server.admin_user, server.admin_password)
        scope = (await client.scopes.create(ScopeIn(name="interop-" + new_uid()))).name
        dataset = new_uid()
        await client.datasets.create(DatasetIn(name="interop", uid=dataset, scope=scope))
        traced.clear()
        yield Etiket(server, client, traced, config, scope, dataset)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Blob]:
    """Random sources, made once per module (64 MiB is worth sharing)."""
    folder = tmp_path_factory.mktemp("blobs")

    class Lazy(dict[int, Blob]):
        def __missing__(self, size: int) -> Blob:
            self[size] = make_blob(folder, size)
            return self[size]

    return Lazy()


async def check_stored(et: Etiket, uid: str, blob: Blob, result: UploadResult) -> None:
    """The result, the file record and the bytes read back all say: this is the source."""
    assert result.verified is True
    assert result.size == blob.size
    assert result.sha256 == blob.sha256
    assert result.resumed is False
    record = await et.client.files.get(et.scope, uid)
    assert record.status in (FileStatus.available, FileStatus.secured)
    assert (record.size, record.etag) == (blob.size, blob.sha256)
    assert await et.content_sha256(uid) == (blob.size, blob.sha256)
    assert resume_records(et.transfer) == []  # a finished upload leaves no record behind


async def upload_and_check(
    et: Etiket, blob: Blob, *, kind: str = "path", parallel: int, **options: Any
) -> UploadResult:
    uid = await et.new_file()
    et.traced.clear()
    result = await et.client.upload(
        blob.source(kind),
        scope=et.scope,
        file_uid=uid,
        parallel=parallel,
        **options,
    )
    sent = list(et.traced.sent)
    parts = expected_parts(blob.size, parallel)
    if parts > 1:
        check_concat(et.traced, et.endpoint_url, result, blob, parts)
    else:
        check_single(et.traced, et.endpoint_url, result, blob)
    await check_stored(et, uid, blob, result)
    et.traced.sent[:] = sent  # what the upload sent, without the checks' requests
    return result


@pytest.mark.parametrize("parallel", [1, 4, 8])
@pytest.mark.parametrize("size", SIZES)
async def test_upload_path(
    etiket: Etiket, blobs: dict[int, Blob], size: int, parallel: int
) -> None:
    result = await upload_and_check(etiket, blobs[size], parallel=parallel)
    assert len(result.part_urls) == expected_parts(size, parallel)
    check_checksums(etiket.traced, etiket.endpoint_url, result, blobs[size], None)


@pytest.mark.parametrize("parallel", [1, 4])
@pytest.mark.parametrize("size", [0, 255 * KiB, 3 * MiB], ids=["0B", "255KiB", "3MiB"])
@pytest.mark.parametrize("kind", ["bytes", "fileobj"])
async def test_upload_bytes_and_file_objects(
    etiket: Etiket, blobs: dict[int, Blob], kind: str, size: int, parallel: int
) -> None:
    result = await upload_and_check(etiket, blobs[size], kind=kind, parallel=parallel)
    assert len(result.part_urls) == expected_parts(size, parallel)


@pytest.mark.slow
async def test_default_transfer_settings_64mib_in_8_parts(
    server: ServerProcess, traced: Traced, transfer: TransferConfig, blobs: dict[int, Blob]
) -> None:
    """With the shipped defaults (8 MiB minimum part), 64 MiB at parallel=8 is 8 parts."""
    blob = blobs[64 * MiB]
    async with aetiket.Client(server.url, session=traced.session, transfer=transfer) as client:
        await client.login(server.admin_user, server.admin_password)
        scope = (await client.scopes.create(ScopeIn(name="interop-" + new_uid()))).name
        dataset = new_uid()
        await client.datasets.create(DatasetIn(name="interop", uid=dataset, scope=scope))
        et = Etiket(server, client, traced, transfer, scope, dataset)
        uid = await et.new_file()
        traced.clear()
        result = await client.upload(blob.path, scope=scope, file_uid=uid, parallel=8)
        check_concat(traced, et.endpoint_url, result, blob, 8)
        await check_stored(et, uid, blob, result)


CHECKSUM_SIZES = [
    pytest.param(255 * KiB, id="255KiB"),
    pytest.param(3 * MiB, id="3MiB"),
    pytest.param(20 * MiB, id="20MiB"),  # several 8 MiB checksummed PATCHes per part
]


@pytest.mark.parametrize("parallel", [1, 4])
@pytest.mark.parametrize("size", CHECKSUM_SIZES)
@pytest.mark.parametrize("checksum", ["auto", "md5"])
async def test_upload_with_checksum(
    etiket: Etiket, blobs: dict[int, Blob], checksum: str, size: int, parallel: int
) -> None:
    info = await tus.options(etiket.client._http, "/api/v1/uploads/")
    assert "checksum" in info.extensions
    assert {"sha256", "sha1", "md5"} <= info.checksum_algorithms
    algorithm = "sha256" if checksum == "auto" else checksum  # auto: the best both know
    blob = blobs[size]
    result = await upload_and_check(etiket, blob, parallel=parallel, checksum=checksum)
    check_checksums(etiket.traced, etiket.endpoint_url, result, blob, algorithm)
    if size == 20 * MiB and parallel == 1:
        assert len(etiket.traced.of("PATCH")) == 3  # 8 + 8 + 4 MiB


async def test_checksum_the_server_lacks_is_refused(etiket: Etiket, blobs: dict[int, Blob]) -> None:
    uid = await etiket.new_file()
    etiket.traced.clear()
    with pytest.raises(UploadError, match="does not offer checksum 'crc32'"):
        await etiket.client.upload(
            blobs[1].data, scope=etiket.scope, file_uid=uid, checksum="crc32"
        )
    # Refused before anything was created.
    assert [s.method for s in etiket.traced.sent] == ["OPTIONS"]


async def test_small_chunks_make_several_patches(etiket: Etiket, blobs: dict[int, Blob]) -> None:
    """``chunk_size`` caps each PATCH: 3 MiB in 512 KiB chunks is 6 PATCHes, in order."""
    blob = blobs[3 * MiB]
    result = await upload_and_check(etiket, blob, parallel=1, chunk_size=512 * KiB)
    assert [int(p.headers["Content-Length"]) for p in etiket.traced.of("PATCH")] == [512 * KiB] * 6
    assert result.part_urls == (result.url,)
