"""A thin aiohttp helper for talking to a server at the HTTP level in tests.

It is deliberately not aetiket's client: server tests check the wire, status by status.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy


@dataclasses.dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Api:
    """Requests to one server as one user (or anonymous)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None = None) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.token = token
        self.refresh_token: str | None = None

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if self.token and "Authorization" not in out:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        url = path if path.startswith("http") else self.url + path
        async with self.session.request(
            method,
            url,
            json=json,
            data=data,
            params=params,
            headers=self._headers(headers),
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            return Answer(resp.status, resp.headers, body)

    async def login(self, username: str, password: str) -> Api:
        ans = await self.request(
            "POST", "/api/v1/token", data={"username": username, "password": password, "scope": ""}
        )
        assert ans.status == 200, ans.body
        tok = ans.json()
        self.token, self.refresh_token = tok["access_token"], tok["refresh_token"]
        return self

    # -- conveniences used by many tests

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        ans = await self.request(method, path, **kw)
        assert ans.status == 200, f"{method} {path}: {ans.status} {ans.body[:500]!r}"
        return ans.json()

    async def new_user(
        self, username: str | None = None, password: str = "pw-" + "x" * 8, admin: bool = False
    ) -> tuple[str, str]:
        name = username or f"user-{uuid.uuid4().hex[:8]}"
        await self.ok(
            "POST",
            "/api/v1/users/",
            json={
                "username": name,
                "firstname": "F",
                "lastname": "L",
                "email": f"{name}@example.org",
                "hashed_password": password,
                "admin": admin,
            },
        )
        return name, password

    async def new_scope(self, name: str | None = None) -> str:
        scope = name or f"scope-{uuid.uuid4().hex[:8]}"
        await self.ok("POST", "/api/v1/scopes/", json={"name": scope, "description": "test"})
        return scope

    async def new_file(
        self,
        scope: str,
        *,
        dataset_uid: str | None = None,
        file_uid: str | None = None,
        **fields: Any,
    ) -> str:
        ds = dataset_uid or f"ds-{uuid.uuid4().hex[:8]}"
        fuid = file_uid or f"f-{uuid.uuid4().hex[:8]}"
        await self.ok(
            "POST",
            "/api/v1/datasets/",
            json={
                "name": "dataset",
                "uid": ds,
                "scope": scope,
                "files": [{"name": "file.bin", "uid": fuid, **fields}],
            },
        )
        return fuid


def tus_metadata(**pairs: str) -> str:
    """An Upload-Metadata header value."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


@asynccontextmanager
async def api_for(
    url: str, username: str | None = None, password: str | None = None
) -> AsyncIterator[Api]:
    """An Api on its own session, logged in when credentials are given."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        api = Api(session, url)
        if username is not None and password is not None:
            await api.login(username, password)
        yield api
