"""The records of the local server: users, scopes, datasets, metadata, collections, files.

Each public function takes an open SQLite connection as its first argument and runs inside
the transaction :meth:`Database.run` opened for it; it checks the caller's access, does the
work and returns the contract's model, or raises an ``ApiError`` leaf.

The access rule (ETIKET_API.md, Scopes): a caller who is neither a member of the scope nor
an admin gets 403 for the scope and everything in it; an archived scope is read-only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import msgspec

from ..errors import Conflict, Forbidden, NotFound
from ..models import (
    CollectionDatasetOut,
    CollectionIn,
    CollectionOut,
    CollectionQuery,
    CollectionUpdate,
    DatasetIn,
    DatasetOut,
    DatasetQuery,
    DatasetUpdate,
    FileDatasetIn,
    FileDatasetOut,
    FileIn,
    FileOut,
    FileStatus,
    FileType,
    FileUpdate,
    ScopeIn,
    ScopeOut,
    ScopeQuery,
    ScopeUpdate,
    UploadOut,
    UserIn,
    UserOut,
    UserUpdate,
)
from .auth import Caller
from .db import from_db_time, to_db_time

__all__ = [
    "add_member",
    "create_collection",
    "create_dataset",
    "create_file",
    "create_scope",
    "create_user",
    "dataset_collection",
    "delete_dataset",
    "delete_file",
    "file_record",
    "get_collection",
    "get_dataset",
    "get_me",
    "get_scope",
    "get_user",
    "list_collections",
    "list_datasets",
    "list_scopes",
    "list_users",
    "remove_member",
    "scope_access",
    "update_collection",
    "update_dataset",
    "update_file",
    "update_meta",
    "update_scope",
    "update_user",
]

Row = sqlite3.Row


def now_text() -> str:
    return to_db_time(datetime.now(timezone.utc))


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else to_db_time(value)


def _time(value: str) -> datetime:
    parsed = from_db_time(value)
    assert parsed is not None
    return parsed


# ---------------------------------------------------------------------------- access


def scope_access(conn: sqlite3.Connection, caller: Caller, name: str, *, write: bool) -> Row:
    """The scope row if the caller may read (or write) it; 404, or 403 by the access rule."""
    row: Row | None = conn.execute("SELECT * FROM scopes WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"Scope '{name}' not found")
    if not caller.admin:
        member = conn.execute(
            "SELECT 1 FROM members WHERE scope_id = ? AND user_id = ?", (row["id"], caller.id)
        ).fetchone()
        if member is None:
            raise Forbidden(f"You are not a member of scope '{name}'")
    if write and row["archived"] is not None:
        raise Forbidden(f"Scope '{name}' is archived and read-only")
    return row


def _require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise Forbidden("Only an admin may manage users")


# ---------------------------------------------------------------------------- scopes


def _scope_out(row: Row) -> ScopeOut:
    return ScopeOut(
        name=row["name"],
        description=row["description"],
        restricted=from_db_time(row["restricted"]),
        archived=from_db_time(row["archived"]),
        created=from_db_time(row["created"]),
        modified=from_db_time(row["modified"]),
    )


def create_scope(conn: sqlite3.Connection, caller: Caller, body: ScopeIn) -> ScopeOut:
    if conn.execute("SELECT 1 FROM scopes WHERE name = ?", (body.name,)).fetchone():
        raise Conflict(f"Scope '{body.name}' already exists")
    now = now_text()
    cur = conn.execute(
        "INSERT INTO scopes (name, description, restricted, archived, created, modified) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            body.name,
            body.description,
            _opt_time(body.restricted),
            _opt_time(body.archived),
            now,
            now,
        ),
    )
    conn.execute(
        "INSERT INTO members (scope_id, user_id) VALUES (?, ?)", (cur.lastrowid, caller.id)
    )
    return get_scope(conn, caller, body.name)


def get_scope(conn: sqlite3.Connection, caller: Caller, name: str) -> ScopeOut:
    return _scope_out(scope_access(conn, caller, name, write=False))


def list_scopes(conn: sqlite3.Connection, caller: Caller, query: ScopeQuery) -> list[ScopeOut]:
    sql = "SELECT s.* FROM scopes s"
    args: list[Any] = []
    where: list[str] = []
    if not caller.admin:
        sql += " JOIN members m ON m.scope_id = s.id AND m.user_id = ?"
        args.append(caller.id)
    if query.name:
        where.append("substr(s.name, 1, ?) = ?")
        args += [len(query.name), query.name]
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY s.name LIMIT ? OFFSET ?"
    args += [query.limit, query.offset]
    return [_scope_out(r) for r in conn.execute(sql, args)]


def update_scope(
    conn: sqlite3.Connection, caller: Caller, name: str, body: ScopeUpdate
) -> ScopeOut:
    # Not a "write" under the archived rule: un-archiving must stay possible.
    row = scope_access(conn, caller, name, write=False)
    changes: dict[str, Any] = {}
    if body.description is not msgspec.UNSET:
        changes["description"] = body.description
    if body.restricted is not msgspec.UNSET:
        changes["restricted"] = _opt_time(body.restricted)
    if body.archived is not msgspec.UNSET:
        changes["archived"] = _opt_time(body.archived)
    _update_row(conn, "scopes", row["id"], changes)
    return get_scope(conn, caller, name)


def _user_row(conn: sqlite3.Connection, username: str) -> Row:
    row: Row | None = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise NotFound(f"User '{username}' not found")
    return row


def add_member(conn: sqlite3.Connection, caller: Caller, scope: str, username: str) -> ScopeOut:
    row = scope_access(conn, caller, scope, write=False)
    user = _user_row(conn, username)
    conn.execute(
        "INSERT OR IGNORE INTO members (scope_id, user_id) VALUES (?, ?)", (row["id"], user["id"])
    )
    return _scope_out(row)


def remove_member(conn: sqlite3.Connection, caller: Caller, scope: str, username: str) -> ScopeOut:
    row = scope_access(conn, caller, scope, write=False)
    user = _user_row(conn, username)
    cur = conn.execute(
        "DELETE FROM members WHERE scope_id = ? AND user_id = ?", (row["id"], user["id"])
    )
    if cur.rowcount == 0:
        raise NotFound(f"User '{username}' is not a member of scope '{scope}'")
    return _scope_out(row)


# ---------------------------------------------------------------------------- users


def _user_out(conn: sqlite3.Connection, row: Row) -> UserOut:
    scopes = conn.execute(
        "SELECT s.* FROM scopes s JOIN members m ON m.scope_id = s.id WHERE m.user_id = ? "
        "ORDER BY s.name",
        (row["id"],),
    )
    return UserOut(
        username=row["username"],
        firstname=row["firstname"],
        lastname=row["lastname"],
        email=row["email"],
        active=bool(row["active"]),
        disabled=from_db_time(row["disabled"]),
        admin=bool(row["admin"]),
        created=from_db_time(row["created"]),
        modified=from_db_time(row["modified"]),
        scopes=[_scope_out(s) for s in scopes],
    )


def create_user(
    conn: sqlite3.Connection, caller: Caller | None, body: UserIn, pw_hash: str
) -> UserOut:
    """Create a user; ``caller`` None is the server itself (the first admin)."""
    if caller is not None:
        _require_admin(caller)
    if conn.execute("SELECT 1 FROM users WHERE username = ?", (body.username,)).fetchone():
        raise Conflict(f"User '{body.username}' already exists")
    now = now_text()
    conn.execute(
        "INSERT INTO users (username, firstname, lastname, email, pw_hash, active, disabled, "
        "admin, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            body.username,
            body.firstname,
            body.lastname,
            body.email,
            pw_hash,
            int(body.active),
            _opt_time(body.disabled),
            int(body.admin),
            now,
            now,
        ),
    )
    return _user_out(conn, _user_row(conn, body.username))


def get_user(conn: sqlite3.Connection, caller: Caller, username: str) -> UserOut:
    """Admins only (the contract's users API); see :func:`get_me`."""
    _require_admin(caller)
    return _user_out(conn, _user_row(conn, username))


def get_me(conn: sqlite3.Connection, caller: Caller) -> UserOut:
    return _user_out(conn, _user_row(conn, caller.username))


def list_users(conn: sqlite3.Connection, caller: Caller, offset: int, limit: int) -> list[UserOut]:
    _require_admin(caller)
    rows = conn.execute(
        "SELECT * FROM users ORDER BY username LIMIT ? OFFSET ?", (limit, offset)
    ).fetchall()
    return [_user_out(conn, r) for r in rows]


def update_user(
    conn: sqlite3.Connection,
    caller: Caller,
    username: str,
    body: UserUpdate,
    pw_hash: str | None,
) -> UserOut:
    _require_admin(caller)
    row = _user_row(conn, username)
    changes: dict[str, Any] = {}
    for field in ("username", "firstname", "lastname", "email"):
        value = getattr(body, field)
        if value is not msgspec.UNSET:
            changes[field] = value
    if body.active is not msgspec.UNSET:
        active = body.active if isinstance(body.active, bool) else body.active.lower() == "true"
        changes["active"] = int(active)
    if body.admin is not msgspec.UNSET:
        changes["admin"] = int(body.admin)
    if body.disabled is not msgspec.UNSET:
        changes["disabled"] = _opt_time(body.disabled)
    if pw_hash is not None:
        changes["pw_hash"] = pw_hash
    new_name = changes.get("username", username)
    if (
        new_name != username
        and conn.execute("SELECT 1 FROM users WHERE username = ?", (new_name,)).fetchone()
    ):
        raise Conflict(f"User '{new_name}' already exists")
    _update_row(conn, "users", row["id"], changes)
    if changes.get("active") == 0 or "pw_hash" in changes:
        conn.execute("DELETE FROM tokens WHERE user_id = ?", (row["id"],))
    return _user_out(conn, _user_row(conn, new_name))


# ---------------------------------------------------------------------------- files


def download_link(base_url: str, scope: str, uid: str) -> str:
    return f"{base_url}/api/v1/files/{quote(scope, safe='')}/{quote(uid, safe='')}"


# A file is pending while one of its uploads is open; the stored status says only whether
# content exists, so an upload that expires or is terminated needs no status update.
FILE_SELECT = (
    "SELECT f.*, EXISTS (SELECT 1 FROM uploads u WHERE u.file_id = f.id AND u.completed = 0 "
    "AND u.expires >= :now) AS open_upload FROM files f"
)


def _file_fields(row: Row, base_url: str, scope: str) -> dict[str, Any]:
    return {
        "name": row["name"],
        "uid": row["uid"],
        "status": FileStatus.pending if row["open_upload"] else FileStatus(row["status"]),
        "collected": from_db_time(row["collected"]),
        "duration": row["duration"],
        "creator": row["creator"],
        "etag": row["etag"],
        "size": row["size"],
        "mimetype": row["mimetype"],
        "altlocation": row["altlocation"],
        "rating": row["rating"],
        "immutable": bool(row["immutable"]),
        "filetype": FileType(row["filetype"]),
        "created": from_db_time(row["created"]),
        "modified": from_db_time(row["modified"]),
        "download_link": download_link(base_url, scope, row["uid"]),
    }


def upload_out(row: Row) -> UploadOut:
    return UploadOut(
        uid=row["uid"],
        offset=row["offset"],
        length=row["length"],
        concat=row["concat"] != "none",
        completed=bool(row["completed"]),
        expires=None if row["completed"] else datetime.fromtimestamp(row["expires"], timezone.utc),
    )


def file_out(conn: sqlite3.Connection, row: Row, base_url: str, scope: str) -> FileOut:
    uploads = conn.execute(
        "SELECT * FROM uploads WHERE file_id = ? ORDER BY created, id", (row["id"],)
    )
    return FileOut(
        scope=scope, uploads=[upload_out(u) for u in uploads], **_file_fields(row, base_url, scope)
    )


def file_record(
    conn: sqlite3.Connection, caller: Caller, scope: str, uid: str, *, write: bool
) -> tuple[Row, Row]:
    """(scope row, file row) if the caller may read (or write) the file; 404 otherwise."""
    srow = scope_access(conn, caller, scope, write=write)
    frow: Row | None = conn.execute(
        f"{FILE_SELECT} WHERE f.scope_id = :scope AND f.uid = :uid",
        {"now": time.time(), "scope": srow["id"], "uid": uid},
    ).fetchone()
    if frow is None:
        raise NotFound(f"File '{scope}/{uid}' not found")
    return srow, frow


def _insert_file(
    conn: sqlite3.Connection, scope_row: Row, dataset_id: int, body: FileDatasetIn, now: str
) -> None:
    if conn.execute(
        "SELECT 1 FROM files WHERE scope_id = ? AND uid = ?", (scope_row["id"], body.uid)
    ).fetchone():
        raise Conflict(f"File '{scope_row['name']}/{body.uid}' already exists")
    conn.execute(
        "INSERT INTO files (scope_id, dataset_id, uid, name, status, collected, duration, "
        "creator, etag, size, mimetype, altlocation, rating, immutable, filetype, created, "
        "modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            scope_row["id"],
            dataset_id,
            body.uid,
            body.name,
            FileStatus.unavailable.value,
            _opt_time(body.collected),
            body.duration,
            body.creator,
            body.etag,
            body.size,
            body.mimetype,
            body.altlocation,
            body.rating,
            int(body.immutable),
            body.filetype.value,
            now,
            now,
        ),
    )


def create_file(conn: sqlite3.Connection, caller: Caller, body: FileIn, base_url: str) -> FileOut:
    srow = scope_access(conn, caller, body.scope, write=True)
    drow = _dataset_row(conn, srow, body.dataset_uid)
    now = now_text()
    _insert_file(conn, srow, drow["id"], body, now)
    conn.execute("UPDATE datasets SET modified = ? WHERE id = ?", (now, drow["id"]))
    _, frow = file_record(conn, caller, body.scope, body.uid, write=False)
    return file_out(conn, frow, base_url, body.scope)


def update_file(
    conn: sqlite3.Connection,
    caller: Caller,
    scope: str,
    uid: str,
    body: FileUpdate,
    base_url: str,
) -> FileOut:
    _, frow = file_record(conn, caller, scope, uid, write=True)
    changes: dict[str, Any] = {}
    for field in ("name", "mimetype", "altlocation", "rating"):
        value = getattr(body, field)
        if value is not msgspec.UNSET:
            changes[field] = value
    if body.filetype is not msgspec.UNSET:
        changes["filetype"] = body.filetype.value
    _update_row(conn, "files", frow["id"], changes)
    _, frow = file_record(conn, caller, scope, uid, write=False)
    return file_out(conn, frow, base_url, scope)


def delete_file(conn: sqlite3.Connection, caller: Caller, scope: str, uid: str) -> list[str]:
    """Delete a file record; returns the content and upload names to remove from disk."""
    _, frow = file_record(conn, caller, scope, uid, write=True)
    leftovers = _disk_names(conn, [frow["id"]])
    conn.execute("DELETE FROM files WHERE id = ?", (frow["id"],))
    return leftovers


def _disk_names(conn: sqlite3.Connection, file_ids: Sequence[int]) -> list[str]:
    marks = ",".join("?" * len(file_ids))
    names = [
        r["content"]
        for r in conn.execute(f"SELECT content FROM files WHERE id IN ({marks})", file_ids)
        if r["content"]
    ]
    names += [
        "upload:" + r["uid"]
        for r in conn.execute(f"SELECT uid FROM uploads WHERE file_id IN ({marks})", file_ids)
    ]
    return names


# ---------------------------------------------------------------------------- datasets


def _dataset_row(conn: sqlite3.Connection, scope_row: Row, uid: str) -> Row:
    row: Row | None = conn.execute(
        "SELECT * FROM datasets WHERE scope_id = ? AND uid = ?", (scope_row["id"], uid)
    ).fetchone()
    if row is None:
        raise NotFound(f"Dataset '{scope_row['name']}/{uid}' not found")
    return row


def _dataset_outs(
    conn: sqlite3.Connection, rows: Sequence[Row], scope: str, base_url: str
) -> list[DatasetOut]:
    """Build many DatasetOut with one query for their files and one for their collections."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    marks = ",".join("?" * len(ids))
    files: dict[int, list[FileDatasetOut]] = {i: [] for i in ids}
    for f in conn.execute(
        f"{FILE_SELECT.replace(':now', '?')} WHERE f.dataset_id IN ({marks}) "
        "ORDER BY f.created, f.id",
        [time.time(), *ids],
    ):
        files[f["dataset_id"]].append(FileDatasetOut(**_file_fields(f, base_url, scope)))
    colls: dict[int, list[CollectionDatasetOut]] = {i: [] for i in ids}
    for c in conn.execute(
        "SELECT cd.dataset_id, c.name, c.description FROM collection_datasets cd "
        f"JOIN collections c ON c.id = cd.collection_id WHERE cd.dataset_id IN ({marks}) "
        "ORDER BY c.name",
        ids,
    ):
        colls[c["dataset_id"]].append(
            CollectionDatasetOut(name=c["name"], description=c["description"])
        )
    return [
        DatasetOut(
            name=r["name"],
            uid=r["uid"],
            scope=scope,
            collected=_time(r["collected"]),
            meta=json.loads(r["meta"]),
            ranking=r["ranking"],
            created=_time(r["created"]),
            modified=_time(r["modified"]),
            files=files[r["id"]],
            collections=colls[r["id"]],
            creator=r["creator"],
            description=r["description"],
            duration=r["duration"],
        )
        for r in rows
    ]


def _meta_rows(meta: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for key, value in meta.items():
        for item in value if isinstance(value, list) else [value]:
            yield key, item


def _store_meta(conn: sqlite3.Connection, dataset_id: int, meta: dict[str, Any]) -> None:
    conn.execute("UPDATE datasets SET meta = ? WHERE id = ?", (json.dumps(meta), dataset_id))
    conn.execute("DELETE FROM dataset_meta WHERE dataset_id = ?", (dataset_id,))
    conn.executemany(
        "INSERT INTO dataset_meta (dataset_id, key, value) VALUES (?, ?, ?)",
        [(dataset_id, k, v) for k, v in _meta_rows(meta)],
    )


def create_dataset(
    conn: sqlite3.Connection, caller: Caller, body: DatasetIn, base_url: str
) -> DatasetOut:
    srow = scope_access(conn, caller, body.scope, write=True)
    if conn.execute(
        "SELECT 1 FROM datasets WHERE scope_id = ? AND uid = ?", (srow["id"], body.uid)
    ).fetchone():
        raise Conflict(f"Dataset '{body.scope}/{body.uid}' already exists")
    uids = [f.uid for f in body.files]
    if len(set(uids)) != len(uids):
        raise Conflict("Two files of the dataset share a uid")
    now = now_text()
    cur = conn.execute(
        "INSERT INTO datasets (scope_id, uid, name, collected, creator, description, duration, "
        "ranking, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            srow["id"],
            body.uid,
            body.name,
            to_db_time(body.collected),
            body.creator,
            body.description,
            body.duration,
            body.ranking,
            now,
            now,
        ),
    )
    dataset_id = cur.lastrowid
    assert dataset_id is not None
    _store_meta(conn, dataset_id, body.meta)
    for f in body.files:
        _insert_file(conn, srow, dataset_id, f, now)
    return get_dataset(conn, caller, body.scope, body.uid, base_url)


def get_dataset(
    conn: sqlite3.Connection, caller: Caller, scope: str, uid: str, base_url: str
) -> DatasetOut:
    srow = scope_access(conn, caller, scope, write=False)
    return _dataset_outs(conn, [_dataset_row(conn, srow, uid)], scope, base_url)[0]


def list_datasets(
    conn: sqlite3.Connection, caller: Caller, q: DatasetQuery, base_url: str
) -> list[DatasetOut]:
    srow = scope_access(conn, caller, q.scope, write=False)
    where = ["d.scope_id = ?", "d.ranking >= ?"]
    args: list[Any] = [srow["id"], q.ranking]
    if q.name:
        where.append("substr(d.name, 1, ?) = ?")
        args += [len(q.name), q.name]
    if q.uid:
        where.append("d.uid = ?")
        args.append(q.uid)
    if q.since is not None:
        where.append("d.collected >= ?")
        args.append(to_db_time(q.since))
    if q.until is not None:
        where.append("d.collected <= ?")
        args.append(to_db_time(q.until))
    if q.collection:
        where.append(
            "EXISTS (SELECT 1 FROM collection_datasets cd JOIN collections c "
            "ON c.id = cd.collection_id WHERE cd.dataset_id = d.id AND c.name = ?)"
        )
        args.append(q.collection)
    filters: list[tuple[str, str]] = [
        (key, value)
        for key, value in (
            ("sample", q.sample),
            ("fridge", q.fridge),
            ("setup", q.setup),
            ("measurement_type", q.measurement_type),
        )
        if value is not None
    ]
    filters += [("keywords", v) for v in q.keywords]
    filters += [("variablesMeasured", v) for v in q.variables_measured]
    for key, value in filters:
        where.append(
            "EXISTS (SELECT 1 FROM dataset_meta m WHERE m.dataset_id = d.id "
            "AND m.key = ? AND m.value = ?)"
        )
        args += [key, value]
    if q.preview:
        where.append(
            "EXISTS (SELECT 1 FROM files f WHERE f.dataset_id = d.id AND f.filetype = 'preview')"
        )
    sql = (
        "SELECT d.* FROM datasets d WHERE "
        + " AND ".join(where)
        + " ORDER BY d.created DESC, d.uid ASC LIMIT ? OFFSET ?"
    )
    args += [q.limit, q.offset]
    return _dataset_outs(conn, conn.execute(sql, args).fetchall(), q.scope, base_url)


def update_dataset(
    conn: sqlite3.Connection,
    caller: Caller,
    scope: str,
    uid: str,
    body: DatasetUpdate,
    base_url: str,
) -> DatasetOut:
    srow = scope_access(conn, caller, scope, write=True)
    drow = _dataset_row(conn, srow, uid)
    changes: dict[str, Any] = {}
    for field in ("name", "duration", "description", "creator", "ranking"):
        value = getattr(body, field)
        if value is not msgspec.UNSET:
            changes[field] = value
    if body.collected is not msgspec.UNSET:
        changes["collected"] = to_db_time(body.collected)
    _update_row(conn, "datasets", drow["id"], changes)
    return get_dataset(conn, caller, scope, uid, base_url)


def delete_dataset(conn: sqlite3.Connection, caller: Caller, scope: str, uid: str) -> list[str]:
    """Delete a dataset and its files; returns the names to remove from disk."""
    srow = scope_access(conn, caller, scope, write=True)
    drow = _dataset_row(conn, srow, uid)
    file_ids = [
        r["id"] for r in conn.execute("SELECT id FROM files WHERE dataset_id = ?", (drow["id"],))
    ]
    leftovers = _disk_names(conn, file_ids) if file_ids else []
    conn.execute("DELETE FROM datasets WHERE id = ?", (drow["id"],))
    return leftovers


def update_meta(
    conn: sqlite3.Connection,
    caller: Caller,
    scope: str,
    uid: str,
    mode: str,
    meta: dict[str, Any] | None,
    keys: list[str] | None,
    base_url: str,
) -> DatasetOut:
    """``mode`` add merges keys in, set replaces the whole object, delete removes ``keys``."""
    srow = scope_access(conn, caller, scope, write=True)
    drow = _dataset_row(conn, srow, uid)
    current: dict[str, Any] = json.loads(drow["meta"])
    if mode == "add":
        current.update(meta or {})
    elif mode == "set":
        current = dict(meta or {})
    else:
        for key in keys or []:
            current.pop(key, None)
    _store_meta(conn, drow["id"], current)
    conn.execute("UPDATE datasets SET modified = ? WHERE id = ?", (now_text(), drow["id"]))
    return get_dataset(conn, caller, scope, uid, base_url)


# ---------------------------------------------------------------------------- collections


def _collection_out(row: Row, scope: str) -> CollectionOut:
    return CollectionOut(
        name=row["name"],
        scope=scope,
        description=row["description"],
        created=_time(row["created"]),
        modified=_time(row["modified"]),
    )


def _collection_row(conn: sqlite3.Connection, scope_row: Row, name: str) -> Row:
    row: Row | None = conn.execute(
        "SELECT * FROM collections WHERE scope_id = ? AND name = ?", (scope_row["id"], name)
    ).fetchone()
    if row is None:
        raise NotFound(f"Collection '{scope_row['name']}/{name}' not found")
    return row


def create_collection(
    conn: sqlite3.Connection, caller: Caller, body: CollectionIn
) -> CollectionOut:
    srow = scope_access(conn, caller, body.scope, write=True)
    if conn.execute(
        "SELECT 1 FROM collections WHERE scope_id = ? AND name = ?", (srow["id"], body.name)
    ).fetchone():
        raise Conflict(f"Collection '{body.scope}/{body.name}' already exists")
    now = now_text()
    conn.execute(
        "INSERT INTO collections (scope_id, name, description, created, modified) "
        "VALUES (?, ?, ?, ?, ?)",
        (srow["id"], body.name, body.description, now, now),
    )
    return _collection_out(_collection_row(conn, srow, body.name), body.scope)


def get_collection(
    conn: sqlite3.Connection, caller: Caller, scope: str, name: str
) -> CollectionOut:
    srow = scope_access(conn, caller, scope, write=False)
    return _collection_out(_collection_row(conn, srow, name), scope)


def list_collections(
    conn: sqlite3.Connection, caller: Caller, q: CollectionQuery
) -> list[CollectionOut]:
    srow = scope_access(conn, caller, q.scope, write=False)
    sql = "SELECT * FROM collections WHERE scope_id = ?"
    args: list[Any] = [srow["id"]]
    if q.name:
        sql += " AND substr(name, 1, ?) = ?"
        args += [len(q.name), q.name]
    sql += " ORDER BY name LIMIT ? OFFSET ?"
    args += [q.limit, q.offset]
    return [_collection_out(r, q.scope) for r in conn.execute(sql, args)]


def update_collection(
    conn: sqlite3.Connection, caller: Caller, scope: str, name: str, body: CollectionUpdate
) -> CollectionOut:
    srow = scope_access(conn, caller, scope, write=True)
    row = _collection_row(conn, srow, name)
    changes: dict[str, Any] = {}
    if body.name is not msgspec.UNSET and body.name != name:
        if conn.execute(
            "SELECT 1 FROM collections WHERE scope_id = ? AND name = ?", (srow["id"], body.name)
        ).fetchone():
            raise Conflict(f"Collection '{scope}/{body.name}' already exists")
        changes["name"] = body.name
    if body.description is not msgspec.UNSET:
        changes["description"] = body.description
    _update_row(conn, "collections", row["id"], changes)
    return _collection_out(_collection_row(conn, srow, changes.get("name", name)), scope)


def dataset_collection(
    conn: sqlite3.Connection,
    caller: Caller,
    scope: str,
    name: str,
    dataset_uid: str,
    *,
    add: bool,
) -> CollectionOut:
    """Put a dataset into a collection (``add``) or take it out."""
    srow = scope_access(conn, caller, scope, write=True)
    crow = _collection_row(conn, srow, name)
    drow = _dataset_row(conn, srow, dataset_uid)
    if add:
        conn.execute(
            "INSERT OR IGNORE INTO collection_datasets (collection_id, dataset_id) VALUES (?, ?)",
            (crow["id"], drow["id"]),
        )
    else:
        cur = conn.execute(
            "DELETE FROM collection_datasets WHERE collection_id = ? AND dataset_id = ?",
            (crow["id"], drow["id"]),
        )
        if cur.rowcount == 0:
            raise NotFound(f"Dataset '{scope}/{dataset_uid}' is not in collection '{name}'")
    _update_row(conn, "collections", crow["id"], {})
    return _collection_out(_collection_row(conn, srow, name), scope)


# ---------------------------------------------------------------------------- helpers


_UPDATABLE = {
    "scopes": {"description", "restricted", "archived"},
    "users": {
        "username",
        "firstname",
        "lastname",
        "email",
        "active",
        "admin",
        "disabled",
        "pw_hash",
    },
    "datasets": {"name", "collected", "duration", "description", "creator", "ranking"},
    "collections": {"name", "description"},
    "files": {"name", "mimetype", "altlocation", "rating", "filetype"},
}


def _update_row(conn: sqlite3.Connection, table: str, row_id: int, changes: dict[str, Any]) -> None:
    """Apply ``changes`` and bump ``modified``; column names come from a fixed allow-list."""
    allowed = _UPDATABLE[table]
    assert set(changes) <= allowed, set(changes) - allowed
    cols = [*changes, "modified"]
    values = [*changes.values(), now_text()]
    assignments = ", ".join(f"{c} = ?" for c in cols)
    conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*values, row_id))
