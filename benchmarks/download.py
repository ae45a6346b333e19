"""Download rates (issue 5): aetiket against the download tools people use, one run.

One file is downloaded by every client from every source: 1 GiB from nginx and from our
server (``aetiket serve``) on loopback; 256 MiB over the emulated 50 ms RTT link of
``../shared/netlab/wan.sh`` from nginx, from nginx with ``limit_rate 20m`` (20 MB/s per
connection: a per-stream cap, as many CDNs and mirrors have) and from our server.

Clients: aetiket (``Client.download`` / ``download_url``) with parallel 1/4/8/16 and the
default (None: it adapts the number of connections), aria2c -x16 -s16 -k1M, aria2c -x8,
axel -n 8, curl, and a plain aiohttp single-stream GET written to the file as it comes.
aetiket checks the SHA-256 from our server's ETag while it downloads; from nginx (whose
ETag is no hash) it checks the size, like the others.

Each client is its own process: its CPU seconds and peak RSS come from ``os.wait4``; the
server's CPU seconds from /proc (nginx runs as one process). Beside the figures, measured
in the same run: raw TCP (iperf3, 1/4/16 streams) and the write rates of the data folder
and of the disk. Every cell is the median of ``--repeat`` runs (round-robin over the
clients). The load average is printed before each table: the machine has 2 cores and may
be shared.

    python benchmarks/download.py [--size-mib 1024] [--wan-size-mib 256] [--repeat 3]
        [--repeat-loopback N] [--no-wan] [--no-loopback] [--data shm|disk]
        [--sources nginx,ours,nginx-capped] [--clients aetiket,aria2c,...]

Goals (issue 5), judged in the same run: on loopback aetiket >= 1.5x aria2c -x16 and
ahead of curl; on the WAN >= 1.3x aria2c -x16 with and without the cap; aetiket's peak
RSS under 100 MiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _peers as P
import _wan

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "_aetiket_driver.py"
CLIENTS = HERE / "_clients.py"
RSS_GOAL_MIB = 100
CAP = 20e6  # nginx limit_rate 20m: bytes/s per connection
REF = "aria2c -x16 -s16 -k1M"


@dataclasses.dataclass(frozen=True)
class Client:
    label: str
    kind: str  # aetiket | aria2c | axel | curl | aiohttp
    args: tuple[str, ...] = ()
    parallel: str = ""  # aetiket: a number or "auto"


ALL_CLIENTS = [
    Client("aetiket p1", "aetiket", parallel="1"),
    Client("aetiket p4", "aetiket", parallel="4"),
    Client("aetiket p8", "aetiket", parallel="8"),
    Client("aetiket p16", "aetiket", parallel="16"),
    Client("aetiket default", "aetiket", parallel="auto"),
    Client(REF, "aria2c", ("-x16", "-s16", "-k1M")),
    Client("aria2c -x8", "aria2c", ("-x8",)),
    Client("axel -n 8", "axel", ("-n", "8")),
    Client("curl", "curl"),
    Client("aiohttp GET", "aiohttp"),
]
TOOLS = {"aria2c": "aria2", "axel": "axel", "curl": "curl", "nginx": "nginx", "iperf3": "iperf3"}


@dataclasses.dataclass
class Source:
    """Where the file is downloaded from: a URL, or our server's scope/uid."""

    name: str
    server: P.Server
    url: str  # the file's URL
    uid: str | None = None  # our server: the file record

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.token}"} if self.server.token else {}


def command(client: Client, src: Source, dest: Path) -> list[str]:
    auth = [f"{k}: {v}" for k, v in src.headers.items()]
    if client.kind == "aetiket":
        cmd = [
            sys.executable,
            str(DRIVER),
            "download",
            "--url",
            src.server.url,
            "--dest",
            str(dest),
            "--parallel",
            client.parallel,
        ]
        if src.uid:
            return [*cmd, "--token", str(src.server.token), "--scope", "bench", "--uid", src.uid]
        return [*cmd, "--src-url", src.url]
    if client.kind == "aria2c":
        return [
            "aria2c",
            *client.args,
            "--no-conf",
            "-q",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "-d",
            str(dest.parent),
            "-o",
            dest.name,
            *(f"--header={h}" for h in auth),
            src.url,
        ]
    if client.kind == "axel":
        return [
            "axel",
            *client.args,
            "-q",
            "-o",
            str(dest),
            *(x for h in auth for x in ("-H", h)),
            src.url,
        ]
    if client.kind == "curl":
        return [
            "curl",
            "-sS",
            "--fail",
            "-o",
            str(dest),
            *(x for h in auth for x in ("-H", h)),
            src.url,
        ]
    spec = {"url": src.url, "dest": str(dest), "headers": src.headers}
    return [sys.executable, str(CLIENTS), "aiohttp-get", json.dumps(spec)]


def clean(dest: Path) -> None:
    for path in dest.parent.iterdir():
        if path.name.startswith(dest.name):  # the file, .part, .part.json, .aria2, .st
            path.unlink(missing_ok=True)


@dataclasses.dataclass
class Cell:
    source: str
    client: Client
    run: P.Run | None = None
    error: str | None = None

    def rate(self, size: int) -> float | None:
        return self.run.rate(size) if self.run else None


def measure(
    sources: list[Source], clients: list[Client], size: int, repeat: int, folder: Path, relay: bool
) -> list[Cell]:
    cells = [Cell(s.name, c) for s in sources for c in clients]
    runs: dict[tuple[str, str], list[P.Run]] = {(c.source, c.client.label): [] for c in cells}
    by_name = {s.name: s for s in sources}
    dest = folder / "download.bin"
    timeout = max(180.0, size / 2e6)
    for _ in range(repeat):
        for cell in cells:
            if cell.error:
                continue
            src = by_name[cell.source]
            try:
                run = P.run_client(
                    command(cell.client, src, dest),
                    server=src.server,
                    timeout=timeout,
                    relay=_wan.relay_pid() if relay else None,
                )
                got = dest.stat().st_size if dest.exists() else -1
                if got != size:
                    raise P.ClientFailed(f"{got} bytes on disk, {size} expected")
                runs[(cell.source, cell.client.label)].append(run)
            except P.ClientFailed as exc:
                cell.error = f"FAILED {exc}"
            finally:
                clean(dest)
    for cell in cells:
        got = runs[(cell.source, cell.client.label)]
        if got and not cell.error:
            cell.run = P.median_run(got)
    return cells


def pick(cells: list[Cell], source: str, label: str) -> Cell | None:
    return next(
        (c for c in cells if c.source == source and c.client.label == label and c.run), None
    )


def report(
    title: str,
    cells: list[Cell],
    sources: list[str],
    size: int,
    *,
    wan: bool,
    limits: dict[str, float | None],
    load: str,
    goal: float,
) -> list[tuple[str, bool | None]]:
    print(f"\n== {title}")
    print(load)
    headers = ["source", "client", "MB/s", "client CPU s", "server CPU s"]
    headers += ["relay CPU s"] if wan else []
    headers += ["peak RSS MiB", "x aria2c -x16", "note"]
    rows = []
    for cell in cells:
        run = cell.run
        if run is None:
            rows.append(
                [
                    cell.source,
                    cell.client.label,
                    "-",
                    "-",
                    "-",
                    *(["-"] if wan else []),
                    "-",
                    "-",
                    cell.error or "no run",
                ]
            )
            continue
        ref = pick(cells, cell.source, REF)
        r = run.rate(size) / ref.run.rate(size) if ref and ref.run else None
        note = ""
        if cell.client.kind == "aetiket":
            n = run.info.get("connections", 0)
            note = f"{n} connection{'s' if n != 1 else ''}"
            note += ", SHA-256 checked" if cell.source.startswith("aetiket") else ""
        rows.append(
            [
                cell.source,
                cell.client.label,
                P.fmt(run.rate(size)),
                P.fmt(run.cpu, ".2f"),
                P.fmt(run.server_cpu, ".2f"),
                *([P.fmt(run.relay_cpu, ".2f")] if wan else []),
                P.fmt(run.rss_mib, ".0f"),
                P.fmt(r, ".2f") + ("x" if r else ""),
                note,
            ]
        )
    P.print_table(headers, rows)
    lim = "  ".join(f"{k} {P.fmt(v, '.0f')} MB/s" for k, v in limits.items())
    print(f"limits (same run): {lim}")

    goals: list[tuple[str, bool | None]] = []
    for source in sources:
        ref = pick(cells, source, REF)
        curl = pick(cells, source, "curl")
        mine = [c for c in cells if c.source == source and c.client.kind == "aetiket" and c.run]
        if not mine or ref is None:
            continue
        default = pick(cells, source, "aetiket default")
        best = max(mine, key=lambda c: c.rate(size) or 0.0)
        for which in (default, best):
            if which is None:
                continue
            rate = which.rate(size) or 0.0
            r = rate / (ref.rate(size) or 1.0)
            tag = "default" if which is default else f"best ({which.client.label})"
            goals.append(
                (
                    f"{source}: aetiket {tag} {rate:.1f} MB/s = {r:.2f}x {REF} "
                    f"({ref.rate(size):.1f}); goal >= {goal:g}x",
                    r >= goal,
                )
            )
            if which is best and best is default:
                break
        if not wan and curl is not None and default is not None:
            rc = (default.rate(size) or 0.0) / (curl.rate(size) or 1.0)
            goals.append(
                (
                    f"{source}: aetiket default = {rc:.2f}x curl ({curl.rate(size):.1f});"
                    " goal > 1x",
                    rc > 1.0,
                )
            )
    rss = [c.run.rss_mib for c in cells if c.run and c.client.kind == "aetiket"]
    if rss:
        goals.append(
            (
                f"aetiket peak RSS, {size >> 20} MiB: {max(rss):.0f} MiB (largest of its "
                f"runs); goal < {RSS_GOAL_MIB} MiB",
                max(rss) < RSS_GOAL_MIB,
            )
        )
    for text, ok in goals:
        print(f"  [{P.verdict(ok)}] {text}")
    return goals


def run_network(
    label: str,
    *,
    size: int,
    repeat: int,
    host: str,
    prefix: list[str],
    clients: list[Client],
    wanted: list[str],
    root: Path,
    wan: bool,
    have: dict[str, str | None],
) -> list[tuple[str, bool | None]]:
    tmp = Path(tempfile.mkdtemp(prefix="aetiket-bench-down-", dir=root))
    servers: list[P.Server] = []
    try:
        www = tmp / "www"
        www.mkdir()
        src_path = www / "source.bin"
        P.make_source(src_path, size)
        dl = tmp / "dl"
        dl.mkdir()
        load = P.load_line()
        streams = (1, 4, 16)
        ip = P.iperf3(host, streams, prefix)
        limits: dict[str, float | None] = {
            f"iperf3 {n} stream{'s' if n > 1 else ''}": ip[n] for n in streams
        }
        if wan:  # one transfer of this size from cold: slow start is most of it here
            cold = P.iperf3(host, [16], prefix, total=size)[16]
            limits[f"iperf3 16 streams, one {size >> 20} MiB transfer"] = cold
        limits[f"write to {P.fs_type(dl)} data folder"] = P.disk_write(dl, min(size, P.GiB))
        if P.fs_type(dl) == "tmpfs" and not wan:
            disk = Path(os.environ.get("BENCH_DISK") or tempfile.gettempdir())
            if P.fs_type(disk) != "tmpfs":
                limits[f"disk write+fsync ({disk})"] = P.disk_write(disk, min(size, P.GiB))
        if wan and "nginx-capped" in wanted:
            limits["cap x16 connections"] = 16 * CAP / 1e6
        sources: list[Source] = []
        if have.get("nginx") and ("nginx" in wanted or "nginx-capped" in wanted):
            try:
                ngx = P.start_nginx(tmp / "nginx-run", host, www, prefix)
                servers.append(ngx)
                if "nginx" in wanted:
                    sources.append(Source("nginx", ngx, f"{ngx.url}/{src_path.name}"))
                if "nginx-capped" in wanted:
                    sources.append(
                        Source("nginx limit_rate 20m", ngx, f"{ngx.url}/capped/{src_path.name}")
                    )
            except RuntimeError as exc:
                print(f"peer unavailable: nginx ({str(exc).splitlines()[0]})")
        if "ours" in wanted:
            (tmp / "ours").mkdir()
            try:
                ours = P.start_aetiket(tmp / "ours", host, prefix)
                servers.append(ours)
                uid = P.new_file_record(ours, "source.bin")
                up = [sys.executable, str(DRIVER), "upload", "--url", ours.url, "--path"]
                up += [str(src_path), "--token", str(ours.token), "--scope", "bench", "--uid", uid]
                P.run_client([*up, "--parallel", "8"], timeout=600)
                url = f"{ours.url}/api/v1/files/bench/{uid}"
                sources.append(Source("aetiket serve", ours, url, uid))
            except (RuntimeError, OSError, P.ClientFailed) as exc:
                print(f"source unavailable: aetiket serve ({str(exc).splitlines()[0]})")
        started = time.monotonic()
        print(
            f"{label}: {len(sources)} sources x {len(clients)} clients x {repeat} ...", flush=True
        )
        cells = measure(sources, clients, size, repeat, dl, relay=wan)
        print(f"{label}: done in {time.monotonic() - started:.0f} s", flush=True)
        title = (
            f"download, {label}: {size >> 20} MiB, median of {repeat}, "
            f"{P.fs_type(dl)} data, {os.cpu_count()} cores"
        )
        return report(
            title,
            cells,
            [s.name for s in sources],
            size,
            wan=wan,
            limits=limits,
            load=load,
            goal=1.3 if wan else 1.5,
        )
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="loopback file size")
    p.add_argument("--wan-size-mib", type=int, default=256, help="WAN file size")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell (median)")
    p.add_argument("--repeat-loopback", type=int, help="runs per loopback cell (1 GiB)")
    p.add_argument("--no-wan", action="store_true")
    p.add_argument("--no-loopback", action="store_true")
    p.add_argument(
        "--data",
        choices=["shm", "disk"],
        default="shm",
        help="the served file and the downloads: /dev/shm (tmpfs) or disk",
    )
    p.add_argument(
        "--sources", default="nginx,nginx-capped,ours", help="nginx, nginx-capped (WAN only), ours"
    )
    p.add_argument("--clients", default="", help="comma-separated substrings of labels")
    args = p.parse_args()

    have = P.ensure_apt(TOOLS)
    pip_ok = P.ensure_pip({"aiohttp": "aiohttp"})
    picked = [w.strip() for w in args.clients.split(",") if w.strip()]
    clients = [c for c in ALL_CLIENTS if not picked or any(w in c.label for w in picked)]
    clients = [
        c
        for c in clients
        if (
            c.kind in ("aetiket",)
            or (c.kind == "aiohttp" and pip_ok["aiohttp"])
            or have.get(c.kind)
        )
    ]
    wanted = [s.strip() for s in args.sources.split(",")]
    size, wan_size = args.size_mib * P.MiB, args.wan_size_mib * P.MiB
    root = P.data_root(args.data, 3 * max(size, wan_size))
    print(
        f"download benchmark: data under {root} ({P.fs_type(root)}), {os.cpu_count()} cores",
        flush=True,
    )
    goals: list[tuple[str, bool | None]] = []
    if not args.no_loopback:
        goals += run_network(
            "loopback",
            size=size,
            repeat=args.repeat_loopback or args.repeat,
            host="127.0.0.1",
            prefix=[],
            clients=clients,
            wanted=[w for w in wanted if w != "nginx-capped"],
            root=root,
            wan=False,
            have=have,
        )
    if not args.no_wan:
        goals += _wan.run_on_link(
            lambda: run_network(
                "WAN 50 ms RTT (wan.sh)",
                size=wan_size,
                repeat=args.repeat,
                host=_wan.NS_IP,
                prefix=_wan.NETNS_PREFIX,
                clients=clients,
                wanted=wanted,
                root=root,
                wan=True,
                have=have,
            ),
            P.ensure_apt,
        )
    P.print_goal_count(goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
