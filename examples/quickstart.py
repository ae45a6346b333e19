"""The main job, end to end, against the embedded local eTiKeT server.

Starts the local server in this process on a free loopback port (data under
``$AETIKET_HOME``, or a temporary folder with ``--tmp``), logs in as its admin, creates a
scope and a dataset with a file, uploads the file with tus as parallel partial uploads
joined by concatenation, downloads a byte range back, and checks every byte.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from aetiket._config import default_home
from aetiket.server import LocalServer, ServerConfig

API = "/api/v1"
TUS = {"Tus-Resumable": "1.0.0"}


def _meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


async def _upload_slice(s: aiohttp.ClientSession, url: str, data: memoryview) -> str:
    async with s.post(f"{url}{API}/uploads/", headers={
        **TUS, "Upload-Concat": "partial", "Upload-Length": str(len(data))}) as r:
        assert r.status == 201, await r.text()
        location = r.headers["Location"]
    async with s.patch(location, data=bytes(data), headers={
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}) as r:
        assert r.status == 204, await r.text()
    return location


async def main(home: Path, size: int, parts: int) -> None:
    password = os.urandom(12).hex()
    config = ServerConfig(data_dir=home / "server", admin_user="local-admin",
                          admin_password=password)
    async with LocalServer(config) as server:
        print(f"embedded eTiKeT server on {server.url} (data in {config.data_dir})")
        async with aiohttp.ClientSession(server.url) as anon:
            async with anon.post(f"{API}/token", data={
                    "username": "local-admin", "password": password, "scope": ""}) as r:
                token = (await r.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=auth) as s:
            url = server.url
            scope = "quickstart"
            async with s.post(f"{url}{API}/scopes/",
                              json={"name": scope, "description": "quick start"}) as r:
                assert r.status in (200, 409), await r.text()
            ds_uid, file_uid = os.urandom(6).hex(), os.urandom(6).hex()
            async with s.post(f"{url}{API}/datasets/", json={
                "name": "demo run", "uid": ds_uid, "scope": scope,
                "meta": {"sample": "sampleA1", "keywords": ["demo", "quickstart"]},
                "files": [{"name": "measurement.bin", "uid": file_uid}],
            }) as r:
                assert r.status == 200, await r.text()
            data = memoryview(os.urandom(size))
            step = -(-size // parts)
            start = time.perf_counter()
            locations = await asyncio.gather(*(
                _upload_slice(s, url, data[i:i + step]) for i in range(0, size, step)))
            async with s.post(f"{url}{API}/uploads/", headers={
                **TUS, "Upload-Concat": "final;" + " ".join(locations),
                "Upload-Metadata": _meta(scope=scope, uid=file_uid)}) as r:
                assert r.status == 201, await r.text()
            took = time.perf_counter() - start
            print(f"uploaded {size / 2**20:.0f} MiB as {len(locations)} parallel partial "
                  f"uploads in {took:.2f} s ({size / 2**20 / took:.0f} MiB/s)")
            async with s.get(f"{url}{API}/uploads/{scope}/{file_uid}") as r:
                record = await r.json()
            assert record["status"] == "available", record
            assert record["etag"] == hashlib.sha256(data).hexdigest()
            async with s.get(f"{url}{API}/files/{scope}/{file_uid}",
                             headers={"Range": "bytes=1000-1999"}) as r:
                assert r.status == 206 and await r.read() == bytes(data[1000:2000])
            async with s.get(f"{url}{API}/datasets/",
                             params={"scope": scope, "sample": "sampleA1"}) as r:
                found = [d["uid"] for d in await r.json()]
            assert ds_uid in found
            print(f"dataset {scope}/{ds_uid}: file {file_uid} available, sha256 verified, "
                  "range download verified, metadata query finds it")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tmp", action="store_true", help="keep no data (temporary folder)")
    parser.add_argument("--size-mib", type=int, default=32)
    parser.add_argument("--parts", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) if args.tmp else default_home()
        asyncio.run(main(home, args.size_mib * 2**20, args.parts))
    sys.exit(0)
