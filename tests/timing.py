"""A per-test time bound for async tests: a hang fails the test instead of the run."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def bounded(seconds: float) -> Callable[[F], F]:
    """Fail a test that runs longer than ``seconds``."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> Any:
            with anyio.fail_after(seconds):
                return await fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap
