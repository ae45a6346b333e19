"""The download engine against servers other than our own, over real HTTP on loopback.

* nginx (the Debian package): Range, If-Range and an ETag that is *not* a content hash
  (``"<mtime>-<size>"``), so the engine can check the size only, unless the caller gives
  ``sha256=``. The fixture installs nginx with apt-get when it is missing; in CI
  (``CI=true``) it must be there or be installed, elsewhere the tests skip if it cannot.
* Python's ``http.server``, which ignores Range and answers 200 with the whole file: the
  engine falls back to one stream (and starts that stream over after a broken answer).
* ``aetiket serve`` itself, with 1, 4, 16 and adaptive connections.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import anyio
import pytest

import aetiket
from aetiket import Client
from aetiket._config import TransferConfig
from aetiket.errors import ChecksumMismatch, RemoteChanged
from tests.conftest import ServerProcess
from tests.faultproxy import Fault, FaultProxy

pytestmark = [pytest.mark.anyio]

KiB = 1024
MiB = 1024 * KiB
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Wait (at most 20 s) until something accepts connections on ``port``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} does not listen on {port}:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig``, wait up to 10 s, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def write_random(path: Path, size: int, seed: int) -> str:
    """Write ``size`` seeded random bytes to ``path``; returns their SHA-256."""
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ---------------------------------------------------------------------------- nginx


def _install_nginx() -> str | None:
    """Install the Debian package; returns why it could not, or None."""
    if not shutil.which("apt-get"):
        return "nginx is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return "nginx is not installed and installing it needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "install", "-y", "-qq", "nginx"],  # the package lists may be current
        ["sh", "-c", "apt-get update -qq && apt-get install -y -qq nginx"],
    ):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"installing nginx failed: {exc}"
        if done.returncode == 0:
            return None
    return f"installing nginx failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def nginx_binary() -> str:
    """The nginx executable, installed if needed (skips outside CI when it cannot be)."""

    def find() -> str | None:
        found = shutil.which("nginx")
        if found is None and os.access("/usr/sbin/nginx", os.X_OK):
            found = "/usr/sbin/nginx"
        return found

    found = find()
    if found is None:
        why = _install_nginx()
        found = find()
        if found is None:
            message = why or "nginx was installed but is not found"
            if IN_CI:
                pytest.fail(f"CI needs nginx: {message}")
            pytest.skip(message)
    return found


class Nginx:
    """An nginx serving ``root`` on 127.0.0.1, in the foreground (``daemon off``)."""

    def __init__(self, binary: str, base: Path) -> None:
        self.base = base
        self.root = base / "www"
        self.root.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = base / "access.log"
        self.error_log = base / "error.log"
        # Run by root, nginx's workers would switch to "nobody", who cannot enter pytest's
        # 0700 temporary folders: they stay root then (a test server on loopback).
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"  {kind}_temp_path {base / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = base / "nginx.conf"
        conf.write_text(
            f"""daemon off;
master_process on;
worker_processes 1;
{user}
pid {base / "nginx.pid"};
error_log {self.error_log} warn;
events {{ worker_connections 256; }}
http {{
  access_log {self.access_log};
{temp}
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 10000;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
  }}
}}
"""
        )
        self.log = base / "nginx.out"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-p", str(base), "-c", str(conf), "-e", str(self.error_log)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_listening(self.port, self.proc, "nginx", self.log)
        except BaseException:
            stop(self.proc, signal.SIGKILL)
            raise

    def statuses(self, name: str) -> list[int]:
        """The statuses of the GETs of ``/name`` in the access log (combined format)."""
        out = []
        for line in self.access_log.read_text().splitlines():
            request, _, rest = line.partition('" ')
            if request.endswith(f"GET /{name} HTTP/1.1"):
                out.append(int(rest.split()[0]))
        return out

    def stop(self) -> None:
        stop(self.proc, signal.SIGQUIT)  # graceful: the master waits for its workers


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    server = Nginx(nginx_binary(), tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log.read_text() + server.error_log.read_text()


NGINX_CASES = [
    pytest.param(0, None, id="0B-adaptive"),
    pytest.param(0, 4, id="0B-4"),
    pytest.param(1 * MiB, None, id="1MiB-adaptive"),
    pytest.param(1 * MiB, 4, id="1MiB-4"),
    pytest.param(33 * MiB, 1, id="33MiB-1"),
    pytest.param(33 * MiB, 4, id="33MiB-4"),
    pytest.param(33 * MiB, None, id="33MiB-adaptive"),
]


@pytest.mark.parametrize(("size", "parallel"), NGINX_CASES)
async def test_nginx_download(
    nginx: Nginx, tmp_path: Path, size: int, parallel: int | None
) -> None:
    name = f"n{size}-{parallel}.bin"
    digest = write_random(nginx.root / name, size, seed=size)
    dest = tmp_path / "out.bin"
    with anyio.fail_after(60):
        async with Client("http://127.0.0.1:1") as client:  # another origin, no login
            result = await client.download_url(f"{nginx.url}/{name}", dest, parallel=parallel)
    assert sha256_of(dest) == digest
    assert result.size == size
    assert leftovers(tmp_path) == {"out.bin"}
    # nginx's ETag is "<mtime>-<size>", not a content hash: only the size was checked.
    assert result.verified
    assert result.sha256 is None
    statuses = nginx.statuses(name)
    if size == 0:
        assert statuses == [200]  # nginx answers a Range on an empty file with 200
        assert result.connections == 1
    else:
        assert set(statuses) == {206}
        assert 1 <= result.connections <= (parallel or 16)
        if size > 4 * MiB and parallel is not None and parallel > 1:
            assert result.connections > 1, "Range works: more than one connection"


@pytest.mark.parametrize("parallel", [1, 4])
async def test_nginx_download_checked_against_a_given_sha256(
    nginx: Nginx, tmp_path: Path, parallel: int
) -> None:
    name = f"checked-{parallel}.bin"
    digest = write_random(nginx.root / name, 9 * MiB + 5, seed=parallel)
    dest = tmp_path / "out.bin"
    with anyio.fail_after(60):
        async with Client("http://127.0.0.1:1") as client:
            result = await client.download_url(
                f"{nginx.url}/{name}", dest, parallel=parallel, sha256=digest
            )
            assert result.verified and result.sha256 == digest
            assert sha256_of(dest) == digest

            other = tmp_path / "other.bin"
            with pytest.raises(ChecksumMismatch):
                await client.download_url(
                    f"{nginx.url}/{name}", other, parallel=parallel, sha256="0" * 64
                )
    assert leftovers(tmp_path) == {"out.bin"}  # no file, no .part, no record


async def test_nginx_cancelled_download_resumes_with_if_range(nginx: Nginx, tmp_path: Path) -> None:
    name = "resume.bin"
    size = 33 * MiB
    digest = write_random(nginx.root / name, size, seed=33)
    dest = tmp_path / "out.bin"
    url = f"{nginx.url}/{name}"
    with anyio.fail_after(60):
        async with Client("http://127.0.0.1:1") as client:
            with anyio.move_on_after(1.0) as scope:
                await client.download_url(url, dest, parallel=4, bandwidth=8 * MiB)
            assert scope.cancelled_caught
            assert leftovers(tmp_path) == {"out.bin.part", "out.bin.part.json"}
            before = len(nginx.statuses(name))
            result = await client.download_url(url, dest, parallel=4, sha256=digest)
    assert result.resumed
    assert result.sha256 == digest
    assert sha256_of(dest) == digest
    assert leftovers(tmp_path) == {"out.bin"}
    assert set(nginx.statuses(name)[before:]) == {206}  # If-Range matched: ranges served


async def test_nginx_file_changed_between_runs_is_a_remote_change(
    nginx: Nginx, tmp_path: Path
) -> None:
    name = "changing.bin"
    size = 33 * MiB
    path = nginx.root / name
    write_random(path, size, seed=34)
    dest = tmp_path / "out.bin"
    url = f"{nginx.url}/{name}"
    with anyio.fail_after(60):
        async with Client("http://127.0.0.1:1") as client:
            with anyio.move_on_after(1.0):
                await client.download_url(url, dest, parallel=1, bandwidth=8 * MiB)
            assert (tmp_path / "out.bin.part.json").exists()
            # Other bytes, the same size. nginx's ETag holds the mtime in whole seconds:
            # move it on, or a change within the same second would go unseen.
            digest = write_random(path, size, seed=35)
            mtime = path.stat().st_mtime + 10
            os.utime(path, (mtime, mtime))
            with pytest.raises(RemoteChanged):
                await client.download_url(url, dest, parallel=1)
            assert not dest.exists()
            result = await client.download_url(url, dest, parallel=1, on_change="restart")
    assert not result.resumed
    assert sha256_of(dest) == digest


# ---------------------------------------------------------------------------- no Range


class NoRangeServer:
    """``python -m http.server`` on 127.0.0.1: ignores Range, answers 200 with it all."""

    def __init__(self, base: Path) -> None:
        self.root = base / "www"
        self.root.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / "http.server.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(self.root),
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_listening(self.port, self.proc, "http.server", self.log)
        except BaseException:
            stop(self.proc, signal.SIGKILL)
            raise


@pytest.fixture(scope="module")
def no_range(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoRangeServer]:
    server = NoRangeServer(tmp_path_factory.mktemp("httpserver"))
    yield server
    stop(server.proc, signal.SIGTERM)


async def _ignores_range(url: str) -> bool:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Range": "bytes=0-9"}) as resp,
    ):
        await resp.read()
        return resp.status == 200


@pytest.mark.parametrize("parallel", [None, 4])
async def test_a_server_that_ignores_range_gets_one_stream(
    no_range: NoRangeServer, tmp_path: Path, parallel: int | None
) -> None:
    name = f"plain-{parallel}.bin"
    size = 6 * MiB + 7
    digest = write_random(no_range.root / name, size, seed=40)
    url = f"{no_range.url}/{name}"
    if not await _ignores_range(url):
        pytest.skip("this Python's http.server honours Range")
    dest = tmp_path / "out.bin"
    events: list[aetiket.Progress] = []
    with anyio.fail_after(60):
        async with Client("http://127.0.0.1:1") as client:
            result = await client.download_url(url, dest, parallel=parallel, progress=events.append)
    assert result.connections == 1
    assert result.size == size
    assert sha256_of(dest) == digest
    assert result.verified and result.sha256 is None  # no ETag at all: the size
    assert leftovers(tmp_path) == {"out.bin"}
    assert events[-1].finished and events[-1].done == size


async def test_a_broken_answer_without_range_starts_the_stream_over(
    no_range: NoRangeServer, tmp_path: Path
) -> None:
    name = "broken.bin"
    size = 6 * MiB
    digest = write_random(no_range.root / name, size, seed=41)
    if not await _ignores_range(f"{no_range.url}/{name}"):
        pytest.skip("this Python's http.server honours Range")
    dest = tmp_path / "out.bin"
    events: list[aetiket.Progress] = []
    with anyio.fail_after(60):
        async with FaultProxy(no_range.url) as proxy, Client(proxy.url) as client:
            rule = proxy.add(Fault(truncate_after=2 * MiB), method="GET", path="/", times=1)
            result = await client.download_url(
                f"{proxy.url}/{name}", dest, parallel=4, sha256=digest, progress=events.append
            )
    assert rule.applied == 1
    assert [e.status for e in proxy.log] == [200, 200]
    assert result.connections == 1
    assert result.sha256 == digest
    assert sha256_of(dest) == digest
    dones = [e.done for e in events]
    assert dones == sorted(dones)  # the bytes fetched again are not counted twice
    assert dones[-1] == size


# ---------------------------------------------------------------------------- our server


@pytest.fixture
async def admin(server: ServerProcess, tmp_path: Path) -> AsyncIterator[Client]:
    config = TransferConfig(resume_dir=tmp_path / "resume")
    async with Client(server.url, transfer=config) as client:
        await client.login(server.admin_user, server.admin_password)
        yield client


@pytest.mark.parametrize("parallel", [1, 4, 16, None])
async def test_our_server(admin: Client, tmp_path: Path, parallel: int | None) -> None:
    scope = await admin.scopes.create(
        aetiket.ScopeIn(name="io-" + aetiket.new_uid()[:12], description="interop")
    )
    dataset = await admin.datasets.create(
        aetiket.DatasetIn(name="interop", uid=aetiket.new_uid(), scope=scope.name)
    )
    uid = aetiket.new_uid()
    await admin.files.create(
        aetiket.FileIn(name="data.bin", uid=uid, dataset_uid=dataset.uid, scope=scope.name)
    )
    size = 40 * MiB + 3
    data = random.Random(50).randbytes(size)
    digest = hashlib.sha256(data).hexdigest()
    await admin.upload(data, scope=scope.name, file_uid=uid)
    del data
    folder = tmp_path / "into"
    folder.mkdir()
    with anyio.fail_after(60):
        result = await admin.download(scope.name, uid, folder, parallel=parallel)
    assert result.dest == folder / "data.bin"
    assert sha256_of(result.dest) == digest
    assert result.verified and result.sha256 == digest  # the ETag is the SHA-256
    # Adaptive mode may stay at one connection on loopback (one is fast enough there).
    assert 1 <= result.connections <= (parallel or 16)
    if parallel is not None and parallel > 1:
        assert result.connections > 1
    assert leftovers(folder) == {"data.bin"}
