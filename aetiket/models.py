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

import base64
import binascii
import enum
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
import shortuuid
from msgspec import UNSET, UnsetType

from .errors import ValidationFailed

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
    "check",
    "encode_tus_metadata",
    "new_uid",
    "parse_tus_metadata",
    "parse_tus_uint",
    "utcnow",
    "validation_details",
)

# ---------------------------------------------------------------------------- constraints

#: A metadata key or string value: more than 2 and less than 20 characters.
MetaStr = Annotated[str, msgspec.Meta(min_length=3, max_length=19)]
#: A metadata value: one string or a list of strings.
MetaValue = MetaStr | list[MetaStr]
#: The ``meta`` object of a dataset.
MetaDict = dict[MetaStr, MetaValue]

# Identifiers end up in URL paths (scope/uid), so "/" and control characters are refused.
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^/\x00-\x1f\x7f]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
# Integers are stored as SQLite's 64-bit integers.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0, le=1e15)]  # finite: JSON has no inf


def new_uid() -> str:
    """A new random identifier for a dataset or file (22 characters, 128 bits)."""
    return str(shortuuid.uuid())


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


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Base of response bodies: optional fields without a value (None) are omitted.

    Fields that always have a value (flags, enums, counters) have no default, so they are
    always sent: the original client reads a missing field as unset (falsy). ``gc=False``:
    decoded answers hold no reference cycles, and untracked structs decode about a fifth
    faster (the collector no longer walks every page of results).
    """


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

    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(_Out):
    """The body of a 422 answer."""

    detail: list[ValidationErrorItem]


# ---------------------------------------------------------------------------- scopes / users


class ScopeIn(_In):
    name: Ident
    description: Text = ""
    restricted: datetime | None = None
    archived: datetime | None = None


class ScopeUpdate(_In, omit_defaults=True):
    description: Text | UnsetType = UNSET
    restricted: datetime | UnsetType | None = UNSET
    archived: datetime | UnsetType | None = UNSET


class ScopeOut(_Out):
    name: str
    description: str
    restricted: datetime | None = None
    archived: datetime | None = None
    created: datetime | None = None
    modified: datetime | None = None


class UserIn(_In):
    """A new user. ``hashed_password`` carries the plain password (the original's naming)."""

    username: Ident
    firstname: Name
    lastname: Name
    email: Annotated[str, msgspec.Meta(max_length=320)]
    hashed_password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    active: bool = True
    disabled: datetime | None = None
    admin: bool = False

    def __repr__(self) -> str:
        return f"UserIn(username={self.username!r}, email={self.email!r}, admin={self.admin})"


# The original client sends UserUpdate.active as the strings "true"/"false".
BoolLike = bool | Literal["true", "false", "True", "False"]


class UserUpdate(_In, omit_defaults=True):
    username: Ident | UnsetType = UNSET
    firstname: Name | UnsetType = UNSET
    lastname: Name | UnsetType = UNSET
    email: str | UnsetType = UNSET
    active: BoolLike | UnsetType = UNSET
    admin: bool | UnsetType = UNSET
    disabled: datetime | UnsetType | None = UNSET
    hashed_password: Annotated[str, msgspec.Meta(min_length=1)] | UnsetType = UNSET

    def __repr__(self) -> str:
        return "UserUpdate(...)"


class UserOut(_Out):
    username: str
    firstname: str
    lastname: str
    email: str
    active: bool
    admin: bool
    scopes: list[ScopeOut]
    disabled: datetime | None = None
    created: datetime | None = None
    modified: datetime | None = None


# ---------------------------------------------------------------------------- files / uploads


class UploadOut(_Out):
    """One tus upload of a file (a partial, a final or a plain upload)."""

    uid: str
    offset: int
    length: int | None  # None while the length is deferred
    concat: bool
    completed: bool
    expires: datetime | None = None


class FileDatasetIn(_In):
    """A file listed in a new dataset (its content is uploaded later)."""

    name: Name
    uid: Ident
    dataset_uid: Ident | None = None
    scope: Ident | None = None
    collected: datetime | None = None
    duration: NonNegativeFloat | None = None
    creator: Name | None = None
    etag: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    size: NonNegative | None = None
    mimetype: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] = (
        "application/octet-stream"
    )
    altlocation: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    rating: Int64 = 0
    immutable: bool = False
    filetype: FileType = FileType.undefined


class FileIn(FileDatasetIn, kw_only=True):
    """A new file record of an existing dataset."""

    # Required here, optional in FileDatasetIn: msgspec lets a subclass narrow them.
    dataset_uid: Ident
    scope: Ident


class FileUpdate(_In, omit_defaults=True):
    name: Name | UnsetType = UNSET
    mimetype: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | UnsetType = UNSET
    altlocation: str | UnsetType | None = UNSET
    filetype: FileType | UnsetType = UNSET
    rating: Int64 | UnsetType = UNSET


class FileDatasetOut(_Out):
    """A file as listed inside a ``DatasetOut``."""

    name: str
    uid: str
    status: FileStatus
    mimetype: str
    rating: int
    immutable: bool
    filetype: FileType
    collected: datetime | None = None
    duration: float | None = None
    creator: str | None = None
    etag: str | None = None
    size: int | None = None
    altlocation: str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    download_link: str | None = None


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
    creator: Name | None = None
    description: Text | None = None
    meta: MetaDict = msgspec.field(default_factory=dict)
    duration: NonNegativeFloat | None = None
    ranking: Int64 = 0
    files: list[FileDatasetIn] = msgspec.field(default_factory=list)


class DatasetUpdate(_In, omit_defaults=True):
    name: Name | UnsetType = UNSET
    collected: datetime | UnsetType = UNSET
    duration: NonNegativeFloat | UnsetType | None = UNSET
    description: Text | UnsetType | None = UNSET
    creator: Name | UnsetType | None = UNSET
    ranking: Int64 | UnsetType = UNSET


class CollectionDatasetOut(_Out):
    name: str
    description: str | None = None


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
    creator: str | None = None
    description: str | None = None
    duration: float | None = None


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
    description: Text | None = None


class CollectionUpdate(_In, omit_defaults=True):
    name: Ident | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET


class CollectionOut(_Out):
    name: str
    scope: str
    created: datetime
    modified: datetime
    description: str | None = None


# ---------------------------------------------------------------------------- forms and queries

Offset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]


class LoginForm(_In):
    """The form of POST /api/v1/token (OAuth2 password grant; ``scope`` arrives empty)."""

    username: str
    password: str
    grant_type: str | None = None
    scope: str = ""
    client_id: str | None = None
    client_secret: str | None = None

    def __repr__(self) -> str:
        return f"LoginForm(username={self.username!r}, password=***)"


class RefreshForm(_In):
    """The form of POST /api/v1/refresh."""

    refresh_token: str
    grant_type: str | None = None

    def __repr__(self) -> str:
        return "RefreshForm(refresh_token=***)"


class PageQuery(_In):
    """offset/limit of the user listing."""

    offset: Offset = 0
    limit: Limit = 800


class ScopeQuery(_In):
    """Query of GET /api/v1/scopes/."""

    name: str | None = None
    offset: Offset = 0
    limit: Limit = 800


class CollectionQuery(_In):
    """Query of GET /api/v1/collections/."""

    scope: Ident
    name: str | None = None
    offset: Offset = 0
    limit: Limit = 800


class DatasetQuery(_In):
    """Query of GET /api/v1/datasets/ (``measurementType`` and ``variablesMeasured`` keep
    their wire names)."""

    scope: Ident
    collection: str | None = None
    name: str | None = None
    uid: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sample: str | None = None
    fridge: str | None = None
    setup: str | None = None
    measurement_type: str | None = msgspec.field(default=None, name="measurementType")
    keywords: list[str] = msgspec.field(default_factory=list)
    variables_measured: list[str] = msgspec.field(default_factory=list, name="variablesMeasured")
    preview: bool = False
    ranking: Int64 = 0
    offset: Offset = 0
    limit: Limit = 500


# ---------------------------------------------------------------------------- validation
# Shared by the server (422 answers) and the client (checks before sending).

_AT = re.compile(r"^(?P<msg>.*?) - at `(?P<path>[^`]*)`(?: in `(?P<outer>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|(\[\.\.\.\])")


_ANY_KEY = object()  # msgspec writes `[...]` for "some value of this dict"


def _loc_from_path(root: str, path: str) -> list[Any]:
    loc: list[Any] = [root]
    for name, index, any_key in _PATH_PART.findall(path.removeprefix("$")):
        if any_key:
            loc.append(_ANY_KEY)
        else:
            loc.append(int(index) if index else name)
    return loc


def _meta_culprit(value: Any, key_error: bool) -> list[str | int] | None:
    """Where in a metadata object the rule (3..19-character strings) is broken.

    msgspec names the dict but not the key for a bad key or value; the only dicts of the
    contract are metadata objects, so the rule is checked here item by item.
    """
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        try:
            msgspec.convert(key, MetaStr)
        except msgspec.ValidationError:
            return [key]
        if key_error:
            continue
        items = item if isinstance(item, list) else None
        try:
            msgspec.convert(item, MetaValue)
        except msgspec.ValidationError:
            if items is None:
                return [key]
            for i, element in enumerate(items):
                try:
                    msgspec.convert(element, MetaStr)
                except msgspec.ValidationError:
                    return [key, i]
            return [key]
    return None


def _refine(loc: list[Any], raw: bytes | None, key_error: bool) -> list[str | int]:
    """Replace msgspec's "some key" marker (or a bare dict path) with the actual key."""
    if raw is None or (_ANY_KEY not in loc and not key_error):
        return [p for p in loc if p is not _ANY_KEY]
    try:
        node: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return [p for p in loc if p is not _ANY_KEY]
    cut = loc.index(_ANY_KEY) if _ANY_KEY in loc else len(loc)
    for part in loc[1:cut]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return [p for p in loc if p is not _ANY_KEY]
    culprit = _meta_culprit(node, key_error)
    if culprit is None:
        return [p for p in loc if p is not _ANY_KEY]
    # What msgspec said after `[...]` (e.g. a list index) is covered by the culprit.
    return [*loc[:cut], *culprit]


def validation_details(
    error: msgspec.MsgspecError, root: str, raw: bytes | None = None
) -> list[dict[str, Any]]:
    """Turn a msgspec error into FastAPI-style ``{loc, msg, type}`` items.

    ``raw`` (the JSON body) lets a metadata error name the offending key.
    """
    text = str(error)
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return [{"loc": [root], "msg": f"Invalid JSON: {text}", "type": "json_invalid"}]
    path = "$"
    msg = text
    match = _AT.match(text)
    key_error = bool(match and match.group("outer"))
    if match:
        msg = match.group("msg")
        path = match.group("outer") or match.group("path")
    missing = _MISSING.match(msg)
    loc = _refine(_loc_from_path(root, path), raw, key_error)
    if missing:
        loc.append(missing.group("field"))
        return [{"loc": loc, "msg": "Field required", "type": "missing"}]
    kind = "type_error" if msg.startswith("Expected `") and ", got `" in msg else "value_error"
    if key_error:
        msg = f"{msg} (an object key)"
    return [{"loc": loc, "msg": msg, "type": kind}]


def check(value: msgspec.Struct, root: str = "body") -> None:
    """Validate a struct built in Python as the server would (msgspec checks constraints
    only when decoding); raises ``ValidationFailed`` naming the offending field (under
    ``root``: ``body`` or ``query``)."""
    raw = msgspec.json.encode(value)
    try:
        msgspec.json.decode(raw, type=type(value))
    except msgspec.ValidationError as exc:
        error = ValidationFailed(validation_details(exc, root, raw))
        error.args = (f"Invalid {type(value).__name__}, not sent: {error.detail_text}",)
        raise error from None


# ---------------------------------------------------------------------------- tus headers
# The wire format of tus 1.0.0 headers, shared by the server and the protocol client.

_TUS_UINT = re.compile(r"[0-9]{1,19}", re.ASCII)
_TUS_META_KEY = re.compile(r"[!-+\--~]+", re.ASCII)  # visible ASCII without space and comma


def parse_tus_uint(value: str) -> int:
    """A tus integer header (Upload-Offset, Upload-Length): ASCII digits only."""
    value = value.strip()
    if not _TUS_UINT.fullmatch(value):
        raise ValueError(f"not a non-negative integer: {value[:40]!r}")
    return int(value)


def parse_tus_metadata(value: str | None) -> dict[str, bytes]:
    """Parse ``Upload-Metadata``: comma-separated ``key[ base64]`` pairs, keys unique."""
    out: dict[str, bytes] = {}
    if value is None or not value.strip():
        return out
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not parts[0] or not _TUS_META_KEY.fullmatch(parts[0]):
            raise ValueError(f"Malformed Upload-Metadata pair {pair.strip()[:60]!r}")
        key = parts[0]
        if key in out:
            raise ValueError(f"Upload-Metadata repeats the key {key!r}")
        try:
            out[key] = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
        except (binascii.Error, ValueError):
            raise ValueError(f"Upload-Metadata value of {key!r} is not base64") from None
    return out


def encode_tus_metadata(pairs: Mapping[str, str | bytes]) -> str:
    """The ``Upload-Metadata`` value for ``pairs`` (text values are UTF-8)."""
    items = []
    for key, value in pairs.items():
        if not _TUS_META_KEY.fullmatch(key):
            raise ValueError(f"tus metadata key {key!r} must be visible ASCII, no comma")
        raw = value.encode() if isinstance(value, str) else value
        items.append(f"{key} {base64.b64encode(raw).decode()}" if raw else key)
    return ",".join(items)
