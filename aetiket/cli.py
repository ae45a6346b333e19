"""The ``aetiket`` command (DESIGN.md, "CLI").

``aetiket serve`` runs the local eTiKeT server. Errors a user can act on print one line
and exit non-zero; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._config import default_home

__all__ = ("main",)

EXIT_USAGE = 2


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from .server import ServerConfig, serve_forever

    user = args.admin_user or os.environ.get("AETIKET_ADMIN_USER")
    password = args.admin_password or os.environ.get("AETIKET_ADMIN_PASSWORD")
    if bool(user) != bool(password):
        print(
            "aetiket serve: give both --admin-user and --admin-password (or neither)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = ServerConfig(
        data_dir=Path(args.data_dir).expanduser() if args.data_dir else default_home() / "server",
        admin_user=user,
        admin_password=password,
        public_url=args.public_url,
        access_token_ttl=args.access_token_ttl,
        upload_expiry=args.upload_expiry,
    )
    try:
        asyncio.run(serve_forever(config, args.host, args.port))
    except OSError as exc:
        print(
            f"aetiket serve: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aetiket", description="Client and local server for the eTiKeT data API."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local eTiKeT v1 server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", help="records and file content (default: AETIKET_HOME)")
    serve.add_argument("--admin-user", help="create this admin (env AETIKET_ADMIN_USER)")
    serve.add_argument("--admin-password", help="its password (env AETIKET_ADMIN_PASSWORD)")
    serve.add_argument("--public-url", help="base URL clients reach the server at, behind a proxy")
    serve.add_argument("--access-token-ttl", type=float, default=15 * 60.0, metavar="SECONDS")
    serve.add_argument("--upload-expiry", type=float, default=24 * 3600.0, metavar="SECONDS")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aetiket`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code
