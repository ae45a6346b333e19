"""The local eTiKeT v1 server (``aetiket serve``): aiohttp.web, SQLite, files on disk, tus.

It imports only ``aetiket.models`` and ``aetiket.errors`` from the rest of the package.
"""

from __future__ import annotations

from .app import LocalServer, create_app, serve_forever
from .config import ServerConfig

__all__ = ("LocalServer", "ServerConfig", "create_app", "serve_forever")
