"""Small helpers shared by the HTTP-level server tests (tests/server/test_*.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.conftest import ServerProcess
from tests.http import OCTETS, TUS, Answer, Api, api_for, tus_metadata

API = "/api/v1"


def uid(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_no_nulls(value: Any, where: str = "$") -> None:
    """The shape rule: an optional field with no value is omitted, never sent as null."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert item is not None, f"{where}.{key} is null"
            assert_no_nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert item is not None, f"{where}[{i}] is null"
            assert_no_nulls(item, f"{where}[{i}]")


def assert_error(ans: Answer, status: int) -> str:
    """A JSON error body `{"detail": "<message>"}` with this status; returns the message."""
    assert ans.status == status, f"expected {status}, got {ans.status}: {ans.body[:300]!r}"
    assert ans.headers["Content-Type"].startswith("application/json"), ans.headers
    body = ans.json()
    assert set(body) == {"detail"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    detail: str = body["detail"]
    return detail


def assert_422(ans: Answer, loc: list[Any] | None = None) -> list[dict[str, Any]]:
    """A 422 body `{"detail": [{loc, msg, type}, ...]}`; ``loc`` must be one item's loc."""
    assert ans.status == 422, f"expected 422, got {ans.status}: {ans.body[:300]!r}"
    assert ans.headers["Content-Type"].startswith("application/json"), ans.headers
    body = ans.json()
    assert set(body) == {"detail"}, body
    items = body["detail"]
    assert isinstance(items, list) and items, body
    for item in items:
        assert set(item) == {"loc", "msg", "type"}, item
        assert isinstance(item["loc"], list) and item["loc"], item
        assert isinstance(item["msg"], str) and isinstance(item["type"], str), item
    if loc is not None:
        assert loc in [item["loc"] for item in items], items
    return list(items)


async def ok(api: Api, method: str, path: str, **kw: Any) -> Any:
    """A 200 JSON answer without nulls anywhere."""
    body = await api.ok(method, path, **kw)
    assert_no_nulls(body)
    return body


async def new_dataset(
    api: Api, scope: str, uid_: str | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": "dataset",
        "uid": uid_ or uid("ds"),
        "scope": scope,
        "collected": "2026-01-01T00:00:00+00:00",
        **fields,
    }
    out: dict[str, Any] = await ok(api, "POST", f"{API}/datasets/", json=body)
    return out


async def upload(api: Api, scope: str, file_uid: str, data: bytes) -> str:
    """Upload ``data`` as the content of a file in one creation-with-upload request."""
    ans = await api.request(
        "POST",
        f"{API}/uploads/",
        data=data,
        headers={
            **TUS,
            **OCTETS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": tus_metadata(scope=scope, uid=file_uid),
        },
    )
    assert ans.status == 201, ans.body
    assert ans.headers["Upload-Offset"] == str(len(data)), dict(ans.headers)
    location: str = ans.headers["Location"]
    return location


async def open_upload(api: Api, scope: str, file_uid: str, length: int) -> str:
    """Create an upload without data; returns its Location."""
    ans = await api.request(
        "POST",
        f"{API}/uploads/",
        headers={
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": tus_metadata(scope=scope, uid=file_uid),
        },
    )
    assert ans.status == 201, ans.body
    location: str = ans.headers["Location"]
    return location


@asynccontextmanager
async def admin_api(server: ServerProcess) -> AsyncIterator[Api]:
    async with api_for(server.url, server.admin_user, server.admin_password) as api:
        yield api


@asynccontextmanager
async def user_api(
    server: ServerProcess, admin: Api, *, admin_flag: bool = False
) -> AsyncIterator[Api]:
    """A fresh user (created by ``admin``), logged in on its own session."""
    name, password = await admin.new_user(admin=admin_flag)
    async with api_for(server.url, name, password) as api:
        yield api


async def me(api: Api) -> str:
    name: str = (await api.ok("GET", f"{API}/users/me"))["username"]
    return name
