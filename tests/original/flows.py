"""Interoperability flows of the ORIGINAL eTiKeT client against an eTiKeT v1 server.

This script runs inside the virtualenv of the original client (``etiket-client==0.1.4`` with
``tuspy==1.0.3``): it imports only that client, its dependencies (httpx, requests via tuspy,
shortuuid) and the standard library, never aetiket. Each flow calls the original client the way
its README documents and checks the answers exactly (statuses, fields, bytes).

Usage::

    ETIKET_URL=http://127.0.0.1:8765 ETIKET_USER=admin ETIKET_PASSWORD=secret \\
        python flows.py <flow> [<flow> ...]      # or: all, --list

The flows expired_access and expired_upload need a server started with a short
``--access-token-ttl`` / ``--upload-expiry``, given to them as ``ETIKET_ACCESS_TTL`` /
``ETIKET_UPLOAD_EXPIRY`` (seconds); ``all`` leaves them out.

``--url``, ``--user`` and ``--password`` override the environment. A flow prints ``OK <flow>``
on success; on any mismatch it prints ``FAIL <flow>: ...`` with the traceback and the script
exits with status 1.

A few answers the contract requires cannot be parsed by the generated 0.1.4 code (it calls
``response.json()`` on every 200: a binary file body, the empty body of a HEAD). For those the
flows send the request exactly as the original module builds it (its ``_get_kwargs``) through the
same httpx, and check the raw answer: see :func:`raw`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import io
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

import httpx
import shortuuid
from etiket_client import AuthenticatedClient, Client, UploadClient
from etiket_client.api.access import login_for_access_token, refresh_token
from etiket_client.api.collections import (
    add_dataset_to_collection,
    create_collection,
    get_collection,
    get_collections,
    remove_dataset_from_collection,
    update_collection,
)
from etiket_client.api.datasets import (
    create_dataset,
    delete_dataset,
    get_dataset,
    get_datasets,
    update_dataset,
)
from etiket_client.api.default import instagraph
from etiket_client.api.files import add_file, delete_file, get_file, update_file
from etiket_client.api.metadata import add_metadata, delete_metadata, set_metadata
from etiket_client.api.scope import (
    add_user_to_scope,
    create_scope,
    get_scope,
    get_scopes,
    remove_user_from_scope,
    update_scope,
)
from etiket_client.api.tus import (
    continue_upload,
    get_file_uploads,
    options_upload,
    start_upload,
    status_upload,
    terminate_upload,
)
from etiket_client.api.user import create_user, get_user, get_userme, get_users, update_user
from etiket_client.models import (
    BaseError,
    BodyLoginForAccessToken,
    BodyRefreshToken,
    CollectionDatasetOut,
    CollectionIn,
    CollectionOut,
    CollectionUpdate,
    DatasetIn,
    DatasetMeta,
    DatasetMetaKeys,
    DatasetMetaMeta,
    DatasetOut,
    DatasetUpdate,
    FileDatasetIn,
    FileDatasetOut,
    FileIn,
    FileOut,
    FileStatus,
    FileType,
    FileUpdate,
    HTTPValidationError,
    ScopeIn,
    ScopeOut,
    ScopeUpdate,
    Token,
    UserIn,
    UserOut,
    UserUpdate,
)
from etiket_client.types import UNSET, Response, Unset
from tusclient.exceptions import TusCommunicationError

T = TypeVar("T")

TUS_EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "checksum",
    "termination",
    "concatenation",
    "concatenation-unfinished",
    "expiration",
)
README_META: dict[str, Any] = {"key1": "value1", "key2": ["value2a", "value2b"]}


# --------------------------------------------------------------------------------------------
# Context and helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    url: str
    admin_user: str
    admin_password: str
    # For the flows that need a server started with short lifetimes (seconds).
    access_ttl: float | None = None
    upload_expiry: float | None = None


_RAND = shortuuid.ShortUUID(alphabet="abcdefghijklmnopqrstuvwxyz0123456789")


def rand(length: int = 10) -> str:
    """A random lowercase alphanumeric id (the README uses shortuuid for uids)."""
    return str(_RAND.random(length=length))


def payload(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (every byte value occurs: no text-only shortcut)."""
    return random.Random(seed).randbytes(size)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def naive_utcnow() -> dt.datetime:
    """What the README's ``datetime.utcnow()`` gives, without its deprecation warning."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def as_utc(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise AssertionError(f"{what}: expected a datetime, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def fail(message: str) -> NoReturn:
    raise AssertionError(message)


def show(value: Any) -> str:
    """repr, with the generated client's Unset (a field the answer omitted) spelled out."""
    if isinstance(value, Unset):
        return "<omitted>"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(show(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return repr(value)


def eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {show(expected)}, got {show(actual)}")


def is_set(value: Any, what: str) -> None:
    if isinstance(value, Unset) or value is None or value == "":
        raise AssertionError(f"{what}: expected a value, got {value!r}")


def is_unset(value: Any, what: str) -> None:
    if not isinstance(value, Unset):
        raise AssertionError(f"{what}: expected the field to be omitted, got {value!r}")


def check(resp: Response[Any], status: int, what: str) -> Any:
    """Assert the HTTP status of a ``sync_detailed`` answer; return its parsed body."""
    if int(resp.status_code) != status:
        raise AssertionError(
            f"{what}: expected HTTP {status}, got {int(resp.status_code)}; "
            f"body {resp.content[:800]!r}"
        )
    return resp.parsed


def typed(value: Any, cls: type[T], what: str) -> T:
    if not isinstance(value, cls):
        raise AssertionError(f"{what}: expected a {cls.__name__}, got {value!r}")
    return value


def check_error(resp: Response[Any], status: int, what: str) -> None:
    """An error answer: the status and the documented ``{"detail": "<message>"}`` body."""
    parsed = check(resp, status, what)
    err = typed(parsed, BaseError, f"{what} (error body)")
    if not isinstance(err.detail, str) or not err.detail:
        fail(f"{what}: error detail should be a non-empty string, got {err.detail!r}")


def check_422(resp: Response[Any], what: str) -> None:
    parsed = check(resp, 422, what)
    err = typed(parsed, HTTPValidationError, f"{what} (422 body)")
    if isinstance(err.detail, Unset) or not err.detail:
        fail(f"{what}: a 422 body carries a non-empty detail list, got {resp.content[:400]!r}")


def header(resp: Any, name: str, what: str) -> str:
    value = resp.headers.get(name)
    if value is None:
        fail(f"{what}: missing response header {name}; headers {dict(resp.headers)!r}")
    return str(value)


def raw(module: Any, **kwargs: Any) -> httpx.Response:
    """Send a request exactly as the original module builds it, but skip its parser.

    The generated 0.1.4 parsers call ``response.json()`` on every 200, which cannot work for a
    file's binary content or for the empty body of a HEAD answer."""
    request_kwargs = module._get_kwargs(**kwargs)
    return httpx.request(verify=True, **request_kwargs)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def upload_uid_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


def login(ctx: Ctx, username: str, password: str) -> Token:
    anon = Client(base_url=ctx.url)
    form = BodyLoginForAccessToken(username=username, password=password)
    resp = login_for_access_token.sync_detailed(client=anon, form_data=form)
    return typed(check(resp, 200, f"login of {username}"), Token, f"login of {username}")


def session(ctx: Ctx, username: str, password: str) -> AuthenticatedClient:
    token = login(ctx, username, password)
    return AuthenticatedClient(base_url=ctx.url, token=token.access_token)


def admin(ctx: Ctx) -> AuthenticatedClient:
    return session(ctx, ctx.admin_user, ctx.admin_password)


def new_scope(client: AuthenticatedClient, prefix: str = "orig") -> str:
    name = f"{prefix}{rand()}"
    resp = create_scope.sync_detailed(
        client=client, json_body=ScopeIn(name=name, description=f"interop {prefix}")
    )
    scope = typed(check(resp, 200, f"create_scope {name}"), ScopeOut, "create_scope")
    eq(scope.name, name, "ScopeOut.name")
    return name


def new_user(ctx: Ctx, client: AuthenticatedClient) -> tuple[str, str]:
    username = f"user{rand()}"
    password = f"pw-{rand(16)}"
    body = UserIn(
        username=username,
        firstname="Ada",
        lastname="Lovelace",
        email=f"{username}@example.org",
        hashed_password=password,
    )
    resp = create_user.sync_detailed(client=client, json_body=body)
    typed(check(resp, 200, f"create_user {username}"), UserOut, "create_user")
    return username, password


def new_dataset(
    client: AuthenticatedClient,
    scope: str,
    *,
    name: str = "awesomedataset",
    meta: dict[str, Any] | None = None,
    files: list[FileDatasetIn] | None = None,
    collected: dt.datetime | None = None,
) -> DatasetOut:
    body = DatasetIn(
        name=name,
        uid=rand(),
        scope=scope,
        collected=collected or utcnow(),
        # The README passes meta as a plain dict: DatasetIn.to_dict sends it as it is.
        meta=meta if meta is not None else UNSET,  # type: ignore[arg-type]
        files=files if files is not None else UNSET,
    )
    resp = create_dataset.sync_detailed(client=client, json_body=body)
    return typed(check(resp, 200, f"create_dataset {body.uid}"), DatasetOut, "create_dataset")


def new_file(
    client: AuthenticatedClient,
    scope: str,
    dataset_uid: str,
    *,
    mimetype: str = "application/octet-stream",
    immutable: bool = False,
    filetype: FileType = FileType.RAW,
) -> FileOut:
    body = FileIn(
        name=f"file-{rand(6)}.bin",
        uid=rand(),
        dataset_uid=dataset_uid,
        scope=scope,
        mimetype=mimetype,
        immutable=immutable,
        filetype=filetype,
    )
    resp = add_file.sync_detailed(client=client, json_body=body)
    out = typed(check(resp, 200, f"add_file {body.uid}"), FileOut, "add_file")
    eq(out.status, FileStatus.UNAVAILABLE, "a new file's status")
    return out


def file_record(client: AuthenticatedClient, scope: str, file_uid: str) -> FileOut:
    resp = get_file_uploads.sync_detailed(scope=scope, file_uid=file_uid, client=client)
    return typed(check(resp, 200, f"get_file_uploads {scope}/{file_uid}"), FileOut, "FileOut")


def fetch_dataset(client: AuthenticatedClient, scope: str, uid: str) -> DatasetOut:
    resp = get_dataset.sync_detailed(scope=scope, dataset_uid=uid, client=client)
    return typed(check(resp, 200, f"get_dataset {scope}/{uid}"), DatasetOut, "get_dataset")


def meta_of(dataset: DatasetOut, what: str) -> dict[str, Any]:
    if isinstance(dataset.meta, Unset):
        fail(f"{what}: DatasetOut.meta must always be present ({{}} when empty)")
    return dict(dataset.meta.to_dict())


def meta_body(meta: dict[str, Any]) -> DatasetMeta:
    return DatasetMeta(meta=DatasetMetaMeta.from_dict(meta))


def files_of(dataset: DatasetOut) -> list[FileDatasetOut]:
    """DatasetOut.files (the generated parser turns an omitted list into [])."""
    return [] if isinstance(dataset.files, Unset) else list(dataset.files)


def collections_of(dataset: DatasetOut) -> list[CollectionDatasetOut]:
    return [] if isinstance(dataset.collections, Unset) else list(dataset.collections)


def found(client: AuthenticatedClient, what: str, **query: Any) -> list[str]:
    """The uids get_datasets answers for a query, in the server's order."""
    resp = get_datasets.sync_detailed(client=client, **query)
    datasets = check(resp, 200, f"get_datasets {what}")
    if not isinstance(datasets, list):
        fail(f"get_datasets {what}: expected a list, got {datasets!r}")
    return [typed(d, DatasetOut, "get_datasets item").uid for d in datasets]


def expect_found(
    client: AuthenticatedClient, expected: Sequence[str], what: str, **query: Any
) -> None:
    eq(found(client, what, **query), list(expected), f"get_datasets {what} ({query})")


def tus_error(action: Callable[[], Any], status: int, what: str) -> None:
    """A tuspy call that must fail with the server answering ``status``."""
    try:
        action()
    except TusCommunicationError as error:
        eq(error.status_code, status, f"{what}: status of the failed tus request")
        return
    fail(f"{what}: expected the tus request to fail with HTTP {status}, it succeeded")


def download(client: AuthenticatedClient, scope: str, file_uid: str, range_: str) -> Response[Any]:
    return get_file.sync_detailed(scope=scope, file_uid=file_uid, client=client, range_=range_)


def check_range(
    client: AuthenticatedClient,
    scope: str,
    file_uid: str,
    data: bytes,
    range_: str,
    start: int,
    end: int,
    mimetype: str,
) -> None:
    """GET with ``Range: range_`` must answer 206 with exactly ``data[start:end + 1]``."""
    what = f"get_file {range_}"
    resp = download(client, scope, file_uid, range_)
    check(resp, 206, what)
    if resp.content != data[start : end + 1]:
        fail(
            f"{what}: content differs from the uploaded bytes {start}-{end} "
            f"(got {len(resp.content)} bytes)"
        )
    eq(
        header(resp, "Content-Range", what),
        f"bytes {start}-{end}/{len(data)}",
        f"{what} Content-Range",
    )
    eq(header(resp, "Content-Length", what), str(end - start + 1), f"{what} Content-Length")
    eq(header(resp, "Accept-Ranges", what), "bytes", f"{what} Accept-Ranges")
    eq(header(resp, "Content-Type", what).split(";")[0].strip(), mimetype, f"{what} Content-Type")
    etag = header(resp, "ETag", what)
    if not re.fullmatch(r'"[^"]*"', etag):
        fail(f"{what}: ETag must be a strong entity tag, got {etag!r}")
    header(resp, "Last-Modified", what)


def check_available(client: AuthenticatedClient, scope: str, file_uid: str, size: int) -> FileOut:
    record = file_record(client, scope, file_uid)
    eq(record.status, FileStatus.AVAILABLE, f"status of {file_uid} after its upload")
    eq(record.size, size, f"size of {file_uid} after its upload")
    is_set(record.etag, f"etag of {file_uid} after its upload")
    return record


# --------------------------------------------------------------------------------------------
# Flows
# --------------------------------------------------------------------------------------------

FLOWS: dict[str, Callable[[Ctx], None]] = {}
# Flows that need a server started with a short --access-token-ttl / --upload-expiry: `all`
# leaves them out.
SHORT_LIVED = ("expired_access", "expired_upload")


def flow(func: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    FLOWS[func.__name__.removeprefix("flow_")] = func
    return func


def lifetime(value: float | None, env: str, option: str) -> float:
    if value is None:
        fail(f"this flow needs a server started with a short {option}: give it as {env}")
    return value


@flow
def flow_auth(ctx: Ctx) -> None:
    """Login (README), refresh (rotation, single use), bearer checks."""
    anon = Client(base_url=ctx.url)
    # README: token = get_token.sync(client=client, form_data=form_data)
    form = BodyLoginForAccessToken(username=ctx.admin_user, password=ctx.admin_password)
    token = typed(login_for_access_token.sync(client=anon, form_data=form), Token, "login (sync)")
    is_set(token.access_token, "Token.access_token")
    is_set(token.refresh_token, "Token.refresh_token")
    eq(token.token_type, "bearer", "Token.token_type")

    with_grant = BodyLoginForAccessToken(
        username=ctx.admin_user, password=ctx.admin_password, grant_type="password"
    )
    check(
        login_for_access_token.sync_detailed(client=anon, form_data=with_grant),
        200,
        "login with grant_type",
    )

    bad = BodyLoginForAccessToken(username=ctx.admin_user, password=ctx.admin_password + "x")
    check_error(
        login_for_access_token.sync_detailed(client=anon, form_data=bad), 401, "login, bad password"
    )
    nobody = BodyLoginForAccessToken(username=f"nobody{rand()}", password="whatever")
    check_error(
        login_for_access_token.sync_detailed(client=anon, form_data=nobody),
        401,
        "login, unknown user",
    )

    client = AuthenticatedClient(base_url=ctx.url, token=token.access_token)
    me = typed(
        check(get_userme.sync_detailed(client=client), 200, "get_userme"), UserOut, "get_userme"
    )
    eq(me.username, ctx.admin_user, "get_userme.username")

    # No token, and a forged one: 401 with WWW-Authenticate: Bearer.
    for label, unauthorised in (
        ("no token", anon),
        ("forged token", AuthenticatedClient(base_url=ctx.url, token="not-a-token")),
    ):
        resp = get_userme.sync_detailed(client=unauthorised)  # type: ignore[arg-type]
        check_error(resp, 401, f"get_userme with {label}")
        challenge = header(resp, "WWW-Authenticate", f"get_userme with {label}")
        if not challenge.lower().startswith("bearer"):
            fail(f"get_userme with {label}: WWW-Authenticate should be Bearer, got {challenge!r}")

    # Refresh: a new pair; the old refresh token is then spent.
    body = BodyRefreshToken(grant_type="refresh_token", refresh_token=token.refresh_token)
    fresh = typed(
        check(refresh_token.sync_detailed(client=client, form_data=body), 200, "refresh_token"),
        Token,
        "refresh_token",
    )
    is_set(fresh.access_token, "refreshed access_token")
    if fresh.refresh_token == token.refresh_token:
        fail("refresh_token: the refresh token must rotate (got the same one back)")
    refreshed = AuthenticatedClient(base_url=ctx.url, token=fresh.access_token)
    me = typed(
        check(get_userme.sync_detailed(client=refreshed), 200, "get_userme after refresh"),
        UserOut,
        "me",
    )
    eq(me.username, ctx.admin_user, "get_userme.username after refresh")
    check_error(
        refresh_token.sync_detailed(client=client, form_data=body),
        401,
        "refresh with a spent refresh token",
    )
    # The original client sends its (possibly expired) access token along: the refresh endpoint
    # must go by the refresh token alone.
    stale = AuthenticatedClient(base_url=ctx.url, token="expired-or-garbage-access-token")
    again = BodyRefreshToken(grant_type="refresh_token", refresh_token=fresh.refresh_token)
    typed(
        check(
            refresh_token.sync_detailed(client=stale, form_data=again),
            200,
            "refresh with a stale bearer",
        ),
        Token,
        "refresh with a stale bearer",
    )
    garbage = BodyRefreshToken(grant_type="refresh_token", refresh_token="garbage")
    check_error(
        refresh_token.sync_detailed(client=client, form_data=garbage), 401, "refresh with garbage"
    )


@flow
def flow_users(ctx: Ctx) -> None:
    """get_userme, create_user, get_user(s), update_user, the admin-only rule."""
    client = admin(ctx)
    me = typed(get_userme.sync(client=client), UserOut, "get_userme (sync)")
    eq(me.username, ctx.admin_user, "admin get_userme.username")
    eq(me.admin, True, "admin get_userme.admin")

    username = f"user{rand()}"
    password = f"pw-{rand(16)}"
    body = UserIn(
        username=username,
        firstname="Ada",
        lastname="Lovelace",
        email=f"{username}@example.org",
        hashed_password=password,
    )
    resp = create_user.sync_detailed(client=client, json_body=body)
    user = typed(check(resp, 200, "create_user"), UserOut, "create_user")
    for field in ("username", "firstname", "lastname", "email"):
        eq(getattr(user, field), getattr(body, field), f"UserOut.{field}")
    eq(user.active, True, "UserOut.active")
    eq(user.admin, False, "UserOut.admin")
    is_set(user.created, "UserOut.created")
    if b"password" in resp.content or password.encode() in resp.content:
        fail(f"create_user: the answer must not carry the password: {resp.content!r}")
    check_error(
        create_user.sync_detailed(client=client, json_body=body), 409, "create_user duplicate"
    )

    got = typed(
        check(get_user.sync_detailed(username=username, client=client), 200, "get_user"),
        UserOut,
        "get_user",
    )
    eq(got.email, body.email, "get_user.email")
    check_error(
        get_user.sync_detailed(username=f"nobody{rand()}", client=client), 404, "get_user unknown"
    )

    users = check(get_users.sync_detailed(client=client), 200, "get_users")
    names = [typed(u, UserOut, "get_users item").username for u in users]
    for expected in (ctx.admin_user, username):
        if expected not in names:
            fail(f"get_users: {expected!r} missing from {names!r}")

    # UserUpdate.active is a string in the original client.
    update = UserUpdate(firstname="Grace", active="true")
    updated = typed(
        check(
            update_user.sync_detailed(username=username, client=client, json_body=update),
            200,
            "update_user",
        ),
        UserOut,
        "update_user",
    )
    eq(updated.firstname, "Grace", "update_user.firstname")
    eq(updated.lastname, "Lovelace", "update_user left lastname")
    eq(updated.active, True, "update_user.active")

    # The new user logs in and sees itself; it is no admin.
    user_client = session(ctx, username, password)
    mine = typed(get_userme.sync(client=user_client), UserOut, "user get_userme")
    eq(mine.username, username, "user get_userme.username")
    eq(mine.admin, False, "user get_userme.admin")
    check_error(get_users.sync_detailed(client=user_client), 403, "non-admin get_users")
    check_error(
        get_user.sync_detailed(username=ctx.admin_user, client=user_client),
        403,
        "non-admin get_user",
    )
    other = UserIn(
        username=f"user{rand()}",
        firstname="X",
        lastname="Y",
        email="x@example.org",
        hashed_password="pw-secret",
    )
    check_error(
        create_user.sync_detailed(client=user_client, json_body=other), 403, "non-admin create_user"
    )

    # A password change through UserUpdate.hashed_password.
    new_password = f"pw-{rand(16)}"
    change = UserUpdate(hashed_password=new_password)
    check(
        update_user.sync_detailed(username=username, client=client, json_body=change),
        200,
        "update_user password",
    )
    login(ctx, username, new_password)
    anon = Client(base_url=ctx.url)
    old = BodyLoginForAccessToken(username=username, password=password)
    check_error(
        login_for_access_token.sync_detailed(client=anon, form_data=old),
        401,
        "login with the old password",
    )


@flow
def flow_scopes(ctx: Ctx) -> None:
    """create/get/update scopes, members, the member rule, archiving."""
    client = admin(ctx)
    name = f"orig{rand()}"
    resp = create_scope.sync_detailed(
        client=client, json_body=ScopeIn(name=name, description="interop scope")
    )
    scope = typed(check(resp, 200, "create_scope"), ScopeOut, "create_scope")
    eq(scope.name, name, "ScopeOut.name")
    eq(scope.description, "interop scope", "ScopeOut.description")
    is_unset(scope.archived, "ScopeOut.archived of a new scope")
    is_unset(scope.restricted, "ScopeOut.restricted of a new scope")
    is_set(scope.created, "ScopeOut.created")
    dup = ScopeIn(name=name, description="again")
    check_error(
        create_scope.sync_detailed(client=client, json_body=dup), 409, "create_scope duplicate"
    )

    got = typed(
        check(get_scope.sync_detailed(name=name, client=client), 200, "get_scope"),
        ScopeOut,
        "get_scope",
    )
    eq(got.description, "interop scope", "get_scope.description")
    check_error(
        get_scope.sync_detailed(name=f"none{rand()}", client=client), 404, "get_scope unknown"
    )

    listed = check(
        get_scopes.sync_detailed(client=client, name=name[:8]), 200, "get_scopes by prefix"
    )
    if name not in [s.name for s in listed]:
        fail(f"get_scopes(name={name[:8]!r}) misses {name!r}")
    listed = check(
        get_scopes.sync_detailed(client=client, name=f"zz{rand()}"), 200, "get_scopes other prefix"
    )
    eq([s.name for s in listed], [], "get_scopes with a prefix nothing has")

    changed = typed(
        check(
            update_scope.sync_detailed(
                name=name, client=client, json_body=ScopeUpdate(description="changed")
            ),
            200,
            "update_scope",
        ),
        ScopeOut,
        "update_scope",
    )
    eq(changed.description, "changed", "update_scope.description")

    # A user outside the scope sees nothing of it.
    username, password = new_user(ctx, client)
    user = session(ctx, username, password)
    dataset = new_dataset(client, name)
    check_error(get_scope.sync_detailed(name=name, client=user), 403, "non-member get_scope")
    check_error(get_datasets.sync_detailed(client=user, scope=name), 403, "non-member get_datasets")
    check_error(
        get_dataset.sync_detailed(scope=name, dataset_uid=dataset.uid, client=user),
        403,
        "non-member get_dataset",
    )
    mine = check(get_scopes.sync_detailed(client=user), 200, "non-member get_scopes")
    if name in [s.name for s in mine]:
        fail(f"get_scopes of a non-member lists {name!r}")

    added = check(
        add_user_to_scope.sync_detailed(scope=name, newusername=username, client=client),
        200,
        "add_user_to_scope",
    )
    eq(typed(added, ScopeOut, "add_user_to_scope").name, name, "add_user_to_scope.name")
    typed(
        check(get_scope.sync_detailed(name=name, client=user), 200, "member get_scope"),
        ScopeOut,
        "get_scope",
    )
    expect_found(user, [dataset.uid], "member query", scope=name)
    mine = check(get_scopes.sync_detailed(client=user), 200, "member get_scopes")
    if name not in [s.name for s in mine]:
        fail(f"get_scopes of a member misses {name!r}")
    me = typed(get_userme.sync(client=user), UserOut, "member get_userme")
    if isinstance(me.scopes, Unset) or name not in [s.name for s in me.scopes]:
        fail(f"UserOut.scopes of a member misses {name!r}: {me.scopes!r}")
    new_dataset(user, name, name="memberdataset")  # a member may write

    removed = check(
        remove_user_from_scope.sync_detailed(scope=name, username=username, client=client),
        200,
        "remove_user_from_scope",
    )
    eq(typed(removed, ScopeOut, "remove_user_from_scope").name, name, "remove_user_from_scope.name")
    check_error(get_scope.sync_detailed(name=name, client=user), 403, "removed member get_scope")

    # The creator of a scope becomes its member (also a non-admin).
    own = new_scope(user, "own")
    mine = check(get_scopes.sync_detailed(client=user), 200, "creator get_scopes")
    if own not in [s.name for s in mine]:
        fail(f"get_scopes of the creator misses {own!r}")

    # An archived scope is read-only; an explicit null un-archives it.
    archived_at = utcnow()
    resp = update_scope.sync_detailed(
        name=name, client=client, json_body=ScopeUpdate(archived=archived_at)
    )
    archived = typed(check(resp, 200, "update_scope archived"), ScopeOut, "update_scope archived")
    eq(as_utc(archived.archived, "ScopeOut.archived"), archived_at, "ScopeOut.archived")
    body = DatasetIn(name="late", uid=rand(), scope=name, collected=utcnow())
    check_error(
        create_dataset.sync_detailed(client=client, json_body=body),
        403,
        "create_dataset in an archived scope",
    )
    check(
        get_dataset.sync_detailed(scope=name, dataset_uid=dataset.uid, client=client),
        200,
        "read archived",
    )
    expect_found(client, [dataset.uid], "archived scope", scope=name, name="awesome")
    resp = update_scope.sync_detailed(
        name=name,
        client=client,
        json_body=ScopeUpdate(archived=None),  # type: ignore[arg-type]
    )
    unarchived = typed(
        check(resp, 200, "update_scope archived=null"), ScopeOut, "update_scope archived=null"
    )
    is_unset(unarchived.archived, "ScopeOut.archived after archived=null")
    eq(unarchived.description, "changed", "update_scope archived=null left description")
    check(
        create_dataset.sync_detailed(client=client, json_body=body),
        200,
        "create_dataset after un-archiving",
    )


@flow
def flow_datasets(ctx: Ctx) -> None:
    """create_dataset with files and meta; get_datasets with each filter; update; delete."""
    client = admin(ctx)
    scope = new_scope(client)
    collection = f"somecollection{rand(4)}"
    check(
        create_collection.sync_detailed(
            client=client, json_body=CollectionIn(name=collection, scope=scope)
        ),
        200,
        "create_collection",
    )
    t0 = utcnow()

    # Dataset A: the README example (2 files, meta key1/key2).
    file1 = FileDatasetIn(name="filename1", uid=rand())
    file2 = FileDatasetIn(name="filename2", uid=rand())
    body_a = DatasetIn(
        name="awesomedataset",
        scope=scope,
        uid=rand(),
        collected=t0 - dt.timedelta(hours=3),
        files=[file1, file2],
        meta=dict(README_META),  # type: ignore[arg-type]
        description="the README dataset",
        creator="interop",
    )
    resp = create_dataset.sync_detailed(client=client, json_body=body_a)
    a = typed(check(resp, 200, "create_dataset A"), DatasetOut, "create_dataset A")
    eq((a.name, a.uid, a.scope), (body_a.name, body_a.uid, scope), "DatasetOut name/uid/scope")
    eq(as_utc(a.collected, "DatasetOut.collected"), body_a.collected, "DatasetOut.collected")
    eq(a.description, "the README dataset", "DatasetOut.description")
    eq(a.creator, "interop", "DatasetOut.creator")
    eq(a.ranking, 0, "DatasetOut.ranking")
    eq(meta_of(a, "create_dataset A"), README_META, "DatasetOut.meta")
    is_set(a.created, "DatasetOut.created")
    is_set(a.modified, "DatasetOut.modified")
    eq(collections_of(a), [], "DatasetOut.collections")
    eq(
        sorted((f.name, f.uid) for f in files_of(a)),
        sorted([("filename1", file1.uid), ("filename2", file2.uid)]),
        "DatasetOut.files",
    )
    for f in files_of(a):
        eq(f.status, FileStatus.UNAVAILABLE, f"status of the listed file {f.name}")
        eq(f.mimetype, "application/octet-stream", f"mimetype of the listed file {f.name}")
        eq(f.filetype, FileType.UNDEFINED, f"filetype of the listed file {f.name}")
        eq(f.rating, 0, f"rating of the listed file {f.name}")
        eq(f.immutable, False, f"immutable of the listed file {f.name}")
    # The files listed at creation are records of their own.
    record = file_record(client, scope, file1.uid)
    eq(
        (record.name, record.scope, record.uploads),
        ("filename1", scope, []),
        "FileOut of a listed file",
    )
    check_error(
        create_dataset.sync_detailed(client=client, json_body=body_a),
        409,
        "create_dataset duplicate",
    )

    got = typed(
        get_dataset.sync(scope=scope, dataset_uid=a.uid, client=client),
        DatasetOut,
        "get_dataset (sync)",
    )
    eq(meta_of(got, "get_dataset A"), README_META, "get_dataset.meta")
    eq(len(files_of(got)), 2, "get_dataset: number of files")
    check_error(
        get_dataset.sync_detailed(scope=scope, dataset_uid=rand(), client=client),
        404,
        "get_dataset unknown",
    )

    # Dataset B: created later, carries the queryable keys, in the collection.
    time.sleep(1.1)  # strictly newer `created`, whatever the server's clock resolution
    b_meta = {
        "sample": "samplename",
        "fridge": "bluefors",
        "setup": "setupone",
        "measurement_type": "sweeptype",
        "variablesMeasured": ["current", "voltage"],
        "keywords": ["kwalpha", "kwbeta"],
    }
    b = new_dataset(
        client, scope, name="otherdataset", meta=b_meta, collected=t0 - dt.timedelta(hours=1)
    )
    eq(meta_of(b, "create_dataset B"), b_meta, "DatasetOut.meta of B")
    eq(files_of(b), [], "DatasetOut.files of B")
    check(
        add_dataset_to_collection.sync_detailed(
            scope=scope, name=collection, dataset_uid=b.uid, client=client
        ),
        200,
        "add_dataset_to_collection",
    )

    # README query, verbatim apart from the names.
    readme = get_datasets.sync(
        client=client,
        scope=scope,
        collection=collection,
        name="otherd",
        since=naive_utcnow() - dt.timedelta(days=100),
        until=naive_utcnow() + dt.timedelta(days=1),
        ranking=0,
        sample="samplename",
        fridge="bluefors",
    )
    if not isinstance(readme, list):
        fail(f"README get_datasets query: expected a list, got {readme!r}")
    eq(
        [typed(d, DatasetOut, "README query").uid for d in readme],
        [b.uid],
        "README get_datasets query",
    )
    eq(meta_of(readme[0], "README query"), b_meta, "meta of the README query's dataset")

    both = [b.uid, a.uid]  # newest created first
    expect_found(client, both, "scope only", scope=scope)
    expect_found(client, [b.uid], "collection", scope=scope, collection=collection)
    expect_found(client, [], "unknown collection", scope=scope, collection=f"none{rand()}")
    expect_found(client, [a.uid], "name prefix", scope=scope, name="awesome")
    expect_found(client, [], "name infix (not a prefix)", scope=scope, name="dataset")
    expect_found(client, [a.uid], "uid", scope=scope, uid=a.uid)
    expect_found(
        client,
        both,
        "since/until window",
        scope=scope,
        since=naive_utcnow() - dt.timedelta(days=100),
        until=naive_utcnow() + dt.timedelta(days=1),
    )
    expect_found(client, [b.uid], "since", scope=scope, since=t0 - dt.timedelta(hours=2))
    expect_found(client, [a.uid], "until", scope=scope, until=t0 - dt.timedelta(hours=2))
    expect_found(client, [], "since in the future", scope=scope, since=t0 + dt.timedelta(days=1))
    expect_found(client, [b.uid], "sample", scope=scope, sample="samplename")
    expect_found(client, [], "other sample", scope=scope, sample="othersample")
    expect_found(client, [b.uid], "fridge", scope=scope, fridge="bluefors")
    expect_found(client, [], "other fridge", scope=scope, fridge="otherfridge")
    expect_found(client, [b.uid], "setup", scope=scope, setup="setupone")
    expect_found(client, [b.uid], "measurementType", scope=scope, measurement_type="sweeptype")
    expect_found(client, [], "other measurementType", scope=scope, measurement_type="othertype")
    expect_found(client, [b.uid], "keywords one", scope=scope, keywords=["kwalpha"])
    expect_found(client, [b.uid], "keywords all", scope=scope, keywords=["kwalpha", "kwbeta"])
    expect_found(client, [], "keywords one missing", scope=scope, keywords=["kwalpha", "kwgamma"])
    expect_found(client, [b.uid], "variablesMeasured", scope=scope, variables_measured=["voltage"])
    expect_found(
        client,
        [],
        "variablesMeasured missing",
        scope=scope,
        variables_measured=["voltage", "power"],
    )
    expect_found(client, [b.uid], "limit", scope=scope, limit=1)
    expect_found(client, [a.uid], "offset+limit", scope=scope, offset=1, limit=1)
    expect_found(client, [], "preview", scope=scope, preview=True)
    new_file(client, scope, b.uid, filetype=FileType.PREVIEW)
    expect_found(client, [b.uid], "preview after adding a preview file", scope=scope, preview=True)

    # update_dataset, and ranking ("at least" the requested ranking).
    update = DatasetUpdate(
        name="renamedataset", description="new text", ranking=5, creator="someone", duration=1.5
    )
    resp = update_dataset.sync_detailed(
        scope=scope, dataset_uid=a.uid, client=client, json_body=update
    )
    updated = typed(check(resp, 200, "update_dataset"), DatasetOut, "update_dataset")
    eq(
        (updated.name, updated.description, updated.ranking, updated.creator, updated.duration),
        ("renamedataset", "new text", 5, "someone", 1.5),
        "update_dataset fields",
    )
    eq(meta_of(updated, "update_dataset"), README_META, "update_dataset left meta")
    eq(as_utc(updated.collected, "collected"), body_a.collected, "update_dataset left collected")
    eq(len(files_of(updated)), 2, "update_dataset left files")
    expect_found(client, [a.uid], "renamed", scope=scope, name="renamed")
    expect_found(client, both, "ranking=0", scope=scope, ranking=0)
    expect_found(client, [a.uid], "ranking=5", scope=scope, ranking=5)
    expect_found(client, [], "ranking=6", scope=scope, ranking=6)
    hide = DatasetUpdate(ranking=-1)
    check(
        update_dataset.sync_detailed(scope=scope, dataset_uid=b.uid, client=client, json_body=hide),
        200,
        "rank -1",
    )
    expect_found(client, [a.uid], "default query skips ranking -1", scope=scope)
    expect_found(client, both, "ranking=-1", scope=scope, ranking=-1)

    # delete_dataset: the dataset and its files go.
    resp = delete_dataset.sync_detailed(scope=scope, dataset_uid=a.uid, client=client)
    deleted = check(resp, 200, "delete_dataset")
    if not isinstance(deleted, dict) or "detail" not in deleted:
        fail(f"delete_dataset: expected a {{'detail': ...}} body, got {resp.content!r}")
    check_error(
        get_dataset.sync_detailed(scope=scope, dataset_uid=a.uid, client=client),
        404,
        "deleted dataset",
    )
    for listed_file in (file1, file2):
        gone = get_file_uploads.sync_detailed(scope=scope, file_uid=listed_file.uid, client=client)
        check_error(gone, 404, f"file {listed_file.name} of a deleted dataset")
    expect_found(client, [b.uid], "after delete", scope=scope, ranking=-1)
    check_error(
        delete_dataset.sync_detailed(scope=scope, dataset_uid=a.uid, client=client),
        404,
        "delete_dataset twice",
    )


@flow
def flow_metadata(ctx: Ctx) -> None:
    """add_metadata (merge), set_metadata (replace), delete_metadata (keys), validation."""
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope, meta=dict(README_META))
    uid = ds.uid
    eq(meta_of(ds, "create_dataset"), README_META, "meta at creation")

    def call(module: Any, body: Any, what: str) -> DatasetOut:
        resp = module.sync_detailed(scope=scope, dataset_uid=uid, client=client, json_body=body)
        out = typed(check(resp, 200, what), DatasetOut, what)
        eq(
            meta_of(fetch_dataset(client, scope, uid), what),
            meta_of(out, what),
            f"{what}: get_dataset agrees",
        )
        return out

    merged = call(add_metadata, meta_body({"key3": "value3", "key1": "newvalue1"}), "add_metadata")
    eq(
        meta_of(merged, "add_metadata"),
        {"key1": "newvalue1", "key2": ["value2a", "value2b"], "key3": "value3"},
        "meta after add_metadata",
    )
    replaced = call(
        set_metadata,
        meta_body({"sample": "samplexyz", "keywords": ["kwone", "kwtwo"]}),
        "set_metadata",
    )
    eq(
        meta_of(replaced, "set_metadata"),
        {"sample": "samplexyz", "keywords": ["kwone", "kwtwo"]},
        "meta after set",
    )
    expect_found(client, [uid], "sample after set_metadata", scope=scope, sample="samplexyz")
    expect_found(client, [uid], "keywords after set_metadata", scope=scope, keywords=["kwtwo"])
    expect_found(client, [], "old key after set_metadata", scope=scope, sample="samplename")
    pruned = call(delete_metadata, DatasetMetaKeys(keys=["sample"]), "delete_metadata")
    eq(
        meta_of(pruned, "delete_metadata"),
        {"keywords": ["kwone", "kwtwo"]},
        "meta after delete_metadata",
    )
    expect_found(client, [], "sample after delete_metadata", scope=scope, sample="samplexyz")

    # Bounds: keys and string values are 3..19 characters.
    edge = call(
        add_metadata, meta_body({"abc": "x" * 19, "k" * 19: ["xyz"]}), "add_metadata at the bounds"
    )
    eq(
        meta_of(edge, "bounds"),
        {"keywords": ["kwone", "kwtwo"], "abc": "x" * 19, "k" * 19: ["xyz"]},
        "meta at the bounds",
    )
    before = meta_of(fetch_dataset(client, scope, uid), "before invalid")
    for label, bad in (
        ("2-character key", {"ab": "value"}),
        ("20-character key", {"k" * 20: "value"}),
        ("2-character value", {"key": "ab"}),
        ("20-character value", {"key": "v" * 20}),
        ("20-character list item", {"key": ["fine", "v" * 20]}),
        ("number value", {"key": 12345}),
    ):
        for module in (add_metadata, set_metadata):
            resp = module.sync_detailed(
                scope=scope, dataset_uid=uid, client=client, json_body=meta_body(bad)
            )
            check_422(resp, f"{module.__name__.rsplit('.', 1)[-1]} with a {label}")
    eq(
        meta_of(fetch_dataset(client, scope, uid), "after invalid"),
        before,
        "meta after rejected updates",
    )
    body = DatasetIn(
        name="badmeta",
        uid=rand(),
        scope=scope,
        collected=utcnow(),
        meta={"ab": "value"},  # type: ignore[arg-type]
    )
    check_422(
        create_dataset.sync_detailed(client=client, json_body=body),
        "create_dataset with a 2-character key",
    )

    # Metadata on a dataset without any.
    bare = new_dataset(client, scope, name="bare")
    eq(meta_of(bare, "dataset without meta"), {}, "meta of a dataset created without one")


@flow
def flow_collections(ctx: Ctx) -> None:
    """create/get/update collections, add and remove datasets (README)."""
    client = admin(ctx)
    scope = new_scope(client)
    name = f"somecollection{rand(4)}"
    # README: create_collection.sync(client=client, json_body=CollectionIn(name=..., scope=...))
    created = typed(
        create_collection.sync(
            client=client, json_body=CollectionIn(name=name, scope=scope, description="first")
        ),
        CollectionOut,
        "create_collection (sync)",
    )
    eq((created.name, created.scope, created.description), (name, scope, "first"), "CollectionOut")
    is_set(created.created, "CollectionOut.created")
    dup = CollectionIn(name=name, scope=scope)
    check_error(
        create_collection.sync_detailed(client=client, json_body=dup),
        409,
        "create_collection duplicate",
    )

    got = typed(
        check(
            get_collection.sync_detailed(scope=scope, name=name, client=client),
            200,
            "get_collection",
        ),
        CollectionOut,
        "get_collection",
    )
    eq(got.description, "first", "get_collection.description")
    listed = check(
        get_collections.sync_detailed(client=client, scope=scope), 200, "get_collections"
    )
    eq([c.name for c in listed], [name], "get_collections of the scope")
    listed = check(
        get_collections.sync_detailed(client=client, scope=scope, name="somecol"), 200, "prefix"
    )
    eq([c.name for c in listed], [name], "get_collections by prefix")
    listed = check(
        get_collections.sync_detailed(client=client, scope=scope, name="other"), 200, "other prefix"
    )
    eq([c.name for c in listed], [], "get_collections by another prefix")

    resp = update_collection.sync_detailed(
        scope=scope, name=name, client=client, json_body=CollectionUpdate(description="second")
    )
    eq(
        typed(
            check(resp, 200, "update_collection"), CollectionOut, "update_collection"
        ).description,
        "second",
        "desc",
    )

    ds = new_dataset(client, scope)
    other = new_dataset(client, scope, name="otherdataset")
    # README: add_dataset_to_collection.sync(client, scope, name=collection.name, dataset_uid=...)
    added = add_dataset_to_collection.sync(
        client=client, scope=scope, name=name, dataset_uid=ds.uid
    )
    eq(
        typed(added, CollectionOut, "add_dataset_to_collection").name,
        name,
        "add_dataset_to_collection.name",
    )
    in_it = fetch_dataset(client, scope, ds.uid)
    eq([c.name for c in collections_of(in_it)], [name], "DatasetOut.collections after adding")
    eq(collections_of(in_it)[0].description, "second", "DatasetOut.collections[0].description")
    eq(
        collections_of(fetch_dataset(client, scope, other.uid)),
        [],
        "collections of a dataset not added",
    )
    expect_found(client, [ds.uid], "collection", scope=scope, collection=name)
    check_error(
        add_dataset_to_collection.sync_detailed(
            scope=scope, name=name, dataset_uid=rand(), client=client
        ),
        404,
        "add an unknown dataset to a collection",
    )

    resp = remove_dataset_from_collection.sync_detailed(
        scope=scope, name=name, dataset_uid=ds.uid, client=client
    )
    typed(
        check(resp, 200, "remove_dataset_from_collection"),
        CollectionOut,
        "remove_dataset_from_collection",
    )
    eq(
        collections_of(fetch_dataset(client, scope, ds.uid)),
        [],
        "DatasetOut.collections after removing",
    )
    expect_found(client, [], "collection after removing", scope=scope, collection=name)

    # Renaming a collection keeps its datasets.
    check(
        add_dataset_to_collection.sync_detailed(
            scope=scope, name=name, dataset_uid=ds.uid, client=client
        ),
        200,
        "add again",
    )
    renamed = f"renamed{rand(4)}"
    resp = update_collection.sync_detailed(
        scope=scope, name=name, client=client, json_body=CollectionUpdate(name=renamed)
    )
    eq(
        typed(check(resp, 200, "rename collection"), CollectionOut, "rename").name,
        renamed,
        "renamed collection",
    )
    check_error(
        get_collection.sync_detailed(scope=scope, name=name, client=client),
        404,
        "old collection name",
    )
    eq(
        [c.name for c in collections_of(fetch_dataset(client, scope, ds.uid))],
        [renamed],
        "collections after rename",
    )
    expect_found(client, [ds.uid], "renamed collection", scope=scope, collection=renamed)


@flow
def flow_files(ctx: Ctx) -> None:
    """add_file, update_file, get_file before any content, delete_file."""
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope)
    collected = utcnow() - dt.timedelta(minutes=5)
    body = FileIn(
        name="measurement.txt",
        uid=rand(),
        dataset_uid=ds.uid,
        scope=scope,
        collected=collected,
        creator="interop",
        mimetype="text/plain",
        rating=2,
        filetype=FileType.RAW,
        duration=2.5,
    )
    resp = add_file.sync_detailed(client=client, json_body=body)
    out = typed(check(resp, 200, "add_file"), FileOut, "add_file")
    eq(
        (out.name, out.uid, out.scope),
        ("measurement.txt", body.uid, scope),
        "FileOut name/uid/scope",
    )
    eq(out.status, FileStatus.UNAVAILABLE, "FileOut.status")
    eq(out.uploads, [], "FileOut.uploads")
    eq(
        (out.mimetype, out.filetype, out.rating, out.creator),
        ("text/plain", FileType.RAW, 2, "interop"),
        "fields",
    )
    eq(out.duration, 2.5, "FileOut.duration")
    eq(as_utc(out.collected, "FileOut.collected"), collected, "FileOut.collected")
    is_set(out.created, "FileOut.created")
    eq(out.immutable, False, "FileOut.immutable")
    is_set(out.download_link, "FileOut.download_link")
    check_error(add_file.sync_detailed(client=client, json_body=body), 409, "add_file duplicate")

    # Every field with a value is sent, defaults too: the original client reads an omitted
    # field as Unset (which is falsy), not as the default.
    plain = FileIn(name="plain", uid=rand(), dataset_uid=ds.uid, scope=scope)
    resp = add_file.sync_detailed(client=client, json_body=plain)
    defaults = typed(check(resp, 200, "add_file with defaults"), FileOut, "add_file with defaults")
    eq(
        (defaults.mimetype, defaults.filetype, defaults.rating, defaults.immutable),
        ("application/octet-stream", FileType.UNDEFINED, 0, False),
        "FileOut mimetype/filetype/rating/immutable of a file made with the defaults",
    )
    check(delete_file.sync_detailed(scope=scope, file_uid=plain.uid, client=client), 200, "delete")
    orphan = FileIn(name="orphan", uid=rand(), dataset_uid=rand(), scope=scope)
    check_error(
        add_file.sync_detailed(client=client, json_body=orphan),
        404,
        "add_file to an unknown dataset",
    )

    listed = [f for f in files_of(fetch_dataset(client, scope, ds.uid)) if f.uid == body.uid]
    eq(len(listed), 1, "the new file in DatasetOut.files")
    eq(listed[0].status, FileStatus.UNAVAILABLE, "status in DatasetOut.files")

    update = FileUpdate(
        name="renamed.csv",
        mimetype="text/csv",
        rating=4,
        filetype=FileType.DERIVED,
        altlocation="x",
    )
    resp = update_file.sync_detailed(
        scope=scope, file_uid=body.uid, client=client, json_body=update
    )
    changed = typed(check(resp, 200, "update_file"), FileOut, "update_file")
    eq(
        (changed.name, changed.mimetype, changed.rating, changed.filetype, changed.altlocation),
        ("renamed.csv", "text/csv", 4, FileType.DERIVED, "x"),
        "update_file fields",
    )
    eq(changed.creator, "interop", "update_file left creator")
    eq(
        file_record(client, scope, body.uid).name,
        "renamed.csv",
        "get_file_uploads after update_file",
    )

    # No content yet: 409 on download.
    check_error(download(client, scope, body.uid, "bytes=0-9"), 409, "get_file before any upload")
    check_error(download(client, scope, rand(), "bytes=0-9"), 404, "get_file of an unknown file")

    resp = delete_file.sync_detailed(scope=scope, file_uid=body.uid, client=client)
    deleted = check(resp, 200, "delete_file")
    if not isinstance(deleted, dict) or "detail" not in deleted:
        fail(f"delete_file: expected a {{'detail': ...}} body, got {resp.content!r}")
    check_error(
        get_file_uploads.sync_detailed(scope=scope, file_uid=body.uid, client=client),
        404,
        "deleted file",
    )
    check_error(
        update_file.sync_detailed(scope=scope, file_uid=body.uid, client=client, json_body=update),
        404,
        "update_file of a deleted file",
    )
    eq(
        [f.uid for f in files_of(fetch_dataset(client, scope, ds.uid))],
        [],
        "DatasetOut.files after delete_file",
    )


@flow
def flow_upload_download(ctx: Ctx) -> None:
    """The README tus upload (upload_chunk, upload(stop_at), upload()), then ranged downloads."""
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope)
    data = payload(3000, seed=1)
    f = new_file(client, scope, ds.uid)

    tus = UploadClient(client)
    uploader = tus.uploader(
        file_stream=io.BytesIO(data), scope=scope, file_uid=f.uid, chunk_size=200
    )
    uploader.upload_chunk()  # README: "Upload a chunk i.e 200 bytes."
    eq(uploader.offset, 200, "offset after upload_chunk")
    if not str(uploader.url).startswith(f"{ctx.url}/api/v1/uploads/"):
        fail(f"the upload URL should be under {ctx.url}/api/v1/uploads/, got {uploader.url!r}")

    record = file_record(client, scope, f.uid)
    eq(record.status, FileStatus.PENDING, "status while an upload is open")
    eq(len(record.uploads), 1, "FileOut.uploads while uploading")
    upload = record.uploads[0]
    eq(upload.uid, upload_uid_of(str(uploader.url)), "UploadOut.uid is the id in the upload URL")
    eq(
        (upload.offset, upload.length, upload.concat, upload.completed),
        (200, 3000, False, False),
        "UploadOut",
    )
    is_set(upload.expires, "UploadOut.expires of an open upload")

    uploader.upload(stop_at=1000)  # README: "Continue uploading chunks till ... 1000 bytes."
    eq(uploader.offset, 1000, "offset after upload(stop_at=1000)")
    uploader.chunk_size = 800  # README: "increase the chunk size"
    uploader.upload()
    eq(uploader.offset, 3000, "offset after upload()")

    record = check_available(client, scope, f.uid, len(data))
    eq(
        [(u.offset, u.length, u.completed) for u in record.uploads],
        [(3000, 3000, True)],
        "UploadOut when done",
    )
    listed = next(x for x in files_of(fetch_dataset(client, scope, ds.uid)) if x.uid == f.uid)
    eq(
        (listed.status, listed.size),
        (FileStatus.AVAILABLE, 3000),
        "DatasetOut.files entry after the upload",
    )

    mimetype = "application/octet-stream"
    check_range(client, scope, f.uid, data, "bytes=0-99", 0, 99, mimetype)
    check_range(client, scope, f.uid, data, "bytes=1000-1999", 1000, 1999, mimetype)
    check_range(client, scope, f.uid, data, "bytes=1234-1234", 1234, 1234, mimetype)
    check_range(client, scope, f.uid, data, "bytes=2900-", 2900, 2999, mimetype)
    check_range(client, scope, f.uid, data, "bytes=-50", 2950, 2999, mimetype)
    check_range(client, scope, f.uid, data, "bytes=2990-5000", 2990, 2999, mimetype)
    check_range(client, scope, f.uid, data, "bytes=0-", 0, 2999, mimetype)  # whole file, still 206
    resp = download(client, scope, f.uid, "bytes=3000-")
    check(resp, 416, "get_file bytes=3000- (unsatisfiable)")
    eq(header(resp, "Content-Range", "416"), "bytes */3000", "Content-Range of a 416")

    # If-Range with the current ETag keeps the range; another one gets the whole file (200).
    etag = header(download(client, scope, f.uid, "bytes=0-0"), "ETag", "get_file bytes=0-0")
    same = cast(AuthenticatedClient, client.with_headers({"If-Range": etag}))
    check(
        get_file.sync_detailed(scope=scope, file_uid=f.uid, client=same, range_="bytes=10-19"),
        206,
        "If-Range",
    )
    stale = cast(AuthenticatedClient, client.with_headers({"If-Range": '"not-the-etag"'}))
    resp_raw = raw(get_file, scope=scope, file_uid=f.uid, client=stale, range_="bytes=10-19")
    eq(resp_raw.status_code, 200, "get_file with a stale If-Range")
    if resp_raw.content != data:
        fail("get_file with a stale If-Range: the whole content differs from the upload")

    # Without Range: 200 and all of it (the generated parser cannot read it: raw request).
    resp_raw = raw(get_file, scope=scope, file_uid=f.uid, client=client)
    eq(resp_raw.status_code, 200, "get_file without Range")
    if resp_raw.content != data:
        fail("get_file without Range: content differs from the upload")
    eq(resp_raw.headers.get("Content-Length"), "3000", "Content-Length without Range")

    # README: "perform downloads in parallel" with ranges.
    bounds = [(0, 999), (1000, 1999), (2000, 2999)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        parts = list(
            pool.map(lambda b: download(client, scope, f.uid, f"bytes={b[0]}-{b[1]}"), bounds)
        )
    for (start, end), part in zip(bounds, parts, strict=False):
        check(part, 206, f"parallel range {start}-{end}")
    if b"".join(p.content for p in parts) != data:
        fail("parallel ranged downloads do not reassemble the upload")

    # The download_link, when it points at this server, serves the same bytes.
    link = record.download_link
    is_set(link, "FileOut.download_link of an available file")
    if str(link).startswith(ctx.url):
        resp_raw = httpx.get(str(link), headers={**client.get_headers(), "Range": "bytes=0-99"})
        eq(resp_raw.status_code, 206, "download_link with a range")
        if resp_raw.content != data[:100]:
            fail("download_link: the range differs from the upload")


@flow
def flow_upload_resume(ctx: Ctx) -> None:
    """Resume an upload from its URL (HEAD for the offset), HEAD headers, checksums."""
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope)
    data = payload(5000, seed=2)
    f = new_file(client, scope, ds.uid, mimetype="text/plain")
    tus = UploadClient(client)
    first = tus.uploader(file_stream=io.BytesIO(data), scope=scope, file_uid=f.uid, chunk_size=1000)
    first.upload_chunk()
    eq(first.offset, 1000, "offset after the first chunk")
    upload_uid = upload_uid_of(str(first.url))

    # tuspy resumes from the URL: it asks the offset with HEAD.
    second = tus.uploader(
        file_stream=io.BytesIO(data), scope=scope, file_uid=f.uid, url=first.url, chunk_size=1500
    )
    eq(second.offset, 1000, "offset a resumed uploader reads with HEAD")

    # status_upload is HEAD: its generated parser cannot read an empty 200 (raw request).
    head = raw(status_upload, upload_uid=upload_uid, client=client, tus_resumable="1.0.0")
    eq(head.status_code, 200, "status_upload (HEAD)")
    eq(head.headers.get("Upload-Offset"), "1000", "HEAD Upload-Offset")
    eq(head.headers.get("Upload-Length"), "5000", "HEAD Upload-Length")
    eq(head.headers.get("Tus-Resumable"), "1.0.0", "HEAD Tus-Resumable")
    if "no-store" not in (head.headers.get("Cache-Control") or ""):
        fail(f"HEAD Cache-Control should hold no-store, got {head.headers.get('Cache-Control')!r}")
    resp = status_upload.sync_detailed(upload_uid=upload_uid, client=client, tus_resumable="0.2.2")
    check(resp, 412, "status_upload with another tus version")

    second.upload()
    eq(second.offset, 5000, "offset after the resumed upload")
    check_available(client, scope, f.uid, 5000)
    check_range(client, scope, f.uid, data, "bytes=0-", 0, 4999, "text/plain")

    # Checksums (tuspy sends sha1 per chunk).
    g = new_file(client, scope, ds.uid)
    checked = tus.uploader(
        file_stream=io.BytesIO(data[:2100]),
        scope=scope,
        file_uid=g.uid,
        chunk_size=700,
        upload_checksum=True,
    )
    checked.upload()
    eq(checked.offset, 2100, "offset after a checksummed upload")
    check_available(client, scope, g.uid, 2100)
    check_range(client, scope, g.uid, data[:2100], "bytes=0-", 0, 2099, "application/octet-stream")


@flow
def flow_tus_protocol(ctx: Ctx) -> None:
    """The original client's options/start/continue/status/terminate_upload, get_file_uploads."""
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope)
    f = new_file(client, scope, ds.uid)

    for label, who in (("with a token", client), ("without a token", Client(base_url=ctx.url))):
        resp = options_upload.sync_detailed(client=who)  # type: ignore[arg-type]
        check(resp, 204, f"options_upload {label}")
        versions = [v.strip() for v in header(resp, "Tus-Version", "OPTIONS").split(",")]
        if "1.0.0" not in versions:
            fail(f"OPTIONS Tus-Version should list 1.0.0, got {versions!r}")
        extensions = {e.strip() for e in header(resp, "Tus-Extension", "OPTIONS").split(",")}
        missing = [e for e in TUS_EXTENSIONS if e not in extensions]
        if missing:
            fail(f"OPTIONS Tus-Extension lacks {missing!r}: {sorted(extensions)!r}")
        algorithms = {
            a.strip() for a in header(resp, "Tus-Checksum-Algorithm", "OPTIONS").split(",")
        }
        if not {"sha1", "md5", "sha256"} <= algorithms:
            fail(
                "OPTIONS Tus-Checksum-Algorithm should hold sha1, md5, sha256: "
                f"{sorted(algorithms)!r}"
            )
        if int(header(resp, "Tus-Max-Size", "OPTIONS")) <= 0:
            fail("OPTIONS Tus-Max-Size should be positive")

    metadata = f"scope {b64(scope)},uid {b64(f.uid)}"
    resp = start_upload.sync_detailed(
        client=client,
        upload_length=10,
        tus_resumable="1.0.0",
        upload_metadata=metadata,
        content_length=0,
    )
    check(resp, 201, "start_upload")
    location = header(resp, "Location", "start_upload")
    if not location.startswith(f"{ctx.url}/api/v1/uploads/"):
        fail(
            f"start_upload: Location should be absolute under {ctx.url}/api/v1/uploads/, "
            f"got {location!r}"
        )
    upload_uid = upload_uid_of(location)
    eq(file_record(client, scope, f.uid).status, FileStatus.PENDING, "status after start_upload")
    listed = file_record(client, scope, f.uid).uploads
    eq(
        [(u.uid, u.offset, u.length, u.completed) for u in listed],
        [(upload_uid, 0, 10, False)],
        "uploads",
    )

    def patch(offset: int, content_type: str = "application/offset+octet-stream") -> Response[Any]:
        return continue_upload.sync_detailed(
            upload_uid=upload_uid,
            client=client,
            tus_resumable="1.0.0",
            content_length=0,
            content_type=content_type,
            upload_offset=offset,
        )

    resp = patch(0)
    check(resp, 204, "continue_upload with no bytes")
    eq(header(resp, "Upload-Offset", "continue_upload"), "0", "Upload-Offset after an empty PATCH")
    check_error(patch(5), 409, "continue_upload at a wrong offset")
    check(patch(0, "text/plain"), 415, "continue_upload with a wrong Content-Type")

    resp = start_upload.sync_detailed(
        client=client,
        upload_length=10,
        tus_resumable="0.2.2",
        upload_metadata=metadata,
        content_length=0,
    )
    check(resp, 412, "start_upload with another tus version")
    unknown = f"scope {b64(scope)},uid {b64(rand())}"
    resp = start_upload.sync_detailed(
        client=client,
        upload_length=10,
        tus_resumable="1.0.0",
        upload_metadata=unknown,
        content_length=0,
    )
    check_error(resp, 404, "start_upload for an unknown file")
    anon = AuthenticatedClient(base_url=ctx.url, token="not-a-token")
    resp = start_upload.sync_detailed(
        client=anon,
        upload_length=10,
        tus_resumable="1.0.0",
        upload_metadata=metadata,
        content_length=0,
    )
    check_error(resp, 401, "start_upload without a valid token")

    resp = terminate_upload.sync_detailed(upload_uid=upload_uid, client=client)
    check(resp, 204, "terminate_upload")
    head = raw(status_upload, upload_uid=upload_uid, client=client, tus_resumable="1.0.0")
    if head.status_code not in (404, 410):
        fail(f"HEAD of a terminated upload: expected 404 or 410, got {head.status_code}")
    record = file_record(client, scope, f.uid)
    eq(record.status, FileStatus.UNAVAILABLE, "status after the only upload was terminated")

    # Concatenation: two partial uploads (created by start_upload, filled by tuspy), one final.
    data = payload(4096, seed=3)
    halves = (data[:1500], data[1500:])
    urls: list[str] = []
    tus = UploadClient(client)
    for part in halves:
        resp = start_upload.sync_detailed(
            client=client,
            upload_length=len(part),
            tus_resumable="1.0.0",
            upload_metadata=metadata,
            content_length=0,
            upload_concat="partial",
        )
        check(resp, 201, "start_upload partial")
        url = header(resp, "Location", "start_upload partial")
        filler = tus.uploader(
            file_stream=io.BytesIO(part), scope=scope, file_uid=f.uid, url=url, chunk_size=1024
        )
        eq(filler.offset, 0, "offset of a new partial upload")
        filler.upload()
        eq(filler.offset, len(part), "offset of a filled partial upload")
        urls.append(url)
    resp = start_upload.sync_detailed(
        client=client,
        tus_resumable="1.0.0",
        upload_metadata=metadata,
        content_length=0,
        upload_concat="final;" + " ".join(urls),
    )
    check(resp, 201, "start_upload final")
    check_available(client, scope, f.uid, len(data))
    check_range(
        client, scope, f.uid, data, "bytes=0-", 0, len(data) - 1, "application/octet-stream"
    )
    check_range(
        client, scope, f.uid, data, "bytes=1490-1509", 1490, 1509, "application/octet-stream"
    )


@flow
def flow_async_upload(ctx: Ctx) -> None:
    """UploadClient.async_uploader (tuspy's AsyncUploader over aiohttp)."""
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope)
    data = payload(10_000, seed=4)
    f = new_file(client, scope, ds.uid)
    uploader = UploadClient(client).async_uploader(
        scope, f.uid, file_stream=io.BytesIO(data), chunk_size=4096
    )
    asyncio.run(uploader.upload())
    eq(uploader.offset, len(data), "offset after the async upload")
    check_available(client, scope, f.uid, len(data))
    check_range(
        client, scope, f.uid, data, "bytes=0-", 0, len(data) - 1, "application/octet-stream"
    )
    check_range(
        client, scope, f.uid, data, "bytes=4090-4100", 4090, 4100, "application/octet-stream"
    )


@flow
def flow_access(ctx: Ctx) -> None:
    """Non-members get 403 everywhere in a scope; uploads to unknown or immutable files fail."""
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope)
    f = new_file(client, scope, ds.uid)
    data = payload(600, seed=5)
    UploadClient(client).uploader(
        file_stream=io.BytesIO(data), scope=scope, file_uid=f.uid
    ).upload()
    check_available(client, scope, f.uid, 600)
    collection = f"coll{rand(6)}"
    check(
        create_collection.sync_detailed(
            client=client, json_body=CollectionIn(name=collection, scope=scope)
        ),
        200,
        "create_collection",
    )

    username, password = new_user(ctx, client)
    user = session(ctx, username, password)
    g = new_file(client, scope, ds.uid)
    checks: list[tuple[str, Callable[[], Response[Any]]]] = [
        (
            "get_dataset",
            lambda: get_dataset.sync_detailed(scope=scope, dataset_uid=ds.uid, client=user),
        ),
        ("get_datasets", lambda: get_datasets.sync_detailed(client=user, scope=scope)),
        (
            "update_dataset",
            lambda: update_dataset.sync_detailed(
                scope=scope, dataset_uid=ds.uid, client=user, json_body=DatasetUpdate(name="hijack")
            ),
        ),
        (
            "delete_dataset",
            lambda: delete_dataset.sync_detailed(scope=scope, dataset_uid=ds.uid, client=user),
        ),
        (
            "create_dataset",
            lambda: create_dataset.sync_detailed(
                client=user,
                json_body=DatasetIn(name="x", uid=rand(), scope=scope, collected=utcnow()),
            ),
        ),
        (
            "add_metadata",
            lambda: add_metadata.sync_detailed(
                scope=scope, dataset_uid=ds.uid, client=user, json_body=meta_body({"key": "value"})
            ),
        ),
        ("get_collections", lambda: get_collections.sync_detailed(client=user, scope=scope)),
        (
            "get_collection",
            lambda: get_collection.sync_detailed(scope=scope, name=collection, client=user),
        ),
        (
            "add_file",
            lambda: add_file.sync_detailed(
                client=user, json_body=FileIn(name="x", uid=rand(), dataset_uid=ds.uid, scope=scope)
            ),
        ),
        ("get_file", lambda: download(user, scope, f.uid, "bytes=0-9")),
        (
            "get_file_uploads",
            lambda: get_file_uploads.sync_detailed(scope=scope, file_uid=f.uid, client=user),
        ),
        (
            "delete_file",
            lambda: delete_file.sync_detailed(scope=scope, file_uid=f.uid, client=user),
        ),
    ]
    for what, call in checks:
        check_error(call(), 403, f"non-member {what}")
    user_tus = UploadClient(user)
    tus_error(
        lambda: user_tus.uploader(
            file_stream=io.BytesIO(data), scope=scope, file_uid=g.uid
        ).upload(),
        403,
        "non-member upload",
    )
    # Nothing changed through the refused calls.
    after = fetch_dataset(client, scope, ds.uid)
    eq(after.name, ds.name, "dataset name after refused writes")
    eq(meta_of(after, "after refused writes"), {}, "dataset meta after refused writes")
    check_range(client, scope, f.uid, data, "bytes=0-9", 0, 9, "application/octet-stream")

    tus = UploadClient(client)
    tus_error(
        lambda: tus.uploader(file_stream=io.BytesIO(data), scope=scope, file_uid=rand()).upload(),
        404,
        "upload to an unknown file",
    )
    tus_error(
        lambda: tus.uploader(
            file_stream=io.BytesIO(data), scope=f"none{rand()}", file_uid=g.uid
        ).upload(),
        404,
        "upload to a file of an unknown scope",
    )

    # An immutable file takes one upload, then refuses more.
    frozen = new_file(client, scope, ds.uid, immutable=True)
    tus.uploader(file_stream=io.BytesIO(data), scope=scope, file_uid=frozen.uid).upload()
    record = file_record(client, scope, frozen.uid)
    if record.status not in (FileStatus.AVAILABLE, FileStatus.SECURED):
        fail(
            "status of an uploaded immutable file: expected available or secured, "
            f"got {record.status!r}"
        )
    eq(record.size, 600, "size of the uploaded immutable file")
    tus_error(
        lambda: tus.uploader(
            file_stream=io.BytesIO(data[::-1]), scope=scope, file_uid=frozen.uid
        ).upload(),
        409,
        "a second upload to an immutable file",
    )
    check_range(client, scope, frozen.uid, data, "bytes=0-", 0, 599, "application/octet-stream")


@flow
def flow_viewer(ctx: Ctx) -> None:
    """The original client's instagraph call: GET /viewer is an HTML page."""
    client = admin(ctx)
    resp = instagraph.sync_detailed(client=client)
    text = check(resp, 200, "instagraph (GET /viewer)")
    if not isinstance(text, str) or "<html" not in text.lower():
        fail(f"GET /viewer should be an HTML page, got {resp.content[:200]!r}")
    content_type = resp.headers.get("Content-Type", "")
    if not content_type.startswith("text/html"):
        fail(f"GET /viewer Content-Type should be text/html, got {content_type!r}")


@flow
def flow_expired_access(ctx: Ctx) -> None:
    """An expired access token gives 401; refreshing with it still in the header works."""
    ttl = lifetime(ctx.access_ttl, "ETIKET_ACCESS_TTL", "--access-token-ttl")
    token = login(ctx, ctx.admin_user, ctx.admin_password)
    client = AuthenticatedClient(base_url=ctx.url, token=token.access_token)
    check(get_userme.sync_detailed(client=client), 200, "get_userme with a fresh token")
    time.sleep(ttl + 1.5)
    resp = get_userme.sync_detailed(client=client)
    check_error(resp, 401, "get_userme with an expired token")
    challenge = header(resp, "WWW-Authenticate", "get_userme with an expired token")
    if not challenge.lower().startswith("bearer"):
        fail(f"WWW-Authenticate for an expired token should be Bearer, got {challenge!r}")
    # The original client refreshes with its expired access token still in the header.
    body = BodyRefreshToken(grant_type="refresh_token", refresh_token=token.refresh_token)
    fresh = typed(
        check(refresh_token.sync_detailed(client=client, form_data=body), 200, "refresh"),
        Token,
        "refresh with an expired bearer",
    )
    renewed = AuthenticatedClient(base_url=ctx.url, token=fresh.access_token)
    me = typed(get_userme.sync(client=renewed), UserOut, "get_userme after refresh")
    eq(me.username, ctx.admin_user, "get_userme.username after refresh")


@flow
def flow_expired_upload(ctx: Ctx) -> None:
    """An incomplete upload expires: 410 on HEAD and PATCH; a new upload then works."""
    expiry = lifetime(ctx.upload_expiry, "ETIKET_UPLOAD_EXPIRY", "--upload-expiry")
    client = admin(ctx)
    scope = new_scope(client)
    ds = new_dataset(client, scope)
    f = new_file(client, scope, ds.uid)
    data = payload(1000, seed=6)
    tus = UploadClient(client)
    uploader = tus.uploader(
        file_stream=io.BytesIO(data), scope=scope, file_uid=f.uid, chunk_size=100
    )
    started = dt.datetime.now(dt.timezone.utc)
    uploader.upload_chunk()
    eq(uploader.offset, 100, "offset after the first chunk")
    record = file_record(client, scope, f.uid)
    eq(record.status, FileStatus.PENDING, "status while the upload is open")
    expires = as_utc(record.uploads[0].expires, "UploadOut.expires")
    latest = started + dt.timedelta(seconds=expiry + 5)
    if not started - dt.timedelta(seconds=1) < expires <= latest:
        fail(f"UploadOut.expires {expires} should fall within {expiry} s of {started}")

    time.sleep(expiry + 1.5)
    # A fresh login, in case the server's access tokens are short-lived too.
    client = admin(ctx)
    tus.headers = client.get_headers()
    upload_uid = upload_uid_of(str(uploader.url))
    head = raw(status_upload, upload_uid=upload_uid, client=client, tus_resumable="1.0.0")
    eq(head.status_code, 410, "HEAD of an expired upload")
    tus_error(uploader.upload, 410, "PATCH of an expired upload")
    eq(file_record(client, scope, f.uid).status, FileStatus.UNAVAILABLE, "status after expiry")

    again = tus.uploader(file_stream=io.BytesIO(data), scope=scope, file_uid=f.uid)
    again.upload()
    check_available(client, scope, f.uid, len(data))
    check_range(client, scope, f.uid, data, "bytes=0-", 0, 999, "application/octet-stream")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def run(names: Iterable[str], ctx: Ctx) -> int:
    status = 0
    for name in names:
        try:
            FLOWS[name](ctx)
        except Exception as error:  # report every kind of failure, then go on with the next flow
            traceback.print_exc()
            kind = "" if isinstance(error, AssertionError) else f"{type(error).__name__}: "
            print(f"FAIL {name}: {kind}{error}", flush=True)
            status = 1
        else:
            print(f"OK {name}", flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flows", nargs="*", help=f"flows to run: all, or any of {', '.join(FLOWS)}")
    parser.add_argument("--list", action="store_true", help="print the flow names and exit")
    parser.add_argument("--url", default=os.environ.get("ETIKET_URL"))
    parser.add_argument("--user", default=os.environ.get("ETIKET_USER"))
    parser.add_argument("--password", default=os.environ.get("ETIKET_PASSWORD"))
    parser.add_argument(
        "--access-ttl",
        type=float,
        default=os.environ.get("ETIKET_ACCESS_TTL"),
        help="the server's --access-token-ttl, for expired_access",
    )
    parser.add_argument(
        "--upload-expiry",
        type=float,
        default=os.environ.get("ETIKET_UPLOAD_EXPIRY"),
        help="the server's --upload-expiry, for expired_upload",
    )
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(FLOWS))
        return 0
    if args.flows in ([], ["all"]):
        names = [name for name in FLOWS if name not in SHORT_LIVED]
    else:
        names = list(args.flows)
    unknown = [n for n in names if n not in FLOWS]
    if unknown:
        parser.error(f"unknown flow(s) {unknown!r}; known: {', '.join(FLOWS)}")
    if not (args.url and args.user and args.password):
        parser.error(
            "give ETIKET_URL, ETIKET_USER and ETIKET_PASSWORD (or --url, --user, --password)"
        )
    ctx = Ctx(
        url=args.url.rstrip("/"),
        admin_user=args.user,
        admin_password=args.password,
        access_ttl=args.access_ttl,
        upload_expiry=args.upload_expiry,
    )
    return run(names, ctx)


if __name__ == "__main__":
    sys.exit(main())
