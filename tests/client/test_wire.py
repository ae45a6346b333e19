"""What the client puts on the wire whatever session it runs on: its headers, and
bodies a server may compress."""

from __future__ import annotations

import aiohttp
import anyio
import pytest
from aiohttp import web

import aetiket
from tests.client.conftest import Recorder, scope_json

pytestmark = pytest.mark.anyio


async def test_client_headers_go_with_every_session_kind() -> None:
    """``headers=`` (and the User-Agent) are the client's, whoever owns the session."""
    async with Recorder() as srv:
        async with aetiket.Client(srv.url, headers={"X-Lab": "lab1"}) as client:
            await client._http.call("GET", "/own")
        connector = aiohttp.TCPConnector()
        try:
            async with aetiket.Client(
                srv.url, connector=connector, headers={"X-Lab": "lab1"}
            ) as client:
                await client._http.call("GET", "/connector")
        finally:
            await connector.close()
        async with (
            aiohttp.ClientSession() as session,
            aetiket.Client(srv.url, session=session, headers={"X-Lab": "lab1"}) as client,
        ):
            await client._http.call("GET", "/session")
    assert [s.path for s in srv.seen] == ["/own", "/connector", "/session"]
    for seen in srv.seen:
        assert seen.headers.get("X-Lab") == "lab1", seen.path
        assert seen.headers.get("User-Agent", "").startswith("aetiket/"), seen.path


async def test_compressed_json_answers_decode() -> None:
    """A server (or a proxy in front of it) compresses JSON when the request allows it:
    the client either asks for identity or decompresses what it accepted."""

    async def compressed(request: web.Request) -> web.Response:
        resp = web.json_response(scope_json(request.path.rsplit("/", 1)[1]))
        resp.enable_compression()  # gzip/deflate if Accept-Encoding allows it
        return resp

    routes = {"/api/v1/scopes/gz": compressed}
    async with Recorder(routes) as srv, aetiket.Client(srv.url, token="t") as client:  # type: ignore[arg-type]
        out = await client.scopes.get("gz")
    assert isinstance(out, aetiket.ScopeOut) and out.name == "gz"


async def test_files_read_refuses_a_big_answer_before_reading_it() -> None:
    """With a Content-Length over max_bytes, ``files.read`` raises at once: the body is
    never waited for (here it would never come)."""
    release = anyio.Event()

    async def announced(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = 10_000_000
        await resp.prepare(request)
        await resp.write(b"x" * 1024)
        await release.wait()
        return resp

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(32):
            await resp.write(b"y" * 65536)
        await resp.write_eof()
        return resp

    routes = {"/api/v1/files/s/announced": announced, "/api/v1/files/s/chunked": chunked}
    async with Recorder(routes) as srv:  # type: ignore[arg-type]
        try:
            async with aetiket.Client(srv.url, token="t") as client:
                with anyio.fail_after(5), pytest.raises(ValueError, match="max_bytes"):
                    await client.files.read("s", "announced", max_bytes=1_000_000)
                # Without a length, reading stops one byte past the limit.
                with pytest.raises(ValueError, match="1000000 bytes"):
                    await client.files.read("s", "chunked", max_bytes=1_000_000)
                assert len(await client.files.read("s", "chunked", max_bytes=2**21)) == 2**21
        finally:
            release.set()
