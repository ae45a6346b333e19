"""Pulling a dataset whose files share a name (names are unique only with their uids):
every file lands, none overwrites another, and a second pull finds them all in place."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import aiohttp
import pytest

import aetiket
from aetiket.transfer.bulk import pull_dataset

pytestmark = pytest.mark.anyio


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def dataset_of(
    admin: aetiket.Client, scope: str, name: str, files: list[tuple[str, str, bytes]]
) -> str:
    """A new dataset of ``files`` (uid, name, content), each uploaded; returns its uid."""
    dataset = aetiket.new_uid()
    await admin.datasets.create(
        aetiket.DatasetIn(
            name=name,
            uid=dataset,
            scope=scope,
            files=[aetiket.FileDatasetIn(name=fname, uid=uid) for uid, fname, _ in files],
        )
    )
    for uid, _, data in files:
        await admin.upload(data, scope=scope, file_uid=uid)
    return dataset


async def test_files_with_one_name_each_land_under_their_uid(
    admin: aetiket.Client, scope: str, tmp_path: Path
) -> None:
    rng = random.Random(3)
    names = ["raw.h5", "raw.h5", "RAW.h5", "sub/./notes", "sub//notes", "other.txt"]
    files = [(aetiket.new_uid(), name, rng.randbytes(rng.randrange(1, 200_000))) for name in names]
    dataset = await dataset_of(admin, scope, "same names", files)

    result = await pull_dataset(admin, scope, dataset, tmp_path / "out", parallel=2)
    assert result.count("downloaded") == len(files), result.items
    expected = {
        f"raw.{files[0][0]}.h5": files[0][2],
        f"raw.{files[1][0]}.h5": files[1][2],
        f"RAW.{files[2][0]}.h5": files[2][2],
        f"sub/notes.{files[3][0]}": files[3][2],
        f"sub/notes.{files[4][0]}": files[4][2],
        "other.txt": files[5][2],
    }
    out = tmp_path / "out"
    landed = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {k: sha256(v) for k, v in landed.items()} == {k: sha256(v) for k, v in expected.items()}
    paths = {item.uid: item.path for item in result.items}
    assert paths[files[5][0]] is None  # a unique name keeps its name
    assert paths[files[0][0]] == f"raw.{files[0][0]}.h5"

    again = await pull_dataset(admin, scope, dataset, tmp_path / "out", parallel=2)
    assert again.count("skipped") == len(files), again.items


async def test_a_file_uses_only_the_connections_the_budget_granted_it(
    admin: aetiket.Client, scope: str, tmp_path: Path
) -> None:
    # --parallel 8 under a budget of 2: each file may take the 2, never 8. With a pool of
    # 2, as many as the budget, no request may then wait for a slot (the wait counts
    # against the connect timeout: files failed and retried for nothing).
    rng = random.Random(5)
    files = [(aetiket.new_uid(), f"f{i}.bin", rng.randbytes(6 * 1024 * 1024)) for i in range(2)]
    dataset = await dataset_of(admin, scope, "budget", files)

    queued: list[object] = []

    async def on_queued(session: object, ctx: object, params: object) -> None:
        queued.append(params)

    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(on_queued)
    # min_part 1 MiB: 6 MiB files count as large and split into 256 KiB segments, enough
    # for 8 connections each were they allowed.
    small_parts = aetiket.TransferConfig(min_part=1024 * 1024)
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2, limit_per_host=2), trace_configs=[trace]
        ) as session,
        aetiket.Client(
            admin.base_url, token=admin.token, session=session, transfer=small_parts
        ) as client,
    ):
        result = await pull_dataset(
            client, scope, dataset, tmp_path / "out", parallel=8, connections=2
        )
    assert result.count("downloaded") == 2, result.items
    landed = {name: sha256((tmp_path / "out" / name).read_bytes()) for _, name, _ in files}
    assert landed == {name: sha256(data) for _, name, data in files}
    assert len(queued) == 0
