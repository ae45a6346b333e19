"""The virtualenv of the ORIGINAL eTiKeT client (etiket-client 0.1.4 with tuspy 1.0.3).

Shared by the benchmarks and tests/original/conftest.py (no pytest here): the original client
pins httpx<0.23, so it runs in a virtualenv of its own, made once and reused, at
``$AETIKET_ORIGINAL_VENV`` if set, else at ``<repo>/.venv-original``. A benchmark asks
:func:`original_python` for its interpreter and prints the peer as unavailable when the
virtualenv cannot be made (no package index reachable, for instance).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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


class Unavailable(Exception):
    """The original client's virtualenv cannot be made or used."""


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


def create_venv(venv: Path) -> None:
    if venv.exists():
        # Only a directory that is a virtualenv (or empty) is ever removed.
        if (venv / "pyvenv.cfg").exists():
            shutil.rmtree(venv)
        elif any(venv.iterdir()):
            raise Unavailable(f"{venv} exists and is no virtualenv: refusing to replace it")
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    pip = subprocess.run(
        [
            str(venv_python(venv)),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            *REQUIREMENTS,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if pip.returncode != 0:
        output = (pip.stdout + pip.stderr)[-4000:]
        raise Unavailable(f"cannot install {' '.join(REQUIREMENTS)} into {venv}:\n{output}")


def original_python() -> str:
    """The python of the original client's virtualenv (made once, then reused).

    Raises :class:`Unavailable` with the reason when it cannot be made.
    """
    venv = venv_dir()
    python = venv_python(venv)
    if not usable(python):
        print(f"making the original client's virtualenv at {venv} ...", file=sys.stderr)
        create_venv(venv)
        if not usable(python):
            raise Unavailable(f"{venv} was made but cannot import the original client")
    return str(python)
