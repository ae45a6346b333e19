"""tus uploads (ETIKET_API.md "Uploads"): each protocol request, one call.

These are single requests; ``client.upload`` is the parallel, resumable engine built on
the same protocol client (``aetiket.transfer.tus``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence

from ..models import UploadOut
from ..transfer import tus
from ._base import Namespace, seg

__all__ = ("Uploads",)

ENDPOINT = "/api/v1/uploads/"


class Uploads(Namespace):
    """``client.uploads``."""

    async def options(self) -> tus.ServerInfo:
        """What the server's tus endpoint supports (versions, extensions, checksums)."""
        return await tus.options(self._http, ENDPOINT)

    async def create(
        self,
        *,
        length: int | None,
        scope: str | None = None,
        file_uid: str | None = None,
        metadata: Mapping[str, str | bytes] | None = None,
        partial: bool = False,
        final_of: Sequence[str] = (),
        body: bytes | None = None,
        checksum: str | None = None,
    ) -> tus.Created:
        """Create an upload of the file ``scope/file_uid`` (a partial may name none).

        ``length`` None defers it; ``partial`` makes a partial upload; ``final_of`` the
        final upload joining those upload URLs; ``body`` sends the first bytes at once.
        """
        meta: dict[str, str | bytes] = dict(metadata or {})
        if scope is not None and file_uid is not None:
            meta.update(scope=scope, uid=file_uid)
        return await tus.create(
            self._http,
            ENDPOINT,
            length=length,
            metadata=meta,
            partial=partial,
            final_of=final_of,
            body=body,
            checksum=checksum,
        )

    async def status(self, url: str) -> tus.UploadState:
        """HEAD an upload: the offset to resume from, its length, expiry, metadata."""
        return await tus.head(self._http, url)

    async def send(
        self,
        url: str,
        offset: int,
        data: bytes | AsyncIterable[bytes],
        *,
        size: int | None = None,
        length: int | None = None,
        checksum: str | None = None,
    ) -> int:
        """PATCH bytes at ``offset``; returns the new offset. ``size`` is required when
        ``data`` is a stream; ``length`` declares a deferred length; ``checksum`` names an
        algorithm (sha256, sha1, md5) for an Upload-Checksum of ``data`` (bytes only)."""
        header = None
        if checksum is not None:
            if not isinstance(data, bytes):
                raise ValueError("a checksum needs the data as bytes")
            header = tus.checksum_header(checksum, data)
        if size is None:
            if not isinstance(data, bytes):
                raise ValueError("size is required when data is a stream")
            size = len(data)
        patched = await tus.patch(
            self._http, url, offset, data, size=size, length=length, checksum=header
        )
        return patched.offset

    async def terminate(self, url: str) -> None:
        """Delete an upload and what the server holds of it."""
        await tus.terminate(self._http, url)

    async def list(self, scope: str, file_uid: str) -> list[UploadOut]:
        """The uploads of a file (partials with metadata included), as the server lists."""
        from ..models import FileOut

        record: FileOut = await self._http.call(
            "GET", f"{ENDPOINT}{seg(scope)}/{seg(file_uid)}", expect=FileOut
        )
        return record.uploads
