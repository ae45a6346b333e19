"""Wire structs of the eTiKeT v1 API (../shared/ETIKET_API.md), shared by client and server.

Every schema of the contract is a frozen-free msgspec ``Struct``; decoding validates types
and the metadata rule, encoding follows the contract's shape rules:

* ``*Out`` structs are encoded with ``omit_defaults``: an optional field with no value is
  left out, never sent as ``null``. The fields the original client requires
  (``DatasetOut.meta``, ``FileOut.scope``/``uploads``, ``ScopeOut.description``, ...) have
  no default, so they are always present.
* ``*Update`` structs use ``UNSET`` for "not given": an omitted field is left unchanged,
  an explicit ``None`` clears an optional field.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import UNSET, UnsetType

__all__ = (
    "UNSET",
    "CollectionDatasetOut",
    "CollectionIn",
    "CollectionOut",
    "CollectionQuery",
    "CollectionUpdate",
    "DatasetIn",
    "DatasetMeta",
    "DatasetMetaKeys",
    "DatasetOut",
    "DatasetQuery",
    "DatasetUpdate",
    "ErrorDetail",
    "FileDatasetIn",
    "FileDatasetOut",
    "FileIn",
    "FileOut",
    "FileStatus",
    "FileType",
    "FileUpdate",
    "HTTPValidationError",
    "LoginForm",
    "MetaDict",
    "MetaStr",
    "MetaValue",
    "PageQuery",
    "RefreshForm",
    "ScopeIn",
    "ScopeOut",
    "ScopeQuery",
    "ScopeUpdate",
    "Token",
    "UnsetType",
    "UploadOut",
    "UserIn",
    "UserOut",
    "UserUpdate",
    "ValidationErrorItem",
    "utcnow",
)

# ---------------------------------------------------------------------------- constraints

#: A metadata key or string value: more than 2 and less than 20 characters.
MetaStr = Annotated[str, msgspec.Meta(min_length=3, max_length=19)]
#: A metadata value: one string or a list of strings.
MetaValue = Union[MetaStr, list[MetaStr]]
#: The ``meta`` object of a dataset.
MetaDict = dict[MetaStr, MetaValue]

# Identifiers end up in URL paths (scope/uid), so "/" and control characters are refused.
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^/\x00-\x1f\x7f]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default of ``collected``)."""
    return datetime.now(timezone.utc)


class FileStatus(str, enum.Enum):
    """Where a file's content stands."""

    unavailable = "unavailable"  # no content yet
    pending = "pending"  # an upload is under way
    available = "available"  # content complete
    secured = "secured"  # immutable


class FileType(str, enum.Enum):
    """What role a file plays in its dataset."""

    undefined = "undefined"
    src = "src"
    preview = "preview"
    raw = "raw"
    derived = "derived"
    conf = "conf"


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Base of request bodies (unknown fields are ignored, as FastAPI does)."""


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of response bodies: optional fields without a value are omitted."""


# ---------------------------------------------------------------------------- auth / errors


class Token(msgspec.Struct, kw_only=True):
    """The answer of /api/v1/token and /api/v1/refresh (``token_type`` always sent)."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"

    def __repr__(self) -> str:  # tokens never reach logs or tracebacks
        return f"Token(token_type={self.token_type!r}, access_token=***, refresh_token=***)"


class ErrorDetail(_Out):
    """The body of every non-422 error."""

    detail: str


class ValidationErrorItem(_Out):
    """One FastAPI-style validation problem."""

    loc: list[Union[str, int]]
    msg: str
    type: str


class HTTPValidationError(_Out):
    """The body of a 422 answer."""

    detail: list[ValidationErrorItem]


# ---------------------------------------------------------------------------- scopes / users


class ScopeIn(_In):
    name: Ident
    description: Text = ""
    restricted: Union[datetime, None] = None
    archived: Union[datetime, None] = None


class ScopeUpdate(_In, omit_defaults=True):
    description: Union[Text, UnsetType] = UNSET
    restricted: Union[datetime, None, UnsetType] = UNSET
    archived: Union[datetime, None, UnsetType] = UNSET


class ScopeOut(_Out):
    name: str
    description: str
    restricted: Union[datetime, None] = None
    archived: Union[datetime, None] = None
    created: Union[datetime, None] = None
    modified: Union[datetime, None] = None


class UserIn(_In):
    """A new user. ``hashed_password`` carries the plain password (the original's naming)."""

    username: Ident
    firstname: Name
    lastname: Name
    email: Annotated[str, msgspec.Meta(max_length=320)]
    hashed_password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    active: bool = True
    disabled: Union[datetime, None] = None
    admin: bool = False

    def __repr__(self) -> str:
        return f"UserIn(username={self.username!r}, email={self.email!r}, admin={self.admin})"


# The original client sends UserUpdate.active as the strings "true"/"false".
BoolLike = Union[bool, Literal["true", "false", "True", "False"]]


class UserUpdate(_In, omit_defaults=True):
    username: Union[Ident, UnsetType] = UNSET
    firstname: Union[Name, UnsetType] = UNSET
    lastname: Union[Name, UnsetType] = UNSET
    email: Union[str, UnsetType] = UNSET
    active: Union[BoolLike, UnsetType] = UNSET
    admin: Union[bool, UnsetType] = UNSET
    disabled: Union[datetime, None, UnsetType] = UNSET
    hashed_password: Union[Annotated[str, msgspec.Meta(min_length=1)], UnsetType] = UNSET

    def __repr__(self) -> str:
        return "UserUpdate(...)"


class UserOut(_Out):
    username: str
    firstname: str
    lastname: str
    email: str
    active: bool = True
    disabled: Union[datetime, None] = None
    admin: bool = False
    created: Union[datetime, None] = None
    modified: Union[datetime, None] = None
    scopes: list[ScopeOut] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------------------- files / uploads


class UploadOut(_Out):
    """One tus upload of a file (a partial, a final or a plain upload)."""

    uid: str
    offset: int
    length: Union[int, None]  # None while the length is deferred
    concat: bool
    completed: bool
    expires: Union[datetime, None] = None


class FileDatasetIn(_In):
    """A file listed in a new dataset (its content is uploaded later)."""

    name: Name
    uid: Ident
    dataset_uid: Union[Ident, None] = None
    scope: Union[Ident, None] = None
    collected: Union[datetime, None] = None
    duration: Union[NonNegativeFloat, None] = None
    creator: Union[Name, None] = None
    etag: Union[Annotated[str, msgspec.Meta(max_length=256)], None] = None
    size: Union[NonNegative, None] = None
    mimetype: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] = (
        "application/octet-stream"
    )
    altlocation: Union[Annotated[str, msgspec.Meta(max_length=4096)], None] = None
    rating: int = 0
    immutable: bool = False
    filetype: FileType = FileType.undefined


class FileIn(FileDatasetIn, kw_only=True):
    """A new file record of an existing dataset."""

    # Required here, optional in FileDatasetIn: msgspec lets a subclass narrow them.
    dataset_uid: Ident  # type: ignore[assignment]
    scope: Ident  # type: ignore[assignment]


class FileUpdate(_In, omit_defaults=True):
    name: Union[Name, UnsetType] = UNSET
    mimetype: Union[Annotated[str, msgspec.Meta(min_length=1, max_length=256)], UnsetType] = (
        UNSET
    )
    altlocation: Union[str, None, UnsetType] = UNSET
    filetype: Union[FileType, UnsetType] = UNSET
    rating: Union[int, UnsetType] = UNSET


class FileDatasetOut(_Out):
    """A file as listed inside a ``DatasetOut``."""

    name: str
    uid: str
    status: FileStatus
    collected: Union[datetime, None] = None
    duration: Union[float, None] = None
    creator: Union[str, None] = None
    etag: Union[str, None] = None
    size: Union[int, None] = None
    mimetype: str = "application/octet-stream"
    altlocation: Union[str, None] = None
    rating: int = 0
    immutable: bool = False
    filetype: FileType = FileType.undefined
    created: Union[datetime, None] = None
    modified: Union[datetime, None] = None
    download_link: Union[str, None] = None


class FileOut(FileDatasetOut, kw_only=True):
    """A file record with its scope and its uploads."""

    scope: str
    uploads: list[UploadOut]


# ---------------------------------------------------------------------------- datasets


class DatasetIn(_In):
    """A new dataset; ``collected`` defaults to now (UTC)."""

    name: Name
    uid: Ident
    scope: Ident
    collected: datetime = msgspec.field(default_factory=utcnow)
    creator: Union[Name, None] = None
    description: Union[Text, None] = None
    meta: MetaDict = msgspec.field(default_factory=dict)
    duration: Union[NonNegativeFloat, None] = None
    ranking: int = 0
    files: list[FileDatasetIn] = msgspec.field(default_factory=list)


class DatasetUpdate(_In, omit_defaults=True):
    name: Union[Name, UnsetType] = UNSET
    collected: Union[datetime, UnsetType] = UNSET
    duration: Union[NonNegativeFloat, None, UnsetType] = UNSET
    description: Union[Text, None, UnsetType] = UNSET
    creator: Union[Name, None, UnsetType] = UNSET
    ranking: Union[int, UnsetType] = UNSET


class CollectionDatasetOut(_Out):
    name: str
    description: Union[str, None] = None


class DatasetOut(_Out):
    name: str
    uid: str
    scope: str
    collected: datetime
    meta: dict[str, Any]
    ranking: int
    created: datetime
    modified: datetime
    files: list[FileDatasetOut]
    collections: list[CollectionDatasetOut]
    creator: Union[str, None] = None
    description: Union[str, None] = None
    duration: Union[float, None] = None


class DatasetMeta(_In, _Out):
    """Body of POST/PUT /api/v1/metadata/{scope}/{dataset_uid}."""

    meta: MetaDict


class DatasetMetaKeys(_In, _Out):
    """Body of DELETE /api/v1/metadata/{scope}/{dataset_uid}."""

    keys: list[str]


# ---------------------------------------------------------------------------- collections


class CollectionIn(_In):
    name: Ident
    scope: Ident
    description: Union[Text, None] = None


class CollectionUpdate(_In, omit_defaults=True):
    name: Union[Ident, UnsetType] = UNSET
    description: Union[Text, None, UnsetType] = UNSET


class CollectionOut(_Out):
    name: str
    scope: str
    created: datetime
    modified: datetime
    description: Union[str, None] = None


# ---------------------------------------------------------------------------- forms and queries

Offset = Annotated[int, msgspec.Meta(ge=0)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]


class LoginForm(_In):
    """The form of POST /api/v1/token (OAuth2 password grant; ``scope`` arrives empty)."""

    username: str
    password: str
    grant_type: Union[str, None] = None
    scope: str = ""
    client_id: Union[str, None] = None
    client_secret: Union[str, None] = None

    def __repr__(self) -> str:
        return f"LoginForm(username={self.username!r}, password=***)"


class RefreshForm(_In):
    """The form of POST /api/v1/refresh."""

    refresh_token: str
    grant_type: Union[str, None] = None

    def __repr__(self) -> str:
        return "RefreshForm(refresh_token=***)"


class PageQuery(_In):
    """offset/limit of the user listing."""

    offset: Offset = 0
    limit: Limit = 800


class ScopeQuery(_In):
    """Query of GET /api/v1/scopes/."""

    name: Union[str, None] = None
    offset: Offset = 0
    limit: Limit = 800


class CollectionQuery(_In):
    """Query of GET /api/v1/collections/."""

    scope: Ident
    name: Union[str, None] = None
    offset: Offset = 0
    limit: Limit = 800


class DatasetQuery(_In):
    """Query of GET /api/v1/datasets/ (``measurementType`` and ``variablesMeasured`` keep
    their wire names)."""

    scope: Ident
    collection: Union[str, None] = None
    name: Union[str, None] = None
    uid: Union[str, None] = None
    since: Union[datetime, None] = None
    until: Union[datetime, None] = None
    sample: Union[str, None] = None
    fridge: Union[str, None] = None
    setup: Union[str, None] = None
    measurement_type: Union[str, None] = msgspec.field(default=None, name="measurementType")
    keywords: list[str] = msgspec.field(default_factory=list)
    variables_measured: list[str] = msgspec.field(
        default_factory=list, name="variablesMeasured"
    )
    preview: bool = False
    ranking: int = 0
    offset: Offset = 0
    limit: Limit = 500
