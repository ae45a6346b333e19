"""The plain path of downloads against answers that are odd but valid HTTP/1.1 (or that
aiohttp reads): whatever the one HTTP path (aiohttp) takes, a download on the plain path
(aetiket/_http.py ``PlainConnection``) must take too, and give the same bytes.

The server is a raw asyncio one written here: it serves one blob with Range and
keep-alive, and writes the heads of its answers after the first (the probe, which goes
the aiohttp way) in the style the test asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from aetiket import Client
from aetiket._config import RetryPolicy, Timeouts, TransferConfig
from aetiket.transfer.download import PROBE
from tests.timing import bounded

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
DATA = random.Random(7).randbytes(PROBE + 2 * MiB)
SHA256 = hashlib.sha256(DATA).hexdigest()
Style = Callable[[list[bytes]], bytes]


def crlf(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


class RangeServer:
    """Serves ``DATA`` at any path with Range and keep-alive; answers after the first
    have their head written by ``style`` (the lines, without line ends)."""

    def __init__(
        self, style: Style = crlf, lead: bytes = b"", faults: dict[int, str] | None = None
    ) -> None:
        self.style = style
        self.lead = lead  # sent before the head of every answer after the first
        # By request (from 1): "503" (with Retry-After: 0), or "close" (no answer).
        self.faults = faults or {}
        self.requests = 0
        self.answers: list[int] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                fault = self.faults.get(self.requests)
                if fault == "close":
                    break
                if fault == "503":
                    writer.write(
                        crlf([b"HTTP/1.1 503 Busy", b"Retry-After: 0", b"Content-Length: 0"])
                    )
                    await writer.drain()
                    continue
                match = re.search(rb"\r\nRange: bytes=(\d+)-(\d*)\r\n", head, re.IGNORECASE)
                start = int(match[1]) if match else 0
                end = int(match[2]) + 1 if match and match[2] else len(DATA)
                end = min(end, len(DATA))
                body = DATA[start:end]
                first = not self.answers
                self.answers.append(206)
                lines = [
                    b"HTTP/1.1 206 Partial Content",
                    f"Content-Range: bytes {start}-{end - 1}/{len(DATA)}".encode(),
                    f"Content-Length: {len(body)}".encode(),
                    b'ETag: "v1"',
                ]
                if first:
                    writer.write(crlf(lines) + body)
                else:
                    writer.write(self.lead + self.style(lines) + body)
                await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[RangeServer]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.close()
            with contextlib.suppress(Exception):
                server.close_clients()  # type: ignore[attr-defined]


def client(url: str, tmp: Path, attempts: int = 2, **transfer: object) -> Client:
    return Client(
        url,
        timeouts=Timeouts(connect=5, read=5),
        retry=RetryPolicy(max_attempts=attempts, backoff_base=0.01, backoff_max=0.05),
        transfer=TransferConfig(resume_dir=tmp / "resume", **transfer),  # type: ignore[arg-type]
        trust_env=False,
    )


def lf_only(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines) + b"\n"


def folded(lines: list[bytes]) -> bytes:
    return crlf([*lines[:1], b"X-Note: one", b" two", *lines[1:]])


def control_byte(lines: list[bytes]) -> bytes:
    return crlf([*lines[:1], b"X-Note: a\x01b", *lines[1:]])


@bounded(30)
@pytest.mark.parametrize(
    ("style", "lead"),
    [(lf_only, b""), (folded, b""), (control_byte, b""), (crlf, b"\r\n")],
    ids=["lf-only", "obs-fold", "control-byte", "crlf-before-the-head"],
)
async def test_an_answer_aiohttp_reads_is_read(tmp_path: Path, style: Style, lead: bytes) -> None:
    dest = tmp_path / "out.bin"
    async with (
        RangeServer(style, lead).run() as server,
        client(server.url, tmp_path, max_retries=1) as c,
    ):
        result = await c.download_url(f"{server.url}/f", dest, parallel=1, sha256=SHA256)
    assert result.sha256 == SHA256
    assert dest.read_bytes() == DATA


@bounded(30)
@pytest.mark.parametrize("fault", ["503", "close"])
async def test_a_request_is_retried_as_on_the_one_path(tmp_path: Path, fault: str) -> None:
    """The one path tries a GET ``RetryPolicy.max_attempts`` times (after a 503, 429,
    502, 504 or a failed connection) before the segment counts one failure: so does the
    plain path. Here 3 failures in a row, 5 attempts, no segment retry."""
    dest = tmp_path / "out.bin"
    faults = dict.fromkeys((2, 3, 4), fault)  # the GETs after the probe's
    async with (
        RangeServer(faults=faults).run() as server,
        client(server.url, tmp_path, attempts=5, max_retries=0) as c,
    ):
        result = await c.download_url(f"{server.url}/f", dest, parallel=1, sha256=SHA256)
    assert result.sha256 == SHA256
    assert dest.read_bytes() == DATA


@bounded(30)
async def test_a_client_header_beyond_latin_1_goes_as_aiohttp_sends_it(tmp_path: Path) -> None:
    """aiohttp sends header values as UTF-8; the plain path failed the download with a
    UnicodeEncodeError at its first request."""
    dest = tmp_path / "out.bin"
    async with RangeServer().run() as server:
        config = TransferConfig(resume_dir=tmp_path / "resume")
        async with Client(
            server.url, headers={"X-Name": "日本"}, trust_env=False, transfer=config
        ) as c:
            result = await c.download_url(f"{server.url}/f", dest, parallel=1, sha256=SHA256)
    assert result.sha256 == SHA256
    assert dest.read_bytes() == DATA
    assert server.requests == 2  # the probe's, then the plain path's
