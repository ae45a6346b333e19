"""Fixtures of the client tests: logged-in clients on the session-wide real server, fresh
users and scopes, a request counter, and small in-process HTTP servers that record what
reaches them (for the checks the real server cannot show: where a token goes, how many
connections are open)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import aetiket
from tests.conftest import ServerProcess

PASSWORD = "client-test-pw"


# ---------------------------------------------------------------------------- real server


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[aetiket.Client]:
    """The server's admin, logged in through the client."""
    async with aetiket.Client(server.url) as client:
        await client.login(server.admin_user, server.admin_password)
        yield client


async def new_user(admin: aetiket.Client, *, is_admin: bool = False) -> str:
    """A fresh user (password ``PASSWORD``) made by the admin; returns the username."""
    name = "u-" + aetiket.new_uid()[:12]
    await admin.users.create(
        aetiket.UserIn(
            username=name,
            firstname="Ada",
            lastname="Lovelace",
            email=f"{name}@example.org",
            hashed_password=PASSWORD,
            admin=is_admin,
        )
    )
    return name


@dataclasses.dataclass
class Member:
    """A regular user, logged in, member of a fresh scope."""

    client: aetiket.Client
    username: str
    scope: str


@pytest.fixture
async def member(server: ServerProcess, admin: aetiket.Client) -> AsyncIterator[Member]:
    username = await new_user(admin)
    async with aetiket.Client(server.url) as client:
        await client.login(username, PASSWORD)
        scope = await client.scopes.create(
            aetiket.ScopeIn(name="s-" + aetiket.new_uid(), description="client tests")
        )
        yield Member(client, username, scope.name)


@pytest.fixture
async def scope(admin: aetiket.Client) -> str:
    """A fresh scope of the admin."""
    out = await admin.scopes.create(
        aetiket.ScopeIn(name="s-" + aetiket.new_uid(), description="client tests")
    )
    return out.name


@dataclasses.dataclass
class Traced:
    """A logged-in admin client on a session that notes every request it sends."""

    client: aetiket.Client
    session: aiohttp.ClientSession
    requests: list[tuple[str, str]]  # (method, URL with query)

    def reset(self) -> None:
        self.requests.clear()


@pytest.fixture
async def traced(server: ServerProcess) -> AsyncIterator[Traced]:
    requests: list[tuple[str, str]] = []

    async def on_start(
        session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        requests.append((params.method, str(params.url)))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        aetiket.Client(server.url, session=session) as client,
    ):
        await client.login(server.admin_user, server.admin_password)
        requests.clear()
        yield Traced(client, session, requests)


# ---------------------------------------------------------------------------- recorder


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    peer_port: int


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Recorder:
    """A tiny aiohttp server on 127.0.0.1 (port 0) that records every request.

    ``routes`` maps a path to a handler; any other path answers 200 ``{}``. Use it as an
    async context manager: leaving it stops the server.
    """

    def __init__(
        self,
        routes: dict[str, Handler] | None = None,
        *,
        delay: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.routes = dict(routes or {})
        self.delay = delay
        self.ssl_context = ssl_context
        self.seen: list[Seen] = []
        self.inflight = 0
        self.max_inflight = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(
            Seen(
                request.method,
                request.path,
                request.query_string,
                dict(request.headers),
                peer[1] if peer else -1,
            )
        )
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            handler = self.routes.get(request.path)
            if handler is not None:
                return await handler(request)
            return web.json_response({})
        finally:
            self.inflight -= 1

    async def __aenter__(self) -> Recorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def scope_json(name: str) -> dict[str, Any]:
    """A ScopeOut body, for recorders that stand in for the API."""
    return {"name": name, "description": "from a recorder"}


# ---------------------------------------------------------------------------- TLS


@dataclasses.dataclass
class Certs:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aetiket test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = Certs(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    out.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    out.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out
