"""The main job, end to end, against the embedded local eTiKeT server.

Starts the local server in this process on a free loopback port (data under
``$AETIKET_HOME``, or a temporary folder with ``--tmp``), then, with the async client:
logs in, creates a scope and a dataset with metadata and a file record, uploads a file
as parallel tus partial uploads joined by concatenation (verified against the server's
SHA-256 ETag), finds the dataset again by its metadata, downloads the file back with
parallel Range requests (verified), and reads a byte range.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import tempfile
from pathlib import Path

import aetiket
from aetiket import DatasetIn, FileDatasetIn, ProgressBars, ScopeIn
from aetiket._config import default_home
from aetiket.server import LocalServer, ServerConfig


async def main(home: Path, size: int, parallel: int, quiet: bool) -> None:
    password = secrets.token_urlsafe(16)
    config = ServerConfig(data_dir=home / "server", admin_user="quickstart",
                          admin_password=password)
    async with LocalServer(config) as server, aetiket.Client(server.url) as client:
        print(f"embedded eTiKeT server on {server.url} (data in {config.data_dir})")
        await client.login("quickstart", password)
        try:
            await client.scopes.create(ScopeIn(name="quickstart", description="the demo"))
        except aetiket.Conflict:
            pass  # a second run over the same data
        uid, file_uid = aetiket.new_uid(), aetiket.new_uid()
        await client.datasets.create(DatasetIn(
            name="demo run", uid=uid, scope="quickstart",
            meta={"sample": "sampleA1", "keywords": ["demo", "quickstart"]},
            files=[FileDatasetIn(name="measurement.bin", uid=file_uid)]))

        work = home / "quickstart"
        work.mkdir(parents=True, exist_ok=True)
        source = work / "measurement.bin"
        with open(source, "wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))
        sha = hashlib.sha256(source.read_bytes()).hexdigest()

        bars = ProgressBars() if not quiet else None
        with bars or _Null():
            up = await client.upload(source, scope="quickstart", file_uid=file_uid,
                                     parallel=parallel, progress=bars)
        print(f"uploaded {up.size / 2**20:.0f} MiB as {len(up.part_urls)} parallel partial "
              f"uploads in {up.seconds:.2f} s ({up.rate / 1e6:.0f} MB/s), "
              f"verified={up.verified}")

        found = [d.uid async for d in client.datasets.list("quickstart", sample="sampleA1")]
        assert uid in found, "the metadata query must find the dataset"

        with bars or _Null():
            down = await client.download("quickstart", file_uid, work / "copy.bin",
                                         progress=bars)
        assert hashlib.sha256(down.dest.read_bytes()).hexdigest() == sha
        print(f"downloaded it with {down.connections} connection(s) in {down.seconds:.2f} s "
              f"({down.rate / 1e6:.0f} MB/s), verified={down.verified}")

        head = await client.files.read("quickstart", file_uid, range=(1000, 1999))
        assert head == source.read_bytes()[1000:2000]
        print(f"dataset quickstart/{uid}: found by metadata, file {file_uid} byte-identical "
              "both ways, range read checked")


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tmp", action="store_true", help="keep no data (temporary folder)")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) if args.tmp else default_home()
        asyncio.run(main(home, args.size_mib * 2**20, args.parallel, args.quiet))
