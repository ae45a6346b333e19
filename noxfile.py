"""Developer sessions: tests, lint, typecheck, bench."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (starts its own servers on loopback)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check of the package, tests and benchmarks."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "aetiket")
    session.run("ruff", "format", "--check", "aetiket")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".", "mypy>=1.11", "types-aiofiles")
    session.run("mypy", "--strict", "aetiket")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (benchmarks/): prints figures and ratios against peer tools."""
    # The Python peers of upload.py and download.py (the others they install themselves:
    # apt aria2 axel curl nginx iperf3, npm benchmarks/node).
    session.install(
        "-e", ".", "pydantic>=2", "tuspy", "aiotus", "resumable-upload>=0.3,<1", "aiohttp"
    )
    session.run("python", "benchmarks/run.py", *session.posargs)
