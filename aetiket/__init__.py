"""aetiket: an async client for the eTiKeT data-management API, with a local server.

The public face: the models (``aetiket.models``) and the error tree (``aetiket.errors``).
"""

from __future__ import annotations

from . import errors, models
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
    DatasetIn,
    DatasetOut,
    FileDatasetIn,
    FileIn,
    FileOut,
    FileStatus,
    FileType,
    ScopeIn,
    ScopeOut,
    UserIn,
    UserOut,
)

__version__ = "0.1.0"

__all__ = (
    "AetiketError",
    "ApiError",
    "CollectionIn",
    "CollectionOut",
    "Conflict",
    "DatasetIn",
    "DatasetOut",
    "FileDatasetIn",
    "FileIn",
    "FileOut",
    "FileStatus",
    "FileType",
    "Forbidden",
    "Gone",
    "NotFound",
    "ScopeIn",
    "ScopeOut",
    "TransferError",
    "TransportError",
    "Unauthorized",
    "UserIn",
    "UserOut",
    "ValidationFailed",
    "__version__",
    "errors",
    "models",
)
