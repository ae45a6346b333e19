"""tus 1.0.0 at /api/v1/uploads/ (ETIKET_API.md, "Uploads"; tus.io/protocols/resumable-upload).

Extensions: creation, creation-with-upload, creation-defer-length, checksum (sha1, md5,
sha256), termination, concatenation, concatenation-unfinished, expiration.

Upload bytes go to ``<data>/uploads/<uid>.bin`` with ``pwrite`` on a worker thread, a few
MiB at a time, never held whole in memory. One PATCH per upload at a time (a second gets
409). When a non-partial upload completes, its bytes become the file's content (a rename,
or a concatenation of the partials on a worker thread), and the file record gets size,
ETag (SHA-256 of the content) and status ``available``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from anyio.streams.memory import MemoryObjectSendStream

from ..errors import (
    ApiError,
    BadRequest,
    ChecksumRejected,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
)
from ..models import FileStatus, parse_tus_metadata, parse_tus_uint
from . import records
from .auth import Caller
from .content import concat_into, hash_file, http_date
from .state import STATE, ServerState, base_url, caller

__all__ = ("TusService",)

log = logging.getLogger("aetiket.server")

TUS_VERSION: Final = "1.0.0"
EXTENSIONS: Final = (
    "creation,creation-with-upload,creation-defer-length,checksum,termination,"
    "concatenation,concatenation-unfinished,expiration"
)
CHECKSUMS: Final = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}
OCTETS: Final = "application/offset+octet-stream"
UPLOADS_PATH: Final = "/api/v1/uploads/"

_UID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


# ---------------------------------------------------------------------------- header parsing


def parse_uint(value: str | None, name: str) -> int | None:
    """A tus integer header (non-negative decimal); 400 when malformed."""
    if value is None:
        return None
    try:
        return parse_tus_uint(value)
    except ValueError:
        raise BadRequest(f"{name} must be a non-negative integer, got {value[:40]!r}") from None


def parse_metadata(value: str | None) -> dict[str, bytes]:
    """Parse ``Upload-Metadata``; 400 when malformed."""
    try:
        return parse_tus_metadata(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """Parse ``Upload-Checksum: <algorithm> <base64 digest>``."""
    if value is None:
        return None
    algo, _, encoded = value.strip().partition(" ")
    algo = algo.lower()
    if algo not in CHECKSUMS:
        raise BadRequest(f"Unsupported checksum algorithm {algo[:20]!r}; use sha1, md5, sha256")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Upload-Checksum digest is not base64") from None
    if len(digest) != CHECKSUMS[algo]().digest_size:
        raise BadRequest(f"Upload-Checksum digest has the wrong length for {algo}")
    return algo, digest


def parse_concat(value: str | None) -> tuple[str, list[str]]:
    """``Upload-Concat`` as (kind, upload uids): none, partial, or final with its parts.

    A part is a URL, absolute or relative, whose path ends with ``/api/v1/uploads/<uid>``
    (whatever path prefix a public URL adds before it).
    """
    if value is None:
        return "none", []
    value = value.strip()
    if value == "partial":
        return "partial", []
    if not value.startswith("final;"):
        raise BadRequest(f"Malformed Upload-Concat {value[:60]!r}")
    uids = []
    for url in value[len("final;") :].split():
        try:
            path = urlsplit(url).path
        except ValueError:
            raise BadRequest(f"Upload-Concat names a malformed URL {url[:80]!r}") from None
        # Behind a proxy with a path prefix (public URL https://host/etiket) the Locations
        # handed out are https://host/etiket/api/v1/uploads/<uid>: match the path's end.
        prefix, found, uid = path.rpartition(UPLOADS_PATH)
        if not found or prefix[:1] not in ("", "/"):
            raise BadRequest(f"Upload-Concat names {url[:80]!r}, not an upload of this server")
        if not _UID.match(uid):
            raise BadRequest(f"Upload-Concat names an unknown upload {url[:80]!r}")
        uids.append(uid)
    if not uids:
        raise BadRequest("Upload-Concat: final names no partial uploads")
    return "final", uids


def _require_tus(request: web.Request) -> None:
    version = request.headers.get("Tus-Resumable")
    if version != TUS_VERSION:
        raise PreconditionFailed(
            f"Tus-Resumable must be {TUS_VERSION}, got {version!r}",
            headers={"Tus-Version": TUS_VERSION},
        )


def _expires_header(expires: float) -> str:
    return http_date(datetime.fromtimestamp(expires, timezone.utc))


# ---------------------------------------------------------------------------- records


@dataclasses.dataclass
class Upload:
    id: int
    uid: str
    user_id: int
    file_id: int | None
    length: int | None
    offset: int
    concat: str
    parts: list[str]
    metadata: str | None
    expires: float
    completed: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Upload:
        return cls(
            id=row["id"],
            uid=row["uid"],
            user_id=row["user_id"],
            file_id=row["file_id"],
            length=row["length"],
            offset=row["offset"],
            concat=row["concat"],
            parts=json.loads(row["parts"]) if row["parts"] else [],
            metadata=row["metadata"],
            expires=row["expires"],
            completed=bool(row["completed"]),
        )

    def expiry(self, named: Callable[[str], bool]) -> float | None:
        """When this upload expires, or None when it no longer can.

        The one notion of expiry, for the 410 answers and the sweep alike: an upload
        expires at ``expires`` (set at creation) while it is of no use to anyone yet,
        that is while incomplete, or as a complete partial that no final upload names
        (``named(uid)``: its client gave up before sending the final). A partial named by
        a final (open, joining or complete) is that final's to use or remove.
        """
        if self.completed and (self.concat != "partial" or named(self.uid)):
            return None
        return self.expires

    def expired(self, named: Callable[[str], bool], now: float) -> bool:
        expires = self.expiry(named)
        return expires is not None and expires < now


def _load(conn: sqlite3.Connection, uid: str) -> Upload:
    row = conn.execute("SELECT * FROM uploads WHERE uid = ?", (uid,)).fetchone()
    if row is None:
        raise NotFound(f"Upload {uid} not found")
    return Upload.from_row(row)


def _check_access(conn: sqlite3.Connection, who: Caller, upload: Upload, *, write: bool) -> None:
    """The scope access rule for an upload of a file record; owner or admin for the rest.

    An upload of a file is governed by the file's scope like everything in it: members
    (and admins) may read it, and write it unless the scope is archived. A partial upload
    without metadata belongs to its creator alone.
    """
    if upload.file_id is not None:
        row = conn.execute(
            "SELECT s.name FROM files f JOIN scopes s ON s.id = f.scope_id WHERE f.id = ?",
            (upload.file_id,),
        ).fetchone()
        if row is not None:
            records.scope_access(conn, who, row["name"], write=write)
            return
    if not (who.admin or upload.user_id == who.id):
        raise Forbidden("This upload belongs to another user")


def _named(conn: sqlite3.Connection) -> Callable[[str], bool]:
    """Whether a final upload names a partial, asked of the database (one upload)."""
    return lambda uid: _final_of(conn, uid) is not None


def _get_for(conn: sqlite3.Connection, who: Caller, uid: str, write: bool) -> Upload:
    upload = _load(conn, uid)
    _check_access(conn, who, upload, write=write)
    if upload.expired(_named(conn), time.time()):
        raise Gone(f"Upload {uid} expired; start a new upload")
    return upload


def _target_file(
    conn: sqlite3.Connection, who: Caller, meta: dict[str, bytes], *, required: bool
) -> int | None:
    """The file record an upload's metadata names (scope and uid), checked for writing."""
    if "scope" not in meta and "uid" not in meta:
        if required:
            raise BadRequest("Upload-Metadata must carry 'scope' and 'uid' of a file record")
        return None
    try:
        scope = meta["scope"].decode()
        uid = meta["uid"].decode()
    except KeyError as exc:
        raise BadRequest(f"Upload-Metadata lacks {exc.args[0]!r}") from None
    except UnicodeDecodeError:
        raise BadRequest("Upload-Metadata scope/uid are not UTF-8") from None
    _, frow = records.file_record(conn, who, scope, uid, write=True)
    if frow["immutable"] and frow["status"] in (
        FileStatus.available.value,
        FileStatus.secured.value,
    ):
        raise Conflict(f"File '{scope}/{uid}' is immutable and already uploaded")
    file_id: int = frow["id"]
    return file_id


@dataclasses.dataclass
class _NewUpload:
    uid: str
    length: int | None
    concat: str
    parts: list[str]
    metadata: str | None
    meta: dict[str, bytes]


def _final_of(conn: sqlite3.Connection, part_uid: str) -> str | None:
    """The final upload naming a partial, if any.

    A partial joins one final only: the join makes the final's content a hard link to
    the first partial's data and appends to it, so two finals joining the same partials
    would write into one file. Every final row counts: an open one will join them, a
    completed one has (its partials' data is removed right after), an expired one may
    still be joining (its row goes once swept; DELETE releases it sooner). A partial a
    final names does not expire (``Upload.expiry``).
    """
    # instr on the quoted uid, not LIKE: "_" in a uid would be a LIKE wildcard.
    row = conn.execute(
        "SELECT uid FROM uploads WHERE concat = 'final' AND instr(parts, ?) > 0 LIMIT 1",
        (json.dumps(part_uid),),
    ).fetchone()
    return None if row is None else str(row["uid"])


def _create(
    conn: sqlite3.Connection,
    who: Caller,
    new: _NewUpload,
    ttl: float,
    data_exists: Callable[[str], bool],
) -> Upload:
    file_id = _target_file(conn, who, new.meta, required=new.concat != "partial")
    length = new.length
    if new.concat == "final":
        length = 0
        for part_uid in new.parts:
            part = _load(conn, part_uid)
            if part.concat != "partial":
                raise BadRequest(f"Upload {part_uid} is not a partial upload")
            if part.user_id != who.id:
                raise Forbidden(f"Partial upload {part_uid} belongs to another user")
            if part.expired(_named(conn), time.time()):
                raise Gone(f"Partial upload {part_uid} expired; upload the parts again")
            if part.length is None:
                raise BadRequest(f"Partial upload {part_uid} has no length yet")
            if not data_exists(part_uid):
                raise Gone(f"Partial upload {part_uid} was already used by another final upload")
            holder = _final_of(conn, part_uid)
            if holder is not None:
                raise Conflict(
                    f"Partial upload {part_uid} already belongs to final upload {holder}; a "
                    "partial joins one final only (DELETE that final to release its partials)"
                )
            length += part.length
    now = time.time()
    conn.execute(
        'INSERT INTO uploads (uid, user_id, file_id, length, "offset", concat, parts, metadata, '
        "created, expires, completed) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, 0)",
        (
            new.uid,
            who.id,
            file_id,
            length,
            new.concat,
            json.dumps(new.parts) if new.parts else None,
            new.metadata,
            now,
            now + ttl,
        ),
    )
    return _load(conn, new.uid)


def _set_progress(
    conn: sqlite3.Connection, uid: str, offset: int, length: int | None, expires: float | None
) -> None:
    """The offset on record; ``expires``: bytes moved, so the upload lives on until then
    (never earlier than it was)."""
    conn.execute(
        'UPDATE uploads SET "offset" = ?, length = ?, expires = MAX(expires, COALESCE(?, expires))'
        " WHERE uid = ?",
        (offset, length, expires, uid),
    )


def _complete_partial(conn: sqlite3.Connection, uid: str) -> list[str]:
    """Mark a partial complete; returns the finals now ready to be concatenated."""
    conn.execute("UPDATE uploads SET completed = 1 WHERE uid = ?", (uid,))
    ready = []
    for row in conn.execute(
        "SELECT uid, parts FROM uploads WHERE concat = 'final' AND completed = 0 AND parts LIKE ?",
        (f'%"{uid}"%',),
    ).fetchall():
        parts = json.loads(row["parts"])
        marks = ",".join("?" * len(parts))
        done = conn.execute(
            f"SELECT COUNT(*) FROM uploads WHERE uid IN ({marks}) AND completed = 1", parts
        ).fetchone()[0]
        if done == len(set(parts)):
            ready.append(row["uid"])
    return ready


def _complete_upload(
    conn: sqlite3.Connection, uid: str, content: str, size: int, etag: str
) -> str | None:
    """Record a finished non-partial upload as its file's content; returns the old content."""
    upload = _load(conn, uid)
    conn.execute('UPDATE uploads SET completed = 1, "offset" = ? WHERE uid = ?', (size, uid))
    if upload.file_id is None:
        return content  # the file record went away meanwhile: drop the bytes
    row = conn.execute("SELECT content FROM files WHERE id = ?", (upload.file_id,)).fetchone()
    if row is None:
        return content
    conn.execute(
        "UPDATE files SET content = ?, size = ?, etag = ?, status = ?, modified = ? WHERE id = ?",
        (content, size, etag, FileStatus.available.value, records.now_text(), upload.file_id),
    )
    old: str | None = row["content"]
    return old


def _etag(conn: sqlite3.Connection, upload: Upload) -> str | None:
    """The ETag of the file content a completed (non-partial) upload made, while that is
    still its file's content: the client checks its bytes without asking the file."""
    if not upload.completed or upload.concat == "partial" or upload.file_id is None:
        return None
    row = conn.execute("SELECT etag, content FROM files WHERE id = ?", (upload.file_id,)).fetchone()
    if row is None or not str(row["content"] or "").startswith(f"{upload.uid}-"):
        return None
    return str(row["etag"]) if row["etag"] else None


def _terminate(conn: sqlite3.Connection, who: Caller, uid: str) -> None:
    upload = _load(conn, uid)
    _check_access(conn, who, upload, write=True)
    conn.execute("DELETE FROM uploads WHERE uid = ?", (uid,))


def _expire(conn: sqlite3.Connection, now: float, keep_rows_for: float) -> list[str]:
    """The uids of expired uploads (``Upload.expiry``), whose data to delete; the rows of
    those expired more than ``keep_rows_for`` ago are dropped (410 becomes 404)."""
    # The finals' parts are read once: asking _final_of per partial would scan the table
    # for each complete partial ever made (they stay past their expiry, named).
    named = {
        part
        for row in conn.execute("SELECT parts FROM uploads WHERE concat = 'final'")
        for part in json.loads(row["parts"] or "[]")
    }
    candidates = conn.execute(
        "SELECT * FROM uploads WHERE expires < ? AND (completed = 0 OR concat = 'partial')",
        (now,),
    ).fetchall()
    expired = [u for u in map(Upload.from_row, candidates) if u.expired(named.__contains__, now)]
    # Only rows whose data goes in this sweep: a partial whose final row goes now keeps
    # its row until a later sweep has found it expired and deleted its data.
    conn.executemany(
        "DELETE FROM uploads WHERE uid = ?",
        [(u.uid,) for u in expired if u.expires < now - keep_rows_for],
    )
    return [u.uid for u in expired]


# ---------------------------------------------------------------------------- the service


class _BodyInterrupted(Exception):
    """The request body ended early (client gone); ``received`` bytes were stored."""

    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


class TusService:
    """Handlers and in-process state (locks, running hashes) of the tus endpoint."""

    def __init__(self, st: ServerState) -> None:
        self.st = st
        self.config = st.config
        self.db = st.db
        self._busy: set[str] = set()
        self._concatenating: set[str] = set()
        # Running SHA-256 of plain uploads written in order: saves a re-read at the end.
        self._hashers: dict[str, tuple[int, Any]] = {}

    # -- paths

    def data_path(self, uid: str) -> Path:
        return self.config.uploads_dir / f"{uid}.bin"

    def content_path(self, name: str) -> Path:
        return self.config.content_dir / name

    def remove_leftovers(self, names: list[str]) -> int:
        """Delete content files or upload data named by records.delete_* (best effort);
        returns how many existed."""
        removed = 0
        for name in names:
            is_upload = name.startswith("upload:")
            path = self.data_path(name[7:]) if is_upload else self.content_path(name)
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
            if is_upload:
                self._hashers.pop(name[7:], None)
        return removed

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": TUS_VERSION, **extra}

    def _location(self, request: web.Request, uid: str) -> str:
        return f"{base_url(request)}{UPLOADS_PATH}{uid}"

    # -- OPTIONS

    async def options(self, request: web.Request) -> web.Response:
        headers = self._headers(
            **{
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": EXTENSIONS,
                "Tus-Max-Size": str(self.config.max_upload_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "POST, HEAD, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": (
                    "Authorization, Content-Type, Tus-Resumable, Upload-Length, "
                    "Upload-Offset, Upload-Metadata, Upload-Concat, Upload-Defer-Length, "
                    "Upload-Checksum"
                ),
                "Access-Control-Expose-Headers": (
                    "Location, Tus-Version, Tus-Extension, Tus-Max-Size, Upload-Offset, "
                    "Upload-Length, Upload-Expires, Upload-Concat, Upload-Metadata"
                ),
            }
        )
        return web.Response(status=204, headers=headers)

    # -- POST (creation, creation-with-upload, defer-length, concatenation)

    async def create(self, request: web.Request) -> web.StreamResponse:
        _require_tus(request)
        who = await caller(request)
        kind, parts = parse_concat(request.headers.get("Upload-Concat"))
        length = parse_uint(request.headers.get("Upload-Length"), "Upload-Length")
        defer = request.headers.get("Upload-Defer-Length")
        if defer is not None and defer.strip() != "1":
            raise BadRequest("Upload-Defer-Length must be 1")
        if kind == "final":
            if length is not None or defer is not None:
                raise BadRequest(
                    "A final upload takes its length from its partials: send no Upload-Length"
                )
        elif (length is None) == (defer is None):
            raise BadRequest("Send exactly one of Upload-Length and Upload-Defer-Length: 1")
        if length is not None and length > self.config.max_upload_size:
            raise PayloadTooLarge(
                f"Upload-Length {length} exceeds Tus-Max-Size {self.config.max_upload_size}"
            )
        raw_meta = request.headers.get("Upload-Metadata")
        new = _NewUpload(
            uid=secrets.token_urlsafe(24),
            length=length,
            concat=kind,
            parts=parts,
            metadata=raw_meta,
            meta=parse_metadata(raw_meta),
        )
        checksum = parse_checksum(request.headers.get("Upload-Checksum"))
        has_body = request.body_exists and request.content_length != 0
        if has_body and kind == "final":
            raise Forbidden("A final upload takes no body")
        if has_body and request.content_type != OCTETS:
            raise UnsupportedMediaType(f"Content-Type must be {OCTETS}")
        upload = await self.db.run(
            _create, who, new, self.config.upload_expiry, self._partial_data_exists
        )
        headers = self._headers(Location=self._location(request, upload.uid))
        if kind == "final":
            if upload.length is not None and await self._final_ready(upload):
                try:
                    await self._concatenate(upload.uid)
                except BaseException:
                    # A final that cannot be joined must not leave its file pending.
                    with anyio.CancelScope(shield=True):
                        await self._drop(upload.uid)
                    raise
            upload = await self.db.run(_load, upload.uid)
            return await self._created(headers, upload)
        await anyio.to_thread.run_sync(self._create_data_file, new.uid)
        if has_body:
            try:
                upload = await self._patch_body(request, upload.uid, 0, None, checksum)
            except ChecksumRejected:
                # creation-with-upload follows the PATCH rules; a rejected body leaves
                # nothing behind, as if the POST had not happened.
                with anyio.CancelScope(shield=True):
                    await self._drop(upload.uid)
                raise
        elif upload.length == 0:
            await self._finish(upload)
            upload = await self.db.run(_load, upload.uid)
        return await self._created(headers, upload)

    async def _created(self, headers: dict[str, str], upload: Upload) -> web.Response:
        if upload.concat != "final" or upload.completed:
            headers["Upload-Offset"] = str(upload.offset)
        await self._add_state(headers, upload)
        return web.Response(status=201, headers=headers)

    async def _add_state(self, headers: dict[str, str], upload: Upload) -> None:
        """Upload-Expires while the upload can expire (open, or a complete partial no
        final names yet); once complete, the file's ETag (its SHA-256)."""

        def state(conn: sqlite3.Connection) -> tuple[float | None, str | None]:
            return upload.expiry(_named(conn)), _etag(conn, upload)

        expires: float | None = upload.expires  # open: no database needed to say so
        etag: str | None = None
        if upload.completed:
            expires, etag = await self.db.run(state)
        if expires is not None:
            headers["Upload-Expires"] = _expires_header(expires)
        if etag is not None:
            headers["ETag"] = f'"{etag}"'

    def _partial_data_exists(self, uid: str) -> bool:
        return self.data_path(uid).exists()

    async def _drop(self, uid: str) -> None:
        """Forget an upload that cannot go on: its record and its bytes."""

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM uploads WHERE uid = ?", (uid,))

        await self.db.run(delete)
        await anyio.to_thread.run_sync(self.remove_leftovers, [f"upload:{uid}"])

    def _create_data_file(self, uid: str) -> None:
        self.config.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.data_path(uid).touch(exist_ok=False)

    async def _final_ready(self, upload: Upload) -> bool:
        def count(conn: sqlite3.Connection) -> int:
            marks = ",".join("?" * len(upload.parts))
            done: int = conn.execute(
                f"SELECT COUNT(*) FROM uploads WHERE uid IN ({marks}) AND completed = 1",
                upload.parts,
            ).fetchone()[0]
            return done

        return await self.db.run(count) == len(set(upload.parts))

    # -- HEAD

    async def head(self, request: web.Request) -> web.Response:
        _require_tus(request)
        who = await caller(request)
        upload = await self.db.run(_get_for, who, request.match_info["uid"], False)
        headers = self._headers(**{"Cache-Control": "no-store"})
        if upload.concat == "final":
            headers["Upload-Concat"] = "final;" + " ".join(
                self._location(request, p) for p in upload.parts
            )
            if upload.completed:  # unfinished concatenation: no offset (tus Concatenation)
                headers["Upload-Offset"] = str(upload.offset)
        else:
            headers["Upload-Offset"] = str(upload.offset)
            if upload.concat == "partial":
                headers["Upload-Concat"] = "partial"
        if upload.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(upload.length)
        if upload.metadata:
            headers["Upload-Metadata"] = upload.metadata
        await self._add_state(headers, upload)
        return web.Response(status=200, headers=headers)

    # -- PATCH

    async def patch(self, request: web.Request) -> web.Response:
        _require_tus(request)
        who = await caller(request)
        if request.content_type != OCTETS:
            raise UnsupportedMediaType(f"Content-Type must be {OCTETS}")
        offset = parse_uint(request.headers.get("Upload-Offset"), "Upload-Offset")
        if offset is None:
            raise BadRequest("Upload-Offset is required")
        new_length = parse_uint(request.headers.get("Upload-Length"), "Upload-Length")
        checksum = parse_checksum(request.headers.get("Upload-Checksum"))
        upload = await self.db.run(_get_for, who, request.match_info["uid"], True)
        if upload.concat == "final":
            raise Forbidden("A final upload cannot be patched; patch its partial uploads")
        upload = await self._patch_body(request, upload.uid, offset, new_length, checksum)
        headers = self._headers(**{"Upload-Offset": str(upload.offset)})
        await self._add_state(headers, upload)
        return web.Response(status=204, headers=headers)

    async def _patch_body(
        self,
        request: web.Request,
        uid: str,
        offset: int,
        new_length: int | None,
        checksum: tuple[str, bytes] | None,
    ) -> Upload:
        """Store a PATCH (or creation-with-upload) body under the per-upload lock.

        The upload's state is read after the lock is taken, so two requests with the same
        Upload-Offset can never both be accepted.
        """
        if uid in self._busy:
            raise Conflict(f"Upload {uid} is receiving another PATCH; retry after it")
        self._busy.add(uid)
        error: _BodyInterrupted | None = None
        try:
            upload = await self.db.run(_load, uid)
            length = self._check_patch(request, upload, offset, new_length)
            if upload.completed:
                return upload
            room = (length if length is not None else self.config.max_upload_size) - offset
            received = 0
            try:
                received = await self._receive(request, upload, room, checksum)
            except _BodyInterrupted as exc:
                received, error = exc.received, exc
            # Whatever happens to this request now, the offset on record must be true.
            with anyio.CancelScope(shield=True):
                if checksum is not None and error is not None and received:
                    # A chunk with a checksum is all or nothing.
                    await self._truncate(upload, offset)
                    received = 0
                new_offset = offset + received
                # An upload expires after a day without bytes, not a day after it began:
                # a file that takes longer than that on a slow link must still land.
                alive = time.time() + self.config.upload_expiry if received else None
                await self.db.run(_set_progress, uid, new_offset, length, alive)
                upload.offset, upload.length = new_offset, length
                # All bytes in, even if the client left right after the last one: done.
                if length is not None and new_offset == length:
                    await self._finish(upload)
        finally:
            self._busy.discard(uid)
        if error is not None:
            raise BadRequest(f"The request body ended early after {error.received} bytes")
        return await self.db.run(_load, uid)

    def _check_patch(
        self, request: web.Request, upload: Upload, offset: int, new_length: int | None
    ) -> int | None:
        """Validate a PATCH against the upload's current state; returns its length."""
        if offset != upload.offset:
            raise Conflict(
                f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                headers={"Upload-Offset": str(upload.offset)},
            )
        if new_length is not None:
            if upload.length is not None and new_length != upload.length:
                raise BadRequest(f"Upload-Length is already {upload.length}")
            if new_length < upload.offset:
                raise BadRequest("Upload-Length is smaller than the bytes already received")
            if new_length > self.config.max_upload_size:
                raise PayloadTooLarge(f"Upload-Length exceeds {self.config.max_upload_size}")
        length = upload.length if upload.length is not None else new_length
        if upload.completed and request.content_length:
            raise Conflict(f"Upload {upload.uid} is already complete")
        room = (length if length is not None else self.config.max_upload_size) - offset
        if request.content_length is not None and request.content_length > room:
            raise BadRequest(
                f"The body ({request.content_length} bytes) goes past the upload's length "
                f"({length}) from offset {offset}"
            )
        return length

    async def _truncate(self, upload: Upload, size: int) -> None:
        await anyio.to_thread.run_sync(os.truncate, self.data_path(upload.uid), size)
        self._hashers.pop(upload.uid, None)

    async def _receive(
        self,
        request: web.Request,
        upload: Upload,
        room: int,
        checksum: tuple[str, bytes] | None,
    ) -> int:
        """Stream the body to disk in blocks; verify ``checksum`` before keeping it."""
        block = self.config.io_block
        body_hash = CHECKSUMS[checksum[0]]() if checksum else None
        running = None
        if upload.concat == "none":
            known = self._hashers.get(upload.uid)
            if known is not None and known[0] == upload.offset:
                running = known[1].copy()  # a copy: a rejected chunk must not count
            elif upload.offset == 0:
                running = hashlib.sha256()
        hashers = [h for h in (body_hash, running) if h is not None]
        fd = await anyio.to_thread.run_sync(os.open, self.data_path(upload.uid), os.O_WRONLY)
        received = 0
        write_error: OSError | None = None
        read_error: Exception | None = None
        # Blocks go to a writer task through a one-slot queue: the socket is read while the
        # previous block is written and hashed in a thread (two cores at work, not one
        # after the other); at most three blocks are held.
        blocks_in, blocks_out = anyio.create_memory_object_stream[list[bytes]](1)

        async def write_blocks(scope: anyio.CancelScope) -> None:
            nonlocal received, write_error
            async with blocks_out:
                async for chunks in blocks_out:
                    try:
                        received += await anyio.to_thread.run_sync(
                            _write_chunks, fd, chunks, upload.offset + received, hashers
                        )
                    except OSError as exc:  # the disk, not the client: no point reading on
                        write_error = exc
                        scope.cancel()
                        return

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_blocks, tg.cancel_scope)
                async with blocks_in:
                    try:
                        await _read_body(request, blocks_in, room, block, checksum is None)
                    except Exception as exc:  # raised below, once the writer is done
                        read_error = exc
        finally:
            os.close(fd)
        if write_error is not None:
            raise write_error
        if isinstance(read_error, OSError | HttpProcessingError):
            # The client went away or sent a broken body: what arrived is on disk.
            raise _BodyInterrupted(received) from read_error
        if read_error is not None:
            raise read_error
        if checksum is not None and body_hash is not None and body_hash.digest() != checksum[1]:
            await self._truncate(upload, upload.offset)
            raise ChecksumRejected(
                f"Upload-Checksum ({checksum[0]}) does not match the {received} bytes received "
                f"at offset {upload.offset}; they were discarded"
            )
        if running is not None:
            self._hashers[upload.uid] = (upload.offset + received, running)
        return received

    # -- completion

    async def _finish(self, upload: Upload) -> None:
        """An upload reached its length: a partial may unblock finals; a plain one lands."""
        if upload.concat == "partial":
            for final_uid in await self.db.run(_complete_partial, upload.uid):
                try:
                    await self._concatenate(final_uid)
                except ApiError as exc:
                    # The partial itself is fine; the final cannot be joined and goes away
                    # (its client sees 404 and starts over) rather than stay open forever.
                    log.warning("dropping final upload %s: %s", final_uid, exc.detail)
                    await self._drop(final_uid)
            return
        known = self._hashers.pop(upload.uid, None)
        size = upload.length or 0
        path = self.data_path(upload.uid)
        if known is not None and known[0] == size:
            etag = known[1].hexdigest()
        else:
            etag = await hash_file(path, self.config.io_block)
        name = self._content_name(upload.uid)
        await anyio.to_thread.run_sync(self._publish, path, name)
        old = await self.db.run(_complete_upload, upload.uid, name, size, etag)
        if old and old != name:
            await anyio.to_thread.run_sync(self.remove_leftovers, [old])

    def _content_name(self, uid: str) -> str:
        return f"{uid}-{secrets.token_hex(4)}"

    def _publish(self, source: Path, name: str) -> None:
        self.config.content_dir.mkdir(parents=True, exist_ok=True)
        os.replace(source, self.content_path(name))

    async def _concatenate(self, final_uid: str) -> None:
        """Join a final upload's partials into its file's content (once, off the loop)."""
        if final_uid in self._concatenating:
            return
        self._concatenating.add(final_uid)
        try:
            upload = await self.db.run(_load, final_uid)
            if upload.completed:
                return
            sources = [self.data_path(p) for p in upload.parts]
            name = self._content_name(final_uid)
            self.config.content_dir.mkdir(parents=True, exist_ok=True)
            dest = self.content_path(name)
            try:
                size, etag = await concat_into(sources, dest, self.config.io_block)
            except FileNotFoundError:
                dest.unlink(missing_ok=True)
                raise Gone("A partial upload of this final upload is gone") from None
            if size != upload.length:
                dest.unlink(missing_ok=True)
                raise Conflict(f"The partial uploads hold {size} bytes, not {upload.length}")
            old = await self.db.run(_complete_upload, final_uid, name, size, etag)
            leftovers = [f"upload:{p}" for p in upload.parts]
            if old and old != name:
                leftovers.append(old)
            await anyio.to_thread.run_sync(self.remove_leftovers, leftovers)
        finally:
            self._concatenating.discard(final_uid)

    # -- DELETE (termination) and the listing

    async def terminate(self, request: web.Request) -> web.Response:
        who = await caller(request)
        uid = request.match_info["uid"]
        if uid in self._busy:
            raise Conflict(f"Upload {uid} is receiving a PATCH; retry after it")
        if uid in self._concatenating:
            # Its row holds its partials: gone mid-join, another final could join them too.
            raise Conflict(f"Upload {uid} is being concatenated; retry after it")
        await self.db.run(_terminate, who, uid)
        await anyio.to_thread.run_sync(self.remove_leftovers, [f"upload:{uid}"])
        return web.Response(status=204, headers=self._headers())

    async def file_uploads(self, request: web.Request) -> web.Response:
        from .web import json_response, path_param

        who = await caller(request)
        scope, uid = path_param(request, "scope"), path_param(request, "file_uid")
        base = base_url(request)

        def get(conn: sqlite3.Connection) -> Any:
            _, frow = records.file_record(conn, who, scope, uid, write=False)
            return records.file_out(conn, frow, base, scope)

        return json_response(await self.db.run(get))

    # -- expiry

    async def sweep(self) -> None:
        """Delete the data of expired uploads (their rows answer 410 for a week)."""
        uids = await self.db.run(_expire, time.time(), 7 * 24 * 3600.0)
        # One receiving a PATCH right now is alive (its expiry moves when the PATCH ends).
        removed = await anyio.to_thread.run_sync(
            self.remove_leftovers, [f"upload:{u}" for u in uids if u not in self._busy]
        )
        if removed:
            log.info("swept the data of %d expired uploads", removed)


_MAX_IOV = 512  # well under IOV_MAX (1024 on Linux)


async def _read_body(
    request: web.Request,
    blocks: MemoryObjectSendStream[list[bytes]],
    room: int,
    block: int,
    keep_tail: bool,
) -> None:
    """Hand a request body to ``blocks`` as lists of aiohttp's own buffers, ``block``
    bytes or more each (no joining: no copy). On a broken body the bytes read so far
    are handed over too when ``keep_tail`` (tus: keep what arrived), then it raises."""
    pending: list[bytes] = []
    pending_size = total = 0
    try:
        while True:
            # One buffer at a time (readany would join them: a copy per read).
            chunk, boundary = await request.content.readchunk()
            if not chunk:
                # (b"", True) ends an HTTP chunk of a chunked body; an empty body's reader
                # says the same forever, hence the EOF check.
                if boundary and not request.content.at_eof():
                    continue
                break
            total += len(chunk)
            if total > room:
                raise BadRequest("The body goes past the upload's length")
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= block or len(pending) >= _MAX_IOV:
                await blocks.send(pending)
                pending, pending_size = [], 0
    except (OSError, HttpProcessingError):
        if pending and keep_tail:
            await blocks.send(pending)
        raise
    if pending:
        await blocks.send(pending)


def _write_chunks(fd: int, chunks: list[bytes], pos: int, hashers: list[Any]) -> int:
    """Write ``chunks`` at ``pos`` (one pwritev where the OS has it); returns the bytes."""
    total = sum(len(c) for c in chunks)
    if hasattr(os, "pwritev"):
        views = [memoryview(c) for c in chunks]
        done = 0
        while views:
            n = os.pwritev(fd, views, pos + done)
            done += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]
    else:
        data = memoryview(b"".join(chunks))
        done = 0
        while done < total:
            done += os.pwrite(fd, data[done:], pos + done)
    for h in hashers:
        for c in chunks:
            h.update(c)
    return total


def service(app: web.Application) -> TusService:
    """The app's TusService (created by the app factory)."""
    return app[TUS]


TUS = web.AppKey("aetiket_tus", TusService)
_ = STATE  # re-exported key users import from state
