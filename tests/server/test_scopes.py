"""Scopes (ETIKET_API.md, "Scopes"): create, list, get, patch (null clears), members."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.conftest import ServerProcess

from .helpers import API, admin_api, assert_422, assert_error, me, ok, user_api

pytestmark = pytest.mark.anyio


def _name(prefix: str = "scope") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_create_scope_answers_scope_out(server: ServerProcess) -> None:
    name = _name()
    async with admin_api(server) as api:
        body = await ok(api, "POST", f"{API}/scopes/", json={"name": name, "description": "d1"})
        assert body["name"] == name
        assert body["description"] == "d1"
        assert "restricted" not in body and "archived" not in body
        assert "created" in body and "modified" in body
        assert await ok(api, "GET", f"{API}/scopes/{name}") == body


async def test_description_is_always_present(server: ServerProcess) -> None:
    name = _name()
    async with admin_api(server) as api:
        body = await ok(api, "POST", f"{API}/scopes/", json={"name": name})
        assert body["description"] == ""
        assert (await ok(api, "GET", f"{API}/scopes/{name}"))["description"] == ""
        listed = await ok(api, "GET", f"{API}/scopes/", params={"name": name})
        assert [(s["name"], s["description"]) for s in listed] == [(name, "")]


async def test_create_with_restricted_and_archived(server: ServerProcess) -> None:
    name = _name()
    async with admin_api(server) as api:
        body = await ok(
            api,
            "POST",
            f"{API}/scopes/",
            json={
                "name": name,
                "description": "d",
                "restricted": "2026-02-03T04:05:06+00:00",
                "archived": "2026-02-04T00:00:00",
            },
        )
        assert _dt(body["restricted"]) == _dt("2026-02-03T04:05:06+00:00")
        # A naive datetime is taken as UTC.
        assert _dt(body["archived"]) == _dt("2026-02-04T00:00:00+00:00")


async def test_create_existing_scope_is_409(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name = await api.new_scope()
        ans = await api.request(
            "POST", f"{API}/scopes/", json={"name": name, "description": "again"}
        )
        assert_error(ans, 409)
        assert (await ok(api, "GET", f"{API}/scopes/{name}"))["description"] == "test"


async def test_create_scope_without_name_is_422(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        assert_422(
            await api.request("POST", f"{API}/scopes/", json={"description": "x"}), ["body", "name"]
        )


async def test_unknown_scope_is_404(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        missing = _name("missing")
        assert_error(await api.request("GET", f"{API}/scopes/{missing}"), 404)
        assert_error(
            await api.request("PATCH", f"{API}/scopes/{missing}", json={"description": "x"}), 404
        )
        assert_error(await api.request("PUT", f"{API}/scopes/{missing}/members/admin"), 404)


async def test_list_scopes_prefix_and_paging(server: ServerProcess) -> None:
    prefix = _name("pfx")
    async with admin_api(server) as api:
        names = sorted([await api.new_scope(f"{prefix}-{i}") for i in range(3)])
        other = await api.new_scope(f"x{prefix}")  # contains the prefix, does not start with it
        listed = await ok(api, "GET", f"{API}/scopes/", params={"name": prefix})
        assert sorted(s["name"] for s in listed) == names
        assert all(set(s) >= {"name", "description"} for s in listed)
        page1 = await ok(api, "GET", f"{API}/scopes/", params={"name": prefix, "limit": 2})
        page2 = await ok(
            api, "GET", f"{API}/scopes/", params={"name": prefix, "limit": 2, "offset": 2}
        )
        assert len(page1) == 2 and len(page2) == 1
        assert sorted(s["name"] for s in page1 + page2) == names
        everything = await ok(api, "GET", f"{API}/scopes/")
        assert {*names, other} <= {s["name"] for s in everything}


async def test_list_shows_member_scopes_only(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        theirs = await user.new_scope()  # the creator becomes a member
        shared = await admin.new_scope()
        private = await admin.new_scope()
        await ok(admin, "PUT", f"{API}/scopes/{shared}/members/{await me(user)}")
        listed = {s["name"] for s in await ok(user, "GET", f"{API}/scopes/")}
        assert listed == {theirs, shared}
        assert private not in listed
        # The admin sees every scope, its own membership or not.
        for name in (theirs, shared, private):
            assert [
                s["name"] for s in await ok(admin, "GET", f"{API}/scopes/", params={"name": name})
            ] == [name]
        assert (await ok(user, "GET", f"{API}/scopes/{theirs}"))["name"] == theirs


async def test_patch_scope_fields_and_null_clears(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name = await api.new_scope()
        created = await ok(api, "GET", f"{API}/scopes/{name}")
        body = await ok(
            api, "PATCH", f"{API}/scopes/{name}", json={"restricted": "2026-05-01T00:00:00+00:00"}
        )
        assert _dt(body["restricted"]) == _dt("2026-05-01T00:00:00+00:00")
        assert body["description"] == "test"  # omitted: unchanged
        assert body["created"] == created["created"]
        body = await ok(api, "PATCH", f"{API}/scopes/{name}", json={"description": "new"})
        assert body["description"] == "new"
        assert _dt(body["restricted"]) == _dt("2026-05-01T00:00:00+00:00")  # unchanged
        body = await ok(api, "PATCH", f"{API}/scopes/{name}", json={"restricted": None})
        assert "restricted" not in body  # cleared, and omitted rather than null
        assert body["description"] == "new"
        stored = await ok(api, "GET", f"{API}/scopes/{name}")
        assert stored == body


async def test_patch_scope_bad_datetime_is_422(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name = await api.new_scope()
        assert_422(
            await api.request("PATCH", f"{API}/scopes/{name}", json={"archived": "yesterday"}),
            ["body", "archived"],
        )
        assert "archived" not in await ok(api, "GET", f"{API}/scopes/{name}")


async def test_members_put_and_delete(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        name = await admin.new_scope()
        username = await me(user)
        assert_error(await user.request("GET", f"{API}/scopes/{name}"), 403)
        body = await ok(admin, "PUT", f"{API}/scopes/{name}/members/{username}")
        assert body["name"] == name and body["description"] == "test"
        assert (await ok(user, "GET", f"{API}/scopes/{name}"))["name"] == name
        # Idempotent.
        await ok(admin, "PUT", f"{API}/scopes/{name}/members/{username}")
        body = await ok(admin, "DELETE", f"{API}/scopes/{name}/members/{username}")
        assert body["name"] == name
        assert_error(await user.request("GET", f"{API}/scopes/{name}"), 403)
        assert name not in {s["name"] for s in await ok(user, "GET", f"{API}/scopes/")}


async def test_member_of_unknown_user_is_404(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name = await api.new_scope()
        assert_error(await api.request("PUT", f"{API}/scopes/{name}/members/no-such-user-y"), 404)
        assert_error(
            await api.request("DELETE", f"{API}/scopes/{name}/members/no-such-user-y"), 404
        )
