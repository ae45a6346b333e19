"""File content on disk and its HTTP delivery: Range, If-Range, 416, ETag, sendfile.

``parse_range`` and ``if_range_allows`` are pure (RFC 9110 sections 14.2 and 13.1.5) and
tested with hypothesis. :func:`content_response` sends the selected bytes with
``loop.sendfile`` so they never pass through Python, falling back to threaded reads where
the transport cannot sendfile (TLS).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ..errors import RangeNotSatisfiable

__all__ = (
    "concat_into",
    "content_response",
    "hash_file",
    "if_range_allows",
    "parse_range",
)

# ASCII only: in Unicode mode "\d" takes Arabic digits and re.I folds a long s into "s".
_RANGE = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", re.I | re.ASCII)
_MAX_DIGITS = 19  # more than any file has; keeps int() of attacker input cheap


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range ``(first, last)`` a ``Range`` header selects, or None.

    None means "send the whole representation with 200": no header, another unit, a
    syntax error, or several ranges (a server may ignore Range; we serve one range only).
    Raises ``RangeNotSatisfiable`` when the range is valid but selects nothing.
    """
    if header is None:
        return None
    if "," in header:
        return None
    match = _RANGE.fullmatch(header)
    if not match:
        return None
    first_s, last_s = match.groups()
    if len(first_s) > _MAX_DIGITS or len(last_s) > _MAX_DIGITS:
        return None
    if not first_s:
        if not last_s:
            return None
        suffix = int(last_s)
        if suffix == 0:
            raise RangeNotSatisfiable(f"Range {header!r} selects nothing of {size} bytes")
        if size == 0:
            return None  # satisfiable (RFC 9110 14.1.1), but no 206 can say "0 bytes"
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # syntactically invalid: ignore the header
    if first >= size:
        raise RangeNotSatisfiable(f"Range {header!r} starts beyond the {size}-byte file")
    return first, min(last, size - 1)


def http_date(value: datetime) -> str:
    return email.utils.format_datetime(value.astimezone(timezone.utc), usegmt=True)


def if_range_allows(header: str | None, etag: str, last_modified: datetime) -> bool:
    """Whether a ``Range`` may be honoured under ``If-Range`` (RFC 9110 13.1.5).

    An entity tag must match the strong ETag exactly (a weak one never matches); a date
    must equal Last-Modified to the second.
    """
    if header is None:
        return True
    value = header.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp()) == int(last_modified.timestamp())


class _ContentResponse(web.StreamResponse):
    """Headers first, then ``count`` bytes of the open ``fobj`` from ``offset`` via
    sendfile. The file was opened before the answer was chosen: content replaced or
    removed meanwhile still sends the version its headers (ETag, size) describe."""

    def __init__(
        self,
        *,
        status: int,
        headers: dict[str, str],
        fobj: BinaryIO,
        offset: int,
        count: int,
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._fobj = fobj
        self._offset = offset
        self._count = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        with self._fobj as fobj:
            writer = await super().prepare(request)
            if request.method == "HEAD" or self._count == 0 or writer is None:
                return writer
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("Connection lost")
            loop = asyncio.get_running_loop()
            try:
                await loop.sendfile(transport, fobj, self._offset, self._count, fallback=False)
            except (NotImplementedError, RuntimeError):
                await self._send_by_reading(writer, fobj)
        await self.write_eof()
        return writer

    async def _send_by_reading(self, writer: AbstractStreamWriter, fobj: BinaryIO) -> None:
        fd = fobj.fileno()
        pos, end = self._offset, self._offset + self._count
        while pos < end:
            block = await anyio.to_thread.run_sync(os.pread, fd, min(1 << 20, end - pos), pos)
            if not block:
                raise ConnectionResetError(f"{fobj.name} shrank while being sent")
            await writer.write(block)
            pos += len(block)


def content_response(
    request: web.Request,
    fobj: BinaryIO,
    *,
    size: int,
    etag: str,
    mimetype: str,
    last_modified: datetime,
) -> web.StreamResponse:
    """The answer to GET/HEAD of a file: 200, 206 with Content-Range, or 416.

    The answer owns ``fobj`` (the content, opened by the caller) and closes it once sent
    or refused.
    """
    quoted = f'"{etag}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": quoted,
        "Last-Modified": http_date(last_modified),
        "Content-Type": mimetype,
    }
    selected = None
    if if_range_allows(request.headers.get("If-Range"), quoted, last_modified):
        try:
            selected = parse_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable as exc:
            fobj.close()
            exc.headers["Content-Range"] = f"bytes */{size}"
            raise
    if selected is None:
        status, offset, count = 200, 0, size
    else:
        first, last = selected
        status, offset, count = 206, first, last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(count)
    return _ContentResponse(status=status, headers=headers, fobj=fobj, offset=offset, count=count)


def _append(src: Path, out_fd: int, pos: int, block: int) -> int:
    """Append ``src`` at ``pos`` of ``out_fd``: in the kernel where it can, else by blocks."""
    with open(src, "rb", buffering=0) as inp:
        size = os.fstat(inp.fileno()).st_size
        done = 0
        if hasattr(os, "copy_file_range"):
            try:
                while done < size:
                    n = os.copy_file_range(inp.fileno(), out_fd, size - done, done, pos + done)
                    if n == 0:
                        break
                    done += n
            except OSError:
                pass  # another filesystem or kernel: copy by blocks from where it stopped
        while done < size:
            data = os.pread(inp.fileno(), min(block, size - done), done)
            if not data:
                break
            os.pwrite(out_fd, data, pos + done)
            done += len(data)
        return done


def _concat(sources: list[Path], dest: Path, block: int) -> int:
    """Write the concatenation of ``sources`` to ``dest``; returns its size.

    ``dest`` starts as a hard link to the first source, so only the others are copied;
    on failure the first source is cut back to its own bytes and ``dest`` removed.
    """
    for src in sources:
        if not src.exists():
            raise FileNotFoundError(src)
    first = sources[0]
    base = first.stat().st_size
    try:
        os.link(first, dest)
        rest, pos = sources[1:], base
    except OSError:
        dest.touch()
        rest, pos = sources, 0
    try:
        fd = os.open(dest, os.O_WRONLY)
        try:
            for src in rest:
                pos += _append(src, fd, pos, block)
        finally:
            os.close(fd)
    except BaseException:
        if rest is not sources:
            os.truncate(dest, base)
        dest.unlink(missing_ok=True)
        raise
    return pos


def _hash_many(sources: list[Path], block: int, sizes: list[int] | None = None) -> str:
    """SHA-256 over ``sources`` in order, reading at most ``sizes[i]`` bytes of each.

    The sizes matter during a concatenation: the first source is the destination's
    hard link and grows while it is being hashed.
    """
    digest = hashlib.sha256()
    buf = bytearray(block)
    view = memoryview(buf)
    for i, src in enumerate(sources):
        with open(src, "rb", buffering=0) as inp:
            left = sizes[i] if sizes is not None else os.fstat(inp.fileno()).st_size
            while left > 0 and (n := inp.readinto(view[: min(block, left)])):
                digest.update(view[:n])
                left -= n
    return digest.hexdigest()


async def concat_into(sources: list[Path], dest: Path, block: int) -> tuple[int, str]:
    """Concatenate ``sources`` into ``dest`` and hash them, on two worker threads at once.

    Returns (size, sha256 hex). Hashing reads the sources while the copy runs, so the
    final upload of a parallel transfer costs about one pass, not two.
    """
    result: dict[str, Any] = {}
    sizes = [src.stat().st_size for src in sources]  # before the first one grows

    async def copy() -> None:
        result["size"] = await anyio.to_thread.run_sync(_concat, sources, dest, block)

    async def digest() -> None:
        result["sha256"] = await anyio.to_thread.run_sync(_hash_many, sources, block, sizes)

    async with anyio.create_task_group() as tg:
        tg.start_soon(copy)
        tg.start_soon(digest)
    return result["size"], result["sha256"]


async def hash_file(path: Path, block: int) -> str:
    """SHA-256 of a file, computed on a worker thread."""
    return await anyio.to_thread.run_sync(_hash_many, [path], block)
