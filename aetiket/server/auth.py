"""Passwords, tokens and the caller's identity.

Passwords are stored as salted scrypt hashes. Tokens are random strings handed out once;
the database keeps only their SHA-256, with a kind (access or refresh) and an expiry.
Refresh tokens are single-use: redeeming one deletes it and issues a new pair.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import sqlite3
import time

from aiohttp import web

from ..errors import Unauthorized
from ..models import Token

__all__ = (
    "Caller",
    "hash_password",
    "issue_tokens",
    "redeem_refresh_token",
    "token_caller",
    "verify_password",
)

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str) -> str:
    """A salted scrypt hash as ``scrypt$<salt>$<hash>`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Compare in constant time; any malformed stored value is a mismatch."""
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
    except ValueError:
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return hmac.compare_digest(digest, expected)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Caller:
    """The authenticated user of a request."""

    id: int
    username: str
    admin: bool


def issue_tokens(
    conn: sqlite3.Connection, user_id: int, access_ttl: float, refresh_ttl: float
) -> Token:
    """Create an access/refresh pair for ``user_id`` (and drop expired tokens)."""
    now = time.time()
    conn.execute("DELETE FROM tokens WHERE expires < ?", (now,))
    access = secrets.token_urlsafe(32)
    refresh = secrets.token_urlsafe(32)
    conn.executemany(
        "INSERT INTO tokens (hash, kind, user_id, expires) VALUES (?, ?, ?, ?)",
        [
            (_token_hash(access), "access", user_id, now + access_ttl),
            (_token_hash(refresh), "refresh", user_id, now + refresh_ttl),
        ],
    )
    return Token(access_token=access, refresh_token=refresh)


def redeem_refresh_token(
    conn: sqlite3.Connection, refresh_token: str, access_ttl: float, refresh_ttl: float
) -> Token:
    """Trade a valid refresh token for a new pair; the old one stops working."""
    h = _token_hash(refresh_token)
    row = conn.execute(
        "SELECT t.user_id, t.expires, u.active FROM tokens t JOIN users u ON u.id = t.user_id "
        "WHERE t.hash = ? AND t.kind = 'refresh'",
        (h,),
    ).fetchone()
    if row is None or row["expires"] < time.time() or not row["active"]:
        raise Unauthorized("Invalid or expired refresh token")
    conn.execute("DELETE FROM tokens WHERE hash = ?", (h,))
    return issue_tokens(conn, row["user_id"], access_ttl, refresh_ttl)


def bearer_token(request: web.Request) -> str:
    """The bearer token of a request, or 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Not authenticated")
    return token.strip()


def token_caller(conn: sqlite3.Connection, token: str) -> Caller:
    """Look an access token up; 401 when unknown, expired, or its user is inactive."""
    row = conn.execute(
        "SELECT u.id, u.username, u.admin, u.active, t.expires FROM tokens t "
        "JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND t.kind = 'access'",
        (_token_hash(token),),
    ).fetchone()
    if row is None or not row["active"]:
        raise Unauthorized("Could not validate credentials")
    if row["expires"] < time.time():
        raise Unauthorized("Token expired")
    return Caller(id=row["id"], username=row["username"], admin=bool(row["admin"]))
