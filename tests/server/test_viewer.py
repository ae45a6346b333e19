"""The viewer (ETIKET_API.md, "Viewer"): an HTML page of the caller's scopes and datasets."""

from __future__ import annotations

import pytest

from tests.conftest import ServerProcess
from tests.http import api_for

from .helpers import API, admin_api, assert_error, new_dataset, ok, upload, user_api

pytestmark = pytest.mark.anyio


async def test_viewer_needs_a_token(server: ServerProcess) -> None:
    async with api_for(server.url) as anon:
        ans = await anon.request("GET", "/viewer")
        assert_error(ans, 401)
        assert ans.headers["WWW-Authenticate"] == "Bearer"


async def test_viewer_shows_the_callers_scopes_and_datasets(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        mine = await user.new_scope()
        await ok(user, "PATCH", f"{API}/scopes/{mine}", json={"description": "my lab book"})
        await new_dataset(
            user,
            mine,
            "ds-visible",
            name="Cooldown 42",
            files=[{"name": "trace.h5", "uid": "f-trace"}],
        )
        await upload(user, mine, "f-trace", b"trace")
        hidden = await admin.new_scope()
        await new_dataset(admin, hidden, "ds-hidden", name="Secret run")
        ans = await user.request("GET", "/viewer")
        assert ans.status == 200, ans.body
        assert ans.headers["Content-Type"].startswith("text/html")
        page = ans.body.decode()
        assert page.lstrip().lower().startswith("<!doctype html")
        assert mine in page and "my lab book" in page
        assert "Cooldown 42" in page and "ds-visible" in page
        assert "trace.h5" in page
        assert f"{server.url}/api/v1/files/{mine}/f-trace" in page
        assert hidden not in page and "Secret run" not in page


async def test_viewer_escapes_html(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        scope = await user.new_scope()
        await ok(user, "PATCH", f"{API}/scopes/{scope}", json={"description": "<i>desc</i> & more"})
        await new_dataset(
            user,
            scope,
            "ds-x",
            name="<script>alert(1)</script>",
            files=[{"name": "<b>f</b>", "uid": "f-x"}],
        )
        ans = await user.request("GET", "/viewer")
        assert ans.status == 200
        page = ans.body.decode()
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<b>f</b>" not in page and "&lt;b&gt;f&lt;/b&gt;" in page
        assert "<i>desc</i>" not in page and "&lt;i&gt;desc&lt;/i&gt; &amp; more" in page
