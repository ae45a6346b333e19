"""API calls per second against `aetiket serve` on loopback: aetiket vs the original client.

One server (a subprocess on a temporary data dir), one admin session, one scope and one
dataset with 2 files; then N ``datasets.get`` of that dataset (2,000 by default) by

* aetiket with 64 requests in flight (64 tasks of an anyio task group);
* aetiket one at a time, to tell the client's own speed from the concurrency;
* the original etiket-client 0.1.4 one at a time, as it works (``get_dataset.sync``: one
  httpx request, on a new connection, per call), run in its own virtualenv.

Each run uses a new client (its connections are part of the run) and checks every answer.
Printed: seconds, requests/s, the ratio to the original, and the CPU seconds of the client
and of the server during the run (from /proc), on a machine whose cores they share.

    python benchmarks/api_calls.py [--requests 2000] [--concurrency 64] [--original-requests N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _original import Unavailable, original_python
from server_rates import PASSWORD, USER, cpu_seconds, start_server

import aetiket
from aetiket import Client, DatasetIn, FileDatasetIn, ScopeIn

SCOPE = "bench-api"

# Runs in the original client's virtualenv: python -c ORIGINAL_CALLS URL TOKEN SCOPE UID N
ORIGINAL_CALLS = """
import json, sys, time
from etiket_client import AuthenticatedClient
from etiket_client.api.datasets import get_dataset
from etiket_client.models import DatasetOut

url, token, scope, uid, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
client = AuthenticatedClient(base_url=url, token=token)
cpu, start = time.process_time(), time.perf_counter()
for _ in range(n):
    ds = get_dataset.sync(scope=scope, dataset_uid=uid, client=client)
    assert isinstance(ds, DatasetOut) and ds.uid == uid and len(ds.files) == 2, ds
took, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": took, "cpu": cpu}))
"""


class Run:
    """One measured run: wall and CPU seconds of the client and of the server."""

    def __init__(
        self, name: str, requests: int, seconds: float, client_cpu: float, server_cpu: float
    ) -> None:
        self.name, self.requests, self.seconds = name, requests, seconds
        self.client_cpu, self.server_cpu = client_cpu, server_cpu

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def setup(url: str) -> tuple[str, str]:
    """Log in, make the scope and a dataset with 2 files: (access token, dataset uid)."""
    uid = aetiket.new_uid()
    async with Client(url) as client:
        await client.login(USER, PASSWORD)
        await client.scopes.create(ScopeIn(name=SCOPE, description="API call benchmark"))
        await client.datasets.create(
            DatasetIn(
                name="rabi q3 2026-03-14 10:21",
                uid=uid,
                scope=SCOPE,
                creator="a.vermeulen",
                description="rabi on q3, cryo-probe-2",
                meta={
                    "sample": "SQ-7721-B",
                    "fridge": "bluefors-ld400",
                    "keywords": ["qubit", "calibration"],
                },
                duration=412.5,
                files=[
                    FileDatasetIn(
                        name="rabi_q3.hdf5",
                        uid=aetiket.new_uid(),
                        mimetype="application/x-hdf5",
                        creator="a.vermeulen",
                    ),
                    FileDatasetIn(
                        name="rabi_q3.png",
                        uid=aetiket.new_uid(),
                        mimetype="image/png",
                        creator="a.vermeulen",
                    ),
                ],
            )
        )
        token = client.token
    assert token is not None
    return token, uid


async def aetiket_gets(url: str, token: str, uid: str, n: int, in_flight: int) -> None:
    """``n`` datasets.get, ``in_flight`` at a time, on a new client.

    ``in_flight`` tasks of one task group take the calls in turn (a task per call behind
    a CapacityLimiter costs anyio about 0.1 ms of CPU a call more, measured on this
    benchmark: a cost of the harness, not of the client).
    """
    got: list[aetiket.DatasetOut] = []
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            got.append(await client.datasets.get(SCOPE, uid))

    async with Client(url, token=token) as client:
        if in_flight == 1:
            await worker()
        else:
            async with anyio.create_task_group() as tg:
                for _ in range(in_flight):
                    tg.start_soon(worker)
    assert len(got) == n and all(d.uid == uid and len(d.files) == 2 for d in got)


def measure_aetiket(
    name: str, server: int, url: str, token: str, uid: str, n: int, in_flight: int
) -> Run:
    s0, c0, t0 = cpu_seconds(server), time.process_time(), time.perf_counter()
    anyio.run(aetiket_gets, url, token, uid, n, in_flight)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Run(name, n, took, cpu, cpu_seconds(server) - s0)


def measure_original(server: int, url: str, token: str, uid: str, n: int) -> Run | str:
    try:
        python = original_python()
    except (Unavailable, subprocess.SubprocessError, OSError) as exc:
        return f"original client unavailable: {exc}"
    s0 = cpu_seconds(server)  # the server is idle while the interpreter starts
    out = subprocess.run(
        [python, "-c", ORIGINAL_CALLS, url, token, SCOPE, uid, str(n)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    server_cpu = cpu_seconds(server) - s0
    if out.returncode != 0:
        return f"original client failed:\n{out.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(out.stdout)
    return Run(
        "original etiket-client 0.1.4, 1 at a time", n, result["seconds"], result["cpu"], server_cpu
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument(
        "--original-requests",
        type=int,
        help="calls of the original client (default: --requests; about 50 ms each)",
    )
    args = p.parse_args()
    n = args.requests
    runs: list[Run] = []
    notes: list[str] = []
    base: float | None = None  # the original's requests/s
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        proc, url = start_server(Path(tmp) / "data")
        try:
            token, uid = anyio.run(setup, url)
            # Warm the server (imports, caches) before anything is measured.
            anyio.run(aetiket_gets, url, token, uid, 200, args.concurrency)
            runs.append(
                measure_aetiket(
                    f"aetiket, {args.concurrency} in flight",
                    proc.pid,
                    url,
                    token,
                    uid,
                    n,
                    args.concurrency,
                )
            )
            runs.append(measure_aetiket("aetiket, 1 at a time", proc.pid, url, token, uid, n, 1))
            original = measure_original(proc.pid, url, token, uid, args.original_requests or n)
            if isinstance(original, str):
                notes.append(original)
            else:
                runs.append(original)
                base = original.rate
        finally:
            proc.terminate()
            proc.wait()
    print(
        f"\ndatasets.get of one dataset (2 files) from aetiket serve on loopback, "
        f"{os.cpu_count()} cores shared by client and server; Python {sys.version.split()[0]}"
    )
    print(
        f"{'client':42} {'requests':>8} {'seconds':>8} {'req/s':>7} {'vs original':>12} "
        f"{'client CPU s':>13} {'server CPU s':>13}"
    )
    for run in runs:
        ratio = f"{run.rate / base:11.1f}x" if base else f"{'n/a':>12}"
        print(
            f"{run.name:42} {run.requests:8} {run.seconds:8.2f} {run.rate:7.0f} {ratio} "
            f"{run.client_cpu:13.2f} {run.server_cpu:13.2f}"
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
