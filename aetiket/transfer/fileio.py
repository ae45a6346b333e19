"""The transfer engine's only disk access: what uploads read and downloads write.

A :class:`Source` is a path, bytes, or a binary file object. Parts read it concurrently,
each through its own reader (its own aiofiles handle for a path: no seek/read races between
parts), a block at a time, so memory stays bounded whatever the file's size. A file on disk
can also be sent as a request body by the kernel (``sendfile``: no copy through Python). A
source also gives a fingerprint for resume records, its SHA-256 for verification, and says
whether a file on disk changed while it was being uploaded.

A :class:`Sink` is a download's ``.part`` file: preallocated, written at offsets by one
:class:`Writer` (one aiofiles handle) per connection, hashed, then renamed into place.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import hashlib
import io
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, Literal

import aiofiles
import aiofiles.os
import aiohttp.payload
import anyio
import anyio.to_thread
from aiohttp.abc import AbstractStreamWriter

__all__ = ("Reader", "Sent", "Sink", "Source", "Writer", "bytes_reader", "open_source")

_SAMPLES = 16
#: Bytes hashed per thread call (a cancel is heard between two).
HASH_PIECE = 64 * 1024 * 1024
_SAMPLE = 64 * 1024
_EDGE = 1024 * 1024


@asynccontextmanager
async def _opened(path: Path, mode: Literal["rb", "r+b"]) -> AsyncIterator[Any]:
    """An aiofiles handle whose open and close survive cancellation.

    Inside a cancelled scope aiofiles' own ``close()`` would be cancelled too, and the
    file left open for the garbage collector: so both run shielded.
    """
    with anyio.CancelScope(shield=True):
        handle = await aiofiles.open(path, mode)
    try:
        yield handle
    finally:
        with anyio.CancelScope(shield=True):
            await handle.close()


#: Told, without waiting, of each piece of a request body that has gone (progress is
#: counted there; nothing may hold the body back, nor fail it).
Sent = Callable[[int], None]
#: Awaited before each piece goes (a bandwidth limit).
Before = Callable[[int], Awaitable[None]]


class Reader:
    """Reads ranges of a source for one part at a time."""

    async def read(self, offset: int, n: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    async def body(
        self,
        offset: int,
        n: int,
        piece: int,
        sent: Sent,
        before: Before | None = None,
        *,
        zero_copy: bool = True,
    ) -> aiohttp.payload.Payload:
        """A request body of ``n`` bytes from ``offset``, sent ``piece`` bytes at a time;
        ``before(k)`` is awaited before each piece goes (a bandwidth limit), ``sent(k)``
        called (not awaited) after it has gone (progress). ``zero_copy``: a file on disk
        goes by sendfile."""
        if zero_copy:
            direct = await self._direct(offset, n, piece, sent, before)
            if direct is not None:
                return direct
        return _StreamedPayload(self, offset, n, piece, sent, before)

    async def _direct(
        self, offset: int, n: int, piece: int, sent: Sent, before: Before | None
    ) -> aiohttp.payload.Payload | None:
        """A body the kernel sends from the file, where there is a file: else None."""
        return None


class _FileReader(Reader):
    def __init__(self, handle: Any, path: Path) -> None:
        self._handle = handle
        self._path = path
        self._pos = -1
        self._raw: io.FileIO | None = None

    async def read(self, offset: int, n: int) -> bytes:
        if offset != self._pos:
            await self._handle.seek(offset)
        data: bytes = await self._handle.read(n)
        self._pos = offset + len(data)
        return data

    async def _direct(
        self, offset: int, n: int, piece: int, sent: Sent, before: Before | None
    ) -> aiohttp.payload.Payload | None:
        # A handle of its own: asyncio's sendfile moves the file position, which would
        # confuse the buffered aiofiles handle that read() uses.
        if self._raw is None:
            self._raw = await anyio.to_thread.run_sync(open, self._path, "rb", 0)
        return _SendfilePayload(self._raw, offset, n, piece, sent, before, str(self._path))

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None


class _BytesReader(Reader):
    def __init__(self, data: memoryview) -> None:
        self._data = data

    async def read(self, offset: int, n: int) -> bytes:
        return bytes(self._data[offset : offset + n])


def bytes_reader(data: bytes | memoryview) -> Reader:
    """A reader of bytes in memory (a chunk already read, e.g. to checksum it)."""
    return _BytesReader(memoryview(data).cast("B"))


class _StreamReader(Reader):
    """A caller's file object, shared: a lock keeps seek and read together."""

    def __init__(self, stream: IO[bytes], lock: anyio.Lock) -> None:
        self._stream = stream
        self._lock = lock

    async def read(self, offset: int, n: int) -> bytes:
        def seek_read() -> bytes:
            self._stream.seek(offset)
            return self._stream.read(n)

        async with self._lock:
            return await anyio.to_thread.run_sync(seek_read)


class Source:
    """What an upload sends: ``name``, ``size``, readers, fingerprint and hash."""

    def __init__(
        self,
        name: str,
        size: int,
        *,
        path: Path | None = None,
        data: memoryview | None = None,
        stream: IO[bytes] | None = None,
        mtime_ns: int | None = None,
        fd: int | None = None,
    ) -> None:
        self.name = name
        self.size = size
        self.path = path
        self._data = data
        self._stream = stream
        self._mtime_ns = mtime_ns
        self._fd = fd  # a file object's descriptor: how its file is watched for changes
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"<Source {self.name!r} {self.size} bytes>"

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Reader]:
        """A reader of its own for one part."""
        if self.path is not None:
            async with _opened(self.path, "rb") as handle:
                reader = _FileReader(handle, self.path)
                try:
                    yield reader
                finally:
                    reader.close()
        elif self._data is not None:
            yield _BytesReader(self._data)
        else:
            assert self._stream is not None
            yield _StreamReader(self._stream, self._lock)

    async def blocks(self, offset: int, n: int, block: int) -> AsyncIterator[bytes]:
        """``n`` bytes from ``offset`` in blocks (a fresh reader; for hashing and streams)."""
        async with self.reader() as reader:
            end = offset + n
            while offset < end:
                data = await reader.read(offset, min(block, end - offset))
                if not data:
                    raise OSError(
                        f"{self.name}: ended at {offset} of {self.size} bytes "
                        "(did it shrink while being uploaded?)"
                    )
                offset += len(data)
                yield data

    async def fingerprint(self) -> str:
        """A SHA-256 over size, modification time and samples spread over the content.

        Head, tail and evenly spaced samples: two instrument files of one size that share
        their first bytes (a common header) still get different fingerprints.
        """
        digest = hashlib.sha256(f"{self.size}:{self._mtime_ns}".encode())
        if self._data is not None:
            digest.update(hashlib.sha256(self._data).digest())  # in memory: hash it all
            return digest.hexdigest()
        if self.size <= 2 * _EDGE:  # small: the whole content costs less than samples
            async with self.reader() as reader:
                digest.update(await reader.read(0, self.size))
            return digest.hexdigest()
        spots = {(0, min(self.size, _EDGE)), (max(0, self.size - _EDGE), min(self.size, _EDGE))}
        for i in range(1, _SAMPLES + 1):
            start = self.size * i // (_SAMPLES + 1)
            spots.add((start, min(_SAMPLE, self.size - start)))
        async with self.reader() as reader:
            for start, length in sorted(spots):
                digest.update(f"{start}:".encode())
                digest.update(await reader.read(start, length))
        return digest.hexdigest()

    async def sha256(self, block: int = 4 * 1024 * 1024) -> str:
        """The SHA-256 of the whole content (hashing runs off the event loop)."""
        digest = hashlib.sha256()
        async for data in self.blocks(0, self.size, block):
            await anyio.to_thread.run_sync(digest.update, data)
        return digest.hexdigest()

    async def unchanged(self) -> bool:
        """False if the file on disk (a path, or a file object's file) changed size or
        modification time since opening; bytes in memory cannot change."""
        if self._mtime_ns is None:
            return True
        if self.path is not None:
            st = await anyio.to_thread.run_sync(os.stat, self.path)
        elif self._fd is not None:
            try:
                st = await anyio.to_thread.run_sync(os.fstat, self._fd)
            except OSError:
                return False  # closed under us: nothing says the bytes sent are its bytes
        else:
            return True
        return st.st_size == self.size and st.st_mtime_ns == self._mtime_ns


class _BodyPayload(aiohttp.payload.Payload):
    """A PATCH body of ``n`` bytes from ``offset`` of a source, ``piece`` bytes at a time,
    with a callback before and after each piece."""

    def __init__(
        self,
        value: Any,
        offset: int,
        n: int,
        piece: int,
        sent: Sent,
        before: Before | None,
        name: str = "the source",
    ) -> None:
        super().__init__(value, size=n, content_type="application/offset+octet-stream")
        self._offset, self._n, self._piece, self._name = offset, n, piece, name
        self._sent, self._before = sent, before

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("an upload body is binary")

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        await self._begin(writer)
        end = self._n if content_length is None else min(content_length, self._n)
        done = 0
        while done < end:
            size = min(self._piece, end - done)
            if self._before is not None:
                await self._before(size)
            n = await self._send(writer, self._offset + done, size)
            if n != size:
                raise OSError(
                    f"{self._name} ended at byte {self._offset + done + n} "
                    "(did it shrink while being uploaded?)"
                )
            done += size
            self._sent(size)  # counts only: no user code runs in the body's writer

    async def _begin(self, writer: AbstractStreamWriter) -> None:
        """Before the first piece."""

    async def _send(self, writer: AbstractStreamWriter, offset: int, size: int) -> int:
        """Send ``size`` bytes from ``offset``; returns how many there were."""
        raise NotImplementedError  # pragma: no cover - interface


class _StreamedPayload(_BodyPayload):
    """Read a piece, write it: bytes in memory and file objects (no sendfile there)."""

    async def _send(self, writer: AbstractStreamWriter, offset: int, size: int) -> int:
        reader: Reader = self._value
        data = await reader.read(offset, size)
        if len(data) == size:
            await writer.write(data)
        return len(data)


class _SendfilePayload(_BodyPayload):
    """The kernel copies the file to the socket (``loop.sendfile``): the bytes never pass
    through Python, which on a fast link halves the client's CPU time per byte. Over TLS
    asyncio falls back to reading and writing blocks itself."""

    _transport: asyncio.WriteTransport

    async def _begin(self, writer: AbstractStreamWriter) -> None:
        transport = getattr(writer, "transport", None)
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            raise ConnectionResetError("the connection closed before the body was sent")
        self._transport = transport
        send_headers = getattr(writer, "send_headers", None)
        if send_headers is not None:
            send_headers()  # aiohttp >= 3.12 holds them back to go with the first chunk

    async def _send(self, writer: AbstractStreamWriter, offset: int, size: int) -> int:
        loop = asyncio.get_running_loop()
        return await loop.sendfile(self._transport, self._value, offset, size)


async def open_source(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes],
    *,
    name: str | None = None,
) -> Source:
    """A :class:`Source` for a path, bytes, or a seekable binary file object."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        return Source(name or "<bytes>", len(view), data=view)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            st = await anyio.to_thread.run_sync(os.stat, path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file to upload") from None
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{path}: not a regular file")
        return Source(name or path.name, st.st_size, path=path, mtime_ns=st.st_mtime_ns)
    stream = source
    if not (hasattr(stream, "read") and hasattr(stream, "seek")):
        raise TypeError("source must be a path, bytes, or a seekable binary file object")
    if not stream.seekable():
        raise ValueError("a file object source must be seekable (parts read it in any order)")
    if isinstance(stream, io.TextIOBase) or isinstance(stream.read(0), str):
        raise TypeError(
            f"{getattr(stream, 'name', 'the file object')}: opened in text mode; "
            "open it with 'rb' (the bytes are sent as they are)"
        )
    size = await anyio.to_thread.run_sync(lambda: stream.seek(0, os.SEEK_END))
    mtime = fd = None
    fileno = getattr(stream, "fileno", None)
    if fileno is not None:
        try:
            fd = fileno()
            mtime = os.fstat(fd).st_mtime_ns
        except (OSError, ValueError):  # io.BytesIO and friends: no file behind them
            mtime = fd = None
    label = name or str(getattr(stream, "name", "<stream>"))
    return Source(label, size, stream=stream, mtime_ns=mtime, fd=fd)


_TMPFS_MAGIC = 0x01021994
_RAMFS_MAGIC = 0x858458F6
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _fs_type(fd: int) -> int | None:
    """The filesystem's magic number (Linux ``fstatfs``; ``f_type`` leads the struct)."""
    if _libc is None:
        return None
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if _libc.fstatfs(fd, buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def _reserve(fd: int, size: int, path: Path) -> None:
    """Reserve ``size`` bytes of ``fd``'s file where that is real and cheap.

    The ``fallocate`` system call itself, never glibc's ``posix_fallocate``: on a
    filesystem without it (NFSv3, many FUSE mounts) that one writes a zero byte into every
    block it finds zero, racing with the connections writing the same file (a byte
    written between its read and its write becomes 0 again). On tmpfs and ramfs,
    reserving means allocating and zeroing every page under the inode lock, which
    stalls the writers and costs as much as the download writes: only the free space is
    checked there, as it is where nothing can be reserved.
    """
    if size <= 0:
        return
    if _libc is not None and _fs_type(fd) not in (_TMPFS_MAGIC, _RAMFS_MAGIC):
        fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
        fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        if fallocate(fd, 0, 0, size) == 0:
            return
        error = ctypes.get_errno()
        if error == errno.ENOSPC:
            raise OSError(error, f"no room for {size} bytes", str(path))
        # EOPNOTSUPP, ENOSYS...: nothing reserved; the free space below is the check.
    vfs = os.fstatvfs(fd)
    need = size - os.fstat(fd).st_blocks * 512  # blocks already written stay
    free = vfs.f_bavail * vfs.f_frsize
    if need > free:
        raise OSError(errno.ENOSPC, f"{free} bytes free, {size} needed for the download", str(path))


class Sink:
    """A download's ``.part`` file, filled at offsets by several writers, then published.

    Each writer has its own aiofiles handle (seek and write of one handle never race with
    another's). ``publish`` renames the finished file over the destination atomically.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")

    def __repr__(self) -> str:
        return f"<Sink {self.dest}>"

    async def prepare(self, size: int | None, *, keep: bool) -> None:
        """Create the ``.part`` file (or keep the one there, for a resume), ``size`` bytes
        long when given (sparse: see :meth:`preallocate`)."""

        def run() -> None:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | (0 if keep else os.O_TRUNC)
            fd = os.open(self.part, flags, 0o644)
            try:
                if size is not None:
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)

        await anyio.to_thread.run_sync(run)

    async def preallocate(self, size: int) -> None:
        """Make room for ``size`` bytes up front, keeping any data already written (the
        writers run meanwhile); the length becomes ``size``. A file that cannot fit fails
        here with ENOSPC, not halfway (see :func:`_reserve`)."""

        def run() -> None:
            fd = os.open(self.part, os.O_RDWR)
            try:
                _reserve(fd, size, self.part)
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)

        await anyio.to_thread.run_sync(run)

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[Writer]:
        """A writer of its own for one connection."""
        async with _opened(self.part, "r+b") as handle:
            yield Writer(handle)

    async def truncate(self, size: int) -> None:
        await anyio.to_thread.run_sync(os.truncate, self.part, size)

    async def hash_into(
        self, digest: Any, start: int, end: int, block: int = 4 * 1024 * 1024
    ) -> int:
        """Feed bytes ``[start, end)`` of the ``.part`` file to ``digest``; returns ``end``."""

        view = memoryview(bytearray(block))

        def run(f: io.FileIO, pos: int, stop: int) -> int:
            while pos < stop and (n := f.readinto(view[: min(block, stop - pos)])):
                digest.update(view[:n])
                pos += n
            return pos

        # A thread call is not interrupted by a cancel: one per HASH_PIECE bytes, so that
        # Ctrl-C during the hash of a large file is heard within a fraction of a second.
        f = await anyio.to_thread.run_sync(open, self.part, "rb", 0)
        try:
            f.seek(start)
            pos = start
            while pos < end:
                reached = await anyio.to_thread.run_sync(run, f, pos, min(end, pos + HASH_PIECE))
                if reached == pos:
                    break
                pos = reached
        finally:
            f.close()
        if pos != end:
            raise OSError(f"{self.part}: ended at {pos}, expected {end} bytes")
        return pos

    async def sha256(self, size: int) -> str:
        """SHA-256 of the first ``size`` bytes of the ``.part`` file."""
        digest = hashlib.sha256()
        await self.hash_into(digest, 0, size)
        return digest.hexdigest()

    async def publish(self) -> None:
        """Rename the ``.part`` file over the destination (atomic on one filesystem).

        No fsync: a process that dies leaves either the old file or the new one, and
        durability across power loss is the filesystem's (an fsync of a large file costs
        seconds on a slow disk, which no peer tool pays either).
        """
        await anyio.to_thread.run_sync(os.replace, self.part, self.dest)

    async def discard(self) -> None:
        await anyio.to_thread.run_sync(lambda: self.part.unlink(missing_ok=True))


def _pwrite_all(fd: int, chunks: Sequence[bytes | memoryview], pos: int) -> int:
    """Write ``chunks`` at ``pos`` with as few syscalls as the OS allows; no joining."""
    total = sum(len(c) for c in chunks)
    if not hasattr(os, "pwritev"):
        data = memoryview(b"".join(chunks))
        done = 0
        while done < total:
            done += os.pwrite(fd, data[done:], pos + done)
        return total
    views = [memoryview(c) for c in chunks]
    done = 0
    while views:
        n = os.pwritev(fd, views[:512], pos + done)  # 512: well under IOV_MAX
        done += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
    return total


_apwrite_all = aiofiles.os.wrap(_pwrite_all)


class Writer:
    """Writes blocks at offsets of a sink through one handle (pwritev: no seek, no copy)."""

    def __init__(self, handle: Any) -> None:
        self._fd: int = handle.fileno()

    async def write(self, offset: int, chunks: Sequence[bytes | memoryview]) -> int:
        """Write ``chunks`` one after the other from ``offset``; returns the byte count.

        Shielded: a cancelled await would return while the write still runs in its
        thread (or waits to start there), and the handle's close that follows could free
        the descriptor number for another file to take before the write lands in it.
        One block to the disk is the wait."""
        with anyio.CancelScope(shield=True):
            written: int = await _apwrite_all(self._fd, chunks, offset)
        return written
