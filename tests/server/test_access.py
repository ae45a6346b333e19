"""The access rule (ETIKET_API.md, "Scopes"): non-members get 403 on a scope and everything
in it, admins get through, and an archived scope is read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.http import OCTETS, TUS, Answer, Api, tus_metadata

from .helpers import (
    API,
    admin_api,
    assert_error,
    me,
    new_dataset,
    ok,
    open_upload,
    upload,
    user_api,
)

pytestmark = pytest.mark.anyio


@dataclass
class Populated:
    """A scope with a dataset (ds), a file with content (f-up), a file without (f-new),
    a collection (coll) holding ds, and an open upload (its Location)."""

    scope: str
    upload_url: str


async def _populate(api: Api, scope: str) -> Populated:
    await new_dataset(
        api,
        scope,
        "ds",
        meta={"sample": "sample-1"},
        files=[{"name": "up", "uid": "f-up"}, {"name": "new", "uid": "f-new"}],
    )
    await new_dataset(api, scope, "ds-2")
    await upload(api, scope, "f-up", b"0123456789")
    await ok(api, "POST", f"{API}/collections/", json={"name": "coll", "scope": scope})
    await ok(api, "PUT", f"{API}/collections/{scope}/coll/datasets/ds")
    upload_url = await open_upload(api, scope, "f-new", 10)
    return Populated(scope, upload_url)


def _reads(p: Populated) -> list[tuple[str, str, dict[str, Any]]]:
    s = p.scope
    return [
        ("GET", f"{API}/scopes/{s}", {}),
        ("GET", f"{API}/datasets/", {"params": {"scope": s}}),
        ("GET", f"{API}/datasets/{s}/ds", {}),
        ("GET", f"{API}/collections/", {"params": {"scope": s}}),
        ("GET", f"{API}/collections/{s}/coll", {}),
        ("GET", f"{API}/files/{s}/f-up", {}),
        ("HEAD", f"{API}/files/{s}/f-up", {}),
        ("GET", f"{API}/uploads/{s}/f-new", {}),
        ("HEAD", p.upload_url, {"headers": TUS}),
    ]


def _writes(p: Populated) -> list[tuple[str, str, dict[str, Any]]]:
    s = p.scope
    return [
        ("POST", f"{API}/datasets/", {"json": {"name": "n", "uid": "ds-new", "scope": s}}),
        ("PATCH", f"{API}/datasets/{s}/ds", {"json": {"name": "hijacked"}}),
        ("DELETE", f"{API}/datasets/{s}/ds-2", {}),
        ("POST", f"{API}/metadata/{s}/ds", {"json": {"meta": {"fridge": "fridge-x"}}}),
        ("PUT", f"{API}/metadata/{s}/ds", {"json": {"meta": {"fridge": "fridge-x"}}}),
        ("DELETE", f"{API}/metadata/{s}/ds", {"json": {"keys": ["sample"]}}),
        ("POST", f"{API}/collections/", {"json": {"name": "coll-new", "scope": s}}),
        ("PATCH", f"{API}/collections/{s}/coll", {"json": {"description": "hijacked"}}),
        ("PUT", f"{API}/collections/{s}/coll/datasets/ds-2", {}),
        ("DELETE", f"{API}/collections/{s}/coll/datasets/ds", {}),
        (
            "POST",
            f"{API}/files/",
            {"json": {"name": "n", "uid": "f-other", "dataset_uid": "ds", "scope": s}},
        ),
        ("PATCH", f"{API}/files/{s}/f-up", {"json": {"name": "hijacked"}}),
        ("DELETE", f"{API}/files/{s}/f-up", {}),
        (
            "POST",
            f"{API}/uploads/",
            {
                "headers": {
                    **TUS,
                    "Upload-Length": "3",
                    "Upload-Metadata": tus_metadata(scope=s, uid="f-new"),
                }
            },
        ),
        (
            "PATCH",
            p.upload_url,
            {"data": b"abc", "headers": {**TUS, **OCTETS, "Upload-Offset": "0"}},
        ),
        ("DELETE", p.upload_url, {"headers": TUS}),
    ]


def _problem(method: str, path: str, ans: Answer, status: int) -> str | None:
    if ans.status != status:
        return f"{method} {path}: {ans.status} (expected {status}) {ans.body[:120]!r}"
    if status >= 400 and method != "HEAD":
        body = ans.json()
        if set(body) != {"detail"} or not isinstance(body["detail"], str):
            return f"{method} {path}: body {body!r}"
    return None


async def _expect(api: Api, calls: list[tuple[str, str, dict[str, Any]]], status: int) -> list[str]:
    problems = []
    for method, path, kw in calls:
        ans = await api.request(method, path, **kw)
        problem = _problem(method, path, ans, status)
        if problem:
            problems.append(problem)
    return problems


async def _assert_untouched(api: Api, p: Populated) -> None:
    s = p.scope
    ds = await ok(api, "GET", f"{API}/datasets/{s}/ds")
    assert ds["name"] == "dataset"
    assert ds["meta"] == {"sample": "sample-1"}
    assert sorted(f["uid"] for f in ds["files"]) == ["f-new", "f-up"]
    assert [f["name"] for f in ds["files"] if f["uid"] == "f-up"] == ["up"]
    assert ds["collections"] == [{"name": "coll"}]
    listed = await ok(api, "GET", f"{API}/datasets/", params={"scope": s})
    assert sorted(d["uid"] for d in listed) == ["ds", "ds-2"]
    colls = await ok(api, "GET", f"{API}/collections/", params={"scope": s})
    assert [(c["name"], c.get("description")) for c in colls] == [("coll", None)]
    ans = await api.request("GET", f"{API}/files/{s}/f-up")
    assert ans.status == 200 and ans.body == b"0123456789"
    record = await ok(api, "GET", f"{API}/uploads/{s}/f-new")
    assert record["status"] == "pending"
    assert [u["offset"] for u in record["uploads"]] == [0]
    head = await api.request("HEAD", p.upload_url, headers=TUS)
    assert head.status == 200 and head.headers["Upload-Offset"] == "0"


async def test_non_member_gets_403_everywhere(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as stranger:
        scope = await admin.new_scope()
        p = await _populate(admin, scope)
        s = p.scope
        calls = [
            *_reads(p),
            *_writes(p),
            ("PATCH", f"{API}/scopes/{s}", {"json": {"description": "hijacked"}}),
            ("PUT", f"{API}/scopes/{s}/members/{await me(stranger)}", {}),
            ("DELETE", f"{API}/scopes/{s}/members/{server.admin_user}", {}),
        ]
        problems = await _expect(stranger, calls, 403)
        assert not problems, "\n".join(problems)
        # The scope is not listed for the stranger, and nothing changed.
        assert s not in {x["name"] for x in await ok(stranger, "GET", f"{API}/scopes/")}
        assert (await ok(admin, "GET", f"{API}/scopes/{s}"))["description"] == "test"
        await _assert_untouched(admin, p)
        assert_error(await stranger.request("GET", f"{API}/scopes/{s}"), 403)


async def test_admin_gets_through_without_membership(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as owner:
        scope = await owner.new_scope()
        p = await _populate(owner, scope)
        # The admin is not a member of the owner's scope: reads pass ...
        problems = []
        for method, path, kw in _reads(p):
            ans = await admin.request(method, path, **kw)
            problem = _problem(method, path, ans, 200)
            if problem:
                problems.append(problem)
        assert not problems, "\n".join(problems)
        # ... and so do writes.
        await ok(admin, "PATCH", f"{API}/datasets/{scope}/ds", json={"name": "by-admin"})
        await ok(admin, "POST", f"{API}/metadata/{scope}/ds", json={"meta": {"setup": "adm"}})
        await ok(admin, "POST", f"{API}/collections/", json={"name": "adm", "scope": scope})
        await ok(admin, "PUT", f"{API}/collections/{scope}/adm/datasets/ds")
        await ok(admin, "PATCH", f"{API}/files/{scope}/f-up", json={"rating": 3})
        await ok(
            admin,
            "POST",
            f"{API}/files/",
            json={"name": "n", "uid": "f-adm", "dataset_uid": "ds", "scope": scope},
        )
        await upload(admin, scope, "f-adm", b"admin bytes")
        ans = await admin.request(
            "PATCH",
            p.upload_url,
            data=b"0123456789",
            headers={**TUS, **OCTETS, "Upload-Offset": "0"},
        )
        assert ans.status == 204, ans.body
        await ok(admin, "PATCH", f"{API}/scopes/{scope}", json={"description": "adm"})
        await ok(admin, "DELETE", f"{API}/datasets/{scope}/ds-2")
        ds = await ok(owner, "GET", f"{API}/datasets/{scope}/ds")
        assert ds["name"] == "by-admin" and ds["meta"]["setup"] == "adm"
        assert (await owner.request("GET", f"{API}/files/{scope}/f-adm")).body == b"admin bytes"
        assert (await owner.request("GET", f"{API}/files/{scope}/f-new")).body == b"0123456789"


async def test_membership_grants_and_revokes_access(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        scope = await admin.new_scope()
        p = await _populate(admin, scope)
        name = await me(user)
        await ok(admin, "PUT", f"{API}/scopes/{scope}/members/{name}")
        # A member reads and writes.
        problems = []
        for method, path, kw in _reads(p)[:-1]:  # the upload belongs to the admin
            ans = await user.request(method, path, **kw)
            problem = _problem(method, path, ans, 200)
            if problem:
                problems.append(problem)
        assert not problems, "\n".join(problems)
        await ok(user, "PATCH", f"{API}/datasets/{scope}/ds", json={"name": "by-member"})
        await ok(admin, "DELETE", f"{API}/scopes/{scope}/members/{name}")
        assert_error(await user.request("GET", f"{API}/datasets/{scope}/ds"), 403)
        assert_error(
            await user.request("PATCH", f"{API}/datasets/{scope}/ds", json={"name": "again"}), 403
        )
        assert (await ok(admin, "GET", f"{API}/datasets/{scope}/ds"))["name"] == "by-member"


async def test_removed_member_loses_own_open_upload(server: ServerProcess) -> None:
    # "a caller who is not a member ... gets 403 for ... any upload in it": also an upload
    # the caller opened while still a member.
    async with admin_api(server) as admin, user_api(server, admin) as user:
        scope = await admin.new_scope()
        fuid = await admin.new_file(scope)
        name = await me(user)
        await ok(admin, "PUT", f"{API}/scopes/{scope}/members/{name}")
        location = await open_upload(user, scope, fuid, 4)
        await ok(admin, "DELETE", f"{API}/scopes/{scope}/members/{name}")
        assert (await user.request("HEAD", location, headers=TUS)).status == 403
        ans = await user.request(
            "PATCH", location, data=b"abcd", headers={**TUS, **OCTETS, "Upload-Offset": "0"}
        )
        assert_error(ans, 403)
        record = await ok(admin, "GET", f"{API}/uploads/{scope}/{fuid}")
        assert record["status"] == "pending"
        assert_error(await admin.request("GET", f"{API}/files/{scope}/{fuid}"), 409)


async def test_unknown_scope_is_404_for_everyone(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as user:
        for api in (admin, user):
            assert_error(await api.request("GET", f"{API}/scopes/no-such-scope-q"), 404)
            assert_error(await api.request("GET", f"{API}/datasets/no-such-scope-q/ds"), 404)


# ---------------------------------------------------------------------------- archived


async def test_archived_scope_is_read_only(server: ServerProcess) -> None:
    async with admin_api(server) as admin, user_api(server, admin) as member:
        scope = await admin.new_scope()
        p = await _populate(admin, scope)
        await ok(admin, "PUT", f"{API}/scopes/{scope}/members/{await me(member)}")
        archived = await ok(
            admin, "PATCH", f"{API}/scopes/{scope}", json={"archived": "2026-06-01T00:00:00+00:00"}
        )
        assert "archived" in archived
        assert (await ok(admin, "GET", f"{API}/scopes/{scope}"))["archived"] == archived["archived"]
        # Reads: 200 for the admin (and the member, except the admin's own upload).
        problems = []
        for api, reads in ((admin, _reads(p)), (member, _reads(p)[:-1])):
            for method, path, kw in reads:
                ans = await api.request(method, path, **kw)
                problem = _problem(method, path, ans, 200)
                if problem:
                    problems.append(problem)
        # Writes: 403, for the admin too.
        problems += await _expect(admin, _writes(p), 403)
        member_writes = [w for w in _writes(p) if not w[1].startswith(p.upload_url)]
        problems += await _expect(member, member_writes, 403)
        assert not problems, "\n".join(problems)
        await _assert_untouched(admin, p)


async def test_unarchive_with_null(server: ServerProcess) -> None:
    async with admin_api(server) as admin:
        scope = await admin.new_scope()
        await new_dataset(admin, scope, "ds")
        await ok(
            admin, "PATCH", f"{API}/scopes/{scope}", json={"archived": "2026-06-01T00:00:00+00:00"}
        )
        assert_error(
            await admin.request("PATCH", f"{API}/datasets/{scope}/ds", json={"name": "x"}), 403
        )
        body = await ok(admin, "PATCH", f"{API}/scopes/{scope}", json={"archived": None})
        assert "archived" not in body
        assert "archived" not in await ok(admin, "GET", f"{API}/scopes/{scope}")
        assert (await ok(admin, "PATCH", f"{API}/datasets/{scope}/ds", json={"name": "writable"}))[
            "name"
        ] == "writable"
        await new_dataset(admin, scope, "ds-after")


async def test_created_archived_scope_is_read_only(server: ServerProcess) -> None:
    async with admin_api(server) as admin:
        scope = await admin.new_scope()
        # A scope archived from the start: nothing can be written into it.
        archived = f"{scope}-arch"
        await ok(
            admin,
            "POST",
            f"{API}/scopes/",
            json={"name": archived, "description": "d", "archived": "2026-01-01T00:00:00+00:00"},
        )
        assert_error(
            await admin.request(
                "POST", f"{API}/datasets/", json={"name": "n", "uid": "ds", "scope": archived}
            ),
            403,
        )
        assert await ok(admin, "GET", f"{API}/datasets/", params={"scope": archived}) == []
