"""Files (ETIKET_API.md, "Files"): records, PATCH, DELETE, content GET/HEAD."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.http import TUS, Api, tus_metadata

from .helpers import (
    API,
    admin_api,
    assert_422,
    assert_error,
    new_dataset,
    ok,
    open_upload,
    uid,
    upload,
)

pytestmark = pytest.mark.anyio

FILE_OUT_REQUIRED = {
    "name",
    "uid",
    "scope",
    "status",
    "uploads",
    "created",
    "modified",
    "download_link",
}


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_file_out(body: dict[str, Any], scope: str, file_uid: str) -> None:
    assert set(body) >= FILE_OUT_REQUIRED, body
    assert (body["scope"], body["uid"]) == (scope, file_uid)
    assert isinstance(body["uploads"], list)
    assert body["status"] in {"unavailable", "pending", "available", "secured"}


async def _file(
    api: Api, scope: str, dataset_uid: str, file_uid: str, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = await ok(
        api,
        "POST",
        f"{API}/files/",
        json={
            "name": "file.bin",
            "uid": file_uid,
            "dataset_uid": dataset_uid,
            "scope": scope,
            **fields,
        },
    )
    _assert_file_out(body, scope, file_uid)
    return body


async def test_create_file_minimal(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        ds = await new_dataset(api, scope, "ds")
        body = await _file(api, scope, "ds", "f-min")
        assert body["status"] == "unavailable"
        assert body["uploads"] == []  # always present, even when empty
        assert body["name"] == "file.bin"
        assert body.get("mimetype", "application/octet-stream") == "application/octet-stream"
        assert body.get("filetype", "undefined") == "undefined"
        assert body.get("immutable", False) is False
        for absent in ("collected", "duration", "creator", "etag", "size", "altlocation"):
            assert absent not in body
        assert body["download_link"] == f"{server.url}/api/v1/files/{scope}/f-min"
        # It is listed in its dataset, as a FileDatasetOut.
        listed = (await ok(api, "GET", f"{API}/datasets/{scope}/ds"))["files"]
        assert [f["uid"] for f in listed] == ["f-min"]
        assert "scope" not in listed[0] and "uploads" not in listed[0]
        assert _dt((await ok(api, "GET", f"{API}/datasets/{scope}/ds"))["modified"]) >= _dt(
            ds["modified"]
        )


async def test_create_file_all_fields(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ds")
        body = await _file(
            api,
            scope,
            "ds",
            "f-all",
            name="data.h5",
            collected="2026-04-05T06:07:08+00:00",
            duration=3.5,
            creator="Ada",
            etag="abc123",
            size=1234,
            mimetype="application/x-hdf5",
            altlocation="s3://bucket/key",
            rating=4,
            immutable=True,
            filetype="raw",
        )
        assert body["name"] == "data.h5"
        assert _dt(body["collected"]) == _dt("2026-04-05T06:07:08+00:00")
        assert (body["duration"], body["creator"], body["etag"], body["size"]) == (
            3.5,
            "Ada",
            "abc123",
            1234,
        )
        assert (
            body["mimetype"],
            body["altlocation"],
            body["rating"],
            body["immutable"],
            body["filetype"],
        ) == ("application/x-hdf5", "s3://bucket/key", 4, True, "raw")
        assert body["status"] == "unavailable" and body["uploads"] == []
        got = await ok(api, "GET", f"{API}/uploads/{scope}/f-all")
        assert got == body


async def test_create_file_errors(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ds", files=[{"name": "x", "uid": "f-taken"}])
        # The uid is taken in the scope (here by a file listed at dataset creation).
        assert_error(
            await api.request(
                "POST",
                f"{API}/files/",
                json={"name": "n", "uid": "f-taken", "dataset_uid": "ds", "scope": scope},
            ),
            409,
        )
        assert_error(
            await api.request(
                "POST",
                f"{API}/files/",
                json={"name": "n", "uid": "f-1", "dataset_uid": "no-such-ds", "scope": scope},
            ),
            404,
        )
        assert_error(
            await api.request(
                "POST",
                f"{API}/files/",
                json={"name": "n", "uid": "f-2", "dataset_uid": "ds", "scope": uid("no-scope")},
            ),
            404,
        )
        assert_422(
            await api.request(
                "POST",
                f"{API}/files/",
                json={
                    "name": "n",
                    "uid": "f-3",
                    "dataset_uid": "ds",
                    "scope": scope,
                    "filetype": "picture",
                },
            ),
            ["body", "filetype"],
        )
        assert_422(
            await api.request(
                "POST", f"{API}/files/", json={"name": "n", "uid": "f-4", "scope": scope}
            ),
            ["body", "dataset_uid"],
        )
        files = (await ok(api, "GET", f"{API}/datasets/{scope}/ds"))["files"]
        assert [f["uid"] for f in files] == ["f-taken"]


async def test_patch_file(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(api, scope, "ds")
        before = await _file(
            api, scope, "ds", "f-p", creator="Ada", altlocation="elsewhere", size=10
        )
        body = await ok(
            api,
            "PATCH",
            f"{API}/files/{scope}/f-p",
            json={
                "name": "renamed.csv",
                "mimetype": "text/csv",
                "filetype": "derived",
                "rating": 5,
            },
        )
        _assert_file_out(body, scope, "f-p")
        assert (body["name"], body["mimetype"], body["filetype"], body["rating"]) == (
            "renamed.csv",
            "text/csv",
            "derived",
            5,
        )
        # Omitted fields are unchanged.
        assert (body["creator"], body["altlocation"], body["size"]) == ("Ada", "elsewhere", 10)
        assert body["created"] == before["created"]
        assert _dt(body["modified"]) >= _dt(before["modified"])
        # An explicit null clears altlocation (omitted afterwards, never null).
        cleared = await ok(api, "PATCH", f"{API}/files/{scope}/f-p", json={"altlocation": None})
        assert "altlocation" not in cleared
        assert cleared["name"] == "renamed.csv"
        assert await ok(api, "GET", f"{API}/uploads/{scope}/f-p") == cleared
        listed = (await ok(api, "GET", f"{API}/datasets/{scope}/ds"))["files"][0]
        assert (listed["name"], listed["filetype"]) == ("renamed.csv", "derived")
        assert_422(
            await api.request("PATCH", f"{API}/files/{scope}/f-p", json={"filetype": "nope"}),
            ["body", "filetype"],
        )
        assert_error(
            await api.request("PATCH", f"{API}/files/{scope}/nope", json={"name": "x"}), 404
        )


async def test_delete_file(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        await new_dataset(
            api, scope, "ds", files=[{"name": "a", "uid": "f-a"}, {"name": "b", "uid": "f-b"}]
        )
        await upload(api, scope, "f-a", b"some bytes")
        ans = await api.request("DELETE", f"{API}/files/{scope}/f-a")
        assert ans.status == 200, ans.body
        assert set(ans.json()) == {"detail"} and isinstance(ans.json()["detail"], str)
        assert_error(await api.request("GET", f"{API}/files/{scope}/f-a"), 404)
        assert_error(await api.request("GET", f"{API}/uploads/{scope}/f-a"), 404)
        assert_error(await api.request("DELETE", f"{API}/files/{scope}/f-a"), 404)
        files = (await ok(api, "GET", f"{API}/datasets/{scope}/ds"))["files"]
        assert [f["uid"] for f in files] == ["f-b"]
        # The dataset stays; the uid can be used again.
        await _file(api, scope, "ds", "f-a")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_content_before_upload_is_409(server: ServerProcess, method: str) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope)
        ans = await api.request(method, f"{API}/files/{scope}/{fuid}")
        assert ans.status == 409, ans.body
        if method == "GET":
            assert_error(ans, 409)
        else:
            assert ans.body == b""
        # Also while an upload is open (the file is pending, no content yet).
        await open_upload(api, scope, fuid, 100)
        assert (await ok(api, "GET", f"{API}/uploads/{scope}/{fuid}"))["status"] == "pending"
        assert (await api.request(method, f"{API}/files/{scope}/{fuid}")).status == 409


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_unknown_file_is_404(server: ServerProcess, method: str) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        ans = await api.request(method, f"{API}/files/{scope}/nope")
        assert ans.status == 404
        if method == "GET":
            assert_error(ans, 404)
        ans = await api.request(method, f"{API}/files/{uid('no-scope')}/nope")
        assert ans.status == 404


async def test_content_after_upload(server: ServerProcess) -> None:
    data = bytes(range(256)) * 3 + b"tail"
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    async with admin_api(server) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope, mimetype="text/plain")
        await upload(api, scope, fuid, data)
        record = await ok(api, "GET", f"{API}/uploads/{scope}/{fuid}")
        assert record["status"] == "available"
        assert record["size"] == len(data)
        assert f'"{record["etag"]}"' == etag
        [up] = record["uploads"]
        assert (up["offset"], up["length"], up["concat"], up["completed"]) == (
            len(data),
            len(data),
            False,
            True,
        )
        ans = await api.request("GET", record["download_link"])
        assert ans.status == 200
        assert ans.body == data
        headers = ans.headers
        assert headers["Content-Length"] == str(len(data))
        assert headers["Content-Type"].split(";")[0] == "text/plain"
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["ETag"] == etag  # strong: no W/
        last_modified = parsedate_to_datetime(headers["Last-Modified"])
        assert last_modified.tzinfo is not None
        # HEAD: the same headers, no body.
        head = await api.request("HEAD", f"{API}/files/{scope}/{fuid}")
        assert head.status == 200 and head.body == b""
        for name in ("Content-Length", "Content-Type", "Accept-Ranges", "ETag", "Last-Modified"):
            assert head.headers[name] == headers[name], name
        # A range covering the whole file still answers 206 with Content-Range.
        ans = await api.request(
            "GET", f"{API}/files/{scope}/{fuid}", headers={"Range": f"bytes=0-{len(data) - 1}"}
        )
        assert ans.status == 206 and ans.body == data
        assert ans.headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
        ans = await api.request("GET", f"{API}/files/{scope}/{fuid}", headers={"Range": "bytes=-4"})
        assert ans.status == 206 and ans.body == b"tail"
        ans = await api.request(
            "GET", f"{API}/files/{scope}/{fuid}", headers={"Range": f"bytes={len(data)}-"}
        )
        assert ans.status == 416
        assert ans.headers["Content-Range"] == f"bytes */{len(data)}"
        # If-Range with another ETag: the whole file, 200.
        ans = await api.request(
            "GET",
            f"{API}/files/{scope}/{fuid}",
            headers={"Range": "bytes=0-9", "If-Range": '"other"'},
        )
        assert ans.status == 200 and ans.body == data
        ans = await api.request(
            "GET", f"{API}/files/{scope}/{fuid}", headers={"Range": "bytes=0-9", "If-Range": etag}
        )
        assert ans.status == 206 and ans.body == data[:10]


async def test_content_missing_from_storage_is_a_500_before_any_header(
    server: ServerProcess,
) -> None:
    """Content removed behind the server's back (an operator, a broken disk): a JSON 500
    that says so, not a 206 whose body never comes (a client would retry it forever)."""
    data = b"gone soon" * 100
    async with admin_api(server) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope)
        await upload(api, scope, fuid, data)
        ans = await api.request("GET", f"{API}/files/{scope}/{fuid}")
        assert ans.status == 200 and ans.body == data
        [path] = [p for p in (server.data_dir / "content").iterdir() if p.read_bytes() == data]
        path.unlink()
        for method in ("GET", "HEAD"):
            ans = await api.request(
                method, f"{API}/files/{scope}/{fuid}", headers={"Range": "bytes=0-9"}
            )
            assert ans.status == 500, method
            if method == "GET":
                assert "missing from the server's storage" in ans.json()["detail"]


async def test_content_type_follows_patched_mimetype(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope)
        await upload(api, scope, fuid, b"{}")
        ans = await api.request("GET", f"{API}/files/{scope}/{fuid}")
        assert ans.headers["Content-Type"].split(";")[0] == "application/octet-stream"
        await ok(api, "PATCH", f"{API}/files/{scope}/{fuid}", json={"mimetype": "application/json"})
        ans = await api.request("GET", f"{API}/files/{scope}/{fuid}")
        assert ans.status == 200 and ans.body == b"{}"
        assert ans.headers["Content-Type"].split(";")[0] == "application/json"


async def test_empty_file(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope)
        await upload(api, scope, fuid, b"")
        record = await ok(api, "GET", f"{API}/uploads/{scope}/{fuid}")
        assert (record["status"], record["size"]) == ("available", 0)
        ans = await api.request("GET", f"{API}/files/{scope}/{fuid}")
        assert ans.status == 200 and ans.body == b""
        assert ans.headers["Content-Length"] == "0"


async def test_immutable_available_file_refuses_uploads(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope, immutable=True)
        await upload(api, scope, fuid, b"first")
        ans = await api.request(
            "POST",
            f"{API}/uploads/",
            headers={
                **TUS,
                "Upload-Length": "6",
                "Upload-Metadata": tus_metadata(scope=scope, uid=fuid),
            },
        )
        assert_error(ans, 409)
        ans = await api.request("GET", f"{API}/files/{scope}/{fuid}")
        assert ans.status == 200 and ans.body == b"first"


async def test_mutable_file_takes_a_new_upload(server: ServerProcess) -> None:
    async with admin_api(server) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope)
        await upload(api, scope, fuid, b"first")
        await upload(api, scope, fuid, b"second!")
        record = await ok(api, "GET", f"{API}/uploads/{scope}/{fuid}")
        assert (record["status"], record["size"]) == ("available", 7)
        assert len(record["uploads"]) == 2
        ans = await api.request("GET", f"{API}/files/{scope}/{fuid}")
        assert ans.body == b"second!"
