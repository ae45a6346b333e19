"""Local resume records of uploads, so that a crashed or cancelled process can go on.

A record says, for one source sent to one endpoint: the part boundaries and each part's
upload URL, saved the moment a URL exists (not after all of them, tus-js-client's
pitfall), and the final upload's URL. It is keyed by the endpoint, the target file and
the source's fingerprint; it is written atomically (temp file + rename) and removed when
the upload is done.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import anyio
import anyio.to_thread
import msgspec

__all__ = ("PartRecord", "ResumeStore", "UploadRecord", "record_key")


class PartRecord(msgspec.Struct, kw_only=True):
    start: int
    end: int
    url: str | None = None


class UploadRecord(msgspec.Struct, kw_only=True):
    endpoint: str
    target: str  # "scope/file_uid" (or another label for a generic tus upload)
    fingerprint: str
    size: int
    parts: list[PartRecord]
    concat: bool
    final_url: str | None = None
    created: float = msgspec.field(default_factory=time.time)


def record_key(endpoint: str, target: str, fingerprint: str) -> str:
    """The record's file name: a hash, so no path or uid shows on disk."""
    return hashlib.sha256(f"{endpoint}\n{target}\n{fingerprint}".encode()).hexdigest()[:40]


class ResumeStore:
    """Records as small JSON files in one folder (created on first save)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Parts save as their URLs appear: one write at a time, the latest state last.
        self._lock = anyio.Lock()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def _load(self, key: str) -> UploadRecord | None:
        try:
            raw = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return msgspec.json.decode(raw, type=UploadRecord)
        except msgspec.DecodeError:
            return None  # a torn or foreign file: start over rather than fail

    def _save(self, key: str, record: UploadRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(msgspec.json.encode(record))
        os.replace(tmp, self._path(key))

    async def load(self, key: str) -> UploadRecord | None:
        return await anyio.to_thread.run_sync(self._load, key)

    async def save(self, key: str, record: UploadRecord) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._save, key, record)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))
