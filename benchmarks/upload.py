"""Upload rates (issue 4): aetiket against the tus clients people use, same servers, one run.

One file (1 GiB on loopback, 256 MiB over the emulated 50 ms RTT link of
``../shared/netlab/wan.sh``) is uploaded by every client to every server:

- clients: aetiket (``Client.upload``, parallel 1/4/8 and the default, which picks by
  the server's round trip), tuspy (``Uploader``, chunk 8 MiB
  and 64 MiB), aiotus (chunk 64 MiB), tus-js-client on Node (parallelUploads 1 and 4);
- servers: ours (``aetiket serve``) and PyPI ``resumable-upload``, both with the
  concatenation extension, and npm ``@tus/server`` (without it: parallel clients send one
  upload there, and tus-js-client's parallelUploads cannot run).

Each client is its own process: its CPU seconds and peak RSS come from ``os.wait4``; the
server's CPU seconds from /proc. Beside the figures, measured in the same run: raw TCP
(iperf3, 1/4/16 streams) and the write rate of the data folder. Every cell is the median
of ``--repeat`` runs (the runs of a server go round-robin over its clients). The load
average is printed before each table: the machine has 2 cores and may be shared.

    python benchmarks/upload.py [--size-mib 1024] [--wan-size-mib 256] [--repeat 3]
        [--repeat-loopback N] [--no-wan] [--no-loopback] [--data shm|disk]
        [--servers ours,resumable-upload,tus-node] [--clients aetiket,tuspy,...]

Goals (issue 4), judged in the same run: on the WAN, aetiket >= 2x tus-js-client
parallelUploads 4 and >= 8x tuspy (8 MiB chunks) to the same server; on loopback, ahead of
every peer to the same server; aetiket's peak RSS under 100 MiB for 1 GiB; our server not
the bottleneck (its CPU seconds per GiB beside the peers' servers).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _peers as P
import _wan

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "_aetiket_driver.py"
CLIENTS = HERE / "_clients.py"
RSS_GOAL_MIB = 100


@dataclasses.dataclass(frozen=True)
class Client:
    label: str
    kind: str  # aetiket | tuspy | aiotus | tusjs
    parallel: int = 1
    chunk: int = 0

    @property
    def needs_concat(self) -> bool:
        return self.kind == "tusjs" and self.parallel > 1


ALL_CLIENTS = [
    Client("aetiket p1", "aetiket", 1),
    Client("aetiket p4", "aetiket", 4),
    Client("aetiket p8", "aetiket", 8),
    Client("aetiket default", "aetiket", 0),  # parallel=None: by the server's round trip
    Client("tuspy 8 MiB", "tuspy", chunk=8 * P.MiB),
    Client("tuspy 64 MiB", "tuspy", chunk=64 * P.MiB),
    Client("aiotus 64 MiB", "aiotus", chunk=64 * P.MiB),
    Client("tus-js-client p1", "tusjs", 1),
    Client("tus-js-client p4", "tusjs", 4),
]
SERVERS = {
    "ours": "aetiket serve",
    "resumable-upload": "resumable-upload",
    "tus-node": "@tus/server",
}
CONCAT = {"aetiket serve": True, "resumable-upload": True, "@tus/server": False}


def command(client: Client, srv: P.Server, src: Path) -> list[str]:
    """The command line of one upload of ``src`` (a new file record on our server)."""
    ours = srv.token is not None
    headers = {"Authorization": f"Bearer {srv.token}"} if ours else {}
    if ours:
        uid = P.new_file_record(srv)
        metadata = {"scope": "bench", "uid": uid}
    else:
        metadata = {"filename": src.name}
    endpoint = srv.url + srv.endpoint
    if client.kind == "aetiket":
        cmd = [
            sys.executable,
            str(DRIVER),
            "upload",
            "--url",
            srv.url,
            "--path",
            str(src),
            "--parallel",
            str(client.parallel) if client.parallel else "auto",
        ]
        if ours:
            cmd += ["--token", str(srv.token), "--scope", "bench", "--uid", metadata["uid"]]
        else:
            cmd += ["--endpoint", srv.endpoint]
        return cmd
    spec = {
        "endpoint": endpoint,
        "path": str(src),
        "headers": headers,
        "metadata": metadata,
        "chunk_size": client.chunk,
        "parallel": client.parallel,
    }
    if client.kind in ("tuspy", "aiotus"):
        return [sys.executable, str(CLIENTS), client.kind, json.dumps(spec)]
    return [shutil.which("node") or "node", str(P.NODE_DIR / "tus-upload.mjs"), json.dumps(spec)]


@dataclasses.dataclass
class Cell:
    server: str
    client: Client
    run: P.Run | None = None
    error: str | None = None

    def rate(self, size: int) -> float | None:
        return self.run.rate(size) if self.run else None


def measure_server(
    name: str,
    starter: Callable[[], P.Server],
    clients: list[Client],
    src: Path,
    size: int,
    repeat: int,
    relay: bool,
) -> list[Cell]:
    cells = [Cell(name, c) for c in clients]
    runs: dict[str, list[P.Run]] = {c.label: [] for c in clients}
    timeout = max(180.0, size / 4e6)
    try:
        srv = starter()
    except (RuntimeError, OSError) as exc:
        for cell in cells:
            cell.error = f"server did not start: {str(exc).splitlines()[0]}"
        return cells
    try:
        keep = {p for p in srv.storage.rglob("*") if p.is_file()}
        for _ in range(repeat):
            for cell in cells:
                if cell.error:
                    continue
                if cell.client.needs_concat and not CONCAT[name]:
                    cell.error = "n/a: the server has no concatenation"
                    continue
                try:
                    cmd = command(cell.client, srv, src)
                    run = P.run_client(
                        cmd, server=srv, timeout=timeout, relay=_wan.relay_pid() if relay else None
                    )
                    runs[cell.client.label].append(run)
                except P.ClientFailed as exc:
                    cell.error = f"FAILED {exc}"
                finally:
                    srv.clear_new_files(keep)
    finally:
        srv.stop()
    for cell in cells:
        if runs[cell.client.label] and not cell.error:
            cell.run = P.median_run(runs[cell.client.label])
    return cells


def best_of(
    cells: list[Cell], size: int, kind: str | None = None, peers: bool = False
) -> Cell | None:
    pool = [
        c
        for c in cells
        if c.run
        and (kind is None or c.client.kind == kind)
        and (not peers or c.client.kind != "aetiket")
    ]
    return max(pool, key=lambda c: c.rate(size) or 0.0, default=None)


def by_label(cells: list[Cell], label: str) -> Cell | None:
    return next((c for c in cells if c.client.label == label and c.run), None)


def ratio(a: Cell | None, b: Cell | None, size: int) -> float | None:
    ra, rb = (a.rate(size) if a else None), (b.rate(size) if b else None)
    return ra / rb if ra and rb else None


def report(
    title: str,
    by_server: dict[str, list[Cell]],
    size: int,
    *,
    wan: bool,
    limits: dict[str, float | None],
    load: str,
) -> list[tuple[str, bool | None]]:
    print(f"\n== {title}")
    print(load)
    refs = (
        [("x tus-js p4", "tus-js-client p4"), ("x tuspy 8M", "tuspy 8 MiB")]
        if wan
        else [("x best peer", None)]
    )
    headers = ["server", "client", "MB/s", "client CPU s", "server CPU s"]
    headers += ["relay CPU s"] if wan else []
    headers += ["peak RSS MiB", *(r[0] for r in refs), "note"]
    rows = []
    for name, cells in by_server.items():
        peer_best = best_of(cells, size, peers=True)
        for cell in cells:
            run = cell.run
            if run is None:
                rows.append(
                    [
                        name,
                        cell.client.label,
                        "-",
                        "-",
                        "-",
                        *(["-"] if wan else []),
                        "-",
                        *("-" for _ in refs),
                        cell.error or "no run",
                    ]
                )
                continue
            ratios = [
                ratio(cell, by_label(cells, ref) if ref else peer_best, size) for _, ref in refs
            ]
            note = ""
            if cell.client.kind == "aetiket":
                parts = run.info.get("parts", 0)
                note = f"{parts} part{'s' if parts != 1 else ''}"
                if cell.client.parallel > 1 and parts <= 1:
                    note += " (no concatenation: one upload)"
            rows.append(
                [
                    name,
                    cell.client.label,
                    P.fmt(run.rate(size), ".1f"),
                    P.fmt(run.cpu, ".2f"),
                    P.fmt(run.server_cpu, ".2f"),
                    *([P.fmt(run.relay_cpu, ".2f")] if wan else []),
                    P.fmt(run.rss_mib, ".0f"),
                    *(P.fmt(r, ".2f", "-") + ("x" if r else "") for r in ratios),
                    note,
                ]
            )
    P.print_table(headers, rows)
    lim = "  ".join(f"{k} {P.fmt(v, '.0f')} MB/s" for k, v in limits.items())
    print(f"limits (same run): {lim}")

    goals: list[tuple[str, bool | None]] = []
    for name, cells in by_server.items():
        ours = best_of(cells, size, kind="aetiket")
        if ours is None:
            continue
        rate = ours.rate(size) or 0.0
        if wan and not CONCAT[name]:
            # One upload, one connection: window-bound (iperf3 1 stream above), whoever
            # sends it; the WAN goals are about parallel uploads (the anchors are
            # to resumable-upload). Shown, not judged.
            ref = by_label(cells, "tuspy 8 MiB")
            if ref is not None:
                print(
                    f"  [info] WAN, to {name} (no concatenation): aetiket best "
                    f"({ours.client.label}, {rate:.1f} MB/s) = "
                    f"{ratio(ours, ref, size) or 0.0:.2f}x tuspy 8 MiB ({ref.rate(size):.1f})"
                )
        elif wan:
            for label, factor in (("tus-js-client p4", 2.0), ("tuspy 8 MiB", 8.0)):
                ref = by_label(cells, label)
                if ref is None:
                    continue
                r = ratio(ours, ref, size) or 0.0
                goals.append(
                    (
                        f"WAN, to {name}: aetiket best ({ours.client.label}, "
                        f"{rate:.1f} MB/s) = {r:.2f}x {label} ({ref.rate(size):.1f}); "
                        f"goal >= {factor:g}x",
                        r >= factor,
                    )
                )
        else:
            peer = best_of(cells, size, peers=True)
            if peer is None:
                continue
            r = ratio(ours, peer, size) or 0.0
            goals.append(
                (
                    f"loopback, to {name}: aetiket best ({ours.client.label}, "
                    f"{rate:.1f} MB/s) = {r:.2f}x the best peer ({peer.client.label}, "
                    f"{peer.rate(size):.1f}); goal > 1x",
                    r > 1.0,
                )
            )
    rss = [
        c.run.rss_mib
        for cells in by_server.values()
        for c in cells
        if c.run and c.client.kind == "aetiket"
    ]
    if rss and not wan:
        goals.append(
            (
                f"aetiket peak RSS, {size >> 20} MiB: {max(rss):.0f} MiB (largest of its "
                f"runs); goal < {RSS_GOAL_MIB} MiB",
                max(rss) < RSS_GOAL_MIB,
            )
        )
    # The servers' CPU seconds per GiB, median over the clients each one served.
    per_gib = {}
    for name, cells in by_server.items():
        vals = [
            c.run.server_cpu * P.GiB / size for c in cells if c.run and c.run.server_cpu is not None
        ]
        if vals:
            per_gib[name] = statistics.median(vals)
    if per_gib:
        print(
            "server CPU s per GiB (median over the clients it served): "
            + ", ".join(f"{k} {v:.2f}" for k, v in per_gib.items())
        )
    ours_cells = by_server.get("aetiket serve", [])
    best = best_of(ours_cells, size, kind="aetiket")
    if best and best.run and best.run.server_cpu is not None:
        # The event loop is the one thread that cannot spread over cores (hashing and
        # writing run on worker threads beside it): it is what would cap the rate.
        loop = (best.run.server_loop_cpu or 0.0) / best.run.seconds
        busy = best.run.server_cpu / best.run.seconds
        goals.append(
            (
                f"our server, not the bottleneck: its event loop busy {loop:.0%} of a core "
                f"(all its threads {busy:.0%}) during aetiket's best upload to it "
                f"({best.client.label}); its CPU s/GiB "
                f"{per_gib.get('aetiket serve', 0):.2f}"
                + "".join(f", {k} {v:.2f}" for k, v in per_gib.items() if k != "aetiket serve")
                + "; goal: event loop < 90%",
                loop < 0.9,
            )
        )
    for text, ok in goals:
        print(f"  [{P.verdict(ok)}] {text}")
    return goals


@contextlib.contextmanager
def workdir(root: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aetiket-bench-up-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_network(
    label: str,
    *,
    size: int,
    repeat: int,
    host: str,
    prefix: list[str],
    clients: list[Client],
    servers: list[str],
    root: Path,
    wan: bool,
    node_ok: bool,
) -> list[tuple[str, bool | None]]:
    with workdir(root) as tmp:
        src = tmp / "source.bin"
        P.make_source(src, size)
        load = P.load_line()
        streams = (1, 4, 16)
        ip = P.iperf3(host, streams, prefix)
        limits: dict[str, float | None] = {
            f"iperf3 {n} stream{'s' if n > 1 else ''}": ip[n] for n in streams
        }
        if wan:  # one transfer of this size from cold: slow start is most of it here
            cold = P.iperf3(host, [8], prefix, total=size)[8]
            limits[f"iperf3 8 streams, one {size >> 20} MiB transfer"] = cold
        if not wan:
            limits[f"write to {P.fs_type(tmp)} data folder"] = P.disk_write(
                tmp, min(size, P.GiB), fsync=True
            )
        starters: dict[str, Callable[[Path], P.Server]] = {
            "ours": lambda d: P.start_aetiket(d, host, prefix),
            "resumable-upload": lambda d: P.start_resumable_upload(d, host, prefix),
            "tus-node": lambda d: P.start_tus_node(d, host, prefix),
        }
        by_server: dict[str, list[Cell]] = {}
        for key in servers:
            if key == "tus-node" and not node_ok:
                continue
            started = time.monotonic()
            print(f"{label}: {SERVERS[key]} ...", flush=True)
            folder = tmp / key
            folder.mkdir()
            by_server[SERVERS[key]] = measure_server(
                SERVERS[key],
                lambda k=key, d=folder: starters[k](d),
                clients,
                src,
                size,
                repeat,
                relay=wan,
            )
            print(f"{label}: {SERVERS[key]} done in {time.monotonic() - started:.0f} s", flush=True)
        title = (
            f"upload, {label}: {size >> 20} MiB, median of {repeat}, "
            f"{P.fs_type(tmp)} data, {os.cpu_count()} cores"
        )
        return report(title, by_server, size, wan=wan, limits=limits, load=load)


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
        help="the file and the servers' storage: /dev/shm (tmpfs) or disk",
    )
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--clients", default="", help="comma-separated substrings of labels")
    args = p.parse_args()

    P.ensure_pip(
        {"tusclient": "tuspy", "aiotus": "aiotus", "resumable_upload": "resumable-upload>=0.3,<1"}
    )
    P.ensure_apt({"iperf3": "iperf3"})
    node_ok = P.ensure_node()
    wanted = [w.strip() for w in args.clients.split(",") if w.strip()]
    clients = [c for c in ALL_CLIENTS if not wanted or any(w in c.label for w in wanted)]
    if not node_ok:
        clients = [c for c in clients if c.kind != "tusjs"]
    servers = [s for s in args.servers.split(",") if s in SERVERS]
    size, wan_size = args.size_mib * P.MiB, args.wan_size_mib * P.MiB
    # Room: the source, and at most a few copies of it at once on the servers.
    root = P.data_root("shm" if args.data == "shm" else "disk", 4 * max(size, wan_size))
    print(
        f"upload benchmark: data under {root} ({P.fs_type(root)}), {os.cpu_count()} cores",
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
            servers=servers,
            root=root,
            wan=False,
            node_ok=node_ok,
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
                servers=servers,
                root=root,
                wan=True,
                node_ok=node_ok,
            ),
            P.ensure_apt,
        )
    P.print_goal_count(goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
