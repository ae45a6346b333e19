"""aetiket as a benchmark client: one upload or one download in its own process.

    python benchmarks/_aetiket_driver.py upload --url U [--token T] --path P
        (--scope S --uid ID | --endpoint /files) [--parallel N]
    python benchmarks/_aetiket_driver.py download --url U [--token T] --dest D
        (--scope S --uid ID | --src-url URL [--sha256 H]) [--parallel N|auto]

Prints one JSON line: ``seconds`` (the transfer, timed here: interpreter start and imports
excluded), ``connections`` (downloads: the most at once), ``verified``. The benchmark
process measures this process's CPU seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aetiket


async def main(args: argparse.Namespace) -> dict[str, object]:
    parallel = None if args.parallel in (None, "auto") else int(args.parallel)
    started = time.perf_counter()
    async with aetiket.Client(args.url, token=args.token, trust_env=False) as client:
        if args.command == "upload":
            if args.scope:
                up = await client.upload(
                    args.path, scope=args.scope, file_uid=args.uid, parallel=parallel
                )
            else:
                up = await client.upload(args.path, endpoint=args.endpoint, parallel=parallel)
            seconds = time.perf_counter() - started
            return {"seconds": seconds, "parts": len(up.part_urls), "verified": up.verified}
        if args.scope:
            down = await client.download(args.scope, args.uid, args.dest, parallel=parallel)
        else:
            down = await client.download_url(
                args.src_url, args.dest, parallel=parallel, sha256=args.sha256
            )
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "connections": down.connections, "verified": down.verified}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["upload", "download"])
    p.add_argument("--url", required=True, help="the client's base URL")
    p.add_argument("--token")
    p.add_argument("--path")
    p.add_argument("--dest")
    p.add_argument("--scope")
    p.add_argument("--uid")
    p.add_argument("--endpoint", default="/files")
    p.add_argument("--src-url")
    p.add_argument("--sha256")
    p.add_argument("--parallel", help="a number, or 'auto' (None: adaptive downloads)")
    return p.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse()))), flush=True)
