"""Request plumbing of the local server: JSON in and out, 422 details, errors, access log.

Handlers raise the ``aetiket.errors.ApiError`` leaves; :func:`error_middleware` turns them
(and aiohttp's own HTTP errors, and anything unexpected) into the contract's JSON bodies.
Bodies and queries are decoded into the shared msgspec models by :func:`decode_body` and
:func:`decode_query`, whose failures become FastAPI-style 422 details.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from ..errors import ApiError, PayloadTooLarge, ValidationFailed, error_for_status
from ..models import validation_details
from .state import REQUEST_ID

__all__ = (
    "Handler",
    "decode_body",
    "decode_form",
    "decode_query",
    "error_middleware",
    "json_response",
    "path_param",
)

log = logging.getLogger("aetiket.server")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_encoder = msgspec.json.Encoder()


def json_response(
    value: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Encode a model (or plain data) with msgspec as an ``application/json`` answer."""
    return web.Response(
        body=_encoder.encode(value),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def decode_body(request: web.Request, model: type[T]) -> T:
    """Read a JSON body (bounded by the app's client_max_size) into ``model``."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"Request body is larger than {request.client_max_size} bytes"
        ) from None
    if not raw:
        raise ValidationFailed([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.MsgspecError as exc:
        raise ValidationFailed(validation_details(exc, "body", raw)) from None
    except UnicodeDecodeError as exc:  # msgspec lets this one through as is
        raise ValidationFailed(
            [
                {
                    "loc": ["body"],
                    "msg": f"Invalid JSON: not UTF-8 ({exc.reason})",
                    "type": "json_invalid",
                }
            ]
        ) from None


def _multi_to_dict(items: Iterable[tuple[str, str]], lists: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        if key in lists:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value  # the last one wins, as in Starlette
    return out


def _convert(data: dict[str, Any], model: type[T], root: str) -> T:
    try:
        # strict=False: query and form values are text; "10" -> 10, "true" -> True.
        return msgspec.convert(data, model, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(validation_details(exc, root)) from None


def _list_fields(model: type[Any]) -> frozenset[str]:
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(
        f.encode_name for f in info.fields if isinstance(f.type, msgspec.inspect.ListType)
    )


_LIST_FIELDS: dict[type[Any], frozenset[str]] = {}


def decode_query(request: web.Request, model: type[T]) -> T:
    """Parse the query string into ``model``; repeated keys fill its list fields."""
    lists = _LIST_FIELDS.get(model)
    if lists is None:
        lists = _LIST_FIELDS[model] = _list_fields(model)
    return _convert(_multi_to_dict(request.query.items(), lists), model, "query")


async def decode_form(request: web.Request, model: type[T]) -> T:
    """Read an ``application/x-www-form-urlencoded`` body into ``model``."""
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"Request body is larger than {request.client_max_size} bytes"
        ) from None
    except ValueError as exc:
        raise ValidationFailed(
            [{"loc": ["body"], "msg": f"Malformed form body: {exc}", "type": "value_error"}]
        ) from None
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    return _convert(data, model, "body")


_IDENT = re.compile(r"^[^/\x00-\x1f\x7f]{1,128}$")


def path_param(request: web.Request, name: str) -> str:
    """A path parameter, checked like the models' identifiers (422 otherwise)."""
    value = request.match_info[name]
    if not _IDENT.match(value):
        raise ValidationFailed(
            [{"loc": ["path", name], "msg": "Invalid identifier", "type": "value_error"}]
        )
    return value


def _error_response(request: web.Request, exc: ApiError) -> web.Response:
    headers = {"X-Request-ID": request.get(REQUEST_ID, "")}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    headers.update(exc.headers)
    if request.path.startswith("/api/v1/uploads"):
        headers["Tus-Resumable"] = "1.0.0"
    return json_response({"detail": exc.detail}, status=exc.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is JSON; the access log gets one line per request."""
    request[REQUEST_ID] = secrets.token_hex(8)
    start = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            detail = "Request body too large"
        elif exc.status == 404:
            detail = "Not Found"
        elif exc.status == 405:
            detail = "Method Not Allowed"
        else:
            detail = exc.reason
        response = _error_response(request, error_for_status(exc.status, detail))
        for key in ("Allow",):
            if key in exc.headers:
                response.headers[key] = exc.headers[key]
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = _error_response(request, error_for_status(500, "Internal server error"))
    else:
        response.headers.setdefault("X-Request-ID", request[REQUEST_ID])
    # Paths and statuses only: tokens travel in headers and form bodies, never logged.
    log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        response.status,
        (time.perf_counter() - start) * 1000,
    )
    return response
