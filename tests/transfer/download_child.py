"""A child process for the kill -9 download test: download one file, print the result.

    python tests/transfer/download_child.py --url URL --token TOKEN --scope S --uid F \
        --dest PATH [--parallel 4] [--bandwidth BYTES_PER_S]

It downloads the content of ``scope/uid`` from the server at ``--url`` (a proxy in front
of it, as the test wants) with the access token ``--token`` to ``--dest``, over
``--parallel`` connections and at most ``--bandwidth`` bytes per second (so that the
test can kill it mid-way). On success it prints one JSON line with the result
(``size``, ``resumed``, ``verified``, ``sha256``, ``connections``) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio

import aetiket


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--scope", required=True)
    parser.add_argument("--uid", required=True)
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--bandwidth", type=float, default=None)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    async with aetiket.Client(args.url, token=args.token) as client:
        result = await client.download(
            args.scope, args.uid, args.dest, parallel=args.parallel, bandwidth=args.bandwidth
        )
    print(
        json.dumps(
            {
                "size": result.size,
                "resumed": result.resumed,
                "verified": result.verified,
                "sha256": result.sha256,
                "connections": result.connections,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    anyio.run(_main, _args(sys.argv[1:]))
