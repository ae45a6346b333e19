"""File records and small content reads (ETIKET_API.md "Files")."""

from __future__ import annotations

from typing import Any

from ..errors import ProtocolError
from ..models import FileIn, FileOut, FileUpdate
from ._base import Namespace, fields_or, seg

__all__ = ("Files",)

#: files.read refuses more than this; bigger content belongs to ``client.download``.
DEFAULT_READ_LIMIT = 64 * 1024 * 1024


class Files(Namespace):
    """``client.files``."""

    def _path(self, scope: str, uid: str) -> str:
        return f"/api/v1/files/{seg(scope)}/{seg(uid)}"

    async def create(self, file: FileIn) -> FileOut:
        """Register a file in an existing dataset (its content is uploaded later)."""
        return await self._create(
            "/api/v1/files/",
            file,
            FileOut,
            fetch=lambda: self.get(file.scope, file.uid),
            same=lambda f: (f.name, f.mimetype, f.size) == (file.name, file.mimetype, file.size),
        )

    async def get(self, scope: str, uid: str) -> FileOut:
        """A file record: status, size, ETag, download link, and its uploads."""
        out: FileOut = await self._http.call(
            "GET", f"/api/v1/uploads/{seg(scope)}/{seg(uid)}", expect=FileOut
        )
        return out

    async def update(
        self, scope: str, uid: str, changes: FileUpdate | None = None, **fields: Any
    ) -> FileOut:
        """Change a file's name, mimetype, altlocation, filetype or rating."""
        body = fields_or(FileUpdate, changes, fields)
        out: FileOut = await self._http.call(
            "PATCH", self._path(scope, uid), json=body, expect=FileOut
        )
        return out

    async def delete(self, scope: str, uid: str) -> None:
        """Delete a file record and its content."""
        await self._remove(self._path(scope, uid), None)

    async def read(
        self,
        scope: str,
        uid: str,
        *,
        range: tuple[int, int] | None = None,
        max_bytes: int = DEFAULT_READ_LIMIT,
    ) -> bytes:
        """A file's content, or the bytes ``range=(first, last)`` (inclusive, as in HTTP).

        For small content: more than ``max_bytes`` raises ``ValueError`` before reading;
        use ``client.download`` for big files (parallel, resumable, to disk).
        """
        headers = {"Accept-Encoding": "identity"}
        if range is not None:
            first, last = range
            if first < 0 or last < first:
                raise ValueError(f"range must be (first, last) with 0 <= first <= last: {range}")
            headers["Range"] = f"bytes={first}-{last}"
        async with self._http.send("GET", self._path(scope, uid), headers=headers) as resp:
            size = resp.content_length
            if size is not None and size > max_bytes:
                raise ValueError(
                    f"{scope}/{uid}: {size} bytes is more than max_bytes={max_bytes}; "
                    "use client.download() for large files"
                )
            if range is not None and resp.status == 206:
                expected = f"bytes {range[0]}-"
                content_range = resp.headers.get("Content-Range", "")
                if not content_range.startswith(expected):
                    raise ProtocolError(
                        f"GET {resp.url}: asked for bytes {range[0]}-{range[1]}, got "
                        f"Content-Range {content_range!r}"
                    )
            data = await self._http.read_body(resp, limit=max_bytes)
        if range is not None and resp.status == 200:
            # The server ignored Range and sent everything: keep the part asked for.
            data = data[range[0] : range[1] + 1]
        return data
