"""The one error hierarchy of aetiket, shared by the client and the local server.

::

    AetiketError
    ├── TransportError                 the request never got an HTTP answer
    │   ├── ConnectError
    │   └── TransportTimeout           (also a builtin TimeoutError)
    ├── ApiError(status, detail)       the server answered with an error status
    │   ├── BadRequest          400    ├── Gone                  410
    │   ├── Unauthorized        401    ├── PreconditionFailed    412
    │   ├── Forbidden           403    ├── PayloadTooLarge       413
    │   ├── NotFound            404    ├── UnsupportedMediaType  415
    │   ├── MethodNotAllowed    405    ├── RangeNotSatisfiable   416
    │   ├── Conflict            409    ├── ValidationFailed      422 (.details)
    │   ├── ChecksumRejected    460    ├── TooManyRequests       429
    │   └── ServerError         5xx
    ├── ResponseDecodeError            a 2xx body that does not fit the contract
    ├── ProtocolError                  a broken tus or Range contract
    └── TransferError                  an upload or download that could not finish
        ├── UploadError
        ├── DownloadError
        ├── ChecksumMismatch
        ├── OffsetMismatch
        └── RemoteChanged

The local server raises the same ``ApiError`` leaves; its middleware turns them into the
JSON bodies of the contract (``{"detail": ...}``). Messages never carry a token.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

if sys.version_info < (3, 11):  # anyio brings the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = (
    "AetiketError",
    "ApiError",
    "BadRequest",
    "ChecksumMismatch",
    "ChecksumRejected",
    "Conflict",
    "ConnectError",
    "DownloadError",
    "Forbidden",
    "Gone",
    "MethodNotAllowed",
    "NotFound",
    "OffsetMismatch",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ProtocolError",
    "RangeNotSatisfiable",
    "RemoteChanged",
    "ResponseDecodeError",
    "ServerError",
    "TooManyRequests",
    "TransferError",
    "TransportError",
    "TransportTimeout",
    "Unauthorized",
    "UnsupportedMediaType",
    "UploadError",
    "ValidationFailed",
    "collapse",
    "error_for_status",
)


class AetiketError(Exception):
    """Root of every error aetiket raises on purpose."""


class TransportError(AetiketError):
    """The request got no HTTP answer: refused, reset, DNS failure, TLS failure."""


class ConnectError(TransportError):
    """No connection could be made to the server."""


class TransportTimeout(TransportError, TimeoutError):
    """A connect, read or total timeout of ``Timeouts`` ran out."""


class ApiError(AetiketError):
    """The server answered with an error status.

    ``detail`` is the server's ``detail`` field (a message, or the list of 422 details);
    ``url`` is the request URL without its query; ``request_id`` the server's request id
    when it sent one; ``headers`` the answer's headers that matter (e.g. Retry-After).
    """

    #: The HTTP status; a class names its usual one, an instance may carry another.
    status: int = 500

    def __init__(
        self,
        detail: Any = None,
        *,
        status: int | None = None,
        url: str | None = None,
        method: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status is not None:
            # An instance may carry a status its class does not name (e.g. 418, 507).
            self.status = status
        self.detail = detail if detail is not None else _default_reason(self.status)
        self.url = url
        self.method = method
        self.request_id = request_id
        #: Response headers that go with the error (Retry-After, Content-Range, ...).
        self.headers: dict[str, str] = dict(headers or {})
        #: True when the request was sent more than once after a failure whose outcome
        #: was unknown: a 409 may then be the first try's own record.
        self.replayed = False
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" ({self.method} {self.url})" if self.url else ""
        return f"{self.status}: {self.detail_text}{where}"

    @property
    def detail_text(self) -> str:
        """The detail as one line of text, whatever its shape."""
        if isinstance(self.detail, str):
            return self.detail
        if isinstance(self.detail, list):
            parts = []
            for item in self.detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", ()))
                    parts.append(f"{loc}: {item.get('msg', '')}")
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        return str(self.detail)


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class Conflict(ApiError):
    status = 409


class Gone(ApiError):
    status = 410


class PreconditionFailed(ApiError):
    status = 412


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class RangeNotSatisfiable(ApiError):
    status = 416


class ValidationFailed(ApiError):
    """422: the request failed validation; ``details`` lists ``{loc, msg, type}`` items."""

    status = 422

    @property
    def details(self) -> list[dict[str, Any]]:
        """The FastAPI-style detail items (``loc``, ``msg``, ``type``)."""
        return self.detail if isinstance(self.detail, list) else []


class TooManyRequests(ApiError):
    status = 429


class ChecksumRejected(ApiError):
    """460: the tus server found that a PATCH body did not match its Upload-Checksum."""

    status = 460


class ServerError(ApiError):
    status = 500


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        Gone,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        RangeNotSatisfiable,
        ValidationFailed,
        TooManyRequests,
        ChecksumRejected,
    )
}

_REASONS: dict[int, str] = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Validation failed",
    429: "Too many requests",
    460: "Checksum mismatch",
}


def _default_reason(status: int) -> str:
    return _REASONS.get(status, "Server error" if status >= 500 else f"HTTP {status}")


def error_for_status(
    status: int,
    detail: Any = None,
    *,
    url: str | None = None,
    method: str | None = None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ApiError:
    """Build the ``ApiError`` leaf that names ``status`` (ServerError for any 5xx)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(
        detail, status=status, url=url, method=method, request_id=request_id, headers=headers
    )


class ResponseDecodeError(AetiketError):
    """A success answer whose body does not decode into the expected model."""


class ProtocolError(AetiketError):
    """The server broke the tus or HTTP Range contract (a missing or malformed header)."""


class TransferError(AetiketError):
    """An upload or download could not finish; the message says which file and offset."""


class UploadError(TransferError):
    """An upload failed; ``parts`` maps a failed partial's index to its error."""

    def __init__(self, message: str, *, parts: dict[int, BaseException] | None = None) -> None:
        super().__init__(message)
        self.parts = parts or {}


class DownloadError(TransferError):
    """A download failed; ``segments`` maps a failed segment's start offset to its error."""

    def __init__(self, message: str, *, segments: dict[int, BaseException] | None = None) -> None:
        super().__init__(message)
        self.segments = segments or {}


class ChecksumMismatch(TransferError):
    """What arrived does not hash to what was sent or announced."""


class OffsetMismatch(TransferError):
    """The server's offset is not the one the transfer expected."""


class RemoteChanged(TransferError):
    """The remote object changed (another ETag or size) while it was being downloaded."""


def collapse(
    exc: BaseException,
    make: Callable[[str, list[Exception]], TransferError],
) -> BaseException:
    """A task group's exception group as one error, at a transfer's boundary.

    Cancellation and other BaseExceptions pass untouched; a single failure is itself;
    several become ``make(message, failures)`` (an UploadError or DownloadError).
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(reversed(current.exceptions))
        else:
            leaves.append(current)
    for leaf in leaves:
        if not isinstance(leaf, Exception):
            return leaf  # cancellation, KeyboardInterrupt: never wrapped
    failures = [leaf for leaf in leaves if isinstance(leaf, Exception)]
    if len(failures) == 1:
        return failures[0]
    first = next((e for e in failures if isinstance(e, TransferError)), failures[0])
    return make(f"{len(failures)} failed; first: {first}", failures)
