"""The download's ``.part`` file: room is made up front, the right way per filesystem."""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from aetiket.transfer.fileio import Sink

MiB = 1024 * 1024
SHM = Path("/dev/shm")
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="fstatfs/fallocate: Linux")
pytestmark = pytest.mark.anyio


@pytest.fixture
def shm_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on tmpfs (``/dev/shm``), removed afterwards."""
    if not SHM.is_dir():
        pytest.skip("no /dev/shm")
    folder = SHM / f"aetiket-test-{os.getpid()}-{tmp_path.name}"
    folder.mkdir()
    try:
        yield folder
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


@linux_only
async def test_on_tmpfs_room_is_checked_not_allocated(shm_dir: Path) -> None:
    """Allocating tmpfs pages up front zeroes them all under the inode lock while the
    connections wait to write: there the length is set and the free space checked."""
    sink = Sink(shm_dir / "f.bin")
    await sink.prepare(None, keep=False)
    await sink.preallocate(64 * MiB)
    st = sink.part.stat()
    assert st.st_size == 64 * MiB
    assert st.st_blocks == 0  # sparse: no page allocated


@linux_only
async def test_on_tmpfs_a_file_that_cannot_fit_fails_up_front(shm_dir: Path) -> None:
    sink = Sink(shm_dir / "big.bin")
    await sink.prepare(None, keep=False)
    vfs = os.statvfs(shm_dir)
    too_big = vfs.f_bavail * vfs.f_frsize + 1024 * MiB
    with pytest.raises(OSError) as caught:
        await sink.preallocate(too_big)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(sink.part)
    assert sink.part.stat().st_blocks == 0


@linux_only
async def test_on_a_disk_the_blocks_are_reserved_and_data_kept(tmp_path: Path) -> None:
    """On a filesystem with fallocate (the test's tmp folder is on disk here) the
    blocks are reserved; bytes a connection wrote before stay as they are."""
    sink = Sink(tmp_path / "f.bin")
    await sink.prepare(None, keep=False)
    head = os.urandom(MiB)
    sink.part.write_bytes(head)
    await sink.preallocate(32 * MiB)
    st = sink.part.stat()
    assert st.st_size == 32 * MiB
    if _is_memory_fs(tmp_path):
        pytest.skip("the tmp folder is on tmpfs here: nothing to reserve")
    assert st.st_blocks * 512 >= 32 * MiB
    content = sink.part.read_bytes()
    assert content[:MiB] == head
    assert content[MiB:] == bytes(31 * MiB)


def _is_memory_fs(path: Path) -> bool:
    from aetiket.transfer import fileio

    fd = os.open(path, os.O_RDONLY)
    try:
        return fileio._fs_type(fd) in (fileio._TMPFS_MAGIC, fileio._RAMFS_MAGIC)
    finally:
        os.close(fd)


async def test_a_cancel_during_the_hash_is_heard_at_once(tmp_path: Path) -> None:
    """The final hash of a large download runs in a thread, which a cancel does not
    interrupt: it goes in pieces, so Ctrl-C waits for one piece, not for the whole file
    (a sparse 8 GiB file: hashing all of it takes seconds)."""
    sink = Sink(tmp_path / "big.bin")
    size = 8 * 1024 * MiB
    await anyio.Path(sink.part).touch()
    await anyio.to_thread.run_sync(os.truncate, sink.part, size)  # sparse: no disk used
    digest = hashlib.sha256()
    started = time.monotonic()
    with anyio.move_on_after(0.2) as scope:
        await sink.hash_into(digest, 0, size)
    waited = time.monotonic() - started
    assert scope.cancelled_caught
    assert waited < 1.5, f"the cancel waited {waited:.1f} s for the hash"
