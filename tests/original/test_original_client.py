"""The ORIGINAL client (etiket-client 0.1.4 + tuspy 1.0.3) works unchanged against aetiket serve.

Each test runs one flow of ``flows.py`` with the python of the original client's virtualenv
(see ``conftest.py``), over real HTTP against the session's ``server``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FLOWS_SCRIPT = Path(__file__).with_name("flows.py")
FLOWS = (
    "auth",
    "users",
    "scopes",
    "datasets",
    "metadata",
    "collections",
    "files",
    "upload_download",
    "upload_resume",
    "tus_protocol",
    "async_upload",
    "access",
    "viewer",
)
# Flows that need a server of their own, started with short lifetimes (seconds).
ACCESS_TTL = 2.0
UPLOAD_EXPIRY = 2.0

pytestmark = pytest.mark.original


def run_flow(
    python: str, server: Any, flow: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PYTEST_"))
    }
    env.update(
        ETIKET_URL=str(server.url),
        ETIKET_USER=str(server.admin_user),
        ETIKET_PASSWORD=str(server.admin_password),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    return subprocess.run(
        [python, str(FLOWS_SCRIPT), flow],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_flow_list_matches(original_python: str) -> None:
    """The tests below cover exactly the flows the script defines."""
    listed = subprocess.run(
        [original_python, str(FLOWS_SCRIPT), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert tuple(listed.stdout.split()) == (*FLOWS, "expired_access", "expired_upload")


def assert_ok(result: subprocess.CompletedProcess[str], flow: str) -> None:
    report = (
        f"flow {flow!r} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    assert result.returncode == 0, report
    assert f"OK {flow}" in result.stdout.splitlines(), report


@pytest.mark.parametrize("flow", FLOWS)
def test_original_client_flow(original_python: str, server: Any, flow: str) -> None:
    assert_ok(run_flow(original_python, server, flow), flow)


def test_original_client_expired_access(
    original_python: str, make_server: Callable[..., Any]
) -> None:
    srv = make_server("--access-token-ttl", str(ACCESS_TTL))
    result = run_flow(original_python, srv, "expired_access", ETIKET_ACCESS_TTL=str(ACCESS_TTL))
    assert_ok(result, "expired_access")


def test_original_client_expired_upload(
    original_python: str, make_server: Callable[..., Any]
) -> None:
    srv = make_server("--upload-expiry", str(UPLOAD_EXPIRY))
    result = run_flow(
        original_python, srv, "expired_upload", ETIKET_UPLOAD_EXPIRY=str(UPLOAD_EXPIRY)
    )
    assert_ok(result, "expired_upload")
