"""`aetiket serve` as a process: signals, restart on the same data, logs without secrets."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, start_server
from tests.http import api_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_clean_shutdown_and_restart_keeps_records(tmp_path: Path, sig: int) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        async with api_for(srv.url, ADMIN_USER, ADMIN_PASSWORD) as api:
            scope = await api.new_scope()
            token, refresh = api.token, api.refresh_token
        srv.process.send_signal(sig)
        assert srv.process.wait(timeout=15) == 0
    finally:
        srv.stop()
    log = srv.log()
    assert "POST /api/v1/scopes/ 200" in log
    assert token and refresh
    for secret in (token, refresh, ADMIN_PASSWORD):
        assert secret not in log
    srv2 = start_server(data)
    try:
        async with api_for(srv2.url, ADMIN_USER, ADMIN_PASSWORD) as api:
            assert (await api.ok("GET", f"/api/v1/scopes/{scope}"))["name"] == scope
    finally:
        assert srv2.stop() == 0


def test_port_in_use_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "aetiket",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "d"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_admin_user_needs_password(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "aetiket",
            "serve",
            "--admin-user",
            "x",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--admin-password" in out.stderr
