"""What every handler of the local server shares: config, database, the caller."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from .auth import Caller, bearer_token, token_caller
from .config import ServerConfig
from .db import Database

__all__ = ("CALLER", "REQUEST_ID", "STATE", "ServerState", "base_url", "caller", "state")


@dataclasses.dataclass
class ServerState:
    config: ServerConfig
    db: Database


STATE = web.AppKey("aetiket_state", ServerState)


def _request_key(name: str, kind: type) -> Any:
    """A typed key for per-request values (aiohttp >= 3.13 warns about plain strings;
    older versions have no RequestKey and take the string)."""
    make = getattr(web, "RequestKey", None)
    return make(name, kind) if make is not None else name


#: Per-request values: who is calling (once authenticated), the id in logs and headers.
CALLER = _request_key("aetiket_caller", Caller)
REQUEST_ID = _request_key("aetiket_request_id", str)


def state(request: web.Request) -> ServerState:
    return request.app[STATE]


def base_url(request: web.Request) -> str:
    """Scheme and host for absolute URLs: the configured public URL, else the request's."""
    public = request.app[STATE].config.public_url
    if public:
        return public.rstrip("/")
    return f"{request.scheme}://{request.host}"


async def caller(request: web.Request) -> Caller:
    """The authenticated user of the request (401 with WWW-Authenticate otherwise)."""
    cached: Caller | None = request.get(CALLER)
    if cached is not None:
        return cached
    token = bearer_token(request)
    who = await request.app[STATE].db.run(token_caller, token)
    request[CALLER] = who
    return who
