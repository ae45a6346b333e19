"""The Python peers of the transfer benchmarks, one transfer per process.

    python benchmarks/_clients.py tuspy  '<json>'   # tusclient.Uploader(chunk_size=...)
    python benchmarks/_clients.py aiotus '<json>'   # aiotus.upload(chunksize=...)
    python benchmarks/_clients.py aiohttp-get '<json>'   # one GET, plain writes to a file

json: ``endpoint``/``url``, ``path``/``dest``, ``headers``, ``metadata``, ``chunk_size``.
Prints one JSON line ``{"seconds": ...}``: the transfer, timed here (imports excluded).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


def tuspy(args: dict[str, Any]) -> float:
    from tusclient import client

    started = time.perf_counter()
    tus = client.TusClient(args["endpoint"], headers=args.get("headers") or {})
    uploader = tus.uploader(
        args["path"], chunk_size=args["chunk_size"], metadata=args.get("metadata") or {}
    )
    uploader.upload()
    return time.perf_counter() - started


async def aiotus_upload(args: dict[str, Any]) -> float:
    import aiohttp
    import aiotus

    meta = {k: v.encode() for k, v in (args.get("metadata") or {}).items()}
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        with open(args["path"], "rb") as f:  # noqa: ASYNC230 - as aiotus users do
            url = await aiotus.upload(
                args["endpoint"],
                f,
                meta,
                client_session=session,
                headers=args.get("headers") or {},
                chunksize=args["chunk_size"],
                config=aiotus.RetryConfiguration(retry_attempts=1),
            )
    if url is None:
        raise SystemExit("aiotus: the upload failed")
    return time.perf_counter() - started


async def aiohttp_get(args: dict[str, Any]) -> float:
    import aiohttp

    started = time.perf_counter()
    headers = {"Accept-Encoding": "identity", **(args.get("headers") or {})}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(args["url"], headers=headers) as resp,
    ):
        resp.raise_for_status()
        with open(args["dest"], "wb") as f:  # noqa: ASYNC230 - the plain-writes baseline
            async for chunk in resp.content.iter_any():
                f.write(chunk)
    return time.perf_counter() - started


def main() -> None:
    kind, args = sys.argv[1], json.loads(sys.argv[2])
    if kind == "tuspy":
        seconds = tuspy(args)
    elif kind == "aiotus":
        seconds = asyncio.run(aiotus_upload(args))
    elif kind == "aiohttp-get":
        seconds = asyncio.run(aiohttp_get(args))
    else:
        raise SystemExit(f"unknown client {kind!r}")
    print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
