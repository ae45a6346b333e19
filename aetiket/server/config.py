"""Settings of the local eTiKeT server, with the contract's defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ("ServerConfig",)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything ``aetiket serve`` can be told.

    ``public_url`` (e.g. ``https://etiket.example.org``) is used for absolute URLs
    (tus ``Location``, ``download_link``) when the server runs behind a proxy; without it
    they are built from the request's scheme and Host.
    """

    data_dir: Path
    admin_user: str | None = None
    admin_password: str | None = None
    public_url: str | None = None
    access_token_ttl: float = 15 * 60.0
    refresh_token_ttl: float = 7 * 24 * 3600.0
    upload_expiry: float = 24 * 3600.0
    #: Largest upload accepted (Tus-Max-Size).
    max_upload_size: int = 1 * TiB
    #: Largest JSON or form body accepted (413 beyond).
    max_json_body: int = 4 * MiB
    #: How often expired uploads are swept from disk and database.
    sweep_interval: float = 300.0
    #: Block size for streaming request bodies to disk and for concatenation.
    io_block: int = 4 * MiB

    @property
    def db_path(self) -> Path:
        return self.data_dir / "etiket.sqlite3"

    @property
    def content_dir(self) -> Path:
        return self.data_dir / "content"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"
