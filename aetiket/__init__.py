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
    "RetryPolicy",
    "ScopeIn",
    "ScopeOut",
    "ScopeUpdate",
    "Timeouts",
    "TransferError",
    "TransportError",
    "Unauthorized",
    "UserIn",
    "UserOut",
    "UserUpdate",
    "ValidationFailed",
    "__version__",
    "errors",
    "models",
    "new_uid",
)
