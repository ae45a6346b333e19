"""Pulling a dataset whose files share a name (names are unique only with their uids):
every file lands, none overwrites another, and a second pull finds them all in place."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

import aetiket
from aetiket.transfer.bulk import pull_dataset

pytestmark = pytest.mark.anyio


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_files_with_one_name_each_land_under_their_uid(
    admin: aetiket.Client, scope: str, tmp_path: Path
) -> None:
    rng = random.Random(3)
    names = ["raw.h5", "raw.h5", "RAW.h5", "sub/./notes", "sub//notes", "other.txt"]
    files = [(aetiket.new_uid(), name, rng.randbytes(rng.randrange(1, 200_000))) for name in names]
    dataset = aetiket.new_uid()
    await admin.datasets.create(
        aetiket.DatasetIn(
            name="same names",
            uid=dataset,
            scope=scope,
            files=[aetiket.FileDatasetIn(name=name, uid=uid) for uid, name, _ in files],
        )
    )
    for uid, _, data in files:
        await admin.upload(data, scope=scope, file_uid=uid)

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
