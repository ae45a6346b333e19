"""Tokens stay secret: not in reprs, logs or errors, and never sent to another origin.
TLS settings: a CA file, a context, or no verification."""

from __future__ import annotations

import logging
import socket
import ssl
import traceback
from collections.abc import Iterable

import pytest
from aiohttp import web

import aetiket
import aetiket.sync
from aetiket.errors import (
    NotFound,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from tests.client.conftest import Certs, Recorder, scope_json
from tests.conftest import ServerProcess

pytestmark = pytest.mark.anyio

NAMESPACES = ("users", "scopes", "datasets", "metadata", "collections", "files", "uploads")
NO_RETRY = aetiket.RetryPolicy(max_attempts=1)
WRONG_PASSWORD = "wrong-password-a1b2c3"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_secret(texts: Iterable[str], tokens: Iterable[str | None]) -> None:
    secrets = [t for t in tokens if t]
    assert secrets
    for text in texts:
        for token in secrets:
            assert token not in text


def exception_texts(exc: BaseException) -> list[str]:
    """str and repr of an exception and of every exception it chains to, and its
    formatted traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(seen.args), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return texts


def authorization(headers: dict[str, str]) -> list[str]:
    return [v for k, v in headers.items() if k.lower() == "authorization"]


# ---------------------------------------------------------------------------- reprs


async def test_reprs_never_show_tokens(server: ServerProcess) -> None:
    async with aetiket.Client(server.url) as client:
        assert "anonymous" in repr(client)
        await client.login(server.admin_user, server.admin_password)
        tokens = [client.token, client.refresh_token]
        await client.refresh()
        tokens += [client.token, client.refresh_token]
        assert "logged in" in repr(client)
        texts = [repr(client), str(client), repr(client._http), repr(client._http._tokens)]
        texts += [repr(getattr(client, ns)) for ns in NAMESPACES]
        texts += [repr(client.datasets.list("some-scope")), repr(vars(client.users))]
        assert_secret(texts, tokens)
    async with aetiket.Client(
        server.url, token="secret-access-value", refresh_token="secret-refresh-value"
    ) as given:
        assert_secret(
            [repr(given), *(repr(getattr(given, ns)) for ns in NAMESPACES)],
            ["secret-access-value", "secret-refresh-value"],
        )


def test_sync_reprs_never_show_tokens(server: ServerProcess) -> None:
    with aetiket.sync.Client(server.url) as client:
        client.login(server.admin_user, server.admin_password)
        tokens = [client.token, client.refresh_token]
        texts = [repr(client), str(client), *(repr(getattr(client, ns)) for ns in NAMESPACES)]
        texts.append(repr(client.datasets.list("some-scope")))
        assert_secret(texts, tokens)


# ---------------------------------------------------------------------------- logs


async def test_debug_logs_never_show_tokens(
    server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aetiket")
    tokens: list[str | None] = []
    scope = "s-" + aetiket.new_uid()
    async with aetiket.Client(server.url) as client:
        await client.login(server.admin_user, server.admin_password)
        tokens += [client.token, client.refresh_token]
        await client.users.me()
        await client.scopes.create(aetiket.ScopeIn(name=scope))
        await client.datasets.list(scope).all()
        with pytest.raises(NotFound):
            await client.datasets.get(scope, "nope")
        await client.refresh()
        tokens += [client.token, client.refresh_token]
        handed_over = client.refresh_token
        with pytest.raises(Unauthorized):
            await client.login(server.admin_user, WRONG_PASSWORD)
    # A client starting from a dead access token refreshes on the 401 by itself.
    async with aetiket.Client(server.url, token="dead-token", refresh_token=handed_over) as client:
        assert (await client.users.me()).username == server.admin_user
        assert client.refresh_token != handed_over
        tokens += [client.token, client.refresh_token]
        live = client.token
    # A retried connection failure, logged, while holding a token.
    retry = aetiket.RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with aetiket.Client(
        f"http://127.0.0.1:{closed_port()}", token=live, retry=retry
    ) as client:
        with pytest.raises(TransportError):
            await client.users.me()

    assert "access token refreshed" in caplog.text  # the debug log was on
    assert "retry 1" in caplog.text
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), repr(record.__dict__)]
    assert_secret(texts, [*tokens, server.admin_password, WRONG_PASSWORD])


# ---------------------------------------------------------------------------- errors


async def test_errors_never_show_tokens(server: ServerProcess) -> None:
    raised: list[BaseException] = []
    async with aetiket.Client(server.url) as client:
        await client.login(server.admin_user, server.admin_password)
        access, refresh = client.token, client.refresh_token
        assert access and refresh
        scope = "s-" + aetiket.new_uid()
        await client.scopes.create(aetiket.ScopeIn(name=scope))
        with pytest.raises(NotFound) as nf:
            await client.datasets.get(scope, "nope")
        raised.append(nf.value)
        with pytest.raises(ValidationFailed) as vf:  # the server's 422
            await client.datasets.list(scope).page(0, 10_001)
        raised.append(vf.value)
        with pytest.raises(ValidationFailed) as vf:  # the client's own check
            await client.datasets.create(
                aetiket.DatasetIn(name="x", uid=aetiket.new_uid(), scope=scope, meta={"a": "b"})
            )
        raised.append(vf.value)
        with pytest.raises(Unauthorized) as ua:
            await client.login(server.admin_user, WRONG_PASSWORD)
        raised.append(ua.value)
    # 401s, with the real tokens as part of what was sent.
    async with aetiket.Client(server.url, token=access + "x") as client:
        with pytest.raises(Unauthorized) as ua:
            await client.users.me()
        raised.append(ua.value)
    async with aetiket.Client(
        server.url, token=access + "x", refresh_token=refresh + "x"
    ) as client:
        with pytest.raises(Unauthorized) as ua:  # the refresh is refused too
            await client.users.me()
        raised.append(ua.value)
    async with aetiket.Client(
        f"http://127.0.0.1:{closed_port()}", token=access, refresh_token=refresh, retry=NO_RETRY
    ) as client:
        with pytest.raises(TransportError) as te:
            await client.users.me()
        raised.append(te.value)
        assert "127.0.0.1" in str(te.value)
        with pytest.raises(TransportError) as te:
            await client.login(server.admin_user, server.admin_password)
        raised.append(te.value)
    for exc in raised:
        assert_secret(
            exception_texts(exc), [access, refresh, server.admin_password, WRONG_PASSWORD]
        )


# ---------------------------------------------------------------------------- origins


async def test_token_is_sent_only_to_its_own_origin() -> None:
    secret = "secret-" + aetiket.new_uid()
    async with (
        Recorder() as home,
        Recorder() as other,
        aetiket.Client(home.url, token=secret) as client,
    ):
        await client._http.call("GET", "/api/v1/relative")
        await client._http.call("GET", home.url + "/api/v1/absolute")
        await client._http.call("GET", other.url + "/x")
        await client._http.call("POST", other.url + "/y", json={"a": 1})
    assert [(s.path, authorization(s.headers)) for s in home.seen] == [
        ("/api/v1/relative", [f"Bearer {secret}"]),
        ("/api/v1/absolute", [f"Bearer {secret}"]),
    ]
    assert [(s.method, s.path, authorization(s.headers)) for s in other.seen] == [
        ("GET", "/x", []),
        ("POST", "/y", []),
    ]


async def test_token_not_sent_to_another_origin_on_the_real_server(server: ServerProcess) -> None:
    async with Recorder() as other, aetiket.Client(server.url) as client:
        await client.login(server.admin_user, server.admin_password)
        await client._http.call("GET", other.url + "/x")
        assert (await client.users.me()).username == server.admin_user
    [seen] = other.seen
    assert authorization(seen.headers) == []


async def test_redirect_to_another_origin_drops_the_token() -> None:
    secret = "secret-" + aetiket.new_uid()

    async def scope_away(request: web.Request) -> web.Response:
        return web.json_response(scope_json("away"))

    async def created(request: web.Request) -> web.Response:
        return web.json_response(scope_json((await request.json())["name"]))

    async with Recorder({"/api/v1/scopes/away": scope_away, "/api/v1/scopes/": created}) as other:

        def redirect(status: int, location: str) -> object:
            async def handler(request: web.Request) -> web.Response:
                return web.Response(status=status, headers={"Location": location})

            return handler

        async def final(request: web.Request) -> web.Response:
            return web.json_response(scope_json("final"))

        routes = {
            "/api/v1/scopes/away": redirect(302, other.url + "/api/v1/scopes/away"),
            "/api/v1/scopes/": redirect(307, other.url + "/api/v1/scopes/"),
            "/api/v1/scopes/here": redirect(302, "/api/v1/scopes/final"),
            "/api/v1/scopes/final": final,
        }
        async with (
            Recorder(routes) as home,  # type: ignore[arg-type]
            aetiket.Client(home.url, token=secret) as client,
        ):
            assert (await client.scopes.get("away")).name == "away"
            made = await client.scopes.create(aetiket.ScopeIn(name="moved"))
            assert made.name == "moved"
            assert (await client.scopes.get("here")).name == "final"

    # home got the token on every request, including the same-origin redirect's target
    assert [(s.method, s.path) for s in home.seen] == [
        ("GET", "/api/v1/scopes/away"),
        ("POST", "/api/v1/scopes/"),
        ("GET", "/api/v1/scopes/here"),
        ("GET", "/api/v1/scopes/final"),
    ]
    assert all(authorization(s.headers) == [f"Bearer {secret}"] for s in home.seen)
    # the other origin never did
    assert [(s.method, s.path) for s in other.seen] == [
        ("GET", "/api/v1/scopes/away"),
        ("POST", "/api/v1/scopes/"),
    ]
    assert all(authorization(s.headers) == [] for s in other.seen)
    assert all(secret not in repr(s.headers) for s in other.seen)


# ---------------------------------------------------------------------------- TLS


async def test_tls_settings(certs: Certs) -> None:
    async def tls(request: web.Request) -> web.Response:
        return web.json_response(scope_json("tls"))

    async with Recorder({"/api/v1/scopes/tls": tls}, ssl_context=certs.server_context()) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        async with aetiket.Client(srv.url, ca_file=str(certs.ca_file)) as client:
            assert (await client.scopes.get("tls")).name == "tls"
        context = ssl.create_default_context(cafile=str(certs.ca_file))
        async with aetiket.Client(srv.url, ssl=context) as client:
            assert (await client.scopes.get("tls")).name == "tls"
        async with aetiket.Client(srv.url, ssl=False) as client:
            assert (await client.scopes.get("tls")).name == "tls"
        # Verification is on by default: an unknown CA is refused.
        async with aetiket.Client(srv.url, retry=NO_RETRY) as client:
            with pytest.raises(TransportError):
                await client.scopes.get("tls")
        assert len(srv.seen) == 3


def test_ca_file_with_ssl_is_refused(certs: Certs) -> None:
    context = ssl.create_default_context()
    with pytest.raises(ValueError):
        aetiket.Client("https://127.0.0.1:1", ca_file=str(certs.ca_file), ssl=False)
    with pytest.raises(ValueError):
        aetiket.Client("https://127.0.0.1:1", ca_file=str(certs.ca_file), ssl=context)
