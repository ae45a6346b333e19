"""The ORIGINAL client moving many files one by one (for benchmarks/bulk.py).

Runs inside the original's virtualenv (etiket-client 0.1.4 + tuspy 1.0.3, see
``_original.py``); imports only that client and the standard library. One phase per process:

    .venv-original/bin/python benchmarks/_original_bulk.py ARGS.json

ARGS.json (a file: a thousand records do not fit in one argv string): ``url``,
``username``, ``password``, ``scope``, ``dataset``, ``phase`` (push | pull), ``root``
(push: the source folder; pull: the destination), ``files`` ([[name, uid, size]]: the
files of this phase), ``records`` (push only, optional: [[name, uid]] to create the
dataset with first, as the README shows: every file record at once).

push: for each file, as the README says: ``UploadClient(client)``,
``uploader(file_stream=..., scope=..., file_uid=..., chunk_size=64 MiB)``, ``upload()``.
pull: ``get_dataset`` for the names and uids, then for each file ``get_file`` with
``range_="bytes=0-<size-1>"`` (the README's form: 0.1.4 parses a 200 answer as JSON, so only
a 206 gives the bytes) and the content written to ``root/<name>``.

Prints one JSON line: ``seconds`` (timed here: imports and login excluded), ``bytes``,
``files``.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

from etiket_client import AuthenticatedClient, Client, UploadClient
from etiket_client.api.access import login_for_access_token
from etiket_client.api.datasets import create_dataset, get_dataset
from etiket_client.api.files import get_file
from etiket_client.models import BodyLoginForAccessToken, DatasetIn, FileDatasetIn

CHUNK = 64 * 1024 * 1024


def login(args: dict[str, Any]) -> AuthenticatedClient:
    anon = Client(base_url=args["url"])
    form = BodyLoginForAccessToken(username=args["username"], password=args["password"])
    token = login_for_access_token.sync(client=anon, form_data=form)
    # The default 5 s timeout is per read; 60 s leaves room on a loaded machine.
    return AuthenticatedClient(base_url=args["url"], token=token.access_token, timeout=60.0)


def push(client: AuthenticatedClient, args: dict[str, Any]) -> int:
    scope, root = args["scope"], Path(args["root"])
    if args.get("records"):
        body = DatasetIn(
            name="bulk",
            uid=args["dataset"],
            scope=scope,
            collected=datetime.datetime.now(datetime.timezone.utc),
            files=[FileDatasetIn(name=name, uid=uid) for name, uid in args["records"]],
        )
        resp = create_dataset.sync_detailed(client=client, json_body=body)
        if resp.status_code != 200:
            raise SystemExit(f"create_dataset: {resp.status_code} {resp.content[:300]!r}")
    moved = 0
    for name, uid, size in args["files"]:
        with open(root / name, "rb") as stream:
            tus = UploadClient(client)
            uploader = tus.uploader(file_stream=stream, scope=scope, file_uid=uid, chunk_size=CHUNK)
            uploader.upload()
        moved += size
    return moved


def pull(client: AuthenticatedClient, args: dict[str, Any]) -> int:
    scope, root = args["scope"], Path(args["root"])
    dataset = get_dataset.sync(scope=scope, dataset_uid=args["dataset"], client=client)
    wanted = {uid for _, uid, _ in args["files"]}
    records = [f for f in dataset.files if f.uid in wanted]
    if len(records) != len(wanted):
        raise SystemExit(f"get_dataset: {len(records)} of the {len(wanted)} files listed")
    moved = 0
    for record in records:
        resp = get_file.sync_detailed(
            scope=scope, file_uid=record.uid, client=client, range_=f"bytes=0-{record.size - 1}"
        )
        if resp.status_code != 206 or len(resp.content) != record.size:
            raise SystemExit(
                f"get_file {record.name}: {resp.status_code}, "
                f"{len(resp.content)} of {record.size} bytes"
            )
        dest = root / record.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(resp.content)
        moved += len(resp.content)
    return moved


def main() -> None:
    args = json.loads(Path(sys.argv[1]).read_text())
    client = login(args)
    started = time.perf_counter()
    moved = push(client, args) if args["phase"] == "push" else pull(client, args)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "bytes": moved, "files": len(args["files"])}), flush=True)


if __name__ == "__main__":
    main()
