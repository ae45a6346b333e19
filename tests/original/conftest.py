"""The virtualenv of the ORIGINAL eTiKeT client (etiket-client 0.1.4 with tuspy 1.0.3).

The original client pins httpx<0.23, so it lives in a virtualenv of its own, apart from
aetiket's, made once and reused (benchmarks/_original.py, shared with the benchmarks).
"""

from __future__ import annotations

import os

import pytest

from benchmarks._original import Unavailable
from benchmarks._original import original_python as _make_original

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


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def original_python() -> str:
    """Path of the python of the original client's virtualenv (made once, then reused)."""
    try:
        return _make_original()
    except Unavailable as exc:
        reason = str(exc)
        if any(marker in reason for marker in NETWORK_ERRORS) and not in_ci():
            pytest.skip(f"no package index reachable (CI not set, so skipping): {reason}")
        pytest.fail(reason)
