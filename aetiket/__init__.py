"""aetiket: an async client for the eTiKeT data-management API, with a local server.

The public face: ``Client``, the settings, the models (``aetiket.models``) and the error
tree (``aetiket.errors``); ``aetiket.sync.Client`` for code without ``await``.
"""

from __future__ import annotations

from . import errors, models
from ._config import (
    DEFAULT_LIMITS,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    Limits,
    RetryPolicy,
    Timeouts,
    TransferConfig,
)
from ._version import __version__
from .api import Pager
from .client import Client
from .errors import (
    AetiketError,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    TransferError,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from .models import (
    CollectionIn,
    CollectionOut,
    CollectionUpdate,
    DatasetIn,
    DatasetOut,
    DatasetUpdate,
    FileDatasetIn,
    FileIn,
    FileOut,
    FileStatus,
    FileType,
    FileUpdate,
    MetaDict,
    ScopeIn,
    ScopeOut,
    ScopeUpdate,
    UserIn,
    UserOut,
    UserUpdate,
    new_uid,
)
from .transfer.download import DownloadResult
from .transfer.progress import Progress
from .transfer.upload import UploadClient as _UploadClient
from .transfer.upload import Uploader, UploadResult
from .ui import ProgressBars

__all__ = (
    "DEFAULT_LIMITS",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "AetiketError",
    "ApiError",
    "Client",
    "CollectionIn",
    "CollectionOut",
    "CollectionUpdate",
    "Conflict",
    "DatasetIn",
    "DatasetOut",
    "DatasetUpdate",
    "DownloadResult",
    "FileDatasetIn",
    "FileIn",
    "FileOut",
    "FileStatus",
    "FileType",
    "FileUpdate",
    "Forbidden",
    "Gone",
    "Limits",
    "MetaDict",
    "NotFound",
    "Pager",
    "Progress",
    "ProgressBars",
    "RetryPolicy",
    "ScopeIn",
    "ScopeOut",
    "ScopeUpdate",
    "Timeouts",
    "TransferConfig",
    "TransferError",
    "TransportError",
    "Unauthorized",
    "UploadClient",
    "UploadResult",
    "Uploader",
    "UserIn",
    "UserOut",
    "UserUpdate",
    "ValidationFailed",
    "__version__",
    "errors",
    "models",
    "new_uid",
)


def UploadClient(
    client: Client, scope: str | None = None, chunk_size: int | None = None
) -> _UploadClient:
    """The original package's upload style, awaited::

    tus = aetiket.UploadClient(client, scope="lab1")
    up = tus.uploader("raw.h5", file_uid=uid, chunk_size=8 * 2**20)
    await up.upload_chunk(); await up.upload(stop_at=1000); await up.upload()
    """
    return _UploadClient(
        client._http, scope=scope, chunk_size=chunk_size or client.transfer.chunk_size
    )
