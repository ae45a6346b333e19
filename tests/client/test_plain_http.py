"""The plain HTTP/1.1 path of downloads (aetiket/_http.py ``PlainConnection``).

``parse_head`` is checked with Hypothesis: every well-formed head reads back as written,
and no input makes it raise anything but ``ProtocolError``. ``PlainConnection`` is driven
over a real socket pair, the test writing the server's side byte by byte: heads split
over reads, body bytes that come with the head, a connection closed before an answer, a
head too large, a header that would inject a line. (Whole downloads on this path, through
the fault proxy, are in tests/transfer/test_download_reliability.py.)
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aetiket._http import PlainAnswer, PlainConnection, parse_head
from aetiket.errors import ProtocolError, TransportError

TOKEN = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=20,
)
# Visible ASCII and inner spaces (leading and trailing blanks are not part of a value).
VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)


@given(
    minor=st.sampled_from(["0", "1"]),
    status=st.integers(100, 599),
    reason=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    fields=st.lists(
        st.tuples(TOKEN, VALUE).filter(
            lambda f: f[0].lower() not in ("content-length", "connection")
        ),
        max_size=8,
    ),
    length=st.none() | st.integers(0, 2**62),
    close=st.none() | st.sampled_from(["close", "keep-alive", "Keep-Alive, Upgrade"]),
)
def test_a_well_formed_head_reads_back_as_written(
    minor: str,
    status: int,
    reason: str,
    fields: list[tuple[str, str]],
    length: int | None,
    close: str | None,
) -> None:
    lines = [
        f"HTTP/1.{minor} {status} {reason}".rstrip()
        if reason.strip()
        else f"HTTP/1.{minor} {status}"
    ]
    lines += [f"{name}:  {value}\t" for name, value in fields]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if close is not None:
        lines.append(f"Connection: {close}")
    answer = parse_head("\r\n".join(lines).encode("latin-1"))
    assert answer.status == status
    assert answer.content_length == length
    for name, _ in fields:
        assert answer.headers.getall(name) == [v for n, v in fields if n.lower() == name.lower()]
    tokens = {t.strip().lower() for t in (close or "").split(",")}
    assert answer.keep_alive == ("keep-alive" in tokens if minor == "0" else "close" not in tokens)


@given(st.binary(max_size=300))
def test_no_input_breaks_the_parser_but_with_a_protocol_error(data: bytes) -> None:
    try:
        answer = parse_head(data)
    except ProtocolError:
        return
    assert 100 <= answer.status <= 999
    assert answer.content_length is None or answer.content_length >= 0


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Length: 6",
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: -1",
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 0x10",
        b"HTTP/1.1 206 Partial Content\r\n folded: line",
        b"HTTP/1.1 206 Partial Content\r\nName : value",
        b"HTTP/1.1 206 Partial Content\r\nNa\x00me: value",
        b"HTTP/1.1 206 Partial Content\r\nName: va\x00lue",
        b"HTTP/2 206",
        b"HTTP/1.1 2066 Partial",
        b"ICY 200 OK",
    ],
)
def test_malformed_heads_are_refused(head: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(head)


def test_the_same_content_length_twice_is_one() -> None:
    answer = parse_head(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 7\r\ncontent-length: 7")
    assert answer.content_length == 7
    assert answer.plain


@pytest.mark.parametrize(
    ("extra", "plain"),
    [
        (b"", True),
        (b"\r\nTransfer-Encoding: chunked", False),
        (b"\r\nContent-Encoding: gzip", False),
        (b"\r\nContent-Encoding: identity", True),
    ],
)
def test_only_a_206_of_raw_bytes_is_plain(extra: bytes, plain: bool) -> None:
    head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 7" + extra
    assert parse_head(head).plain is plain
    assert not parse_head(head.replace(b"206", b"200")).plain
    assert not parse_head(b"HTTP/1.1 206 Partial Content" + extra).plain  # no length


# ---------------------------------------------------------- a connection over a socket pair


@pytest.fixture
def pair() -> Iterator[tuple[PlainConnection, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    conn = PlainConnection(ours, "example.test:8080")
    try:
        yield conn, theirs
    finally:
        conn.close()
        theirs.close()


def request_of(theirs: socket.socket) -> bytes:
    theirs.settimeout(5)
    got = b""
    while not got.endswith(b"\r\n\r\n"):
        got += theirs.recv(4096)
    return got


@pytest.mark.anyio
async def test_a_head_split_over_reads_and_the_body_bytes_with_it(
    pair: tuple[PlainConnection, socket.socket],
) -> None:
    conn, theirs = pair
    wire = (
        b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\n"
        b"Content-Length: 10\r\n\r\n0123456789"
    )

    async def serve() -> None:
        await anyio.to_thread.run_sync(request_of, theirs)
        for i in range(0, len(wire), 7):  # the blank line itself split between writes
            theirs.sendall(wire[i : i + 7])
            await anyio.sleep(0.01)

    body = bytearray(10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(5):
            answer = await conn.get("/f?x=1", {"Range": "bytes=0-9"})
            n = len(answer.rest)
            body[:n] = answer.rest
            while n < 10:
                n += await conn.read_into(memoryview(body)[n:])
    assert answer.status == 206
    assert answer.headers["Content-Range"] == "bytes 0-9/10"
    assert answer.content_length == 10
    assert bytes(body) == b"0123456789"


async def exchange(
    pair: tuple[PlainConnection, socket.socket], target: str, headers: dict[str, str]
) -> tuple[PlainAnswer, bytes]:
    """One request on the pair's connection, answered with an empty 416; the answer and
    the request's bytes as they arrived."""
    conn, theirs = pair
    got: list[bytes] = []

    async def serve() -> None:
        got.append(await anyio.to_thread.run_sync(request_of, theirs))
        theirs.sendall(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(5):
            answer = await conn.get(target, headers)
    return answer, got[0]


@pytest.mark.anyio
async def test_the_request_is_what_was_asked(pair: tuple[PlainConnection, socket.socket]) -> None:
    answer, got = await exchange(pair, "/a%20b?sig=x", {"Range": "bytes=5-", "If-Range": '"e"'})
    assert answer.status == 416
    assert [got] == [
        b"GET /a%20b?sig=x HTTP/1.1\r\nHost: example.test:8080\r\n"
        b'Range: bytes=5-\r\nIf-Range: "e"\r\n\r\n'
    ]


@pytest.mark.anyio
async def test_a_connection_closed_before_the_answer_is_a_transport_error(
    pair: tuple[PlainConnection, socket.socket],
) -> None:
    conn, theirs = pair

    async def serve() -> None:
        await anyio.to_thread.run_sync(request_of, theirs)
        theirs.sendall(b"HTTP/1.1 206 Partial")
        theirs.shutdown(socket.SHUT_WR)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(5), pytest.raises(TransportError, match="closed before an answer"):
            await conn.get("/f", {})


@pytest.mark.anyio
async def test_a_head_without_end_is_refused(pair: tuple[PlainConnection, socket.socket]) -> None:
    conn, theirs = pair

    async def serve() -> None:
        await anyio.to_thread.run_sync(request_of, theirs)
        theirs.sendall(b"HTTP/1.1 206 Partial Content\r\n" + b"X-Pad: " + b"a" * (70 * 1024))

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(5), pytest.raises(ProtocolError, match="head over"):
            await conn.get("/f", {})


@pytest.mark.anyio
@pytest.mark.parametrize("header", [("X-A", "v\r\nInjected: 1"), ("X-A\nB", "v")])
async def test_a_header_with_a_line_break_is_refused(
    pair: tuple[PlainConnection, socket.socket], header: tuple[str, str]
) -> None:
    conn, theirs = pair
    with pytest.raises(ValueError, match="line breaks"):
        await conn.get("/f", dict([header]))
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(1)  # nothing was sent


@pytest.mark.anyio
async def test_a_head_of_bare_lfs_ends_at_its_blank_line(
    pair: tuple[PlainConnection, socket.socket],
) -> None:
    """RFC 9112 2.2 lets a recipient take a bare LF as a line end (aiohttp does): such a
    head ends at its blank line, not somewhere in the body or never (a kept-alive
    connection with a short body would wait out the read timeout)."""
    conn, theirs = pair

    async def serve() -> None:
        await anyio.to_thread.run_sync(request_of, theirs)
        theirs.sendall(
            b"HTTP/1.1 206 Partial Content\nContent-Range: bytes 0-9/10\n"
            b"Content-Length: 10\n\n0123456789"
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(5), pytest.raises(ProtocolError):  # (taken by aiohttp then)
            await conn.get("/f", {})


@pytest.mark.anyio
async def test_a_header_value_beyond_latin_1_is_sent_as_utf_8(
    pair: tuple[PlainConnection, socket.socket],
) -> None:
    _, got = await exchange(pair, "/f", {"X-Name": "日本"})
    assert "X-Name: 日本\r\n".encode() in got  # as aiohttp sends it
