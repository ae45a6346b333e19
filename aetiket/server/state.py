"""What every handler of the local server shares: config, database, the caller."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from .auth import Caller, bearer_token, token_caller
from .config import ServerConfig
from .db import Database

__all__ = ("STATE", "ServerState", "base_url", "caller", "state")


@dataclasses.dataclass
class ServerState:
    config: ServerConfig
    db: Database


STATE = web.AppKey("aetiket_state", ServerState)


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
    cached: Caller | None = request.get("caller")
    if cached is not None:
        return cached
    token = bearer_token(request)
    who = await request.app[STATE].db.run(token_caller, token)
    request["caller"] = who
    return who
