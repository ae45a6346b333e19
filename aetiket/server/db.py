"""SQLite storage of the local server: schema, connection and the one way to run a query.

All database work runs on one worker thread (SQLite serialises writers anyway), so the
event loop never waits on the disk. A handler passes a plain function ``fn(conn, ...)``
to :meth:`Database.run`; it runs inside one transaction that commits when ``fn`` returns
and rolls back when it raises.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ..errors import ValidationFailed

__all__ = ("Database", "from_db_time", "to_db_time")

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    firstname TEXT NOT NULL,
    lastname TEXT NOT NULL,
    email TEXT NOT NULL,
    pw_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    disabled TEXT,
    admin INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_expires ON tokens(expires);
CREATE TABLE IF NOT EXISTS scopes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    restricted TEXT,
    archived TEXT,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    scope_id INTEGER NOT NULL REFERENCES scopes(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (scope_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_user ON members(user_id);
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL REFERENCES scopes(id) ON DELETE CASCADE,
    uid TEXT NOT NULL,
    name TEXT NOT NULL,
    collected TEXT NOT NULL,
    creator TEXT,
    description TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    duration REAL,
    ranking INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    UNIQUE (scope_id, uid)
);
CREATE INDEX IF NOT EXISTS datasets_order ON datasets(scope_id, created DESC, uid);
CREATE TABLE IF NOT EXISTS dataset_meta (
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dataset_meta_kv ON dataset_meta(key, value, dataset_id);
CREATE INDEX IF NOT EXISTS dataset_meta_ds ON dataset_meta(dataset_id);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL REFERENCES scopes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    UNIQUE (scope_id, name)
);
CREATE TABLE IF NOT EXISTS collection_datasets (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    PRIMARY KEY (collection_id, dataset_id)
);
CREATE INDEX IF NOT EXISTS collection_datasets_ds ON collection_datasets(dataset_id);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL REFERENCES scopes(id) ON DELETE CASCADE,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    uid TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    collected TEXT,
    duration REAL,
    creator TEXT,
    etag TEXT,
    size INTEGER,
    mimetype TEXT NOT NULL,
    altlocation TEXT,
    rating INTEGER NOT NULL DEFAULT 0,
    immutable INTEGER NOT NULL DEFAULT 0,
    filetype TEXT NOT NULL,
    content TEXT,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    UNIQUE (scope_id, uid)
);
CREATE INDEX IF NOT EXISTS files_dataset ON files(dataset_id);
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    file_id INTEGER REFERENCES files(id) ON DELETE CASCADE,
    length INTEGER,
    "offset" INTEGER NOT NULL DEFAULT 0,
    concat TEXT NOT NULL CHECK (concat IN ('none', 'partial', 'final')),
    parts TEXT,
    metadata TEXT,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_file ON uploads(file_id);
CREATE INDEX IF NOT EXISTS uploads_expires ON uploads(completed, expires);
"""


def to_db_time(value: datetime) -> str:
    """Store a datetime as fixed-width UTC ISO text, so text order is time order."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # the contract: naive means UTC
    try:
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise ValidationFailed(
            [
                {
                    "loc": ["body"],
                    "msg": f"Datetime {value.isoformat()} is out of range in UTC",
                    "type": "value_error",
                }
            ]
        ) from None


def from_db_time(value: str | None) -> datetime | None:
    """Read back what :func:`to_db_time` stored."""
    return None if value is None else datetime.fromisoformat(value)


class Database:
    """One SQLite connection (WAL mode) used from one worker thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # One thread at a time: the connection is shared, SQLite has one writer anyway.
        self._limiter = anyio.CapacityLimiter(1)

    def open(self) -> None:
        """Open (and create) the database; cheap, so it runs on the calling thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(SCHEMA)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one transaction on the calling thread."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("database is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in one transaction on the database thread."""
        call = functools.partial(fn, **kwargs) if kwargs else fn
        return await anyio.to_thread.run_sync(
            self.run_sync, call, *args, limiter=self._limiter, abandon_on_cancel=False
        )
