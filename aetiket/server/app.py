"""The local eTiKeT v1 server: app factory, an embeddable runner, and ``aetiket serve``.

``create_app`` builds the aiohttp application; :class:`LocalServer` runs it on a loopback
port inside the caller's event loop (tests and the CLI's embedded default use it);
:func:`serve_forever` is ``aetiket serve``: it runs until SIGINT or SIGTERM, then closes
connections and the database cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from types import TracebackType

import anyio
import anyio.to_thread
from aiohttp import web

from ..errors import Conflict
from ..models import UserIn
from . import records
from .auth import hash_password
from .config import ServerConfig
from .db import Database
from .routes import add_routes
from .state import STATE, ServerState
from .tus import TUS, TusService
from .web import Handler, error_middleware

__all__ = ("LocalServer", "create_app", "serve_forever")

log = logging.getLogger("aetiket.server")


async def _ensure_admin(st: ServerState) -> None:
    cfg = st.config
    if not cfg.admin_user or not cfg.admin_password:
        return
    pw_hash = await anyio.to_thread.run_sync(hash_password, cfg.admin_password)
    body = UserIn(
        username=cfg.admin_user,
        firstname="Admin",
        lastname=cfg.admin_user,
        email=f"{cfg.admin_user}@localhost",
        hashed_password="-",
        admin=True,
    )
    try:
        await st.db.run(records.create_user, None, body, pw_hash)
        log.info("created admin user %r", cfg.admin_user)
    except Conflict:

        def promote(conn: sqlite3.Connection) -> None:
            # The configured admin password wins: it is what the operator just typed.
            conn.execute(
                "UPDATE users SET admin = 1, active = 1, pw_hash = ? WHERE username = ?",
                (pw_hash, cfg.admin_user),
            )

        await st.db.run(promote)


def create_app(config: ServerConfig) -> web.Application:
    """The aiohttp application serving the whole contract over ``config.data_dir``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=config.max_json_body)
    db = Database(config.db_path)
    st = ServerState(config=config, db=db)
    app[STATE] = st
    tus = TusService(st)
    app[TUS] = tus

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config.content_dir.mkdir(parents=True, exist_ok=True)
        config.uploads_dir.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(db.open)
        await _ensure_admin(st)
        await tus.sweep()
        yield
        await anyio.to_thread.run_sync(db.close)

    app.cleanup_ctx.append(lifecycle)

    last_sweep = time.monotonic()

    @web.middleware
    async def sweeper(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Expired uploads are swept lazily, on upload creation, at most once an interval:
        # no background task to own, and expiry itself is checked on every access.
        nonlocal last_sweep
        if request.method == "POST" and request.path == "/api/v1/uploads/":
            now = time.monotonic()
            if now - last_sweep >= config.sweep_interval:
                last_sweep = now
                await tus.sweep()
        return await handler(request)

    app.middlewares.append(sweeper)
    add_routes(app)
    return app


class LocalServer:
    """Run the server inside the current event loop: ``async with LocalServer(cfg) as s``.

    ``port=0`` picks a free port; ``url`` is then the address to use.
    """

    def __init__(self, config: ServerConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        runner = web.AppRunner(
            create_app(self.config),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            # A deep read buffer lets the socket keep filling while a block goes to disk.
            read_bufsize=self.config.io_block,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.stop()


async def serve_forever(config: ServerConfig, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (``aetiket serve``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = LocalServer(config, host, port)
    async with server:
        log.info("aetiket server on %s (data in %s)", server.url, config.data_dir)
        print(f"aetiket server listening on {server.url}", flush=True)
        await stop.wait()
        log.info("shutting down")
