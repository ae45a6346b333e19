"""The server answers the basics end to end."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import ServerProcess
from tests.http import OCTETS, TUS, api_for, tus_metadata

pytestmark = pytest.mark.anyio


async def test_upload_then_range_download(server: ServerProcess) -> None:
    async with api_for(server.url, server.admin_user, server.admin_password) as api:
        scope = await api.new_scope()
        fuid = await api.new_file(scope)
        data = bytes(range(256)) * 40
        ans = await api.request(
            "POST",
            "/api/v1/uploads/",
            headers={
                **TUS,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": tus_metadata(scope=scope, uid=fuid),
            },
        )
        assert ans.status == 201, ans.body
        location = ans.headers["Location"]
        assert location.startswith(server.url)
        ans = await api.request(
            "PATCH", location, data=data, headers={**TUS, **OCTETS, "Upload-Offset": "0"}
        )
        assert ans.status == 204, ans.body
        assert ans.headers["Upload-Offset"] == str(len(data))
        ans = await api.request(
            "GET", f"/api/v1/files/{scope}/{fuid}", headers={"Range": "bytes=100-199"}
        )
        assert ans.status == 206
        assert ans.body == data[100:200]
        assert ans.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert ans.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
