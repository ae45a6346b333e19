"""Ingest and download rates of `aetiket serve` on loopback, measured with curl.

One run: a random file (1 GiB by default) is uploaded with tus by curl as one streamed
PATCH, and as N partial uploads sent by N concurrent curls then joined by a final
concatenation; it is downloaded whole and in N parallel ranges. Beside each figure: the
server's CPU seconds (from /proc) and the machine's limits measured in the same run (raw
loopback TCP with a Python socket pair of processes, and sequential disk write).

    python benchmarks/server_rates.py [--size-mib 1024] [--parts 4]
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import operator
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

USER, PASSWORD = "bench", "bench-password"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def start_server(data: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aetiket",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data),
            "--admin-user",
            USER,
            "--admin-password",
            PASSWORD,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"listening on (\S+)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("server did not start")


def api(
    url: str,
    path: str,
    token: str | None = None,
    body: object = None,
    form: dict[str, str] | None = None,
) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if form is not None:
        data = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url + path, data=data, headers=headers)
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def curl(*args: str) -> str:
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def tus_create(url: str, token: str, headers: list[str]) -> str:
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            f"{url}/api/v1/uploads/",
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Tus-Resumable: 1.0.0",
            *functools.reduce(operator.iadd, (["-H", h] for h in headers), []),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = re.search(r"(?im)^location:\s*(\S+)", out)
    assert m, out
    return m.group(1)


def patch_cmd(
    location: str, token: str, path: Path, offset: int = 0, length: int | None = None
) -> list[str]:
    # -T streams the file (no whole-file read into memory); -X PATCH sets the tus method.
    src = str(path)
    cmd = [
        "curl",
        "-sS",
        "--fail-with-body",
        "-X",
        "PATCH",
        location,
        "-T",
        src,
        "-H",
        f"Authorization: Bearer {token}",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        f"Upload-Offset: {offset}",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "-H",
        "Expect:",
    ]
    return cmd


def limit_loopback(size: int) -> float:
    """Raw loopback TCP MB/s between two processes (the machine's ceiling)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    code = (
        f"import socket;s=socket.create_connection(('127.0.0.1',{port}));"
        f"b=bytes(1<<20);n={size}\nwhile n>0: s.sendall(b[:min(n,1<<20)]); n-=1<<20\n"
        "s.close()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    conn, _ = srv.accept()
    start = time.perf_counter()
    buf = bytearray(1 << 20)
    got = 0
    while n := conn.recv_into(buf):
        got += n
    took = time.perf_counter() - start
    proc.wait()
    conn.close()
    srv.close()
    return got / took / 1e6


def limit_disk(path: Path, size: int) -> float:
    block = os.urandom(1 << 20)
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    took = time.perf_counter() - start
    path.unlink()
    return size / took / 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--parts", type=int, default=4)
    args = p.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_s:
        tmp = Path(tmp_s)
        src = tmp / "source.bin"
        digest = hashlib.sha256()
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                block = os.urandom(1 << 20)
                digest.update(block)
                f.write(block)
        sha = digest.hexdigest()
        rows: list[tuple[str, float, float]] = []
        proc, url = start_server(tmp / "data")
        try:
            tok = api(
                url, "/api/v1/token", form={"username": USER, "password": PASSWORD, "scope": ""}
            )
            token = tok["access_token"]  # type: ignore[index]
            api(url, "/api/v1/scopes/", token, {"name": "bench", "description": "bench"})

            def new_file() -> str:
                uid = os.urandom(6).hex()
                api(
                    url,
                    "/api/v1/datasets/",
                    token,
                    {
                        "name": "bench",
                        "uid": uid,
                        "scope": "bench",
                        "files": [{"name": "f", "uid": uid}],
                    },
                )
                return uid

            def measure(name: str, fn: object) -> None:
                c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
                fn()  # type: ignore[operator]
                took, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
                rows.append((name, size / took / 1e6, cpu))

            uid1 = new_file()

            def single() -> None:
                loc = tus_create(
                    url,
                    token,
                    [
                        f"Upload-Length: {size}",
                        f"Upload-Metadata: scope {b64('bench')},uid {b64(uid1)}",
                    ],
                )
                subprocess.run(patch_cmd(loc, token, src), check=True)

            measure("upload: 1 tus PATCH (curl)", single)
            uid2 = new_file()
            step = -(-size // args.parts)
            slices = []
            for i in range(args.parts):
                piece = tmp / f"slice{i}"
                with open(src, "rb") as f, open(piece, "wb") as out:
                    f.seek(i * step)
                    remaining = min(step, size - i * step)
                    while remaining:
                        block = f.read(min(remaining, 1 << 22))
                        out.write(block)
                        remaining -= len(block)
                slices.append(piece)

            def parallel() -> None:
                locs = [
                    tus_create(
                        url, token, ["Upload-Concat: partial", f"Upload-Length: {s.stat().st_size}"]
                    )
                    for s in slices
                ]
                procs = [
                    subprocess.Popen(patch_cmd(loc, token, s))
                    for loc, s in zip(locs, slices, strict=False)
                ]
                assert all(p.wait() == 0 for p in procs)
                tus_create(
                    url,
                    token,
                    [
                        "Upload-Concat: final;" + " ".join(locs),
                        f"Upload-Metadata: scope {b64('bench')},uid {b64(uid2)}",
                    ],
                )

            measure(f"upload: {args.parts} partials + final (curl)", parallel)
            for uid in (uid1, uid2):
                rec = api(url, f"/api/v1/uploads/bench/{uid}", token)
                assert rec["etag"] == sha and rec["status"] == "available", rec  # type: ignore[index]
            file_url = f"{url}/api/v1/files/bench/{uid1}"
            auth = ["-H", f"Authorization: Bearer {token}"]
            measure(
                "download: 1 GET (curl -o /dev/null)",
                lambda: curl("-o", "/dev/null", *auth, file_url),
            )
            out = tmp / "download.bin"
            measure("download: 1 GET to disk (curl)", lambda: curl("-o", str(out), *auth, file_url))
            assert hashlib.sha256(out.read_bytes()).hexdigest() == sha

            def ranged() -> None:
                procs = [
                    subprocess.Popen(
                        [
                            "curl",
                            "-sS",
                            "--fail",
                            "-o",
                            "/dev/null",
                            *auth,
                            "-H",
                            f"Range: bytes={i * step}-{min(size, (i + 1) * step) - 1}",
                            file_url,
                        ]
                    )
                    for i in range(args.parts)
                ]
                assert all(p.wait() == 0 for p in procs)

            measure(f"download: {args.parts} parallel ranges (curl)", ranged)
        finally:
            proc.terminate()
            proc.wait()
        loop_mb = limit_loopback(size)
        disk_mb = limit_disk(tmp / "disk.bin", min(size, 1 << 30))
    print(f"\naetiket serve on loopback, {args.size_mib} MiB, {os.cpu_count()} cores")
    print(f"{'what':44} {'MB/s':>8} {'server CPU s':>13} {'of loopback':>12}")
    for name, rate, cpu in rows:
        print(f"{name:44} {rate:8.0f} {cpu:13.2f} {rate / loop_mb:11.2f}x")
    print(f"{'limit: raw loopback TCP (1 stream)':44} {loop_mb:8.0f}")
    print(f"{'limit: sequential disk write + fsync':44} {disk_mb:8.0f}")


if __name__ == "__main__":
    main()
