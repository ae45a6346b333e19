"""The ``aetiket`` command (DESIGN.md, "CLI").

    aetiket serve    run the local eTiKeT server
    aetiket login    log in to a server and remember it
    aetiket push     push files and folders as a dataset
    aetiket pull     pull a dataset into a folder
    aetiket ls       list scopes, datasets of a scope, files of a dataset
    aetiket upload   upload one file into an existing file record
    aetiket download download one file

Configuration: flags, then the environment (ETIKET_URL, ETIKET_TOKEN), then the saved
login. With none, commands use the embedded default: the local server, started in this
process on a loopback port over ``$AETIKET_HOME`` for the command's duration.

Errors print one line and exit with a code that says what failed (see ``EXIT``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from ._config import default_home
from .errors import (
    AetiketError,
    Forbidden,
    NotFound,
    TransferError,
    TransportError,
    Unauthorized,
    ValidationFailed,
    collapse,
)

__all__ = ("EXIT", "main")

#: Exit codes: what failed.
EXIT = {
    "ok": 0,
    "failed": 1,  # some files (or the transfer) failed
    "usage": 2,  # bad arguments or input (a missing path, an invalid value)
    "auth": 3,  # not logged in, wrong password, session expired
    "access": 4,  # not found, or not allowed (not a member of the scope)
    "unreachable": 5,  # the server did not answer
    "interrupted": 130,
}


class CliError(Exception):
    """A one-line error for the user, with its exit code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = EXIT[code]


# ---------------------------------------------------------------------------- settings


def config_dir() -> Path:
    """Where the saved login lives: ``$AETIKET_CONFIG_DIR``, else the user config dir."""
    env = os.environ.get("AETIKET_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "aetiket"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "aetiket"


class SavedLogin(msgspec.Struct):
    url: str
    username: str
    access_token: str
    refresh_token: str

    def __repr__(self) -> str:
        return f"SavedLogin(url={self.url!r}, username={self.username!r})"


def _login_path() -> Path:
    return config_dir() / "login.json"


def load_login() -> SavedLogin | None:
    try:
        return msgspec.json.decode(_login_path().read_bytes(), type=SavedLogin)
    except (FileNotFoundError, msgspec.DecodeError):
        return None


def save_login(login: SavedLogin) -> Path:
    """Write the login with 0600 permissions (created so, never readable by others)."""
    path = _login_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".login.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.encode(login))
    os.replace(tmp, path)
    return path


def _embedded_admin(home: Path) -> tuple[str, str]:
    """The local admin of the embedded server: a password made once, kept 0600."""
    path = home / "local-admin.json"
    try:
        data = json.loads(path.read_text())
        return data["username"], data["password"]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    home.mkdir(parents=True, exist_ok=True)
    creds = {"username": "local", "password": secrets.token_urlsafe(24)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f)
    return creds["username"], creds["password"]


@contextlib.asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[tuple[Any, bool]]:
    """A logged-in client (and whether it is the embedded server's): flags, environment,
    saved login, else the embedded local server."""
    from .client import Client

    url = getattr(args, "url", None) or os.environ.get("ETIKET_URL")
    token = os.environ.get("ETIKET_TOKEN")
    saved = load_login()
    if url is None and saved is not None:
        url = saved.url
    if url is not None:
        refresh = None
        if token is None and saved is not None and saved.url.rstrip("/") == url.rstrip("/"):
            token, refresh = saved.access_token, saved.refresh_token
        if token is None:
            raise CliError(
                f"not logged in to {url}: run `aetiket login --url {url}` or set ETIKET_TOKEN",
                "auth",
            )
        async with Client(url, token=token, refresh_token=refresh) as client:
            try:
                yield client, False
            finally:
                if saved is not None and refresh is not None and client.token != token:
                    # The tokens rotated during the command: keep the new pair.
                    save_login(
                        SavedLogin(
                            url=saved.url,
                            username=saved.username,
                            access_token=client.token or "",
                            refresh_token=client.refresh_token or "",
                        )
                    )
        return
    from .server import LocalServer, ServerConfig

    home = default_home()
    user, password = _embedded_admin(home)
    config = ServerConfig(data_dir=home / "server", admin_user=user, admin_password=password)
    async with LocalServer(config) as server:
        if not getattr(args, "quiet", False) and not getattr(args, "json", False):
            print(
                f"aetiket: no server configured; using the embedded local server "
                f"(data in {config.data_dir})",
                file=sys.stderr,
            )
        async with Client(server.url) as client:
            await client.login(user, password)
            yield client, True


# ---------------------------------------------------------------------------- output


def _emit(args: argparse.Namespace, document: Any, lines: Sequence[str]) -> None:
    if args.json:
        print(json.dumps(document, default=str))
    else:
        for line in lines:
            print(line)


def _meta(pairs: Sequence[str]) -> dict[str, str | list[str]]:
    meta: dict[str, str | list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--meta takes KEY=VALUE, got {pair!r}", "usage")
        if key in meta:
            old = meta[key]
            meta[key] = [*(old if isinstance(old, list) else [old]), value]
        else:
            meta[key] = value
    return meta


def _split(ref: str, what: str) -> tuple[str, str]:
    scope, sep, uid = ref.partition("/")
    if not sep or not scope or not uid or "/" in uid:
        raise CliError(f"expected {what}, got {ref!r}", "usage")
    return scope, uid


def _bars(args: argparse.Namespace) -> Any:
    if args.quiet or args.json:
        return contextlib.nullcontext(None)
    from .ui import ProgressBars

    return ProgressBars()


# ---------------------------------------------------------------------------- commands


async def _login(args: argparse.Namespace) -> int:
    from .client import Client

    url = args.url or os.environ.get("ETIKET_URL")
    if not url:
        raise CliError("give --url (or set ETIKET_URL)", "usage")
    username, password = args.username, args.password
    async with Client(url) as client:
        await client.login(username, password)
        path = save_login(
            SavedLogin(
                url=url,
                username=username,
                access_token=client.token or "",
                refresh_token=client.refresh_token or "",
            )
        )
    _emit(
        args,
        {"url": url, "username": username, "saved": str(path)},
        [] if args.quiet else [f"logged in to {url} as {username} (saved in {path})"],
    )
    return EXIT["ok"]


def _ask_login(args: argparse.Namespace) -> None:
    """Before the event loop: the username and password (prompt, or stdin)."""
    url = args.url or os.environ.get("ETIKET_URL")
    args.username = args.username or input("username: ")
    if args.password_stdin:
        args.password = sys.stdin.readline().rstrip("\n")
    else:
        args.password = getpass.getpass(f"password for {args.username} at {url}: ")


def _check_paths(args: argparse.Namespace) -> None:
    """Before the event loop: every local path exists."""
    for path in getattr(args, "paths", None) or [args.file]:
        if not Path(path).exists():
            raise CliError(f"{path}: no such file or folder", "usage")


async def _push(args: argparse.Namespace) -> int:
    from .transfer.bulk import push_folder

    async with connect(args) as (client, embedded), _report(args, "push") as report:
        result = await push_folder(
            client,
            args.paths,
            scope=args.scope,
            uid=args.uid,
            name=args.name,
            meta=_meta(args.meta),
            parallel=args.parallel or 4,
            include=args.include,
            exclude=args.exclude,
            dry_run=args.dry_run,
            fail_fast=args.fail_fast,
            create_scope=embedded,
            progress=report.bars,
            on_item=report.item,
        )
    return _finish(args, result, "push")


async def _pull(args: argparse.Namespace) -> int:
    from .transfer.bulk import pull_dataset

    scope, uid = _split(args.dataset, "SCOPE/DATASET_UID")
    async with connect(args) as (client, _), _report(args, "pull") as report:
        result = await pull_dataset(
            client,
            scope,
            uid,
            args.dest,
            parallel=args.parallel,
            include=args.include,
            exclude=args.exclude,
            dry_run=args.dry_run,
            fail_fast=args.fail_fast,
            progress=report.bars,
            on_item=report.item,
        )
    return _finish(args, result, "pull")


class _Report:
    def __init__(self, args: argparse.Namespace, bars: Any) -> None:
        self.args = args
        self.bars = bars

    def item(self, item: Any) -> None:
        if self.args.json:
            return
        if item.status == "failed":
            print(f"aetiket: {item.name}: {item.error}", file=sys.stderr)
        elif item.path is not None:
            print(
                f"aetiket: {item.name} ({item.uid}) is in {item.path}: the dataset has "
                "other files of that name",
                file=sys.stderr,
            )


@contextlib.asynccontextmanager
async def _report(args: argparse.Namespace, direction: str) -> AsyncIterator[_Report]:
    with _bars(args) as bars:
        yield _Report(args, bars)


def _finish(args: argparse.Namespace, result: Any, direction: str) -> int:
    moved = "uploaded" if direction == "push" else "downloaded"
    count = result.count(moved) + result.count("planned")
    summary = (
        f"{count} {moved if not result.count('planned') else 'planned'}, "
        f"{result.count('skipped')} skipped, {len(result.failed)} failed "
        f"({result.moved_bytes / 1e6:.1f} MB in {result.seconds:.1f} s)"
    )
    lines = [] if args.quiet else [summary]
    _emit(args, result.as_json(direction), [*lines, result.dataset])
    return EXIT["failed"] if result.failed else EXIT["ok"]


async def _ls(args: argparse.Namespace) -> int:
    async with connect(args) as (client, _):
        if not args.target:
            scopes = await client.scopes.list().all()
            _emit(
                args,
                [msgspec.to_builtins(s) for s in scopes],
                [f"{s.name}\t{s.description}" for s in scopes],
            )
        elif "/" not in args.target:
            datasets = await client.datasets.list(args.target).all()
            _emit(
                args,
                [msgspec.to_builtins(d) for d in datasets],
                [
                    f"{args.target}/{d.uid}\t{d.name}\t{d.collected:%Y-%m-%d %H:%M}\t"
                    f"{len(d.files)} files"
                    for d in datasets
                ],
            )
        else:
            scope, uid = _split(args.target, "SCOPE or SCOPE/DATASET_UID")
            ds = await client.datasets.get(scope, uid)
            _emit(
                args,
                msgspec.to_builtins(ds),
                [
                    f"{f.uid}\t{f.status.value}\t{f.size if f.size is not None else '-'}\t{f.name}"
                    for f in ds.files
                ],
            )
    return EXIT["ok"]


async def _upload(args: argparse.Namespace) -> int:
    async with connect(args) as (client, _):
        with _bars(args) as bars:
            result = await client.upload(
                args.file,
                scope=args.scope,
                file_uid=args.file_uid,
                parallel=args.parallel,
                progress=bars,
            )
    _emit(
        args,
        {
            "file": f"{args.scope}/{args.file_uid}",
            "uploaded_bytes": result.size,
            "seconds": result.seconds,
            "verified": result.verified,
            "resumed": result.resumed,
        },
        []
        if args.quiet
        else [
            f"uploaded {result.size / 1e6:.1f} MB in "
            f"{result.seconds:.1f} s ({result.rate / 1e6:.0f} MB/s) to "
            f"{args.scope}/{args.file_uid}"
        ],
    )
    return EXIT["ok"]


async def _download(args: argparse.Namespace) -> int:
    scope, uid = _split(args.file, "SCOPE/FILE_UID")
    async with connect(args) as (client, _):
        with _bars(args) as bars:
            result = await client.download(
                scope, uid, args.dest, parallel=args.parallel, progress=bars
            )
    _emit(
        args,
        {
            "file": f"{scope}/{uid}",
            "dest": str(result.dest),
            "downloaded_bytes": result.size,
            "seconds": result.seconds,
            "verified": result.verified,
            "resumed": result.resumed,
        },
        []
        if args.quiet
        else [
            f"downloaded {result.size / 1e6:.1f} MB in "
            f"{result.seconds:.1f} s ({result.rate / 1e6:.0f} MB/s) to "
            f"{result.dest}"
        ],
    )
    return EXIT["ok"]


def _serve(args: argparse.Namespace) -> int:
    from .server import ServerConfig, serve_forever

    user = args.admin_user or os.environ.get("AETIKET_ADMIN_USER")
    password = args.admin_password or os.environ.get("AETIKET_ADMIN_PASSWORD")
    if bool(user) != bool(password):
        raise CliError("give both --admin-user and --admin-password (or neither)", "usage")
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
        raise CliError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}", "failed"
        ) from None
    return EXIT["ok"]


# ---------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2
        self.exit(EXIT["usage"], f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aetiket", description="Client and local server for the eTiKeT data API.")
    common = _Parser(add_help=False)
    common.add_argument(
        "--url", help="the server (else ETIKET_URL, the saved login, or the embedded local server)"
    )
    common.add_argument("--json", action="store_true", help="one JSON document on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress, no chatter")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the local eTiKeT v1 server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", help="records and file content (default: AETIKET_HOME)")
    serve.add_argument("--admin-user", help="create this admin (env AETIKET_ADMIN_USER)")
    serve.add_argument("--admin-password", help="its password (env AETIKET_ADMIN_PASSWORD)")
    serve.add_argument("--public-url", help="base URL clients reach the server at, behind a proxy")
    serve.add_argument("--access-token-ttl", type=float, default=15 * 60.0, metavar="SECONDS")
    serve.add_argument("--upload-expiry", type=float, default=24 * 3600.0, metavar="SECONDS")
    serve.set_defaults(run=_serve, sync=True)

    login = sub.add_parser("login", parents=[common], help="log in and remember the server")
    login.add_argument("--username", "-u")
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else a prompt)",
    )
    login.set_defaults(run=_login, pre=_ask_login)

    transfer = _Parser(add_help=False)
    transfer.add_argument("--parallel", "-p", type=int, help="connections per file")
    transfer.add_argument("--include", action="append", default=[], metavar="GLOB")
    transfer.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    transfer.add_argument("--dry-run", action="store_true", help="say what would move")
    transfer.add_argument("--fail-fast", action="store_true", help="stop at the first failure")

    push = sub.add_parser(
        "push", parents=[common, transfer], help="push files and folders as a dataset"
    )
    push.add_argument("paths", nargs="+", metavar="PATH")
    push.add_argument("--scope", "-s", required=True)
    push.add_argument("--uid", help="the dataset uid (default: derived from the first PATH)")
    push.add_argument("--name", help="the dataset name (default: the first PATH's name)")
    push.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    push.set_defaults(run=_push, pre=_check_paths)

    pull = sub.add_parser("pull", parents=[common, transfer], help="pull a dataset")
    pull.add_argument("dataset", metavar="SCOPE/DATASET_UID")
    pull.add_argument("dest", metavar="DEST")
    pull.set_defaults(run=_pull)

    ls = sub.add_parser("ls", parents=[common], help="list scopes, datasets or files")
    ls.add_argument("target", nargs="?", metavar="SCOPE[/DATASET_UID]")
    ls.set_defaults(run=_ls)

    upload = sub.add_parser("upload", parents=[common], help="upload one file")
    upload.add_argument("file", metavar="FILE")
    upload.add_argument("--scope", "-s", required=True)
    upload.add_argument("--file-uid", "-f", required=True)
    upload.add_argument("--parallel", "-p", type=int)
    upload.set_defaults(run=_upload, pre=_check_paths)

    download = sub.add_parser("download", parents=[common], help="download one file")
    download.add_argument("file", metavar="SCOPE/FILE_UID")
    download.add_argument("dest", metavar="DEST")
    download.add_argument("--parallel", "-p", type=int)
    download.set_defaults(run=_download)
    return parser


def _code_for(exc: BaseException) -> tuple[str, int]:
    """A one-line message and the exit code for an error."""
    exc = collapse(exc, lambda msg, errors: TransferError(msg))
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, Unauthorized):
        return (f"not authorized: {exc.detail_text} (log in again: aetiket login)", EXIT["auth"])
    if isinstance(exc, Forbidden | NotFound):
        return exc.detail_text, EXIT["access"]
    if isinstance(exc, ValidationFailed):
        return f"invalid input: {exc.detail_text}", EXIT["usage"]
    if isinstance(exc, TransportError):
        return f"server unreachable: {exc}", EXIT["unreachable"]
    if isinstance(exc, TransferError | AetiketError):
        return str(exc), EXIT["failed"]
    if isinstance(exc, FileNotFoundError | IsADirectoryError | ValueError):
        return str(exc), EXIT["usage"]
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT["failed"]
    if os.environ.get("AETIKET_DEBUG"):
        raise exc
    return (
        f"internal error: {type(exc).__name__}: {exc} (AETIKET_DEBUG=1 shows the traceback)",
        EXIT["failed"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aetiket`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "pre", None) is not None:
            args.pre(args)
        if getattr(args, "sync", False):
            code: int = args.run(args)
        else:
            code = asyncio.run(args.run(args))
    except KeyboardInterrupt:
        print("aetiket: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT["interrupted"]
    except Exception as exc:
        message, code = _code_for(exc)
        print(f"aetiket {args.command}: {message}", file=sys.stderr)
    return code
