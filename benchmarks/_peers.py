"""Shared parts of the transfer benchmarks (upload.py, download.py).

- installing the peers (apt: aria2 axel curl nginx iperf3; pip: tuspy aiotus
  resumable-upload; npm: ``benchmarks/node``), or saying which one is unavailable;
- starting servers (``aetiket serve``, ``resumable-upload``, ``@tus/server``, nginx,
  iperf3) on loopback or inside the WAN namespace, and reading their CPU seconds from
  /proc; stopping them (SIGTERM, then SIGKILL) whatever happens;
- running one client as its own child process and taking its resource usage from
  ``os.wait4``: CPU seconds (user + system, its waited-for children included) and peak
  RSS (``ru_maxrss``);
- the machine's limits measured in the same run (iperf3 with 1/4/16 streams, a
  sequential write to the data folder, and to disk), the load average, medians, tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NODE_DIR = HERE / "node"
MiB = 1 << 20
GiB = 1 << 30
CLK = os.sysconf("SC_CLK_TCK")
USER, PASSWORD = "bench", "bench-password"
LOAD_WARN = 1.5


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: the repo first on PYTHONPATH, no proxy."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


# ---------------------------------------------------------------------------- installing


def ensure_apt(commands: dict[str, str]) -> dict[str, str | None]:
    """``{command: debian package}``: install the missing ones; returns command -> path."""
    missing = sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} (apt-get)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=False, **quiet)
    found = {cmd: shutil.which(cmd) for cmd in commands}
    for cmd, path in found.items():
        if path is None:
            print(f"peer unavailable: {cmd} (apt-get install {commands[cmd]} failed or not root)")
    return found


def ensure_pip(modules: dict[str, str]) -> dict[str, bool]:
    """``{module: pip requirement}``: pip-install the missing ones; returns module -> ok."""

    def importable(module: str) -> bool:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, check=False
        )
        return done.returncode == 0

    missing = [req for mod, req in modules.items() if not importable(mod)]
    if missing:
        print(f"installing {' '.join(missing)} (pip)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", *missing],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ok = {mod: importable(mod) for mod in modules}
    for mod, good in ok.items():
        if not good:
            print(f"peer unavailable: {mod} (pip install {modules[mod]} failed)")
    return ok


def ensure_node() -> bool:
    """``npm ci`` in benchmarks/node (tus-js-client, @tus/server); False if impossible."""
    wanted = ("tus-js-client", "@tus/server", "@tus/file-store")
    ready = all((NODE_DIR / "node_modules" / p / "package.json").is_file() for p in wanted)
    if ready and shutil.which("node"):
        return True
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        print("peer unavailable: tus-js-client and @tus/server (no node/npm on PATH)")
        return False
    print("installing benchmarks/node (npm ci)", flush=True)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    ready = all((NODE_DIR / "node_modules" / p / "package.json").is_file() for p in wanted)
    if not ready:
        print(
            f"peer unavailable: tus-js-client and @tus/server (npm ci failed: "
            f"{(done.stderr or done.stdout)[-500:]})"
        )
    return ready


# ---------------------------------------------------------------------------- processes


def proc_cpu(pid: int, thread: int | None = None) -> float:
    """CPU seconds of a live process (its threads, and its children it has waited for),
    or of one of its threads."""
    where = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    try:
        fields = Path(where).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    kept = (11, 12) if thread is not None else (11, 12, 13, 14)
    return sum(int(fields[i]) for i in kept) / CLK


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Server:
    """A server we started: its process, its URL, where it keeps files, its log."""

    name: str
    url: str  # scheme://host:port
    endpoint: str  # the tus creation path ("" where not a tus server)
    proc: subprocess.Popen[bytes]
    storage: Path
    log_path: Path
    token: str | None = None

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def loop_cpu(self) -> float:
        """CPU seconds of its main thread (an asyncio server's event loop: the one part
        that cannot spread over cores; worker threads hash and write beside it)."""
        return proc_cpu(self.proc.pid, thread=self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def clear_new_files(self, keep: set[Path]) -> None:
        """Delete what the runs left in its storage (tmpfs room), except ``keep``."""
        for path in list(self.storage.rglob("*")):
            if (
                path.is_file()
                and path not in keep
                and not path.name.endswith((".db", ".db-wal", ".db-shm"))
            ):
                with contextlib.suppress(OSError):
                    path.unlink()


def start_process(
    name: str,
    cmd: list[str],
    *,
    log_path: Path,
    pattern: str,
    storage: Path,
    endpoint: str = "",
    cwd: Path | None = None,
    timeout: float = 60,
) -> Server:
    """Start ``cmd`` (output to ``log_path``) and wait for ``pattern`` (group 1: the URL)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=child_env(),
        )
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        match = regex.search(log_path.read_text(errors="replace"))
        if match:
            return Server(name, match.group(1), endpoint, proc, storage, log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')[-2000:]}")


def start_aetiket(root: Path, host: str, prefix: Sequence[str] = ()) -> Server:
    """``aetiket serve`` (as server_rates.py starts it), with a bench admin and a scope."""
    data = root / "aetiket-data"
    cmd = [*prefix, sys.executable, "-m", "aetiket", "serve", "--host", host, "--port", "0"]
    cmd += ["--data-dir", str(data), "--admin-user", USER, "--admin-password", PASSWORD]
    cmd += ["--access-token-ttl", str(24 * 3600)]
    srv = start_process(
        "aetiket serve",
        cmd,
        log_path=root / "aetiket.log",
        pattern=r"listening on (\S+)",
        storage=data,
        endpoint="/api/v1/uploads/",
    )
    try:
        form = {"username": USER, "password": PASSWORD, "scope": ""}
        srv.token = api(srv.url, "/api/v1/token", form=form)["access_token"]
        api(srv.url, "/api/v1/scopes/", srv.token, {"name": "bench", "description": "bench"})
    except BaseException:
        srv.stop()
        raise
    return srv


def new_file_record(srv: Server, name: str = "bench.bin") -> str:
    """A new file record in scope ``bench`` of our server (a file takes one upload)."""
    uid = os.urandom(8).hex()
    api(
        srv.url,
        "/api/v1/datasets/",
        srv.token,
        {"name": "bench", "uid": uid, "scope": "bench", "files": [{"name": name, "uid": uid}]},
    )
    return uid


def start_resumable_upload(root: Path, host: str, prefix: Sequence[str] = ()) -> Server:
    """PyPI ``resumable-upload``'s server (concatenation on by default) at /files."""
    store = root / "ru-uploads"
    store.mkdir(parents=True, exist_ok=True)
    port = free_port() if not prefix else 18080
    return start_process(
        "resumable-upload",
        [
            *prefix,
            sys.executable,
            "-m",
            "resumable_upload",
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--base-path",
            "/files",
            "--upload-dir",
            str(store),
            "--db-path",
            str(root / "ru.db"),
            # absolute Locations: aiotus cannot join a relative one ("/files/<id>")
            "--location-base-url",
            f"http://{host}:{port}",
        ],
        log_path=root / "ru.log",
        pattern=r"listening on (http://[^/\s]+)",
        storage=store,
        endpoint="/files",
    )


def start_tus_node(root: Path, host: str, prefix: Sequence[str] = ()) -> Server:
    """npm ``@tus/server`` + ``@tus/file-store`` at /files (no concatenation)."""
    store = root / "tusnode-files"
    store.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node") or "node"
    return start_process(
        "@tus/server",
        [*prefix, node, str(NODE_DIR / "tus-server.mjs"), str(store), host, "0"],
        log_path=root / "tusnode.log",
        pattern=r"listening on (http://[^/\s]+)",
        storage=store,
        endpoint="/files",
        cwd=NODE_DIR,
    )


def start_nginx(root: Path, host: str, docroot: Path, prefix: Sequence[str] = ()) -> Server:
    """nginx as one process (no master, one worker) serving ``docroot``: ``/`` plain and
    ``/capped/`` with ``limit_rate 20m`` (20 MB/s per connection)."""
    conf_dir = root / "nginx"
    (conf_dir / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port() if not prefix else 18081
    conf = conf_dir / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path {conf_dir}/tmp/body;
    proxy_temp_path {conf_dir}/tmp/proxy;
    fastcgi_temp_path {conf_dir}/tmp/fastcgi;
    uwsgi_temp_path {conf_dir}/tmp/uwsgi;
    scgi_temp_path {conf_dir}/tmp/scgi;
    server {{
        listen {host}:{port};
        root {docroot};
        location /capped/ {{
            alias {docroot}/;
            limit_rate 20m;
        }}
    }}
}}
""")
    log_path = root / "nginx.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*prefix, "nginx", "-p", str(conf_dir), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    srv = Server("nginx", f"http://{host}:{port}", "", proc, docroot, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{srv.url}/", timeout=2):
                pass
            return srv
        except urllib.error.HTTPError:
            return srv  # 403/404 for the folder: it answers
        except OSError:
            time.sleep(0.05)
    srv.stop()
    errors = conf_dir / "error.log"
    detail = errors.read_text(errors="replace") if errors.exists() else ""
    raise RuntimeError(f"nginx did not start:\n{log_path.read_text(errors='replace')}{detail}")


def api(
    url: str,
    path: str,
    token: str | None = None,
    body: object = None,
    form: dict[str, str] | None = None,
) -> dict:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if form is not None:
        data = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url + path, data=data, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- one client run


@dataclasses.dataclass
class Run:
    """One client run: seconds of transfer, its CPU seconds and peak RSS, the servers'."""

    seconds: float
    cpu: float
    rss_mib: float
    server_cpu: float | None
    relay_cpu: float | None
    server_loop_cpu: float | None
    info: dict  # type: ignore[type-arg]

    def rate(self, size: int) -> float:
        return size / self.seconds / 1e6


class ClientFailed(Exception):
    pass


def run_client(
    cmd: list[str],
    *,
    server: Server | None = None,
    relay: int | None = None,
    timeout: float = 900,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run one client process to its end, measuring it with ``os.wait4``.

    The transfer's seconds: from the client's own JSON line (``{"seconds": ...}``: the
    Python and Node drivers time the transfer itself, without interpreter start and
    imports), else the wall time from spawn to exit (the C tools start in milliseconds).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        s0 = server.cpu() if server else None
        l0 = server.loop_cpu() if server else None
        r0 = proc_cpu(relay) if relay else None
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env or child_env(), cwd=cwd
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if server:
            time.sleep(0.2)  # what the server still does for this request (a final's join)
        s1 = server.cpu() if server else None
        l1 = server.loop_cpu() if server else None
        r1 = proc_cpu(relay) if relay else None
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-3:]
        raise ClientFailed(f"exit {proc.returncode}: {' | '.join(tail)[-300:]}")
    info: dict = {}  # type: ignore[type-arg]
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                info = json.loads(line)
                break
    return Run(
        seconds=float(info.get("seconds", wall)),
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=usage.ru_maxrss / 1024,
        server_cpu=None if s0 is None or s1 is None else s1 - s0,
        relay_cpu=None if r0 is None or r1 is None else r1 - r0,
        server_loop_cpu=None if l0 is None or l1 is None else l1 - l0,
        info=info,
    )


def median_run(runs: list[Run]) -> Run:
    """The run of median seconds (its CPU and RSS go with it; RSS: the max of all)."""
    mid = sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]
    secs = statistics.median(r.seconds for r in runs)
    return dataclasses.replace(
        mid,
        seconds=secs,
        cpu=statistics.median(r.cpu for r in runs),
        rss_mib=max(r.rss_mib for r in runs),
        server_cpu=None
        if mid.server_cpu is None
        else statistics.median(r.server_cpu or 0.0 for r in runs),
        relay_cpu=None
        if mid.relay_cpu is None
        else statistics.median(r.relay_cpu or 0.0 for r in runs),
        server_loop_cpu=None
        if mid.server_loop_cpu is None
        else statistics.median(r.server_loop_cpu or 0.0 for r in runs),
    )


# ---------------------------------------------------------------------------- limits


def iperf3(
    host: str,
    streams: Sequence[int],
    prefix: Sequence[str] = (),
    seconds: int = 3,
    total: int | None = None,
) -> dict[int, float | None]:
    """Raw TCP MB/s to ``host`` with n parallel streams (iperf3; server in ``prefix``).

    ``total``: send that many bytes in all from cold connections instead of running
    ``seconds`` (the ceiling of one transfer of that size, slow start included).
    """
    rates: dict[int, float | None] = {}
    if shutil.which("iperf3") is None:
        return dict.fromkeys(streams)
    for n in streams:
        port = free_port() if not prefix else 15201 + n
        with tempfile.NamedTemporaryFile(suffix=".log") as log_f:
            log = Path(log_f.name)
            srv = subprocess.Popen(
                [*prefix, "iperf3", "-s", "-1", "--forceflush", "-B", host, "-p", str(port)],
                stdout=log_f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 10
                while "listening" not in log.read_text(errors="replace").lower():
                    if time.monotonic() > deadline or srv.poll() is not None:
                        raise RuntimeError("iperf3 server did not start")
                    time.sleep(0.05)
                amount = ["-n", str(total)] if total else ["-t", str(seconds)]
                done = subprocess.run(
                    ["iperf3", "-c", host, "-p", str(port), "-P", str(n), *amount, "-J"],
                    capture_output=True,
                    text=True,
                    timeout=seconds + 30,
                    check=False,
                )
                end = json.loads(done.stdout)["end"]
                rates[n] = end["sum_received"]["bits_per_second"] / 8e6
            except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired):
                rates[n] = None
            finally:
                if srv.poll() is None:
                    srv.terminate()
                srv.wait(timeout=10)
    return rates


def disk_write(folder: Path, size: int, fsync: bool = True) -> float:
    """Sequential write MB/s of ``size`` bytes into ``folder`` (1 MiB writes, fsync)."""
    path = folder / f"disk-limit-{os.getpid()}.bin"
    block = os.urandom(MiB)
    try:
        start = time.perf_counter()
        with open(path, "wb") as f:
            for _ in range(size // MiB):
                f.write(block)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        return size / (time.perf_counter() - start) / 1e6
    finally:
        path.unlink(missing_ok=True)


def fs_type(path: Path) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            mnt = parts[1]
            if str(path).startswith(mnt) and len(mnt) > len(best):
                best, kind = mnt, parts[2]
    return kind


def data_root(where: str, need: int) -> Path:
    """Where the data goes: /dev/shm when it has room (``where='shm'``), else disk."""
    if where == "shm" and Path("/dev/shm").is_dir():
        free = shutil.disk_usage("/dev/shm").free
        if free > need:
            return Path("/dev/shm")
        print(
            f"note: /dev/shm has {free / GiB:.1f} GiB free, {need / GiB:.1f} needed: "
            "using the disk",
            flush=True,
        )
    return Path(os.environ.get("BENCH_TMP") or tempfile.gettempdir())


def make_source(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
        f.write(os.urandom(size % MiB))


# ---------------------------------------------------------------------------- output


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    note = (
        f"  ** load > {LOAD_WARN} on {os.cpu_count()} cores: other work is running, "
        "figures are lower and noisier than on an idle machine **"
        if one > LOAD_WARN
        else ""
    )
    return f"load average (1/5/15 min): {one:.2f} {five:.2f} {fifteen:.2f}{note}"


def fmt(value: float | None, spec: str = ".1f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> None:
    """A plain table; the first ``left`` columns and the last left-aligned, the others right."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        last = len(cells) - 1
        return "  ".join(
            c.ljust(w) if i < left or i == last else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def print_goal_count(goals: list[tuple[str, bool]]) -> None:
    """The last line of a benchmark: how many goals passed."""
    if goals:
        passed = sum(1 for _, ok in goals if ok)
        print(f"\ngoals: {passed} of {len(goals)} PASS")
