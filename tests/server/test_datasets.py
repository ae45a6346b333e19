"""Datasets and metadata (ETIKET_API.md, "Datasets", "Metadata"): CRUD, every query filter,
paging and order, and the metadata rule."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.http import Api

from .helpers import (
    API,
    admin_api,
    assert_422,
    assert_error,
    new_dataset,
    ok,
    uid,
    upload,
)

pytestmark = pytest.mark.anyio


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_dataset_shape(ds: dict[str, Any]) -> None:
    assert {
        "name",
        "uid",
        "scope",
        "collected",
        "meta",
        "ranking",
        "created",
        "modified",
        "files",
        "collections",
    } <= set(ds), ds
    assert isinstance(ds["meta"], dict)
    for f in ds["files"]:
        assert {"name", "uid", "status"} <= set(f), f
        assert "scope" not in f and "uploads" not in f, f  # FileDatasetOut
    for c in ds["collections"]:
        assert "name" in c, c


# ---------------------------------------------------------------------------- CRUD


async def test_create_minimal_dataset(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        ds = await ok(
            api,
            "POST",
            f"{API}/datasets/",
            json={
                "name": "minimal",
                "uid": "ds-min",
                "scope": scope,
                "collected": "2026-11-26T10:00:00+00:00",
            },
        )
        _assert_dataset_shape(ds)
        assert (ds["name"], ds["uid"], ds["scope"]) == ("minimal", "ds-min", scope)
        assert _dt(ds["collected"]) == _dt("2026-11-26T10:00:00+00:00")
        assert ds["meta"] == {}
        assert ds["ranking"] == 0
        assert ds["files"] == [] and ds["collections"] == []
        for absent in ("creator", "description", "duration"):
            assert absent not in ds
        assert await ok(api, "GET", f"{API}/datasets/{scope}/ds-min") == ds


async def test_create_full_dataset_with_files(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        ds = await ok(
            api,
            "POST",
            f"{API}/datasets/",
            json={
                "name": "full",
                "uid": "ds-full",
                "scope": scope,
                "collected": "2026-11-26T12:00:00+01:00",
                "creator": "Ada",
                "description": "a description",
                "duration": 12.5,
                "ranking": 3,
                "meta": {"sample": "sample-1", "keywords": ["kw-one", "kw-two"]},
                "files": [
                    {
                        "name": "raw.h5",
                        "uid": "f-raw",
                        "filetype": "raw",
                        "size": 10,
                        "mimetype": "application/x-hdf5",
                        "creator": "Ada",
                        "rating": 2,
                    },
                    {"name": "plain.bin", "uid": "f-plain"},
                ],
            },
        )
        _assert_dataset_shape(ds)
        assert _dt(ds["collected"]) == _dt("2026-11-26T11:00:00+00:00")
        assert (ds["creator"], ds["description"], ds["duration"], ds["ranking"]) == (
            "Ada",
            "a description",
            12.5,
            3,
        )
        assert ds["meta"] == {"sample": "sample-1", "keywords": ["kw-one", "kw-two"]}
        files = {f["uid"]: f for f in ds["files"]}
        assert set(files) == {"f-raw", "f-plain"}
        raw = files["f-raw"]
        assert raw["status"] == "unavailable"  # content comes later
        assert (
            raw["name"],
            raw["filetype"],
            raw["size"],
            raw["mimetype"],
            raw["creator"],
            raw["rating"],
        ) == ("raw.h5", "raw", 10, "application/x-hdf5", "Ada", 2)
        assert raw["download_link"] == f"{server.url}/api/v1/files/{scope}/f-raw"
        plain = files["f-plain"]
        assert plain["status"] == "unavailable"
        assert plain.get("filetype", "undefined") == "undefined"
        assert plain.get("mimetype", "application/octet-stream") == "application/octet-stream"
        # Each file is a record of its own, in the dataset's scope.
        f = await ok(api, "GET", f"{API}/uploads/{scope}/f-raw")
        assert (f["scope"], f["uid"], f["status"], f["uploads"]) == (
            scope,
            "f-raw",
            "unavailable",
            [],
        )
        assert await ok(api, "GET", f"{API}/datasets/{scope}/ds-full") == ds


async def test_create_existing_dataset_is_409(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope, other = await api.new_scope(), await api.new_scope()
        await new_dataset(api, scope, "same-uid", name="first")
        ans = await api.request(
            "POST", f"{API}/datasets/", json={"name": "second", "uid": "same-uid", "scope": scope}
        )
        assert_error(ans, 409)
        assert (await ok(api, "GET", f"{API}/datasets/{scope}/same-uid"))["name"] == "first"
        # A dataset is identified by scope/uid: the same uid in another scope is fine.
        assert (await new_dataset(api, other, "same-uid"))["scope"] == other


async def test_create_dataset_validation_and_unknown_scope(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        assert_422(
            await api.request("POST", f"{API}/datasets/", json={"uid": "x1", "scope": scope}),
            ["body", "name"],
        )
        assert_422(
            await api.request(
                "POST",
                f"{API}/datasets/",
                json={"name": "n", "uid": "x2", "scope": scope, "collected": "not-a-date"},
            ),
            ["body", "collected"],
        )
        assert_422(
            await api.request(
                "POST",
                f"{API}/datasets/",
                json={"name": "n", "uid": "x3", "scope": scope, "ranking": "high"},
            ),
            ["body", "ranking"],
        )
        assert_error(
            await api.request(
                "POST",
                f"{API}/datasets/",
                json={"name": "n", "uid": "x4", "scope": uid("no-scope")},
            ),
            404,
        )
        assert await ok(api, "GET", f"{API}/datasets/", params={"scope": scope}) == []


async def test_malformed_and_oversized_bodies(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        ans = await api.request(
            "POST",
            f"{API}/datasets/",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert_422(ans)
        ans = await api.request(
            "POST", f"{API}/datasets/", data=b"", headers={"Content-Type": "application/json"}
        )
        assert_422(ans)
        huge = json.dumps(
            {"name": "n", "uid": "big", "scope": scope, "description": "x" * (5 << 20)}
        ).encode()
        assert_error(
            await api.request(
                "POST",
                f"{API}/datasets/",
                data=io.BytesIO(huge),
                headers={"Content-Type": "application/json"},
            ),
            413,
        )
        assert_error(await api.request("GET", f"{API}/datasets/{scope}/big"), 404)


async def test_create_dataset_is_all_or_nothing(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "first", files=[{"name": "x", "uid": "f-taken"}])
        ans = await api.request(
            "POST",
            f"{API}/datasets/",
            json={
                "name": "second",
                "uid": "second",
                "scope": scope,
                "files": [{"name": "ok", "uid": "f-fresh"}, {"name": "x", "uid": "f-taken"}],
            },
        )
        assert_error(ans, 409)
        assert_error(await api.request("GET", f"{API}/datasets/{scope}/second"), 404)
        assert_error(await api.request("GET", f"{API}/uploads/{scope}/f-fresh"), 404)
        assert await _uids(api, scope) == ["first"]


async def test_get_unknown_dataset_is_404(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        for method in ("GET", "DELETE"):
            assert_error(await api.request(method, f"{API}/datasets/{scope}/nope"), 404)
        assert_error(
            await api.request("PATCH", f"{API}/datasets/{scope}/nope", json={"name": "x"}), 404
        )
        assert_error(await api.request("GET", f"{API}/datasets/{uid('no-scope')}/nope"), 404)


async def test_patch_dataset(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        before = await new_dataset(
            api,
            scope,
            "ds-p",
            creator="Ada",
            description="old",
            duration=1.0,
            ranking=1,
            meta={"sample": "sample-1"},
        )
        after = await ok(
            api,
            "PATCH",
            f"{API}/datasets/{scope}/ds-p",
            json={"name": "renamed", "collected": "2027-01-02T03:04:05+00:00", "ranking": 7},
        )
        _assert_dataset_shape(after)
        assert after["name"] == "renamed"
        assert _dt(after["collected"]) == _dt("2027-01-02T03:04:05+00:00")
        assert after["ranking"] == 7
        # Omitted fields are left alone.
        assert (after["creator"], after["description"], after["duration"], after["meta"]) == (
            "Ada",
            "old",
            1.0,
            {"sample": "sample-1"},
        )
        assert after["created"] == before["created"]
        assert _dt(after["modified"]) >= _dt(before["modified"])
        # An explicit null clears an optional field (then omitted, never null).
        cleared = await ok(
            api,
            "PATCH",
            f"{API}/datasets/{scope}/ds-p",
            json={"description": None, "creator": None, "duration": None},
        )
        for absent in ("creator", "description", "duration"):
            assert absent not in cleared
        assert cleared["name"] == "renamed"
        assert await ok(api, "GET", f"{API}/datasets/{scope}/ds-p") == cleared
        assert_422(
            await api.request("PATCH", f"{API}/datasets/{scope}/ds-p", json={"duration": -1}),
            ["body", "duration"],
        )
        # A naive datetime is UTC.
        naive = await ok(
            api, "PATCH", f"{API}/datasets/{scope}/ds-p", json={"collected": "2027-05-06T07:08:09"}
        )
        assert _dt(naive["collected"]) == _dt("2027-05-06T07:08:09+00:00")


async def test_delete_dataset_deletes_its_files(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(
            api,
            scope,
            "ds-del",
            files=[{"name": "a", "uid": "f-del-a"}, {"name": "b", "uid": "f-del-b"}],
        )
        await upload(api, scope, "f-del-a", b"content")
        keep = await new_dataset(api, scope, "ds-keep", files=[{"name": "c", "uid": "f-keep"}])
        ans = await api.request("DELETE", f"{API}/datasets/{scope}/ds-del")
        assert ans.status == 200, ans.body
        assert set(ans.json()) == {"detail"} and isinstance(ans.json()["detail"], str)
        assert_error(await api.request("GET", f"{API}/datasets/{scope}/ds-del"), 404)
        for f in ("f-del-a", "f-del-b"):
            assert_error(await api.request("GET", f"{API}/files/{scope}/{f}"), 404)
            assert_error(await api.request("GET", f"{API}/uploads/{scope}/{f}"), 404)
        listed = await ok(api, "GET", f"{API}/datasets/", params={"scope": scope})
        assert [d["uid"] for d in listed] == ["ds-keep"]
        assert listed[0]["files"] == keep["files"]
        assert_error(await api.request("DELETE", f"{API}/datasets/{scope}/ds-del"), 404)
        # The uids are free again.
        await new_dataset(api, scope, "ds-del", files=[{"name": "a", "uid": "f-del-a"}])


# ---------------------------------------------------------------------------- query

# Created in this order: b, d, a, c. Newest created first, among ranking >= 0: c, a, b.
SEED: list[dict[str, Any]] = [
    {
        "uid": "b",
        "name": "alpha two",
        "collected": "2026-03-02T10:00:00+00:00",
        "ranking": 1,
        "meta": {
            "sample": ["sample-1", "sample-2"],
            "fridge": "fridge-2",
            "keywords": ["kw-one"],
            "variablesMeasured": ["volt"],
        },
        "files": [
            {"name": "p.png", "uid": "b-preview", "filetype": "preview", "mimetype": "image/png"}
        ],
    },
    {
        "uid": "d",
        "name": "gamma",
        "collected": "2026-03-04T10:00:00+00:00",
        "ranking": -1,
        "meta": {"sample": "sample-1", "keywords": ["kw-one"]},
    },
    {
        "uid": "a",
        "name": "alpha one",
        "collected": "2026-03-01T10:00:00+00:00",
        "ranking": 0,
        "meta": {
            "sample": "sample-1",
            "fridge": "fridge-1",
            "setup": "setup-A",
            "measurement_type": "iv-curve",
            "keywords": ["kw-one", "kw-two"],
            "variablesMeasured": ["volt", "current"],
        },
        "files": [{"name": "raw", "uid": "a-raw", "filetype": "raw"}],
    },
    {
        "uid": "c",
        "name": "beta",
        "collected": "2026-03-03T10:00:00+00:00",
        "ranking": 5,
        "meta": {
            "sample": "sample-3",
            "setup": "setup-A",
            "measurement_type": "spectrum",
            "keywords": ["kw-two", "kw-three"],
        },
    },
]


async def _seeded(api: Api) -> str:
    scope = await api.new_scope()
    for ds in SEED:
        await new_dataset(api, scope, **ds)
    # Another scope with the same data must never leak into the answers.
    other = await api.new_scope()
    for ds in SEED:
        await new_dataset(api, other, **{**ds, "files": []})
    return scope


async def _uids(api: Api, scope: str, *params: tuple[str, Any]) -> list[str]:
    body = await ok(api, "GET", f"{API}/datasets/", params=[("scope", scope), *params])
    for ds in body:
        _assert_dataset_shape(ds)
        assert ds["scope"] == scope
    return [ds["uid"] for ds in body]


async def test_query_requires_scope(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        assert_422(await api.request("GET", f"{API}/datasets/"), ["query", "scope"])
        assert_error(
            await api.request("GET", f"{API}/datasets/", params={"scope": uid("no-scope")}), 404
        )


async def test_query_default_order_and_ranking(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        # Newest created first; the default ranking=0 keeps ranking-0 datasets.
        assert await _uids(api, scope) == ["c", "a", "b"]
        assert await _uids(api, scope, ("ranking", 0)) == ["c", "a", "b"]
        assert await _uids(api, scope, ("ranking", -5)) == ["c", "a", "d", "b"]
        assert await _uids(api, scope, ("ranking", 1)) == ["c", "b"]  # at least 1
        assert await _uids(api, scope, ("ranking", 5)) == ["c"]
        assert await _uids(api, scope, ("ranking", 6)) == []


async def test_query_order_ties_by_uid(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        for u in ("t-c", "t-a", "t-b"):
            await new_dataset(api, scope, u)
        newer = await new_dataset(api, scope, "t-0")
        assert await _uids(api, scope) == ["t-0", "t-b", "t-a", "t-c"]
        # Give the first three the same `created` (no API can): then uid ascending.
        conn = sqlite3.connect(server.data_dir / "etiket.sqlite3", timeout=10)
        try:
            with conn:
                conn.execute(
                    "UPDATE datasets SET created = (SELECT created FROM datasets WHERE uid = "
                    "'t-c' AND scope_id = (SELECT id FROM scopes WHERE name = ?)) "
                    "WHERE uid IN ('t-a', 't-b') AND scope_id = "
                    "(SELECT id FROM scopes WHERE name = ?)",
                    (scope, scope),
                )
        finally:
            conn.close()
        assert await _uids(api, scope) == ["t-0", "t-a", "t-b", "t-c"]
        assert newer["uid"] == "t-0"


async def test_query_paging(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        assert await _uids(api, scope, ("limit", 2)) == ["c", "a"]
        assert await _uids(api, scope, ("offset", 2), ("limit", 2)) == ["b"]
        assert await _uids(api, scope, ("offset", 1), ("limit", 1)) == ["a"]
        assert await _uids(api, scope, ("offset", 3)) == []
        assert_422(
            await api.request("GET", f"{API}/datasets/", params={"scope": scope, "offset": -1}),
            ["query", "offset"],
        )


async def test_query_name_prefix_and_uid(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        assert await _uids(api, scope, ("name", "alpha")) == ["a", "b"]
        assert await _uids(api, scope, ("name", "alpha t")) == ["b"]
        assert await _uids(api, scope, ("name", "lpha")) == []  # a prefix, not a substring
        assert await _uids(api, scope, ("name", "beta")) == ["c"]
        assert await _uids(api, scope, ("uid", "b")) == ["b"]
        assert await _uids(api, scope, ("uid", "zzz")) == []
        # Wildcards of LIKE are plain characters here.
        await new_dataset(api, scope, "pct", name="100% done")
        await new_dataset(api, scope, "pcx", name="100x done")
        await new_dataset(api, scope, "und", name="a_b")
        await new_dataset(api, scope, "unx", name="axb")
        assert await _uids(api, scope, ("name", "100%")) == ["pct"]
        assert await _uids(api, scope, ("name", "a_")) == ["und"]


async def test_query_since_until(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        assert await _uids(api, scope, ("since", "2026-03-02T00:00:00+00:00")) == ["c", "b"]
        assert await _uids(api, scope, ("until", "2026-03-02T12:00:00+00:00")) == ["a", "b"]
        assert await _uids(
            api,
            scope,
            ("since", "2026-03-01T12:00:00+00:00"),
            ("until", "2026-03-02T12:00:00+00:00"),
        ) == ["b"]
        # A naive value is UTC; an offset is honoured.
        assert await _uids(api, scope, ("since", "2026-03-02T09:30:00")) == ["c", "b"]
        assert await _uids(api, scope, ("since", "2026-03-02T11:30:00+02:00")) == ["c", "b"]
        assert await _uids(api, scope, ("until", "2026-03-02T11:30:00+02:00")) == ["a"]
        assert_422(
            await api.request(
                "GET", f"{API}/datasets/", params={"scope": scope, "since": "last week"}
            ),
            ["query", "since"],
        )


async def test_query_single_valued_meta(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        # Equal to a string value, or contained in a list value.
        assert await _uids(api, scope, ("sample", "sample-1")) == ["a", "b"]
        assert await _uids(api, scope, ("sample", "sample-2")) == ["b"]
        assert await _uids(api, scope, ("sample", "sample-3")) == ["c"]
        assert await _uids(api, scope, ("sample", "sample")) == []
        assert await _uids(api, scope, ("fridge", "fridge-1")) == ["a"]
        assert await _uids(api, scope, ("fridge", "fridge-2")) == ["b"]
        assert await _uids(api, scope, ("setup", "setup-A")) == ["c", "a"]
        assert await _uids(api, scope, ("measurementType", "iv-curve")) == ["a"]
        assert await _uids(api, scope, ("measurementType", "spectrum")) == ["c"]
        assert await _uids(api, scope, ("sample", "sample-1"), ("fridge", "fridge-2")) == ["b"]


async def test_query_keywords_all_must_match(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        assert await _uids(api, scope, ("keywords", "kw-one")) == ["a", "b"]
        assert await _uids(api, scope, ("keywords", "kw-two")) == ["c", "a"]
        assert await _uids(api, scope, ("keywords", "kw-one"), ("keywords", "kw-two")) == ["a"]
        assert await _uids(api, scope, ("keywords", "kw-two"), ("keywords", "kw-three")) == ["c"]
        assert await _uids(api, scope, ("keywords", "kw-one"), ("keywords", "kw-three")) == []


async def test_query_variables_measured_all_must_match(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        assert await _uids(api, scope, ("variablesMeasured", "volt")) == ["a", "b"]
        assert await _uids(
            api, scope, ("variablesMeasured", "volt"), ("variablesMeasured", "current")
        ) == ["a"]
        assert (
            await _uids(
                api, scope, ("variablesMeasured", "current"), ("variablesMeasured", "power")
            )
            == []
        )


async def test_query_preview(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        assert await _uids(api, scope, ("preview", "true")) == ["b"]
        assert await _uids(api, scope, ("preview", "false")) == ["c", "a", "b"]
        # A file added later with filetype preview counts too.
        await ok(
            api,
            "POST",
            f"{API}/files/",
            json={
                "name": "p2",
                "uid": "c-preview",
                "dataset_uid": "c",
                "scope": scope,
                "filetype": "preview",
            },
        )
        assert await _uids(api, scope, ("preview", "true")) == ["c", "b"]


async def test_query_collection(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        await ok(api, "POST", f"{API}/collections/", json={"name": "coll", "scope": scope})
        await ok(api, "POST", f"{API}/collections/", json={"name": "empty", "scope": scope})
        for ds in ("a", "c"):
            await ok(api, "PUT", f"{API}/collections/{scope}/coll/datasets/{ds}")
        assert await _uids(api, scope, ("collection", "coll")) == ["c", "a"]
        assert await _uids(api, scope, ("collection", "empty")) == []
        assert await _uids(api, scope, ("collection", "no-such-coll")) == []
        assert await _uids(api, scope, ("collection", "coll"), ("name", "alpha")) == ["a"]


async def test_query_combined(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await _seeded(api)
        assert await _uids(
            api, scope, ("name", "alpha"), ("sample", "sample-1"), ("ranking", 1)
        ) == ["b"]
        assert (
            await _uids(
                api,
                scope,
                ("keywords", "kw-one"),
                ("preview", "true"),
                ("until", "2026-03-01T23:00:00+00:00"),
            )
            == []
        )


# ---------------------------------------------------------------------------- metadata


async def test_metadata_post_merges(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        before = await new_dataset(
            api,
            scope,
            "m1",
            meta={"sample": "sample-1", "fridge": "fridge-1", "keywords": ["kw-a", "kw-b"]},
        )
        ds = await ok(
            api,
            "POST",
            f"{API}/metadata/{scope}/m1",
            json={"meta": {"fridge": "fridge-9", "setup": "setup-x", "keywords": ["kw-c"]}},
        )
        _assert_dataset_shape(ds)
        assert ds["meta"] == {
            "sample": "sample-1",
            "fridge": "fridge-9",
            "setup": "setup-x",
            "keywords": ["kw-c"],
        }
        assert _dt(ds["modified"]) >= _dt(before["modified"])
        assert (await ok(api, "GET", f"{API}/datasets/{scope}/m1"))["meta"] == ds["meta"]
        # The query index follows.
        assert await _uids(api, scope, ("fridge", "fridge-1")) == []
        assert await _uids(api, scope, ("fridge", "fridge-9")) == ["m1"]
        assert await _uids(api, scope, ("keywords", "kw-a")) == []
        assert await _uids(api, scope, ("keywords", "kw-c")) == ["m1"]
        assert await _uids(api, scope, ("setup", "setup-x")) == ["m1"]


async def test_metadata_put_replaces(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "m2", meta={"sample": "sample-1", "fridge": "fridge-1"})
        ds = await ok(
            api, "PUT", f"{API}/metadata/{scope}/m2", json={"meta": {"keywords": ["kw-x", "kw-y"]}}
        )
        assert ds["meta"] == {"keywords": ["kw-x", "kw-y"]}
        assert await _uids(api, scope, ("sample", "sample-1")) == []
        assert await _uids(api, scope, ("keywords", "kw-x"), ("keywords", "kw-y")) == ["m2"]
        ds = await ok(api, "PUT", f"{API}/metadata/{scope}/m2", json={"meta": {}})
        assert ds["meta"] == {}
        assert await _uids(api, scope, ("keywords", "kw-x")) == []


async def test_metadata_delete_removes_keys(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(
            api,
            scope,
            "m3",
            meta={"sample": "sample-1", "fridge": "fridge-1", "keywords": ["kw-a"]},
        )
        ds = await ok(
            api, "DELETE", f"{API}/metadata/{scope}/m3", json={"keys": ["fridge", "keywords"]}
        )
        _assert_dataset_shape(ds)
        assert ds["meta"] == {"sample": "sample-1"}
        assert await _uids(api, scope, ("fridge", "fridge-1")) == []
        assert await _uids(api, scope, ("sample", "sample-1")) == ["m3"]
        ds = await ok(api, "DELETE", f"{API}/metadata/{scope}/m3", json={"keys": ["sample"]})
        assert ds["meta"] == {}  # always an object
        assert (await ok(api, "GET", f"{API}/datasets/{scope}/m3"))["meta"] == {}


async def test_metadata_unknown_dataset_is_404(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        for method in ("POST", "PUT"):
            assert_error(
                await api.request(
                    method, f"{API}/metadata/{scope}/nope", json={"meta": {"sample": "sample-1"}}
                ),
                404,
            )
        assert_error(
            await api.request("DELETE", f"{API}/metadata/{scope}/nope", json={"keys": ["sample"]}),
            404,
        )


async def test_metadata_bounds_accepted(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        meta = {"abc": "xyz", "k" * 19: "v" * 19, "lst": ["abc", "w" * 19]}
        ds = await new_dataset(api, scope, "mb", meta=meta)
        assert ds["meta"] == meta
        ds = await ok(api, "POST", f"{API}/metadata/{scope}/mb", json={"meta": {"new": "val"}})
        assert ds["meta"] == {**meta, "new": "val"}


BAD_META: list[tuple[str, Any, list[Any]]] = [
    ("value-too-short", {"sample": "ab"}, ["body", "meta", "sample"]),
    ("value-too-long", {"sample": "v" * 20}, ["body", "meta", "sample"]),
    ("value-empty", {"sample": ""}, ["body", "meta", "sample"]),
    ("list-item-too-short", {"keywords": ["kw-ok", "no"]}, ["body", "meta", "keywords"]),
    ("list-item-too-long", {"keywords": ["x" * 20]}, ["body", "meta", "keywords"]),
    ("value-number", {"sample": 12345}, ["body", "meta", "sample"]),
    ("value-object", {"sample": {"a": "bcd"}}, ["body", "meta", "sample"]),
    ("value-nested-list", {"sample": [["abc"]]}, ["body", "meta", "sample"]),
    ("value-null", {"sample": None}, ["body", "meta", "sample"]),
    ("key-too-short", {"ab": "value"}, ["body", "meta"]),
    ("key-too-long", {"k" * 20: "value"}, ["body", "meta"]),
]


@pytest.mark.parametrize(
    ("meta", "loc"), [(m, loc) for _, m, loc in BAD_META], ids=[case for case, _, _ in BAD_META]
)
async def test_metadata_rule_is_422(server: ServerProcess, meta: Any, loc: list[Any]) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "mv", meta={"sample": "sample-1"})
        for method in ("POST", "PUT"):
            items = assert_422(
                await api.request(method, f"{API}/metadata/{scope}/mv", json={"meta": meta})
            )
            assert any(item["loc"][: len(loc)] == loc for item in items), (loc, items)
        items = assert_422(
            await api.request(
                "POST",
                f"{API}/datasets/",
                json={"name": "n", "uid": "mv2", "scope": scope, "meta": meta},
            )
        )
        assert any(item["loc"][: len(loc)] == loc for item in items), (loc, items)
        # Nothing was stored.
        assert (await ok(api, "GET", f"{API}/datasets/{scope}/mv"))["meta"] == {
            "sample": "sample-1"
        }
        assert_error(await api.request("GET", f"{API}/datasets/{scope}/mv2"), 404)


async def test_metadata_value_error_names_the_key(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "mk")
        assert_422(
            await api.request(
                "POST", f"{API}/metadata/{scope}/mk", json={"meta": {"sample": "x" * 25}}
            ),
            ["body", "meta", "sample"],
        )


@pytest.mark.parametrize("body", [{}, {"meta": "text"}, {"meta": ["abc"]}, None])
async def test_metadata_body_shape_is_422(server: ServerProcess, body: Any) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ms")
        kw: dict[str, Any] = {} if body is None else {"json": body}
        assert_422(await api.request("PUT", f"{API}/metadata/{scope}/ms", **kw))
        assert_422(
            await api.request("DELETE", f"{API}/metadata/{scope}/ms", json={"keys": "sample"}),
            ["body", "keys"],
        )
