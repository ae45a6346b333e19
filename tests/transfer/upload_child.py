"""A child process for the kill -9 tests: log in, upload one file, print the result.

    python tests/transfer/upload_child.py --url URL --auth-url URL --user U --password P \
        --scope S --uid F --path FILE --resume-dir DIR [--parallel 4] [--chunk-size N] \
        [--min-part N] [--block-size N] [--checksum sha256] [--bandwidth BYTES_PER_S]

It logs in at ``--auth-url`` (so a proxy in front of ``--url`` sees only the upload's own
requests), then uploads ``--path`` through ``--url`` as the content of ``scope/uid`` with
the given transfer settings and resume folder. On success it prints one JSON line with
the result (``resumed``, ``verified``, ``sha256``, ``size``, ``parts``) and exits 0.
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
    parser.add_argument("--auth-url", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--scope", required=True)
    parser.add_argument("--uid", required=True)
    parser.add_argument("--path", required=True, type=Path)
    parser.add_argument("--resume-dir", required=True, type=Path)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--chunk-size", type=int, default=512 * 1024)
    parser.add_argument("--min-part", type=int, default=256 * 1024)
    parser.add_argument("--block-size", type=int, default=64 * 1024)
    parser.add_argument("--checksum", default="sha256")
    parser.add_argument("--bandwidth", type=float, default=None)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    async with aetiket.Client(args.auth_url) as auth:
        await auth.login(args.user, args.password)
        token, refresh = auth.token, auth.refresh_token
    config = aetiket.TransferConfig(
        parallel=args.parallel,
        chunk_size=args.chunk_size,
        min_part=args.min_part,
        block_size=args.block_size,
        checksum=args.checksum or None,
        bandwidth=args.bandwidth,
        resume_dir=args.resume_dir,
    )
    async with aetiket.Client(
        args.url, token=token, refresh_token=refresh, transfer=config
    ) as client:
        result = await client.upload(args.path, scope=args.scope, file_uid=args.uid)
    print(
        json.dumps(
            {
                "resumed": result.resumed,
                "verified": result.verified,
                "sha256": result.sha256,
                "size": result.size,
                "parts": len(result.part_urls),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    anyio.run(_main, _args(sys.argv[1:]))
