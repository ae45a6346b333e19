"""Many files: push and pull 1,000 files of 64 KiB and 4 files of 256 MiB.

aetiket (the ``aetiket push`` / ``aetiket pull`` commands, after ``aetiket login``: one
connection budget for all files, big ones split into parallel parts) against the ORIGINAL
client (etiket-client 0.1.4 + tuspy 1.0.3, ``_original_bulk.py`` in its own virtualenv)
doing the same one file at a time as its README shows: create the dataset with every file
record, then ``UploadClient`` + ``uploader(file_stream=..., chunk_size=64 MiB)`` +
``upload()`` per file, and ``get_file(range_="bytes=0-<size-1>")`` per file to pull.

Both talk to the same ``aetiket serve`` on loopback (started as in server_rates.py), each to
a dataset of its own. Every phase is its own process: ``s`` is the transfer as the client
times it (aetiket: the ``seconds`` of its JSON; the original: from the dataset creation or
listing to the last byte; interpreter start, imports and login excluded), ``client CPU s``
the whole process's user+system time (imports included), ``server CPU s`` the server's
during the phase. Data on /dev/shm when it has room (else ``$BENCH_TMP`` or the temp dir).
At the end the pulled trees are compared with the source by SHA-256.

    python benchmarks/bulk.py [--small 1000] [--small-kib 64] [--large 4] [--large-mib 256]
        [--repeat 1] [--data auto|shm|tmp] [--no-original]

With ``--repeat N`` each figure is the median of N runs (each on a fresh server).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _original
from server_rates import PASSWORD, USER, api, cpu_seconds, start_server

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ORIGINAL_DRIVER = HERE / "_original_bulk.py"
MiB = 1 << 20
SCOPE = "bulk"
PHASES = ("push small", "push large", "pull small", "pull large")


@dataclasses.dataclass(frozen=True)
class Sample:
    client: str
    phase: str
    files: int
    bytes: int
    seconds: float
    wall: float
    client_cpu: float
    server_cpu: float


@dataclasses.dataclass(frozen=True)
class Source:
    root: Path
    small: list[tuple[str, int]]  # (relative name, size)
    large: list[tuple[str, int]]
    digests: dict[str, str]

    def of(self, kind: str) -> list[tuple[str, int]]:
        return self.small if kind == "small" else self.large


# ---------------------------------------------------------------------------- data


def make_source(root: Path, small: int, small_kib: int, large: int, large_mib: int) -> Source:
    digests: dict[str, str] = {}
    smalls: list[tuple[str, int]] = []
    larges: list[tuple[str, int]] = []
    for i in range(small):
        name = f"small/run{i % 16:02d}/trace_{i:04d}.dat"
        data = os.urandom(small_kib * 1024)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
        smalls.append((name, len(data)))
    for i in range(large):
        name = f"large/scan{i}.bin"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(large_mib // 8):
                block = os.urandom(8 * MiB)
                digest.update(block)
                f.write(block)
        digests[name] = digest.hexdigest()
        larges.append((name, large_mib * MiB))
    return Source(root, smalls, larges, digests)


def tree_digests(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(8 * MiB):
                    digest.update(block)
            out[path.relative_to(root).as_posix()] = digest.hexdigest()
    return out


def pick_base(kind: str, need: int) -> Path:
    shm = Path("/dev/shm")
    if kind == "shm" or (
        kind == "auto" and shm.is_dir() and shutil.disk_usage(shm).free > need + (1 << 30)
    ):
        return shm
    return Path(os.environ.get("BENCH_TMP") or tempfile.gettempdir())


# ---------------------------------------------------------------------------- children


def run_child(
    cmd: list[str], env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[str, float, float]:
    """Run a client process; its stdout, wall seconds and CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.stdout, wall, cpu


class Aetiket:
    """``python -m aetiket`` with its own config dir, logged in to the server."""

    label = "aetiket"

    def __init__(self, work: Path, url: str, dest: Path) -> None:
        self.url, self.dest, self.uid = url, dest, f"aet-{uuid.uuid4().hex[:12]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETIKET_", "AETIKET_"))}
        env.update(
            AETIKET_CONFIG_DIR=str(work / "aetiket-config"),
            AETIKET_HOME=str(work / "aetiket-home"),
            NO_PROXY="127.0.0.1,localhost",
        )
        self.env = env
        run_child(
            [
                sys.executable,
                "-m",
                "aetiket",
                "login",
                "--url",
                url,
                "--username",
                USER,
                "--password-stdin",
                "--quiet",
            ],
            env,
            stdin=PASSWORD + "\n",
        )

    def phase(self, src: Source, direction: str, kind: str) -> tuple[float, int]:
        files = src.of(kind)
        if direction == "push":
            cmd = ["push", str(src.root), "--scope", SCOPE, "--uid", self.uid]
        else:
            cmd = ["pull", f"{SCOPE}/{self.uid}", str(self.dest)]
        out, _, _ = run_child(
            [
                sys.executable,
                "-m",
                "aetiket",
                *cmd,
                "--include",
                f"{kind}/*",
                "--url",
                self.url,
                "--json",
            ],
            self.env,
        )
        doc = json.loads(out)
        moved = doc["uploaded_bytes" if direction == "push" else "downloaded_bytes"]
        if doc["failed"] or doc["files"] != len(files) or moved != sum(s for _, s in files):
            raise SystemExit(f"aetiket {direction} {kind}: {dict(list(doc.items())[:6])}")
        return float(doc["seconds"]), moved


class Original:
    """The original client, one process per phase, in its own virtualenv."""

    label = "original"

    def __init__(self, work: Path, url: str, dest: Path, python: str, src: Source) -> None:
        self.work, self.url, self.dest, self.python = work, url, dest, python
        self.uid = f"orig-{uuid.uuid4().hex[:12]}"
        self.uids = {name: uuid.uuid4().hex[:20] for name, _ in src.small + src.large}
        self.created = False

    def phase(self, src: Source, direction: str, kind: str) -> tuple[float, int]:
        files = src.of(kind)
        args: dict[str, Any] = {
            "url": self.url,
            "username": USER,
            "password": PASSWORD,
            "scope": SCOPE,
            "dataset": self.uid,
            "phase": direction,
            "root": str(src.root if direction == "push" else self.dest),
            "files": [[name, self.uids[name], size] for name, size in files],
        }
        if direction == "push" and not self.created:
            args["records"] = [[name, uid] for name, uid in self.uids.items()]
            self.created = True
        path = self.work / f"original-{direction}-{kind}.json"
        path.write_text(json.dumps(args))
        env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "pythonpath")
        }
        out, _, _ = run_child([self.python, str(ORIGINAL_DRIVER), str(path)], env)
        doc = json.loads(out.strip().splitlines()[-1])
        if doc["bytes"] != sum(s for _, s in files):
            raise SystemExit(f"original {direction} {kind}: {doc}")
        return float(doc["seconds"]), int(doc["bytes"])


# ---------------------------------------------------------------------------- one run


def one_run(base: Path, src: Source, python: str | None, first: str) -> list[Sample]:
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    samples: list[Sample] = []
    proc, url = start_server(work / "server")
    try:
        token = api(
            url, "/api/v1/token", form={"username": USER, "password": PASSWORD, "scope": ""}
        )["access_token"]  # type: ignore[index]
        api(url, "/api/v1/scopes/", token, {"name": SCOPE, "description": "bulk benchmark"})
        clients: list[Any] = [Aetiket(work, url, base / "pulled-aetiket")]
        if python is not None:
            clients.append(Original(work, url, base / "pulled-original", python, src))
        if first == "original":
            clients.reverse()
        for client in clients:
            shutil.rmtree(client.dest, ignore_errors=True)
            for phase in PHASES:
                direction, kind = phase.split()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                s0, w0 = cpu_seconds(proc.pid), time.perf_counter()
                seconds, moved = client.phase(src, direction, kind)
                wall = time.perf_counter() - w0
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                samples.append(
                    Sample(
                        client.label,
                        phase,
                        len(src.of(kind)),
                        moved,
                        seconds,
                        wall,
                        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                        cpu_seconds(proc.pid) - s0,
                    )
                )
                print(
                    f"  {client.label:9} {phase:11} {seconds:7.2f} s", file=sys.stderr, flush=True
                )
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    return samples


def median_samples(runs: list[list[Sample]]) -> list[Sample]:
    out = []
    for first in runs[0]:
        same = [
            s for run in runs for s in run if (s.client, s.phase) == (first.client, first.phase)
        ]
        out.append(
            dataclasses.replace(
                first,
                seconds=statistics.median(s.seconds for s in same),
                wall=statistics.median(s.wall for s in same),
                client_cpu=statistics.median(s.client_cpu for s in same),
                server_cpu=statistics.median(s.server_cpu for s in same),
            )
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", type=int, default=1000)
    p.add_argument("--small-kib", type=int, default=64)
    p.add_argument("--large", type=int, default=4)
    p.add_argument("--large-mib", type=int, default=256)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--data", choices=["auto", "shm", "tmp"], default="auto")
    p.add_argument("--no-original", action="store_true")
    args = p.parse_args()

    # `aetiket serve` and the aetiket commands run from this checkout, wherever the cwd.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    total = args.small * args.small_kib * 1024 + args.large * args.large_mib * MiB
    # source + two pulled trees + the server's content of two pushes + uploads in flight
    base_dir = pick_base(args.data, 6 * total)
    python: str | None = None
    peer_note = ""
    if not args.no_original:
        try:
            python = _original.original_python()
        except _original.Unavailable as exc:
            peer_note = f"original client unavailable: {exc}"
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="aetiket-bulk-", dir=base_dir) as tmp:
        base = Path(tmp)
        print(
            f"writing {args.small} x {args.small_kib} KiB + {args.large} x "
            f"{args.large_mib} MiB under {base} ...",
            file=sys.stderr,
            flush=True,
        )
        src = make_source(base / "source", args.small, args.small_kib, args.large, args.large_mib)
        runs = []
        for i in range(args.repeat):
            print(f"run {i + 1}/{args.repeat}", file=sys.stderr, flush=True)
            runs.append(one_run(base, src, python, "aetiket" if i % 2 == 0 else "original"))
        identical = {}
        for label in ("aetiket", "original"):
            dest = base / f"pulled-{label}"
            if dest.exists():
                identical[label] = tree_digests(dest) == src.digests
    load_after = os.getloadavg()
    samples = median_samples(runs)

    print(
        f"\nbulk push/pull on loopback: {args.small} x {args.small_kib} KiB and {args.large} x "
        f"{args.large_mib} MiB; {os.cpu_count()} cores; data on {base_dir}; "
        f"median of {args.repeat} run(s)"
    )
    print(
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"
    )
    if peer_note:
        print(peer_note)
    reference = {s.phase: s for s in samples if s.client == "original"}
    head = (
        f"{'client':9} {'phase':11} {'files':>6} {'MB':>8} {'s':>7} {'files/s':>9} "
        f"{'MB/s':>8} {'vs original':>12} {'client CPU s':>13} {'server CPU s':>13}"
    )
    print(head)
    print("-" * len(head))
    for phase in PHASES:
        for s in samples:
            if s.phase != phase:
                continue
            ref = reference.get(phase)
            ratio = f"{ref.seconds / s.seconds:11.2f}x" if ref else f"{'-':>12}"
            print(
                f"{s.client:9} {s.phase:11} {s.files:6d} {s.bytes / 1e6:8.1f} "
                f"{s.seconds:7.2f} {s.files / s.seconds:9.1f} {s.bytes / 1e6 / s.seconds:8.1f} "
                f"{ratio} {s.client_cpu:13.2f} {s.server_cpu:13.2f}"
            )
    for label, same in identical.items():
        verdict = "byte-identical to the source (SHA-256)" if same else "DIFFERS from the source"
        print(f"pulled tree of {label}: {verdict}")
    if not all(identical.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
