"""Users (ETIKET_API.md, "Users"): admin-only management, /me, activation, no passwords out."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.http import api_for

from .helpers import API, admin_api, assert_422, assert_error, assert_no_nulls, ok, user_api

pytestmark = pytest.mark.anyio

PASSWORD = "sekret-Pw-" + "q" * 12


def _user_in(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "username": name,
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": f"{name}@example.org",
        "hashed_password": PASSWORD,
        **extra,
    }


def _assert_user_out(body: dict[str, Any], raw: bytes, name: str) -> None:
    assert body["username"] == name
    assert {"username", "firstname", "lastname", "email"} <= set(body)
    assert "hashed_password" not in body and "password" not in body
    assert PASSWORD.encode() not in raw
    assert b"scrypt" not in raw
    assert_no_nulls(body)
    for scope in body.get("scopes", []):
        assert {"name", "description"} <= set(scope), scope


async def _login_status(server: ServerProcess, name: str, password: str) -> int:
    async with api_for(server.url) as anon:
        ans = await anon.request(
            "POST", f"{API}/token", data={"username": name, "password": password, "scope": ""}
        )
        return ans.status


async def test_create_user_answers_user_out_without_password(server: ServerProcess) -> None:
    name = f"ada-{uuid.uuid4().hex[:8]}"
    async with admin_api(server) as api:
        ans = await api.request("POST", f"{API}/users/", json=_user_in(name))
        assert ans.status == 200, ans.body
        body = ans.json()
        _assert_user_out(body, ans.body, name)
        assert (body["firstname"], body["lastname"], body["email"]) == (
            "Ada",
            "Lovelace",
            f"{name}@example.org",
        )
        assert body.get("active", True) is True
        assert body.get("admin", False) is False
        assert body.get("scopes", []) == []
        assert "created" in body and "modified" in body
        assert "disabled" not in body
    assert await _login_status(server, name, PASSWORD) == 200


async def test_create_existing_user_is_409(server: ServerProcess) -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"
    async with admin_api(server) as api:
        await ok(api, "POST", f"{API}/users/", json=_user_in(name))
        assert_error(await api.request("POST", f"{API}/users/", json=_user_in(name)), 409)


async def test_create_user_missing_field_is_422(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        body = _user_in(f"bad-{uuid.uuid4().hex[:8]}")
        del body["email"]
        assert_422(await api.request("POST", f"{API}/users/", json=body), ["body", "email"])


async def test_list_users_pages_and_hides_passwords(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        names = [(await api.new_user(password=PASSWORD))[0] for _ in range(3)]
        ans = await api.request("GET", f"{API}/users/")
        assert ans.status == 200
        everyone = ans.json()
        assert PASSWORD.encode() not in ans.body and b"hashed_password" not in ans.body
        assert_no_nulls(everyone)
        listed = [u["username"] for u in everyone]
        assert set(names) <= set(listed)
        assert server.admin_user in listed
        assert len(listed) == len(set(listed))
        page = await ok(api, "GET", f"{API}/users/", params={"offset": 1, "limit": 2})
        assert [u["username"] for u in page] == listed[1:3]
        assert await ok(api, "GET", f"{API}/users/", params={"offset": len(listed) + 10}) == []


async def test_get_and_me(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name, password = await api.new_user(password=PASSWORD)
        ans = await api.request("GET", f"{API}/users/{name}")
        assert ans.status == 200
        _assert_user_out(ans.json(), ans.body, name)
        mine = await ok(api, "GET", f"{API}/users/me")
        assert mine["username"] == server.admin_user
        assert mine["admin"] is True
        async with api_for(server.url, name, password) as user:
            ans = await user.request("GET", f"{API}/users/me")
            assert ans.status == 200
            _assert_user_out(ans.json(), ans.body, name)


async def test_get_unknown_user_is_404(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        assert_error(await api.request("GET", f"{API}/users/no-such-user-x"), 404)
        assert_error(
            await api.request("PATCH", f"{API}/users/no-such-user-x", json={"firstname": "X"}), 404
        )


async def test_non_admin_gets_403_on_the_users_api(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        other, _ = await admin.new_user()
        me = (await ok(user, "GET", f"{API}/users/me"))["username"]
        for method, path, body in [
            ("GET", f"{API}/users/", None),
            ("POST", f"{API}/users/", _user_in(f"x-{uuid.uuid4().hex[:8]}")),
            ("GET", f"{API}/users/{other}", None),
            ("GET", f"{API}/users/{server.admin_user}", None),
            ("PATCH", f"{API}/users/{other}", {"firstname": "Hacked"}),
            ("PATCH", f"{API}/users/{me}", {"admin": True}),
        ]:
            ans = await user.request(method, path, json=body)
            assert_error(ans, 403)
        # Nothing changed.
        assert (await ok(admin, "GET", f"{API}/users/{other}"))["firstname"] == "F"
        assert (await ok(admin, "GET", f"{API}/users/{me}")).get("admin", False) is False


async def test_non_admin_gets_403_on_own_user_path(server: ServerProcess) -> None:
    # "A non-admin on the users API (other than /me) gets 403": /users/{self} included.
    async with admin_api(server) as admin, user_api(server, admin) as user:
        me = (await ok(user, "GET", f"{API}/users/me"))["username"]
        assert_error(await user.request("GET", f"{API}/users/{me}"), 403)


async def test_patch_changes_only_given_fields(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name, _ = await api.new_user()
        before = await ok(api, "GET", f"{API}/users/{name}")
        after = await ok(api, "PATCH", f"{API}/users/{name}", json={"firstname": "Grace"})
        assert after["firstname"] == "Grace"
        assert after["lastname"] == before["lastname"]
        assert after["email"] == before["email"]
        assert after["created"] == before["created"]
        assert (await ok(api, "GET", f"{API}/users/{name}"))["firstname"] == "Grace"


@pytest.mark.parametrize(("off", "on"), [("false", "true"), (False, True)])
async def test_deactivated_user_cannot_log_in(server: ServerProcess, off: Any, on: Any) -> None:
    async with admin_api(server) as admin:
        name, password = await admin.new_user(password=PASSWORD)
        async with api_for(server.url, name, password) as user:
            ans = await admin.request("PATCH", f"{API}/users/{name}", json={"active": off})
            assert ans.status == 200, ans.body
            _assert_user_out(ans.json(), ans.body, name)
            assert ans.json()["active"] is False
            assert await _login_status(server, name, password) == 401
            # Its tokens stop working too.
            assert_error(await user.request("GET", f"{API}/users/me"), 401)
        body = await ok(admin, "PATCH", f"{API}/users/{name}", json={"active": on})
        assert body.get("active", True) is True
        assert await _login_status(server, name, password) == 200


async def test_active_rejects_other_strings(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name, _ = await api.new_user()
        assert_422(
            await api.request("PATCH", f"{API}/users/{name}", json={"active": "maybe"}),
            ["body", "active"],
        )
        assert (await ok(api, "GET", f"{API}/users/{name}")).get("active", True) is True


async def test_patch_password(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        name, old = await api.new_user()
        ans = await api.request("PATCH", f"{API}/users/{name}", json={"hashed_password": PASSWORD})
        assert ans.status == 200, ans.body
        _assert_user_out(ans.json(), ans.body, name)
    assert await _login_status(server, name, old) == 401
    assert await _login_status(server, name, PASSWORD) == 200


async def test_user_out_lists_scopes(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        scope = await admin.new_scope()
        me = (await ok(user, "GET", f"{API}/users/me"))["username"]
        assert (await ok(user, "GET", f"{API}/users/me")).get("scopes", []) == []
        await ok(admin, "PUT", f"{API}/scopes/{scope}/members/{me}")
        scopes = (await ok(user, "GET", f"{API}/users/me"))["scopes"]
        assert [s["name"] for s in scopes] == [scope]
        assert scopes[0]["description"] == "test"
        assert [s["name"] for s in (await ok(admin, "GET", f"{API}/users/{me}"))["scopes"]] == [
            scope
        ]


async def test_admin_created_by_admin_may_manage_users(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin, admin_flag=True) as other:
        assert (await ok(other, "GET", f"{API}/users/me"))["admin"] is True
        name, _ = await other.new_user()
        assert (await ok(other, "GET", f"{API}/users/{name}"))["username"] == name
