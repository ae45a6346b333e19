"""The JSON endpoints of ETIKET_API.md: thin handlers over :mod:`records`.

Each handler authenticates, decodes its body or query into a shared model, runs one
records function in one database transaction, and encodes the answer.
"""

from __future__ import annotations

import html
import sqlite3
from typing import Any

import anyio.to_thread
from aiohttp import web

from ..errors import Conflict, Forbidden, ServerError, Unauthorized
from ..models import (
    CollectionIn,
    CollectionQuery,
    CollectionUpdate,
    DatasetIn,
    DatasetMeta,
    DatasetMetaKeys,
    DatasetQuery,
    DatasetUpdate,
    FileIn,
    FileUpdate,
    LoginForm,
    PageQuery,
    RefreshForm,
    ScopeIn,
    ScopeQuery,
    ScopeUpdate,
    UserIn,
    UserUpdate,
)
from . import records
from .auth import hash_password, issue_tokens, redeem_refresh_token, verify_password
from .content import content_response
from .db import from_db_time
from .state import STATE, base_url, caller
from .tus import TUS
from .web import decode_body, decode_form, decode_query, json_response, path_param

__all__ = ("add_routes",)

routes = web.RouteTableDef()
API = "/api/v1"


def _db(request: web.Request) -> Any:
    return request.app[STATE].db


# ---------------------------------------------------------------------------- auth


@routes.post(f"{API}/token")
async def login(request: web.Request) -> web.Response:
    form = await decode_form(request, LoginForm)
    st = request.app[STATE]

    def lookup(conn: sqlite3.Connection) -> tuple[int, str, bool] | None:
        row = conn.execute(
            "SELECT id, pw_hash, active FROM users WHERE username = ?", (form.username,)
        ).fetchone()
        return None if row is None else (row["id"], row["pw_hash"], bool(row["active"]))

    found = await st.db.run(lookup)
    # scrypt is slow on purpose: off the loop, and off the database thread.
    ok = (
        found is not None
        and found[2]
        and await anyio.to_thread.run_sync(verify_password, form.password, found[1])
    )
    if not ok or found is None:
        raise Unauthorized("Incorrect username or password")
    token = await st.db.run(
        issue_tokens, found[0], st.config.access_token_ttl, st.config.refresh_token_ttl
    )
    return json_response(token)


@routes.post(f"{API}/refresh")
async def refresh(request: web.Request) -> web.Response:
    # Ignores Authorization: the original client sends its expired access token here.
    form = await decode_form(request, RefreshForm)
    cfg = request.app[STATE].config
    token = await _db(request).run(
        redeem_refresh_token, form.refresh_token, cfg.access_token_ttl, cfg.refresh_token_ttl
    )
    return json_response(token)


# ---------------------------------------------------------------------------- users


@routes.post(f"{API}/users/")
async def create_user(request: web.Request) -> web.Response:
    who = await caller(request)
    if not who.admin:
        raise Forbidden("Only an admin may manage users")
    body = await decode_body(request, UserIn)
    pw_hash = await anyio.to_thread.run_sync(hash_password, body.hashed_password)
    return json_response(await _db(request).run(records.create_user, who, body, pw_hash))


@routes.get(f"{API}/users/")
async def list_users(request: web.Request) -> web.Response:
    who = await caller(request)
    q = decode_query(request, PageQuery)
    return json_response(await _db(request).run(records.list_users, who, q.offset, q.limit))


@routes.get(f"{API}/users/me")
async def user_me(request: web.Request) -> web.Response:
    who = await caller(request)
    return json_response(await _db(request).run(records.get_me, who))


@routes.get(f"{API}/users/{{username}}")
async def get_user(request: web.Request) -> web.Response:
    who = await caller(request)
    name = path_param(request, "username")
    return json_response(await _db(request).run(records.get_user, who, name))


@routes.patch(f"{API}/users/{{username}}")
async def update_user(request: web.Request) -> web.Response:
    who = await caller(request)
    name = path_param(request, "username")
    body = await decode_body(request, UserUpdate)
    pw_hash = None
    if isinstance(body.hashed_password, str) and who.admin:
        pw_hash = await anyio.to_thread.run_sync(hash_password, body.hashed_password)
    return json_response(await _db(request).run(records.update_user, who, name, body, pw_hash))


# ---------------------------------------------------------------------------- scopes


@routes.post(f"{API}/scopes/")
async def create_scope(request: web.Request) -> web.Response:
    who = await caller(request)
    body = await decode_body(request, ScopeIn)
    return json_response(await _db(request).run(records.create_scope, who, body))


@routes.get(f"{API}/scopes/")
async def list_scopes(request: web.Request) -> web.Response:
    who = await caller(request)
    q = decode_query(request, ScopeQuery)
    return json_response(await _db(request).run(records.list_scopes, who, q))


@routes.get(f"{API}/scopes/{{name}}")
async def get_scope(request: web.Request) -> web.Response:
    who = await caller(request)
    return json_response(
        await _db(request).run(records.get_scope, who, path_param(request, "name"))
    )


@routes.patch(f"{API}/scopes/{{name}}")
async def update_scope(request: web.Request) -> web.Response:
    who = await caller(request)
    name = path_param(request, "name")
    body = await decode_body(request, ScopeUpdate)
    return json_response(await _db(request).run(records.update_scope, who, name, body))


@routes.put(f"{API}/scopes/{{scope}}/members/{{username}}")
async def add_member(request: web.Request) -> web.Response:
    who = await caller(request)
    return json_response(
        await _db(request).run(
            records.add_member, who, path_param(request, "scope"), path_param(request, "username")
        )
    )


@routes.delete(f"{API}/scopes/{{scope}}/members/{{username}}")
async def remove_member(request: web.Request) -> web.Response:
    who = await caller(request)
    return json_response(
        await _db(request).run(
            records.remove_member,
            who,
            path_param(request, "scope"),
            path_param(request, "username"),
        )
    )


# ---------------------------------------------------------------------------- datasets


@routes.post(f"{API}/datasets/")
async def create_dataset(request: web.Request) -> web.Response:
    who = await caller(request)
    body = await decode_body(request, DatasetIn)
    return json_response(
        await _db(request).run(records.create_dataset, who, body, base_url(request))
    )


@routes.get(f"{API}/datasets/")
async def list_datasets(request: web.Request) -> web.Response:
    who = await caller(request)
    q = decode_query(request, DatasetQuery)
    return json_response(await _db(request).run(records.list_datasets, who, q, base_url(request)))


def _scope_uid(request: web.Request, uid_name: str = "dataset_uid") -> tuple[str, str]:
    return path_param(request, "scope"), path_param(request, uid_name)


@routes.get(f"{API}/datasets/{{scope}}/{{dataset_uid}}")
async def get_dataset(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request)
    return json_response(
        await _db(request).run(records.get_dataset, who, scope, uid, base_url(request))
    )


@routes.patch(f"{API}/datasets/{{scope}}/{{dataset_uid}}")
async def update_dataset(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request)
    body = await decode_body(request, DatasetUpdate)
    return json_response(
        await _db(request).run(records.update_dataset, who, scope, uid, body, base_url(request))
    )


@routes.delete(f"{API}/datasets/{{scope}}/{{dataset_uid}}")
async def delete_dataset(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request)
    leftovers = await _db(request).run(records.delete_dataset, who, scope, uid)
    await anyio.to_thread.run_sync(request.app[TUS].remove_leftovers, leftovers)
    return json_response({"detail": f"Dataset '{scope}/{uid}' deleted"})


# ---------------------------------------------------------------------------- metadata


@routes.post(f"{API}/metadata/{{scope}}/{{dataset_uid}}")
async def add_metadata(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request)
    body = await decode_body(request, DatasetMeta)
    return json_response(
        await _db(request).run(
            records.update_meta, who, scope, uid, "add", body.meta, None, base_url(request)
        )
    )


@routes.put(f"{API}/metadata/{{scope}}/{{dataset_uid}}")
async def set_metadata(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request)
    body = await decode_body(request, DatasetMeta)
    return json_response(
        await _db(request).run(
            records.update_meta, who, scope, uid, "set", body.meta, None, base_url(request)
        )
    )


@routes.delete(f"{API}/metadata/{{scope}}/{{dataset_uid}}")
async def delete_metadata(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request)
    body = await decode_body(request, DatasetMetaKeys)
    return json_response(
        await _db(request).run(
            records.update_meta, who, scope, uid, "delete", None, body.keys, base_url(request)
        )
    )


# ---------------------------------------------------------------------------- collections


@routes.post(f"{API}/collections/")
async def create_collection(request: web.Request) -> web.Response:
    who = await caller(request)
    body = await decode_body(request, CollectionIn)
    return json_response(await _db(request).run(records.create_collection, who, body))


@routes.get(f"{API}/collections/")
async def list_collections(request: web.Request) -> web.Response:
    who = await caller(request)
    q = decode_query(request, CollectionQuery)
    return json_response(await _db(request).run(records.list_collections, who, q))


@routes.get(f"{API}/collections/{{scope}}/{{name}}")
async def get_collection(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, name = _scope_uid(request, "name")
    return json_response(await _db(request).run(records.get_collection, who, scope, name))


@routes.patch(f"{API}/collections/{{scope}}/{{name}}")
async def update_collection(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, name = _scope_uid(request, "name")
    body = await decode_body(request, CollectionUpdate)
    return json_response(await _db(request).run(records.update_collection, who, scope, name, body))


@routes.put(f"{API}/collections/{{scope}}/{{name}}/datasets/{{dataset_uid}}")
async def add_to_collection(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, name = _scope_uid(request, "name")
    uid = path_param(request, "dataset_uid")
    return json_response(
        await _db(request).run(records.dataset_collection, who, scope, name, uid, add=True)
    )


@routes.delete(f"{API}/collections/{{scope}}/{{name}}/datasets/{{dataset_uid}}")
async def remove_from_collection(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, name = _scope_uid(request, "name")
    uid = path_param(request, "dataset_uid")
    return json_response(
        await _db(request).run(records.dataset_collection, who, scope, name, uid, add=False)
    )


# ---------------------------------------------------------------------------- files


@routes.post(f"{API}/files/")
async def create_file(request: web.Request) -> web.Response:
    who = await caller(request)
    body = await decode_body(request, FileIn)
    return json_response(await _db(request).run(records.create_file, who, body, base_url(request)))


@routes.get(f"{API}/files/{{scope}}/{{file_uid}}", allow_head=True)
async def file_content(request: web.Request) -> web.StreamResponse:
    who = await caller(request)
    scope, uid = _scope_uid(request, "file_uid")

    def lookup(conn: sqlite3.Connection) -> sqlite3.Row:
        return records.file_record(conn, who, scope, uid, write=False)[1]

    row = await _db(request).run(lookup)
    for _ in range(3):
        # A pending file that already has content (a re-upload under way) serves it.
        if not row["content"]:
            raise Conflict(f"The content of file '{scope}/{uid}' has not been uploaded yet")
        try:
            # Opened before the answer is chosen: its headers then describe these bytes.
            fobj = open(request.app[TUS].content_path(row["content"]), "rb")  # noqa: ASYNC230, SIM115
            break
        except FileNotFoundError:
            # A new upload replaced it between the lookup and the open: look again.
            fresh = await _db(request).run(lookup)
            if fresh["content"] == row["content"]:
                raise ServerError(
                    f"The content of file '{scope}/{uid}' is missing from the server's "
                    "storage; upload it again"
                ) from None
            row = fresh
    else:
        raise ServerError(f"The content of file '{scope}/{uid}' kept changing; retry")
    modified = from_db_time(row["modified"])
    assert modified is not None
    return content_response(
        request,
        fobj,
        size=row["size"],
        etag=row["etag"],
        mimetype=row["mimetype"],
        last_modified=modified,
    )


@routes.patch(f"{API}/files/{{scope}}/{{file_uid}}")
async def update_file(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request, "file_uid")
    body = await decode_body(request, FileUpdate)
    return json_response(
        await _db(request).run(records.update_file, who, scope, uid, body, base_url(request))
    )


@routes.delete(f"{API}/files/{{scope}}/{{file_uid}}")
async def delete_file(request: web.Request) -> web.Response:
    who = await caller(request)
    scope, uid = _scope_uid(request, "file_uid")
    leftovers = await _db(request).run(records.delete_file, who, scope, uid)
    await anyio.to_thread.run_sync(request.app[TUS].remove_leftovers, leftovers)
    return json_response({"detail": f"File '{scope}/{uid}' deleted"})


# ---------------------------------------------------------------------------- viewer


@routes.get("/viewer")
async def viewer(request: web.Request) -> web.Response:
    """A plain HTML page of the caller's scopes and their newest datasets."""
    who = await caller(request)
    base = base_url(request)

    def collect(conn: sqlite3.Connection) -> list[tuple[Any, list[Any]]]:
        out = []
        for scope in records.list_scopes(conn, who, ScopeQuery(limit=200)):
            datasets = records.list_datasets(
                conn, who, DatasetQuery(scope=scope.name, limit=50), base
            )
            out.append((scope, datasets))
        return out

    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>eTiKeT viewer</title>"
        "</head><body>",
        f"<h1>eTiKeT — {esc(who.username)}</h1>",
    ]
    for scope, datasets in await _db(request).run(collect):
        parts.append(f"<h2>{esc(scope.name)}</h2><p>{esc(scope.description)}</p><ul>")
        for d in datasets:
            files = ", ".join(
                f"<a href='{esc(f.download_link or '')}'>{esc(f.name)}</a> ({esc(f.status.value)})"
                for f in d.files
            )
            parts.append(
                f"<li><b>{esc(d.name)}</b> <code>{esc(d.uid)}</code> "
                f"{esc(d.collected.isoformat())} {files}</li>"
            )
        parts.append("</ul>")
    parts.append("</body></html>")
    return web.Response(text="".join(parts), content_type="text/html")


def add_routes(app: web.Application) -> None:
    """Register every endpoint of the contract, tus included."""
    app.add_routes(routes)
    tus = app[TUS]
    app.router.add_route("OPTIONS", f"{API}/uploads/", tus.options)
    app.router.add_route("OPTIONS", f"{API}/uploads/{{uid}}", tus.options)
    app.router.add_post(f"{API}/uploads/", tus.create)
    app.router.add_route("HEAD", f"{API}/uploads/{{uid}}", tus.head)
    app.router.add_patch(f"{API}/uploads/{{uid}}", tus.patch)
    app.router.add_delete(f"{API}/uploads/{{uid}}", tus.terminate)
    app.router.add_get(f"{API}/uploads/{{scope}}/{{file_uid}}", tus.file_uploads)
