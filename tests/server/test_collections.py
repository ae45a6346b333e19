"""Collections (ETIKET_API.md, "Collections"): create, list, get, patch, dataset membership."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.conftest import ServerProcess

from .helpers import API, admin_api, assert_422, assert_error, new_dataset, ok, uid

pytestmark = pytest.mark.anyio


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_collection_out(body: dict[str, Any], name: str, scope: str) -> None:
    assert {"name", "scope", "created", "modified"} <= set(body), body
    assert set(body) <= {"name", "scope", "description", "created", "modified"}, body
    assert (body["name"], body["scope"]) == (name, scope)


async def test_create_collection(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        plain = await ok(api, "POST", f"{API}/collections/", json={"name": "plain", "scope": scope})
        _assert_collection_out(plain, "plain", scope)
        assert "description" not in plain  # omitted, never null
        described = await ok(
            api,
            "POST",
            f"{API}/collections/",
            json={"name": "described", "scope": scope, "description": "some words"},
        )
        _assert_collection_out(described, "described", scope)
        assert described["description"] == "some words"
        assert await ok(api, "GET", f"{API}/collections/{scope}/plain") == plain
        assert await ok(api, "GET", f"{API}/collections/{scope}/described") == described


async def test_create_existing_collection_is_409(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope, other = await api.new_scope(), await api.new_scope()
        await ok(api, "POST", f"{API}/collections/", json={"name": "c", "scope": scope})
        assert_error(
            await api.request(
                "POST",
                f"{API}/collections/",
                json={"name": "c", "scope": scope, "description": "again"},
            ),
            409,
        )
        assert "description" not in await ok(api, "GET", f"{API}/collections/{scope}/c")
        # Names are per scope.
        await ok(api, "POST", f"{API}/collections/", json={"name": "c", "scope": other})


async def test_create_collection_errors(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        assert_422(
            await api.request("POST", f"{API}/collections/", json={"scope": scope}),
            ["body", "name"],
        )
        assert_422(
            await api.request("POST", f"{API}/collections/", json={"name": "c"}), ["body", "scope"]
        )
        assert_error(
            await api.request(
                "POST", f"{API}/collections/", json={"name": "c", "scope": uid("no-scope")}
            ),
            404,
        )


async def test_unknown_collection_is_404(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ds")
        assert_error(await api.request("GET", f"{API}/collections/{scope}/nope"), 404)
        assert_error(
            await api.request(
                "PATCH", f"{API}/collections/{scope}/nope", json={"description": "x"}
            ),
            404,
        )
        for method in ("PUT", "DELETE"):
            assert_error(
                await api.request(method, f"{API}/collections/{scope}/nope/datasets/ds"), 404
            )


async def test_list_collections(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope, other = await api.new_scope(), await api.new_scope()
        for name in ("run-1", "run-2", "run-3", "calib"):
            await ok(api, "POST", f"{API}/collections/", json={"name": name, "scope": scope})
        await ok(api, "POST", f"{API}/collections/", json={"name": "run-9", "scope": other})
        everything = await ok(api, "GET", f"{API}/collections/", params={"scope": scope})
        assert sorted(c["name"] for c in everything) == ["calib", "run-1", "run-2", "run-3"]
        for c in everything:
            _assert_collection_out(c, c["name"], scope)
        runs = await ok(api, "GET", f"{API}/collections/", params={"scope": scope, "name": "run"})
        assert sorted(c["name"] for c in runs) == ["run-1", "run-2", "run-3"]
        assert (
            await ok(api, "GET", f"{API}/collections/", params={"scope": scope, "name": "un"}) == []
        )  # prefix only
        page1 = await ok(api, "GET", f"{API}/collections/", params={"scope": scope, "limit": 3})
        page2 = await ok(
            api, "GET", f"{API}/collections/", params={"scope": scope, "limit": 3, "offset": 3}
        )
        assert len(page1) == 3 and len(page2) == 1
        assert sorted(c["name"] for c in page1 + page2) == sorted(c["name"] for c in everything)
        assert_422(await api.request("GET", f"{API}/collections/"), ["query", "scope"])
        assert_error(
            await api.request("GET", f"{API}/collections/", params={"scope": uid("no-scope")}), 404
        )


async def test_patch_collection(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        before = await ok(
            api,
            "POST",
            f"{API}/collections/",
            json={"name": "old", "scope": scope, "description": "desc"},
        )
        await ok(api, "POST", f"{API}/collections/", json={"name": "taken", "scope": scope})
        renamed = await ok(api, "PATCH", f"{API}/collections/{scope}/old", json={"name": "new"})
        _assert_collection_out(renamed, "new", scope)
        assert renamed["description"] == "desc"  # omitted: unchanged
        assert renamed["created"] == before["created"]
        assert _dt(renamed["modified"]) >= _dt(before["modified"])
        assert_error(await api.request("GET", f"{API}/collections/{scope}/old"), 404)
        assert await ok(api, "GET", f"{API}/collections/{scope}/new") == renamed
        assert_error(
            await api.request("PATCH", f"{API}/collections/{scope}/new", json={"name": "taken"}),
            409,
        )
        cleared = await ok(
            api, "PATCH", f"{API}/collections/{scope}/new", json={"description": None}
        )
        assert "description" not in cleared
        assert cleared["name"] == "new"
        described = await ok(
            api, "PATCH", f"{API}/collections/{scope}/new", json={"description": "again"}
        )
        assert described["description"] == "again"


async def test_dataset_membership(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ds-1")
        await new_dataset(api, scope, "ds-2")
        await ok(
            api,
            "POST",
            f"{API}/collections/",
            json={"name": "coll", "scope": scope, "description": "cd"},
        )
        await ok(api, "POST", f"{API}/collections/", json={"name": "bare", "scope": scope})
        body = await ok(api, "PUT", f"{API}/collections/{scope}/coll/datasets/ds-1")
        _assert_collection_out(body, "coll", scope)
        assert body["description"] == "cd"
        await ok(api, "PUT", f"{API}/collections/{scope}/bare/datasets/ds-1")
        # Idempotent.
        await ok(api, "PUT", f"{API}/collections/{scope}/coll/datasets/ds-1")
        ds = await ok(api, "GET", f"{API}/datasets/{scope}/ds-1")
        assert sorted(ds["collections"], key=lambda c: c["name"]) == [
            {"name": "bare"},
            {"name": "coll", "description": "cd"},
        ]
        assert (await ok(api, "GET", f"{API}/datasets/{scope}/ds-2"))["collections"] == []
        listed = await ok(
            api, "GET", f"{API}/datasets/", params={"scope": scope, "collection": "coll"}
        )
        assert [d["uid"] for d in listed] == ["ds-1"]
        body = await ok(api, "DELETE", f"{API}/collections/{scope}/coll/datasets/ds-1")
        _assert_collection_out(body, "coll", scope)
        ds = await ok(api, "GET", f"{API}/datasets/{scope}/ds-1")
        assert ds["collections"] == [{"name": "bare"}]
        assert (
            await ok(api, "GET", f"{API}/datasets/", params={"scope": scope, "collection": "coll"})
            == []
        )


async def test_membership_of_unknown_dataset_is_404(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await ok(api, "POST", f"{API}/collections/", json={"name": "coll", "scope": scope})
        for method in ("PUT", "DELETE"):
            assert_error(
                await api.request(method, f"{API}/collections/{scope}/coll/datasets/nope"), 404
            )


async def test_rename_shows_in_dataset_collections(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ds")
        await ok(api, "POST", f"{API}/collections/", json={"name": "before", "scope": scope})
        await ok(api, "PUT", f"{API}/collections/{scope}/before/datasets/ds")
        await ok(
            api,
            "PATCH",
            f"{API}/collections/{scope}/before",
            json={"name": "after", "description": "dd"},
        )
        ds = await ok(api, "GET", f"{API}/datasets/{scope}/ds")
        assert ds["collections"] == [{"name": "after", "description": "dd"}]
        assert [
            d["uid"]
            for d in await ok(
                api, "GET", f"{API}/datasets/", params={"scope": scope, "collection": "after"}
            )
        ] == ["ds"]


async def test_deleting_a_dataset_leaves_the_collection(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ds")
        await ok(api, "POST", f"{API}/collections/", json={"name": "coll", "scope": scope})
        await ok(api, "PUT", f"{API}/collections/{scope}/coll/datasets/ds")
        await ok(api, "DELETE", f"{API}/datasets/{scope}/ds")
        assert (await ok(api, "GET", f"{API}/collections/{scope}/coll"))["name"] == "coll"
        assert (
            await ok(api, "GET", f"{API}/datasets/", params={"scope": scope, "collection": "coll"})
            == []
        )
