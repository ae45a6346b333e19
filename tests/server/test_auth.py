"""Auth (ETIKET_API.md, "Auth" and "Errors"): login, refresh rotation, 401 everywhere."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from tests.conftest import ServerProcess
from tests.http import TUS, Api, api_for

from .helpers import API, assert_422, assert_error, user_api

pytestmark = pytest.mark.anyio

#: Every route that needs a bearer token (names need not exist: auth comes first).
PROTECTED: list[tuple[str, str, dict[str, str]]] = [
    ("POST", f"{API}/users/", {}),
    ("GET", f"{API}/users/", {}),
    ("GET", f"{API}/users/me", {}),
    ("GET", f"{API}/users/admin", {}),
    ("PATCH", f"{API}/users/admin", {}),
    ("POST", f"{API}/scopes/", {}),
    ("GET", f"{API}/scopes/", {}),
    ("GET", f"{API}/scopes/some-scope", {}),
    ("PATCH", f"{API}/scopes/some-scope", {}),
    ("PUT", f"{API}/scopes/some-scope/members/admin", {}),
    ("DELETE", f"{API}/scopes/some-scope/members/admin", {}),
    ("POST", f"{API}/datasets/", {}),
    ("GET", f"{API}/datasets/?scope=some-scope", {}),
    ("GET", f"{API}/datasets/some-scope/ds", {}),
    ("PATCH", f"{API}/datasets/some-scope/ds", {}),
    ("DELETE", f"{API}/datasets/some-scope/ds", {}),
    ("POST", f"{API}/metadata/some-scope/ds", {}),
    ("PUT", f"{API}/metadata/some-scope/ds", {}),
    ("DELETE", f"{API}/metadata/some-scope/ds", {}),
    ("POST", f"{API}/collections/", {}),
    ("GET", f"{API}/collections/?scope=some-scope", {}),
    ("GET", f"{API}/collections/some-scope/coll", {}),
    ("PATCH", f"{API}/collections/some-scope/coll", {}),
    ("PUT", f"{API}/collections/some-scope/coll/datasets/ds", {}),
    ("DELETE", f"{API}/collections/some-scope/coll/datasets/ds", {}),
    ("POST", f"{API}/files/", {}),
    ("GET", f"{API}/files/some-scope/f", {}),
    ("HEAD", f"{API}/files/some-scope/f", {}),
    ("PATCH", f"{API}/files/some-scope/f", {}),
    ("DELETE", f"{API}/files/some-scope/f", {}),
    ("POST", f"{API}/uploads/", {**TUS, "Upload-Length": "1"}),
    ("HEAD", f"{API}/uploads/some-upload", TUS),
    (
        "PATCH",
        f"{API}/uploads/some-upload",
        {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    ),
    ("DELETE", f"{API}/uploads/some-upload", TUS),
    ("GET", f"{API}/uploads/some-scope/f", {}),
    ("GET", "/viewer", {}),
]

BAD_AUTH: dict[str, Callable[[], dict[str, str]]] = {
    "missing": lambda: {},
    "unknown-token": lambda: {"Authorization": "Bearer not-a-real-token"},
    "empty-bearer": lambda: {"Authorization": "Bearer "},
    "basic-scheme": lambda: {"Authorization": "Basic YWRtaW46YWRtaW4tc2VjcmV0LXB3"},
}


def _login_form(username: str, password: str) -> dict[str, str]:
    # What the original client sends: the OAuth2 password form with an empty scope.
    return {
        "grant_type": "password",
        "username": username,
        "password": password,
        "scope": "",
        "client_id": "",
        "client_secret": "",
    }


@pytest.mark.parametrize("variant", list(BAD_AUTH))
async def test_every_protected_route_answers_401_with_bearer_challenge(
    server: ServerProcess, variant: str
) -> None:
    wrong = []
    async with api_for(server.url) as anon:
        for method, path, headers in PROTECTED:
            ans = await anon.request(method, path, headers={**headers, **BAD_AUTH[variant]()})
            problems = []
            if ans.status != 401:
                problems.append(f"status {ans.status}")
            if ans.headers.get("WWW-Authenticate") != "Bearer":
                problems.append(f"WWW-Authenticate {ans.headers.get('WWW-Authenticate')!r}")
            if method != "HEAD" and ans.status == 401:
                body = ans.json()
                if set(body) != {"detail"} or not isinstance(body["detail"], str):
                    problems.append(f"body {body!r}")
            if problems:
                wrong.append(f"{method} {path}: {', '.join(problems)}")
    assert not wrong, "\n".join(wrong)


async def test_login_accepts_the_original_form(server: ServerProcess) -> None:
    async with api_for(server.url) as anon:
        ans = await anon.request(
            "POST", f"{API}/token", data=_login_form(server.admin_user, server.admin_password)
        )
        assert ans.status == 200, ans.body
        tok = ans.json()
        assert set(tok) == {"access_token", "refresh_token", "token_type"}
        assert tok["token_type"] == "bearer"
        assert isinstance(tok["access_token"], str) and tok["access_token"]
        assert isinstance(tok["refresh_token"], str) and tok["refresh_token"]
        assert tok["access_token"] != tok["refresh_token"]
        ans = await anon.request(
            "GET", f"{API}/users/me", headers={"Authorization": f"Bearer {tok['access_token']}"}
        )
        assert ans.status == 200, ans.body
        assert ans.json()["username"] == server.admin_user


async def test_login_with_only_username_and_password(server: ServerProcess) -> None:
    async with api_for(server.url) as anon:
        ans = await anon.request(
            "POST",
            f"{API}/token",
            data={"username": server.admin_user, "password": server.admin_password},
        )
        assert ans.status == 200, ans.body
        assert ans.json()["token_type"] == "bearer"


async def test_login_gives_a_new_pair_each_time(server: ServerProcess) -> None:
    async with api_for(server.url) as anon:
        form = _login_form(server.admin_user, server.admin_password)
        one = (await anon.request("POST", f"{API}/token", data=form)).json()
        two = (await anon.request("POST", f"{API}/token", data=form)).json()
        assert one["access_token"] != two["access_token"]
        assert one["refresh_token"] != two["refresh_token"]


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
async def test_login_bad_credentials_is_401(server: ServerProcess, who: str) -> None:
    user = server.admin_user if who == "wrong-password" else "nobody-at-all"
    async with api_for(server.url) as anon:
        ans = await anon.request("POST", f"{API}/token", data=_login_form(user, "not-the-password"))
        assert_error(ans, 401)
        assert "access_token" not in ans.json()


async def test_login_without_password_is_422(server: ServerProcess) -> None:
    async with api_for(server.url) as anon:
        ans = await anon.request(
            "POST", f"{API}/token", data={"username": server.admin_user, "scope": ""}
        )
        assert_422(ans, ["body", "password"])


async def test_refresh_rotates_the_pair(server: ServerProcess) -> None:
    async with api_for(server.url, server.admin_user, server.admin_password) as api:
        old_access, old_refresh = api.token, api.refresh_token
        assert old_refresh is not None
        ans = await api.request(
            "POST",
            f"{API}/refresh",
            data={"grant_type": "refresh_token", "refresh_token": old_refresh},
        )
        assert ans.status == 200, ans.body
        tok = ans.json()
        assert set(tok) == {"access_token", "refresh_token", "token_type"}
        assert tok["token_type"] == "bearer"
        assert tok["access_token"] not in (old_access, old_refresh)
        assert tok["refresh_token"] not in (old_access, old_refresh)
        # The new access token works.
        ans = await api.request(
            "GET", f"{API}/users/me", headers={"Authorization": f"Bearer {tok['access_token']}"}
        )
        assert ans.status == 200
        # The old refresh token is spent.
        ans = await api.request(
            "POST",
            f"{API}/refresh",
            data={"grant_type": "refresh_token", "refresh_token": old_refresh},
        )
        assert_error(ans, 401)
        assert ans.headers["WWW-Authenticate"] == "Bearer"
        # The new one works, once.
        ans = await api.request(
            "POST",
            f"{API}/refresh",
            data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]},
        )
        assert ans.status == 200, ans.body
        ans = await api.request(
            "POST",
            f"{API}/refresh",
            data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]},
        )
        assert_error(ans, 401)


async def test_refresh_rejects_garbage_and_access_tokens(server: ServerProcess) -> None:
    async with api_for(server.url, server.admin_user, server.admin_password) as api:
        for bad in ("garbage", api.token):
            ans = await api.request(
                "POST", f"{API}/refresh", data={"grant_type": "refresh_token", "refresh_token": bad}
            )
            assert_error(ans, 401)
        # A refresh token is not an access token.
        ans = await api.request(
            "GET", f"{API}/users/me", headers={"Authorization": f"Bearer {api.refresh_token}"}
        )
        assert_error(ans, 401)
        assert ans.headers["WWW-Authenticate"] == "Bearer"


async def test_refresh_without_token_is_422(server: ServerProcess) -> None:
    async with api_for(server.url) as anon:
        ans = await anon.request("POST", f"{API}/refresh", data={"grant_type": "refresh_token"})
        assert_422(ans, ["body", "refresh_token"])


async def test_refresh_token_of_deactivated_user_is_401(server: ServerProcess) -> None:
    async with (
        api_for(server.url, server.admin_user, server.admin_password) as admin,
        user_api(server, admin) as user,
    ):
        name = (await user.ok("GET", f"{API}/users/me"))["username"]
        await admin.ok("PATCH", f"{API}/users/{name}", json={"active": False})
        ans = await user.request(
            "POST",
            f"{API}/refresh",
            data={"grant_type": "refresh_token", "refresh_token": user.refresh_token},
        )
        assert_error(ans, 401)


async def test_expired_access_token_is_401_and_refresh_still_works(
    make_server: Callable[..., ServerProcess],
) -> None:
    srv = make_server("--access-token-ttl", "1")
    async with api_for(srv.url, srv.admin_user, srv.admin_password) as api:
        logged_in = time.monotonic()
        assert (await api.request("GET", f"{API}/users/me")).status == 200
        await anyio.sleep(max(0.0, 1.3 - (time.monotonic() - logged_in)))
        expired = api.token
        ans = await api.request("GET", f"{API}/users/me")
        assert_error(ans, 401)
        assert ans.headers["WWW-Authenticate"] == "Bearer"
        # The original client sends its expired access token along with the refresh.
        ans = await api.request(
            "POST",
            f"{API}/refresh",
            headers={"Authorization": f"Bearer {expired}"},
            data={"grant_type": "refresh_token", "refresh_token": api.refresh_token},
        )
        assert ans.status == 200, ans.body
        tok = ans.json()
        assert tok["token_type"] == "bearer"
        fresh = Api(api.session, srv.url, tok["access_token"])
        ans = await fresh.request("GET", f"{API}/users/me")
        assert ans.status == 200, ans.body
        assert ans.json()["username"] == srv.admin_user


async def test_unknown_route_is_json_404(server: ServerProcess) -> None:
    async with api_for(server.url, server.admin_user, server.admin_password) as api:
        assert_error(await api.request("GET", f"{API}/no-such-thing"), 404)


async def test_wrong_method_is_json_405(server: ServerProcess) -> None:
    async with api_for(server.url, server.admin_user, server.admin_password) as api:
        ans = await api.request("PUT", f"{API}/datasets/")
        assert_error(ans, 405)


async def test_tus_options_needs_no_token(server: ServerProcess) -> None:
    async with api_for(server.url) as anon:
        ans = await anon.request("OPTIONS", f"{API}/uploads/")
        assert ans.status == 204, ans.body
        assert ans.headers["Tus-Version"].split(",")[0].strip() == "1.0.0"
        assert "WWW-Authenticate" not in ans.headers
