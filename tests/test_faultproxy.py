"""The fault proxy itself (tests/faultproxy.py): each knob observably does what it says.

Raw aiohttp requests go through the proxy to a real `aetiket serve` (the session's
server); framing corners (chunked and connection-delimited answers, HEAD, 204) use a
small aiohttp.web app and a raw asyncio server as upstream.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import anyio
import pytest
from aiohttp import web

from tests.conftest import ServerProcess
from tests.faultproxy import Fault, FaultProxy, LogEntry
from tests.http import OCTETS, TUS, Api
from tests.server.tus_support import Ctx, context, created, eventually, offset_of, pattern
from tests.timing import bounded

pytestmark = pytest.mark.anyio

ME = "/api/v1/users/me"


@pytest.fixture
async def ctx(server: ServerProcess) -> AsyncIterator[Ctx]:
    async with context(server.url, server.admin_user, server.admin_password) as c:
        yield c


@pytest.fixture
async def proxy(server: ServerProcess) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(server.url) as p:
        yield p


@pytest.fixture
async def via(ctx: Ctx, proxy: FaultProxy) -> AsyncIterator[Api]:
    """The regular user of ``ctx``, talking through the proxy on its own session."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Api(session, proxy.url, ctx.api.token)


@bounded(30)
async def test_forwards_and_counts(ctx: Ctx, proxy: FaultProxy, via: Api) -> None:
    form = b"username=nobody&password=wrong-password&scope="
    ans = await via.request(
        "POST",
        "/api/v1/token",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ans.status == 401
    bodies = [ans.body]
    for _ in range(3):
        ans = await via.request("GET", ME)
        assert ans.status == 200, ans.body
        bodies.append(ans.body)
    assert ans.json()["username"] == (await ctx.api.ok("GET", ME))["username"]
    assert proxy.count("GET", ME) == proxy.count("GET", ME, forwarded=True) == 3
    assert proxy.count("POST", "/api/v1/token", forwarded=True) == 1
    assert proxy.connections == 1  # keep-alive: one client connection for all four
    assert proxy.bytes_up == len(form)
    assert proxy.bytes_down == sum(len(b) for b in bodies)
    assert proxy.log == [
        LogEntry("POST", "/api/v1/token", 401, None, True),
        *[LogEntry("GET", ME, 200, None, True)] * 3,
    ]


@bounded(30)
async def test_reset_before_never_reaches_upstream(ctx: Ctx, proxy: FaultProxy, via: Api) -> None:
    rule = proxy.add(Fault(reset_before=True), method="POST", path="/api/v1/scopes/")
    name = f"fp-before-{time.monotonic_ns()}"
    with pytest.raises(aiohttp.ClientError):
        await via.request("POST", "/api/v1/scopes/", json={"name": name, "description": "x"})
    assert (await ctx.admin.request("GET", f"/api/v1/scopes/{name}")).status == 404
    assert proxy.count("POST", "/api/v1/scopes/") == 1
    assert proxy.count("POST", "/api/v1/scopes/", forwarded=True) == 0
    assert (rule.matched, rule.applied) == (1, 1)
    assert proxy.log[-1] == LogEntry("POST", "/api/v1/scopes/", None, "reset_before=True", False)


@bounded(30)
async def test_reset_after_forwarding_upstream_did_the_work(
    ctx: Ctx, proxy: FaultProxy, via: Api
) -> None:
    proxy.add(Fault(reset_after=True), method="POST", path="/api/v1/scopes/")
    name = f"fp-after-{time.monotonic_ns()}"
    with pytest.raises(aiohttp.ClientError):
        await via.request("POST", "/api/v1/scopes/", json={"name": name, "description": "x"})
    assert (await ctx.admin.request("GET", f"/api/v1/scopes/{name}")).status == 200
    assert proxy.count("POST", "/api/v1/scopes/", forwarded=True) == 1
    assert proxy.log[-1].status is None and proxy.log[-1].forwarded


@bounded(30)
async def test_match_by_count_method_prefix_regex_and_change_while_running(
    proxy: FaultProxy, via: Api
) -> None:
    # POST: aiohttp itself sends an idempotent request again once after a reset, which
    # would blur the count.
    token = "/api/v1/token"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    rule = proxy.add(Fault(reset_before=True), method="POST", regex=r"^/api/v1/tok", nth=(2, 3))
    proxy.add(Fault(reset_before=True), path="/api/v1/scopes/")

    async def ok() -> bool:
        try:
            ans = await via.request("POST", token, data=b"username=x&password=y", headers=form)
        except aiohttp.ClientError:
            return False
        return ans.status == 401

    assert [await ok() for _ in range(4)] == [True, False, False, True]
    assert (rule.matched, rule.applied) == (4, 2)
    # Another method, or a path outside the prefix, is not matched.
    assert (await via.request("GET", ME)).status == 200
    assert rule.matched == 4
    proxy.remove(rule)
    assert await ok()
    once = proxy.add(Fault(answer=502), path="/api/v1/users/", times=1)
    assert (await via.request("GET", ME)).status == 502
    assert (await via.request("GET", ME)).status == 200
    assert once.applied == 1
    proxy.clear()
    assert proxy.rules == []
    assert proxy.count("POST", token) == 5
    assert proxy.count("POST", token, forwarded=True) == 3
    assert proxy.count("GET", ME) == 3


@bounded(30)
async def test_answer_without_forwarding_keeps_the_connection(proxy: FaultProxy, via: Api) -> None:
    proxy.add(
        Fault(answer=503, answer_headers={"Retry-After": "1"}), method="GET", path=ME, times=1
    )
    proxy.add(Fault(answer=429, answer_body=b'{"detail": "slow down"}'), path=ME, nth=2)
    ans = await via.request("GET", ME)
    assert ans.status == 503
    assert ans.headers["Retry-After"] == "1"
    assert ans.json() == {"detail": "fault proxy: 503"}
    ans = await via.request("GET", ME)
    assert (ans.status, ans.json()) == (429, {"detail": "slow down"})
    assert (await via.request("GET", ME)).status == 200
    assert proxy.count("GET", ME) == 3
    assert proxy.count("GET", ME, forwarded=True) == 1
    assert proxy.connections == 1
    assert [e.status for e in proxy.log] == [503, 429, 200]
    assert proxy.log[0].fault == "answer=503 answer_headers={'Retry-After': '1'}"


@bounded(30)
async def test_delay(proxy: FaultProxy, via: Api) -> None:
    proxy.add(Fault(delay=1.0), path=ME)
    started = time.monotonic()
    assert (await via.request("GET", ME)).status == 200
    assert time.monotonic() - started >= 1.0
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await via.session.get(proxy.url + ME, timeout=timeout, headers=via._headers(None))
    assert time.monotonic() - started < 0.9


@bounded(30)
async def test_truncate_response_body(proxy: FaultProxy, via: Api) -> None:
    whole = (await via.request("GET", ME)).body
    assert len(whole) > 5
    proxy.add(Fault(truncate_after=5), path=ME)
    got = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with via.session.get(proxy.url + ME, headers=via._headers(None)) as resp:
            assert resp.status == 200
            assert resp.content_length == len(whole)
            for _ in range(100):
                piece = await resp.content.readany()
                if not piece:
                    break
                got += piece
    assert got == whole[:5]
    assert proxy.bytes_down == len(whole) + 5
    assert proxy.log[-1].status == 200 and proxy.log[-1].fault == "truncate_after=5"


@bounded(30)
async def test_stall_response_body(proxy: FaultProxy, via: Api) -> None:
    whole = (await via.request("GET", ME)).body
    proxy.add(Fault(stall=(3, 1.0)), path=ME)
    started = time.monotonic()
    assert (await via.request("GET", ME)).body == whole
    assert time.monotonic() - started >= 1.0
    # A reader with a short idle timeout gives up in the middle of the body.
    got = b""
    with pytest.raises(asyncio.TimeoutError):
        async with via.session.get(
            proxy.url + ME, headers=via._headers(None), timeout=aiohttp.ClientTimeout(sock_read=0.3)
        ) as resp:
            assert resp.status == 200
            for _ in range(100):
                piece = await resp.content.readany()
                if not piece:
                    break
                got += piece
    assert got == whole[:3]


@bounded(30)
async def test_rewrite_response_and_request_headers(proxy: FaultProxy, via: Api) -> None:
    seen: list[str | None] = []

    def keep(value: str | None) -> str | None:
        seen.append(value)
        return value

    proxy.add(
        Fault(
            set_headers={
                "ETag": '"forged"',
                "Content-Type": None,
                "Content-Length": keep,
                "X-Absent": keep,
            }
        ),
        path=ME,
        nth=1,
    )
    ans = await via.request("GET", ME)
    assert ans.status == 200
    assert ans.headers["ETag"] == '"forged"'
    assert "Content-Type" not in ans.headers
    assert "X-Absent" not in ans.headers
    assert seen == [str(len(ans.body)), None]
    assert ans.json()["username"]
    # Without its token the request is refused upstream.
    proxy.add(Fault(set_request_headers={"Authorization": None}), path=ME, times=1)
    assert (await via.request("GET", ME)).status == 401


@bounded(60)
async def test_cut_request_body(ctx: Ctx, proxy: FaultProxy, via: Api) -> None:
    data = pattern(1024 * 1024, seed=31)
    fuid = await ctx.file()
    location = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    path = urlsplit(location).path
    proxy.add(Fault(cut_request_after=300_001, cut_pause=0.5), method="PATCH")
    with pytest.raises(aiohttp.ClientError):
        await via.request("PATCH", path, data=data, headers={**TUS, **OCTETS, "Upload-Offset": "0"})
    assert proxy.bytes_up == 300_001
    assert proxy.count("PATCH", path, forwarded=True) == 1

    async def stored() -> bool:
        return await offset_of(ctx.api, location) == 300_001

    await eventually(stored, timeout=5)  # upstream kept exactly the bytes it got


@bounded(60)
async def test_stall_request_body(ctx: Ctx, proxy: FaultProxy, via: Api) -> None:
    data = pattern(200_000, seed=32)
    fuid = await ctx.file()
    location = await created(ctx.api, len(data), scope=ctx.scope, uid=fuid)
    proxy.add(Fault(stall_request=(1000, 1.0)), method="PATCH")
    started = time.monotonic()
    ans = await via.request(
        "PATCH", urlsplit(location).path, data=data, headers={**TUS, **OCTETS, "Upload-Offset": "0"}
    )
    assert ans.status == 204, ans.body
    assert time.monotonic() - started >= 1.0
    assert ans.headers["Upload-Offset"] == str(len(data))
    assert proxy.bytes_up == len(data)


@bounded(30)
async def test_upstream_unreachable_is_502() -> None:
    port = free_port()  # closed again: nothing listens there
    async with (
        FaultProxy(f"http://127.0.0.1:{port}") as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/x") as resp,
    ):
        assert resp.status == 502
    assert proxy.log == [LogEntry("GET", "/x", 502, None, False)]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ framing corners


@pytest.fixture
async def web_upstream() -> AsyncIterator[str]:
    """A small aiohttp.web app: chunked answers, a chunked-upload echo, 204, HEAD."""

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {"length": len(body), "chunked": request.headers.get("Transfer-Encoding")}
        )

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    app.router.add_post("/echo", echo)
    app.router.add_get("/empty", empty)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@bounded(30)
async def test_chunked_both_ways_head_and_204(web_upstream: str) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    async with FaultProxy(web_upstream) as proxy, aiohttp.ClientSession() as s:
        for _ in range(2):  # twice: the connection stays in step after chunked bodies
            async with s.get(proxy.url + "/chunked") as resp:
                assert resp.headers["Transfer-Encoding"] == "chunked"
                assert await resp.read() == b"part0;part1;part2;"
            async with s.post(proxy.url + "/echo", data=pieces()) as resp:
                assert await resp.json() == {"length": 5000, "chunked": "chunked"}
        assert proxy.connections == 1
        for _ in range(2):
            async with s.head(proxy.url + "/chunked") as resp:
                assert resp.status == 200
            async with s.get(proxy.url + "/empty") as resp:
                assert resp.status == 204
        proxy.add(Fault(truncate_after=8), path="/chunked")
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.get(proxy.url + "/chunked") as resp:
                await resp.read()
    assert [e.status for e in proxy.log] == [200, 200] * 2 + [200, 204] * 2 + [200]


@bounded(30)
async def test_answer_delimited_by_connection_end() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    upstream = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = upstream.sockets[0].getsockname()[1]
        async with FaultProxy(f"http://127.0.0.1:{port}") as proxy, aiohttp.ClientSession() as s:
            for _ in range(2):
                async with s.get(proxy.url + "/eof") as resp:
                    assert await resp.read() == b"until the end"
            assert proxy.connections == 2  # the answer ended with its connection
    finally:
        upstream.close()
        await upstream.wait_closed()


@bounded(30)
async def test_leaving_stops_every_task(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        proxy = FaultProxy(server.url)
        errors: list[BaseException] = []
        async with proxy:
            proxy.add(Fault(delay=30))

            async def call() -> None:
                try:
                    async with s.get(proxy.url + ME) as resp:
                        await resp.read()
                except aiohttp.ClientError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                for _ in range(200):
                    if proxy.seen:
                        break
                    await anyio.sleep(0.01)
                started = time.monotonic()
                await proxy.aclose()
            assert time.monotonic() - started < 5
        assert len(errors) == 1
        assert not proxy._tasks
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", proxy.port)


def test_fault_describes_itself() -> None:
    assert str(Fault()) == "none"
    assert str(Fault(delay=2.0, truncate_after=10)) == "delay=2.0 truncate_after=10"
    assert str(Fault(set_headers={"ETag": None})) == "set_headers={'ETag': None}"
