"""The virtualenv of the ORIGINAL eTiKeT client (etiket-client 0.1.4 with tuspy 1.0.3).

The original client pins httpx<0.23, so it lives in a virtualenv of its own, apart from
aetiket's. It is made once and reused: at ``$AETIKET_ORIGINAL_VENV`` if set, else at
``<repo>/.venv-original``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = (
    "etiket-client==0.1.4",
    "tuspy==1.0.3",
    "shortuuid",
    "python-dateutil",
)
# The venv is usable when its python imports the client at the pinned versions.
PROBE = (
    "import importlib.metadata as m, etiket_client, tusclient, shortuuid, dateutil, httpx; "
    "assert m.version('etiket-client') == '0.1.4', m.version('etiket-client'); "
    "assert m.version('tuspy') == '1.0.3', m.version('tuspy')"
)
# What pip prints when it cannot reach a package index.
NETWORK_ERRORS = (
    "Could not find a version that satisfies the requirement",
    "No matching distribution found",
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "ConnectTimeoutError",
    "ReadTimeoutError",
)


def venv_dir() -> Path:
    configured = os.environ.get("AETIKET_ORIGINAL_VENV")
    return Path(configured).expanduser().resolve() if configured else REPO / ".venv-original"


def venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def usable(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    return probe.returncode == 0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def create_venv(venv: Path) -> None:
    if venv.exists():
        # Only a directory that is a virtualenv (or empty) is ever removed.
        if (venv / "pyvenv.cfg").exists():
            shutil.rmtree(venv)
        elif any(venv.iterdir()):
            pytest.fail(f"{venv} exists and is no virtualenv: refusing to replace it")
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    python = venv_python(venv)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *REQUIREMENTS],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if pip.returncode != 0:
        output = (pip.stdout + pip.stderr)[-4000:]
        reason = (
            f"cannot install the original client ({' '.join(REQUIREMENTS)}) into {venv}:\n{output}"
        )
        if any(marker in output for marker in NETWORK_ERRORS) and not in_ci():
            pytest.skip(f"no package index reachable (CI not set, so skipping): {reason}")
        pytest.fail(reason)


@pytest.fixture(scope="session")
def original_python() -> str:
    """Path of the python of the original client's virtualenv (made once, then reused)."""
    venv = venv_dir()
    python = venv_python(venv)
    if not usable(python):
        create_venv(venv)
        if not usable(python):
            pytest.fail(f"the virtualenv {venv} was made but cannot import the original client")
    return str(python)
