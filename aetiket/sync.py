"""``aetiket.sync.Client``: the async client's API without ``await``.

A blocking portal runs the async :class:`aetiket.Client` on an event loop in a private
thread; every call is forwarded there and waited for. So it works in plain scripts and
also inside a running event loop (a Jupyter cell), where ``asyncio.run`` would fail::

    with aetiket.sync.Client("http://127.0.0.1:8000") as client:
        client.login("user", "password")
        for ds in client.datasets.list(scope="lab1"):
            print(ds.name)

List calls return iterables that page like their async twins. ``close()`` (or leaving the
``with`` block) stops the private loop; a client never closed is closed at exit.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import weakref
from collections.abc import AsyncGenerator, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio.from_thread
from anyio.from_thread import BlockingPortal

from . import client as _client
from .api._pages import Pager

__all__ = ("Client", "SyncPager")

T = TypeVar("T")


class SyncPager(Generic[T]):
    """A :class:`aetiket.Pager` for blocking code: iterate it, or call ``page``/``all``."""

    def __init__(self, pager: Pager[T], portal: BlockingPortal) -> None:
        self._pager = pager
        self._portal = portal

    def page(self, offset: int | None = None, limit: int | None = None) -> list[T]:
        return self._portal.call(functools.partial(self._pager.page, offset, limit))

    def all(self) -> list[T]:
        return self._portal.call(self._pager.all)

    def __iter__(self) -> Iterator[T]:
        agen: AsyncGenerator[T, None] = self._pager.__aiter__()
        try:
            while True:
                try:
                    yield self._portal.call(agen.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(agen.aclose)


class _Blocking:
    """Forwards attribute calls of an async object through the portal."""

    def __init__(self, target: Any, portal: BlockingPortal) -> None:
        self._target = target
        self._portal = portal

    def __repr__(self) -> str:
        return f"<sync {self._target!r}>"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr
        portal = self._portal

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            async def run() -> Any:
                result = attr(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return result

            result = portal.call(run)
            return SyncPager(result, portal) if isinstance(result, Pager) else result

        return call


def _shutdown(
    portal: BlockingPortal,
    cm: AbstractContextManager[BlockingPortal],
    client: _client.Client,
    lock: threading.Lock,
) -> None:
    with lock:
        # RuntimeError: the portal's loop is already gone (interpreter shutdown).
        with contextlib.suppress(RuntimeError):
            portal.call(client.aclose)
        cm.__exit__(None, None, None)


class Client(_Blocking):
    """The blocking twin of :class:`aetiket.Client`: same arguments, same calls.

    The namespaces (``users``, ``scopes``, ``datasets``, ``metadata``, ``collections``,
    ``files``, ``uploads``) and methods are those of the async client, called without
    ``await``.
    """

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        cm = anyio.from_thread.start_blocking_portal("asyncio")
        portal = cm.__enter__()
        try:
            # Built inside the loop: its locks and session belong to that loop.
            async def make() -> _client.Client:
                return await _client.Client(base_url, **kwargs).__aenter__()

            target = portal.call(make)
        except BaseException:
            cm.__exit__(None, None, None)
            raise
        super().__init__(target, portal)
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _shutdown, portal, cm, target, self._lock)
        for name in ("users", "scopes", "datasets", "metadata", "collections", "files", "uploads"):
            setattr(self, name, _Blocking(getattr(target, name), portal))

    def __repr__(self) -> str:
        return f"<aetiket.sync.Client {self._target.base_url!r}>"

    def close(self) -> None:
        """Close the session and stop the private event loop."""
        self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Typed entry points; everything else is forwarded by _Blocking.__getattr__.
    def login(self, username: str, password: str) -> None:
        """Log in with a password; tokens are kept and refreshed."""
        self._portal.call(self._target.login, username, password)
