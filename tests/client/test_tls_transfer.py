"""Transfers over TLS: a file on disk cannot go by the kernel's sendfile into a TLS
socket, so the upload body falls back to reading and writing blocks; the bytes must
arrive the same, and come back the same through parallel Range requests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from aiohttp import web

import aetiket
from aetiket.server.app import create_app
from aetiket.server.config import ServerConfig

from .conftest import Certs

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


async def test_a_parallel_upload_and_download_over_tls(certs: Certs, tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", admin_user="admin", admin_password="pw")
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certs.server_context())
        await site.start()
        port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
        url = f"https://127.0.0.1:{port}"
        source = tmp_path / "raw.bin"
        source.write_bytes(os.urandom(5 * MiB + 123))
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        transfer = aetiket.TransferConfig(min_part=MiB, chunk_size=2 * MiB)
        async with aetiket.Client(url, ca_file=str(certs.ca_file), transfer=transfer) as client:
            await client.login("admin", "pw")
            await client.scopes.create(aetiket.ScopeIn(name="tls", description="over TLS"))
            file_uid = aetiket.new_uid()
            await client.datasets.create(
                aetiket.DatasetIn(
                    name="tls",
                    uid=aetiket.new_uid(),
                    scope="tls",
                    files=[aetiket.FileDatasetIn(name="raw.bin", uid=file_uid)],
                )
            )
            up = await client.upload(source, scope="tls", file_uid=file_uid, parallel=3)
            assert up.verified and up.sha256 == digest and len(up.part_urls) == 3
            assert all(u.startswith("https://") for u in up.part_urls)
            down = await client.download("tls", file_uid, tmp_path / "back.bin", parallel=4)
        assert down.verified and down.sha256 == digest
        assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == digest
    finally:
        await runner.cleanup()
