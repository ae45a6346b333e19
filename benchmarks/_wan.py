"""The emulated WAN link of ``../shared/netlab/wan.sh`` (50 ms RTT), for the benchmarks.

``wan.sh up`` makes a network namespace ``netlab_wan`` joined to the root namespace:
169.254.78.1 (root side, the clients) <-> 169.254.78.2 (the namespace, the servers).
Servers run inside it with ``ip netns exec netlab_wan <cmd>`` (``NETNS_PREFIX``).
:func:`wan_link` brings it up and always down again (``wan.sh down`` stops the relay by
its PID and removes the link and the namespace), also when the benchmark fails.

Where the netlab folder is absent, or this is not root, or a namespace of that name
exists already (another run owns it: it is left alone), :func:`unavailable` says why and
the benchmarks skip their WAN part.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
NETLAB = Path(os.environ.get("NETLAB_DIR", REPO.parent / "shared" / "netlab"))
WAN_SH = NETLAB / "wan.sh"
NS = "netlab_wan"
HOST_IP = "169.254.78.1"  # root side: the clients
T = TypeVar("T")
NS_IP = "169.254.78.2"  # the namespace: the servers
NETNS_PREFIX = ["ip", "netns", "exec", NS]
RUN_DIR = Path(os.environ.get("NETLAB_RUN", "/tmp/netlab"))


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def unavailable() -> str | None:
    """Why the WAN part cannot run here, or None when it can."""
    if not WAN_SH.is_file():
        return f"no {WAN_SH} (the netlab folder is expected at ../shared/netlab)"
    if os.geteuid() != 0:
        return "wan.sh needs root (network namespaces, TUN devices)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if NS in _namespaces():
        return f"namespace {NS} exists already (another run's link?): left alone"
    return None


def relay_pid() -> int | None:
    """The delay relay's PID (the TUN mode of wan.sh), to charge its CPU seconds."""
    try:
        pid = int((RUN_DIR / "delayrelay.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


#: What wan.sh runs: command -> Debian package (the benchmarks install the missing ones).
TOOLS = {"ip": "iproute2", "ping": "iputils-ping", "gcc": "gcc"}


class LinkFailed(Exception):
    pass


@contextlib.contextmanager
def wan_link(max_seconds: int = 3600) -> Iterator[None]:
    """``wan.sh up`` … ``wan.sh down`` (always, also on errors and Ctrl-C).

    Raises :class:`LinkFailed` (after ``down``) when ``up`` fails.
    """
    env = {**os.environ, "RELAY_MAX_S": str(max_seconds), "NETLAB_RUN": str(RUN_DIR)}
    try:
        up = subprocess.run(["bash", str(WAN_SH), "up"], env=env, check=False)
        if up.returncode != 0:
            raise LinkFailed(f"wan.sh up failed (exit {up.returncode})")
        yield
    finally:
        subprocess.run(["bash", str(WAN_SH), "down"], check=False, env=env)


def run_on_link(run: Callable[[], list[T]], ensure: Callable[[dict[str, str]], object]) -> list[T]:
    """``run()`` with the emulated link up (``ensure`` installs its tools first); when the
    link cannot be had, say why and return nothing."""
    ensure(TOOLS)
    why = unavailable()
    if why:
        print(f"\nWAN part skipped: {why}")
        return []
    try:
        with wan_link():
            return run()
    except LinkFailed as exc:
        print(f"\nWAN part skipped: {exc}")
        return []
