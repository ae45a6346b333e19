"""Bring your own session or connector, and the connection limits of ``Limits``."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

import aetiket
from tests.client.conftest import Recorder, scope_json
from tests.conftest import ServerProcess

pytestmark = pytest.mark.anyio

HOST = "aetiket-server.test"


class FixedResolver(AbstractResolver):
    """Resolves one made-up host name to 127.0.0.1 (and nothing else): a request that
    reaches the server by that name went through the connector holding this resolver."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host != HOST:
            raise OSError(f"unknown host {host}")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


def by_name(url: str) -> str:
    return url.replace("127.0.0.1", HOST)


async def test_own_session_is_used_and_left_open(server: ServerProcess) -> None:
    resolver = FixedResolver()
    url = by_name(server.url)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver), trust_env=False
    ) as session:
        async with aetiket.Client(url, session=session, trust_env=False) as client:
            await client.login(server.admin_user, server.admin_password)
            assert (await client.users.me()).username == server.admin_user
        assert resolver.asked and set(resolver.asked) == {HOST}
        assert not session.closed
        # Still usable by its owner, and by another client.
        async with session.options(url + "/api/v1/uploads/") as resp:
            assert resp.status == 204
        async with aetiket.Client(url, session=session) as client:
            await client.login(server.admin_user, server.admin_password)
            assert (await client.users.me()).admin
        assert not session.closed
        client_after = aetiket.Client(url, session=session)
        await client_after.aclose()  # closing a client never closes a borrowed session
        assert not session.closed
    assert session.closed


async def test_own_connector_is_used_and_left_open(server: ServerProcess) -> None:
    resolver = FixedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver)
    try:
        url = by_name(server.url)
        async with aetiket.Client(url, connector=connector, trust_env=False) as client:
            await client.login(server.admin_user, server.admin_password)
            assert (await client.users.me()).username == server.admin_user
        assert set(resolver.asked) == {HOST}
        assert not connector.closed
        async with aetiket.Client(url, connector=connector, trust_env=False) as client:
            await client.login(server.admin_user, server.admin_password)
            await client.scopes.list().all()
        assert not connector.closed
    finally:
        await connector.close()


async def test_without_own_connector_the_name_does_not_resolve(server: ServerProcess) -> None:
    # The control for the two tests above: the made-up name only works via the resolver.
    async with aetiket.Client(
        by_name(server.url), trust_env=False, retry=aetiket.RetryPolicy(max_attempts=1)
    ) as client:
        with pytest.raises(aetiket.TransportError):
            await client.login(server.admin_user, server.admin_password)


@pytest.mark.parametrize(
    "limits",
    [aetiket.Limits(max_connections=2), aetiket.Limits(max_connections=100, max_per_host=2)],
    ids=["max_connections", "max_per_host"],
)
async def test_limits_bound_open_connections(limits: aetiket.Limits) -> None:
    async def scope(request: web.Request) -> web.Response:
        return web.json_response(scope_json(request.path.rsplit("/", 1)[1]))

    routes: dict[str, Any] = {f"/api/v1/scopes/s{i}": scope for i in range(20)}
    async with Recorder(routes, delay=0.05) as srv:
        async with aetiket.Client(srv.url, token="t", limits=limits, trust_env=False) as client:
            results: dict[int, str] = {}

            async def one(i: int) -> None:
                results[i] = (await client.scopes.get(f"s{i}")).name

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(one, i)
        assert results == {i: f"s{i}" for i in range(20)}
        assert len(srv.seen) == 20
        assert srv.max_inflight == 2
        assert len({s.peer_port for s in srv.seen}) <= 2  # kept alive and reused


async def test_default_limits_allow_concurrency() -> None:
    # The control: without a low limit the same calls do overlap.
    async with Recorder(delay=0.05) as srv:
        async with (
            aetiket.Client(srv.url, token="t", trust_env=False) as client,
            anyio.create_task_group() as tg,
        ):
            for i in range(10):
                tg.start_soon(client._http.call, "GET", f"/x{i}")
        assert srv.max_inflight > 2
