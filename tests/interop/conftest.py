"""Interop fixtures: third-party tus servers as real subprocesses on loopback, sources of
known content, and a client session that records every request it sends.

Servers:

- ``resumable_upload_server``: PyPI ``resumable-upload`` (``python -m resumable_upload
  serve``, SQLite + a directory, all tus extensions including concatenation) at ``/files``.
- ``tus_node_server``: npm ``@tus/server`` with ``@tus/file-store`` (no concatenation,
  no checksum) at ``/files``, run by ``tests/interop/node/tus-server.mjs``. Its packages
  are installed into ``tests/interop/node/node_modules`` with ``npm ci`` (from the committed
  lock file) the first time a session needs them.

A server that cannot be installed or started (no network, no Node) skips its tests, and
fails them when ``CI`` is set: CI must run every server.

Each fixture stops its server (SIGTERM, then SIGKILL after a grace period) and checks it
exited cleanly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from yarl import URL

from aetiket._config import TransferConfig

KiB = 1024
MiB = 1024 * KiB

NODE_DIR = Path(__file__).parent / "node"
_RU_LISTENING = re.compile(r"TUS server listening on (http://[^/\s]+)(/\S*) ")
_NODE_LISTENING = re.compile(r"listening on (http://[^/\s]+)(/\S*)")


# ---------------------------------------------------------------------------- unavailable


def unavailable(reason: str) -> None:
    """Skip (fail under CI: there every server must run) for a missing server."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (CI is set: every interop server must be available)")
    pytest.skip(reason)


# ---------------------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class Blob:
    """Random content of a given size, as a file, bytes, or a file object."""

    path: Path
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)

    def source(self, kind: str) -> str | bytes | IO[bytes]:
        if kind == "path":
            return str(self.path)
        if kind == "bytes":
            return self.data
        if kind == "fileobj":
            return io.BytesIO(self.data)
        raise ValueError(kind)


def make_blob(folder: Path, size: int, seed: int = 0) -> Blob:
    data = random.Random(f"{size}/{seed}").randbytes(size)
    path = folder / f"blob-{size}-{seed}.bin"
    path.write_bytes(data)
    return Blob(path, data, hashlib.sha256(data).hexdigest())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


async def get_sha256(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """GET ``url`` (plain aiohttp, not aetiket): the body's size and SHA-256."""
    h = hashlib.sha256()
    size = 0
    async with session.get(url, headers={"Accept-Encoding": "identity", **(headers or {})}) as r:
        assert r.status == 200, f"GET {url}: {r.status} {await r.text()}"
        async for block in r.content.iter_chunked(MiB):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


# ---------------------------------------------------------------------------- traced client


@dataclasses.dataclass
class Sent:
    """A request as sent, and (once it came) the answer's status and Location, resolved."""

    method: str
    url: str
    headers: dict[str, str]
    status: int | None = None
    location: str | None = None


@dataclasses.dataclass
class Traced:
    """A session noting every request sent through it (method, URL, headers)."""

    session: aiohttp.ClientSession
    sent: list[Sent]

    def of(self, method: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method]

    def clear(self) -> None:
        self.sent.clear()


@pytest.fixture
async def traced() -> AsyncIterator[Traced]:
    sent: list[Sent] = []

    async def on_start(
        session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.sent = Sent(params.method, str(params.url), dict(params.headers))
        sent.append(ctx.sent)

    async def on_end(
        session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        ctx.sent.status = params.response.status
        location = params.response.headers.get("Location")
        if location is not None:
            ctx.sent.location = str(params.url.join(URL(location)))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        yield Traced(session, sent)


@pytest.fixture
def transfer(tmp_path: Path) -> TransferConfig:
    """Transfer settings with resume records under the test's own folder."""
    return TransferConfig(resume_dir=tmp_path / "resume")


def resume_records(config: TransferConfig) -> list[Path]:
    assert config.resume_dir is not None
    return sorted(config.resume_dir.glob("*.json")) if config.resume_dir.exists() else []


# ---------------------------------------------------------------------------- processes


@dataclasses.dataclass
class TusProcess:
    """A third-party tus server running as a subprocess."""

    name: str
    base_url: str  # scheme://host:port
    endpoint: str  # the creation path, e.g. /files
    storage: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, wait up to 10 s, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(
    proc: subprocess.Popen[bytes], log_path: Path, pattern: re.Pattern[str], timeout: float
) -> re.Match[str] | None:
    """Poll the log until ``pattern`` shows up, the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = pattern.search(log_path.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _start(
    name: str,
    cmd: list[str],
    *,
    storage: Path,
    log_path: Path,
    pattern: re.Pattern[str],
    cwd: Path | None = None,
) -> TusProcess | None:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd
        )
    match = _wait_listening(proc, log_path, pattern, timeout=30)
    if match is None:
        _kill(proc)
        return None
    return TusProcess(name, match.group(1), match.group(2), storage, proc, log_path)


def _stop_and_check(srv: TusProcess) -> None:
    code = srv.stop()
    assert code == 0, f"{srv.name} exited with {code}:\n{srv.log()[-4000:]}"


# ---------------------------------------------------------------------------- resumable-upload


@pytest.fixture(scope="session")
def resumable_upload_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusProcess]:
    """``resumable-upload``'s own server: ``python -m resumable_upload serve``.

    Downloads are on (``--enable-downloads``: GET of a finished upload); every upload is
    stored as ``<storage>/<id>``; the checksum algorithms are the server's default (sha1);
    uploads expire after an hour (so ``Upload-Expires`` is sent).
    """
    try:
        import resumable_upload  # noqa: F401
    except ImportError:
        unavailable("resumable-upload is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("resumable-upload")
    storage = root / "uploads"
    srv = None
    for attempt in range(3):  # the CLI wants a port number: a free one may get taken
        log_path = root / f"server-{attempt}.log"
        srv = _start(
            "resumable-upload",
            [
                sys.executable,
                "-m",
                "resumable_upload",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(_free_port()),
                "--base-path",
                "/files",
                "--upload-dir",
                str(storage),
                "--db-path",
                str(root / "uploads.db"),
                "--enable-downloads",
                "--upload-expiry",
                "3600",
            ],
            storage=storage,
            log_path=log_path,
            pattern=_RU_LISTENING,
        )
        if srv is not None:
            break
        if "Address already in use" not in log_path.read_text(errors="replace"):
            pytest.fail(f"resumable-upload did not start:\n{log_path.read_text()[-4000:]}")
    if srv is None:
        pytest.fail("resumable-upload did not start: no free port in 3 attempts")
    yield srv
    _stop_and_check(srv)


# ---------------------------------------------------------------------------- @tus/server


def _node_modules_ready() -> bool:
    return all(
        (NODE_DIR / "node_modules" / pkg / "package.json").is_file()
        for pkg in ("@tus/server", "@tus/file-store")
    )


def _npm_install() -> None:
    """``npm ci`` in tests/interop/node (once: skipped while node_modules is there)."""
    if _node_modules_ready():
        return
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not on PATH: cannot install @tus/server")
    assert npm is not None
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        unavailable("npm ci for @tus/server took more than 300 s (no network?)")
        return
    if done.returncode != 0 or not _node_modules_ready():
        unavailable(
            f"npm ci for @tus/server failed (exit {done.returncode}; no network?):\n"
            f"{(done.stderr or done.stdout)[-2000:]}"
        )


@pytest.fixture(scope="session")
def tus_node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusProcess]:
    """``@tus/server`` + ``@tus/file-store`` at ``/files``; uploads land in ``<storage>/<id>``."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not on PATH: cannot run @tus/server")
    assert node is not None
    _npm_install()
    root = tmp_path_factory.mktemp("tus-node")
    storage = root / "files"
    storage.mkdir()
    log_path = root / "server.log"
    srv = _start(
        "@tus/server",
        [node, str(NODE_DIR / "tus-server.mjs"), str(storage), "0"],
        storage=storage,
        log_path=log_path,
        pattern=_NODE_LISTENING,
        cwd=NODE_DIR,
    )
    if srv is None:
        pytest.fail(f"@tus/server did not start:\n{log_path.read_text()[-4000:]}")
    yield srv
    _stop_and_check(srv)
