"""``aetiket.Client``: the session, the settings and the API namespaces in one object."""

from __future__ import annotations

import dataclasses
import re
import ssl as ssl_module
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import aiohttp
import anyio.to_thread

from ._config import (
    DEFAULT_LIMITS,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    DEFAULT_TRANSFER,
    Limits,
    RetryPolicy,
    Timeouts,
    TransferConfig,
)
from ._http import HttpCore
from .api.collections import Collections
from .api.datasets import Datasets
from .api.files import Files
from .api.metadata import Metadata
from .api.scopes import Scopes
from .api.uploads import Uploads
from .api.users import Users
from .errors import DownloadError
from .models import FileStatus
from .transfer import tus
from .transfer.download import DownloadResult
from .transfer.download import download as _download
from .transfer.progress import ProgressCallback
from .transfer.throttle import Throttle
from .transfer.upload import ETIKET_ENDPOINT, UploadResult
from .transfer.upload import upload as _upload

_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEEP: Any = object()  # "not given" for keyword overrides where None means something

__all__ = ("Client",)


class Client:
    """An async client of one eTiKeT server.

    ::

        async with aetiket.Client("http://127.0.0.1:8000") as client:
            await client.login("user", "password")
            ds = await client.datasets.get("lab1", uid)

    It owns one aiohttp session (or uses ``session=`` / ``connector=`` you give it, and
    then leaves them open), keeps the tokens (``token=`` to start from one) and refreshes
    the access token when it expires. Every API area is a namespace: ``users``,
    ``scopes``, ``datasets``, ``metadata``, ``collections``, ``files``, ``uploads``.

    Network: TLS verification is on; ``ssl=`` takes an ``SSLContext`` (or False),
    ``ca_file=`` a CA bundle; ``proxy=`` an explicit proxy, else ``HTTP(S)_PROXY`` from the
    environment (``trust_env=False`` ignores it). The bearer token is only ever sent to
    ``base_url``'s origin.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        limits: Limits = DEFAULT_LIMITS,
        retry: RetryPolicy = DEFAULT_RETRY,
        transfer: TransferConfig = DEFAULT_TRANSFER,
        session: aiohttp.ClientSession | None = None,
        connector: aiohttp.BaseConnector | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        ca_file: str | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if ca_file is not None:
            if isinstance(ssl, ssl_module.SSLContext) or ssl is False:
                raise ValueError("give ca_file or ssl, not both")
            ssl = ssl_module.create_default_context(cafile=ca_file)
        if (session is not None or connector is not None) and ssl is not True:
            raise ValueError(
                "ssl/ca_file configure the client's own connector: with "
                "session= or connector=, set TLS on that connector"
            )
        self._http = HttpCore(
            base_url,
            token=token,
            refresh_token=refresh_token,
            timeouts=timeouts,
            limits=limits,
            retry=retry,
            session=session,
            connector=connector,
            ssl=ssl,
            proxy=proxy,
            trust_env=trust_env,
            headers=headers,
        )
        self.transfer = transfer
        self._tus_info: dict[str, tus.ServerInfo] = {}
        # One bandwidth bucket per limit for all this client's transfers (throttle.shared).
        self._throttles: dict[float, Throttle] = {}
        self.users = Users(self._http)
        self.scopes = Scopes(self._http)
        self.datasets = Datasets(self._http)
        self.metadata = Metadata(self._http)
        self.collections = Collections(self._http)
        self.files = Files(self._http)
        self.uploads = Uploads(self._http)

    def __repr__(self) -> str:
        state = "logged in" if self._http.authenticated else "anonymous"
        return f"<aetiket.Client {str(self._http.base_url)!r} {state}>"

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    @property
    def token(self) -> str | None:
        """The current access token (to hand to another process; never logged)."""
        return self._http.access_token

    @property
    def refresh_token(self) -> str | None:
        """The current refresh token (single-use: it changes on every refresh)."""
        return self._http.refresh_token

    async def __aenter__(self) -> Client:
        await self._http.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session (unless it was given to the client)."""
        await self._http.aclose()

    async def login(self, username: str, password: str) -> None:
        """Log in with a password; the client keeps the tokens and refreshes them."""
        await self._http.login(username, password)

    async def refresh(self) -> None:
        """Refresh the access token now (normally automatic on a 401)."""
        await self._http.refresh()

    async def upload(
        self,
        source: str | Any | bytes | IO[bytes],
        *,
        scope: str | None = None,
        file_uid: str | None = None,
        parallel: int | None = None,
        chunk_size: int | None = None,
        checksum: str | None = _KEEP,
        verify: bool | None = None,
        bandwidth: float | None = _KEEP,
        progress: ProgressCallback | None = None,
        endpoint: str = ETIKET_ENDPOINT,
        metadata: Mapping[str, str] | None = None,
    ) -> UploadResult:
        """Upload a path, bytes or a seekable binary file as the content of a file record.

        ``scope``/``file_uid`` name the eTiKeT file (its record must exist). With the
        server's concatenation extension the file goes as ``parallel`` partial uploads at
        once, then a final one; otherwise as one upload. A run that dies or is cancelled
        resumes where it stopped when called again. At the end the server's size and
        SHA-256 ETag are checked against the source (``verify``). ``progress`` gets
        :class:`aetiket.transfer.progress.Progress` events (plain or async callable).
        Without scope and file_uid it is a generic tus upload to ``endpoint`` with
        ``metadata``. Keyword settings override the client's ``TransferConfig``.
        """
        config = self._config(
            parallel=parallel,
            chunk_size=chunk_size,
            checksum=checksum,
            verify=verify,
            bandwidth=bandwidth,
        )
        return await _upload(
            self._http,
            source,
            scope=scope,
            file_uid=file_uid,
            endpoint=endpoint,
            metadata=metadata,
            config=config,
            progress=progress,
            info_cache=self._tus_info,
            throttles=self._throttles if bandwidth is _KEEP else None,
        )

    def _config(self, **overrides: Any) -> TransferConfig:
        """The client's TransferConfig with the per-call keywords that were given."""
        given = {k: v for k, v in overrides.items() if v is not None and v is not _KEEP}
        given.update(
            {k: None for k, v in overrides.items() if v is None and k in ("checksum", "bandwidth")}
        )
        return dataclasses.replace(self.transfer, **given) if given else self.transfer

    async def download(
        self,
        scope: str,
        file_uid: str,
        dest: str | Path,
        *,
        parallel: int | None = None,
        segment_size: int | None = None,
        verify: bool | None = None,
        bandwidth: float | None = _KEEP,
        progress: ProgressCallback | None = None,
        on_change: Literal["raise", "restart"] = "raise",
    ) -> DownloadResult:
        """Download the content of the file ``scope/file_uid`` to ``dest``.

        ``dest`` is a file path, or an existing folder (the file's own name is used, made
        safe: it never leaves the folder). Range requests run over ``parallel``
        connections (None: as many as pay off, up to 16) into ``<dest>.part``; a killed
        or cancelled download resumes when called again; the size and the SHA-256 ETag
        are checked before the file is renamed into place.
        """
        record = await self.files.get(scope, file_uid)
        if record.status not in (FileStatus.available, FileStatus.secured) and not record.size:
            raise DownloadError(
                f"{scope}/{file_uid}: no content yet (status "
                f"{record.status.value}); upload it first"
            )
        target = Path(dest)
        if await anyio.to_thread.run_sync(target.is_dir):
            target = target / safe_name(record.name, fallback=file_uid)
        etag = (record.etag or "").strip('"')

        async def expected() -> tuple[int | None, str | None]:
            fresh = await self.files.get(scope, file_uid)  # the new version's record
            tag = (fresh.etag or "").strip('"')
            return fresh.size, tag if _SHA256.fullmatch(tag) else None

        return await _download(
            self._http,
            record.download_link or f"/api/v1/files/{scope}/{file_uid}",
            target,
            parallel=parallel,
            segment_size=segment_size,
            config=self._config(verify=verify, bandwidth=bandwidth),
            progress=progress,
            expected_size=record.size,
            expected_sha256=etag if _SHA256.fullmatch(etag) else None,
            on_change=on_change,
            # Not the link's host: it may differ next time (a proxy, a presigned link);
            # If-Range with the ETag says whether the bytes on disk are still good.
            resume_key=f"etiket:{scope}/{file_uid}",
            expected=expected,
            throttles=self._throttles if bandwidth is _KEEP else None,
        )

    async def download_url(
        self,
        url: str,
        dest: str | Path,
        *,
        parallel: int | None = None,
        segment_size: int | None = None,
        verify: bool | None = None,
        bandwidth: float | None = _KEEP,
        progress: ProgressCallback | None = None,
        sha256: str | None = None,
        on_change: Literal["raise", "restart"] = "raise",
    ) -> DownloadResult:
        """Download any URL (a download link, a presigned URL) to the file ``dest``.

        The bearer token goes only to the client's own origin; another host gets none.
        Give ``sha256`` to have the result checked against it.
        """
        return await _download(
            self._http,
            url,
            dest,
            parallel=parallel,
            segment_size=segment_size,
            config=self._config(verify=verify, bandwidth=bandwidth),
            progress=progress,
            expected_sha256=sha256,
            on_change=on_change,
            throttles=self._throttles if bandwidth is _KEEP else None,
        )


def safe_name(name: str, *, fallback: str) -> str:
    """A file name from a server, reduced to one safe path component."""
    base = name.replace("\\", "/").split("/")[-1].strip()
    base = "".join(c for c in base if c.isprintable())
    if base in ("", ".", "..") or base.startswith("."):
        base = base.lstrip(".") or fallback
    return base[:255]
