"""Pushing a folder: which files become records, under which names, with which bytes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import anyio
import pytest

import aetiket
from aetiket.transfer.bulk import ItemResult, file_uid_for, push_folder

pytestmark = pytest.mark.anyio


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_links_are_followed_cycles_cut_and_a_broken_one_reported(
    admin: aetiket.Client, scope: str, tmp_path: Path
) -> None:
    folder, outside = tmp_path / "folder", tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    (outside / "dir").mkdir(parents=True)
    content = {
        folder / "real.txt": b"a file of the folder",
        folder / "sub" / "inner.bin": os.urandom(50_000),
        outside / "ext.bin": os.urandom(30_000),
        outside / "dir" / "deep.bin": os.urandom(20_000),
    }
    for path, data in content.items():
        path.write_bytes(data)
    (folder / "ext-link").symlink_to(outside / "ext.bin")  # a file outside
    (folder / "linkdir").symlink_to(outside / "dir")  # a folder outside
    (folder / "alias").symlink_to("sub")  # a folder inside, reached a second way
    (folder / "sub" / "loop").symlink_to("..")  # a cycle back to the folder pushed
    (folder / "broken").symlink_to(tmp_path / "gone")  # leads nowhere

    told: list[ItemResult] = []
    result = await push_folder(admin, [folder], scope=scope, on_item=told.append)

    # Named by the link's path; a folder linked twice is there twice (as cp -rL does);
    # the cycle adds nothing (sub/loop/... would never end).
    expected = {
        "real.txt": content[folder / "real.txt"],
        "sub/inner.bin": content[folder / "sub" / "inner.bin"],
        "alias/inner.bin": content[folder / "sub" / "inner.bin"],
        "ext-link": content[outside / "ext.bin"],
        "linkdir/deep.bin": content[outside / "dir" / "deep.bin"],
    }
    assert {i.name: i.status for i in result.items} == {
        **dict.fromkeys(expected, "uploaded"),
        "broken": "failed",
    }
    (failed,) = result.failed
    assert failed.error == f"a broken link (to {tmp_path / 'gone'}): No such file or directory"
    assert failed in told  # the CLI prints it as it happens
    dataset = await admin.datasets.get(*result.dataset.split("/"))
    assert {f.name: f.etag for f in dataset.files} == {n: sha256(d) for n, d in expected.items()}

    again = await push_folder(admin, [folder], scope=scope, dry_run=True)
    assert {i.name: i.status for i in again.items} == {
        **dict.fromkeys(expected, "planned"),
        "broken": "failed",
    }


async def test_a_cancel_during_the_skip_check_of_a_large_file_is_prompt(
    admin: aetiket.Client, scope: str, tmp_path: Path
) -> None:
    # The record has the local file's size and an upload open (pending): the push hashes
    # the file to see whether it is there already. A cancel (Ctrl-C) then must not wait
    # for all 8 GiB: sparse, so it costs no disk, but reading it takes seconds.
    size = 8 << 30
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "big.bin").write_bytes(b"")
    os.truncate(folder / "big.bin", size)
    if os.stat(folder / "big.bin").st_blocks * 512 >= size:
        pytest.skip("this file system has no sparse files: 8 GiB would be written")
    dataset = aetiket.new_uid()
    fuid = file_uid_for(dataset, "big.bin")
    await admin.datasets.create(
        aetiket.DatasetIn(
            name="big",
            uid=dataset,
            scope=scope,
            files=[aetiket.FileDatasetIn(name="big.bin", uid=fuid, size=size)],
        )
    )
    await admin.uploads.create(length=size, scope=scope, file_uid=fuid)
    assert (await admin.files.get(scope, fuid)).status is aetiket.FileStatus.pending

    started = time.monotonic()
    with anyio.move_on_after(0.5) as cancel:
        await push_folder(admin, [folder], scope=scope, uid=dataset)
    waited = time.monotonic() - started
    assert cancel.cancelled_caught
    # One piece (16 MiB) after the cancel, not the rest of the file.
    assert waited < 2.0, f"the cancel took {waited - 0.5:.1f} s"
