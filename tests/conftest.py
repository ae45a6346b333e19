"""Shared fixtures: real `aetiket serve` processes on loopback, and an HTTP helper.

Every server a test starts is a subprocess on 127.0.0.1 with a port the OS picked; the
fixture that starts it also stops it (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import aetiket

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-secret-pw"
_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclasses.dataclass
class ServerProcess:
    """A running `aetiket serve` subprocess."""

    url: str
    data_dir: Path
    admin_user: str
    admin_password: str
    process: subprocess.Popen[str]
    log_path: Path
    log_file: IO[str]

    def stop(self) -> int:
        """SIGTERM, wait up to 10 s, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log_file.close()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start `python -m aetiket serve` on a free loopback port and wait until it listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    cmd = [
        sys.executable,
        "-m",
        "aetiket",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--admin-user",
        ADMIN_USER,
        "--admin-password",
        ADMIN_PASSWORD,
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **(env or {})}
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    url = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = _LISTENING.search(line)
        if match:
            url = match.group(1)
            break
    if url is None:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        log.close()
        raise RuntimeError(f"aetiket serve did not start:\n{log_path.read_text()}")
    return ServerProcess(
        url=url,
        data_dir=data_dir,
        admin_user=ADMIN_USER,
        admin_password=ADMIN_PASSWORD,
        process=proc,
        log_path=log_path,
        log_file=log,
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `aetiket serve` for the whole session (tests use their own scopes)."""
    srv = start_server(tmp_path_factory.mktemp("server") / "data")
    yield srv
    code = srv.stop()
    assert code == 0, f"server exited with {code}:\n{srv.log()}"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers with their own flags (e.g. a short --upload-expiry)."""
    started: list[ServerProcess] = []

    def make(*extra: str) -> ServerProcess:
        srv = start_server(tmp_path / f"data{len(started)}", *extra)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp is asyncio-only


@contextlib.asynccontextmanager
async def admin_scope(
    srv: ServerProcess, prefix: str, *, dataset: str | None = None, **client: Any
) -> AsyncIterator[tuple[aetiket.Client, str, str | None]]:
    """The server's admin logged in (a Client made with ``client``), a fresh scope
    ``<prefix>-<uid>`` and, given its name, a dataset in it: (client, scope, dataset uid)."""
    async with aetiket.Client(srv.url, **client) as direct:
        await direct.login(srv.admin_user, srv.admin_password)
        scope = await direct.scopes.create(
            aetiket.ScopeIn(name=f"{prefix}-{aetiket.new_uid()[:12]}")
        )
        uid = None
        if dataset is not None:
            created = await direct.datasets.create(
                aetiket.DatasetIn(name=dataset, uid=aetiket.new_uid(), scope=scope.name)
            )
            uid = created.uid
        yield direct, scope.name, uid
