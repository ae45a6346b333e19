"""The parallel tus upload engine (DESIGN.md "Transfer engine"; TRANSFER_PITFALLS.md 3a).

With the concatenation extension a file is cut into slices (``plan.plan_slices``), each
sent as a partial upload by its own task, then joined by one final upload. Without it
(any plain tus server), one upload gets the file in large PATCHes. Bytes are read a block
at a time as the request body is sent, so memory stays bounded whatever the size.

Recovery, per part: a failed PATCH (reset, 5xx, timeout, stall) resumes from HEAD's
offset after a backoff; 409 re-syncs via HEAD; 460 re-sends the chunk; 404/410 starts
that part over; 401 refreshes the token (single flight) and goes on. Consecutive failures
without progress are bounded (``TransferConfig.max_retries``); progress resets the count.

Across processes: every part's URL is written to a resume record (``resume.py``) the
moment it exists; a later run with the same source, endpoint and target reads it, asks the
server for each part's offset and sends only what is missing. Against an eTiKeT server
the record can also be rebuilt from the file's upload list, whose partials carry their
place in the plan in their metadata.

At the end the engine verifies: size, and for eTiKeT the file's ETag (the SHA-256 of the
content) against the source's own SHA-256.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp.payload
import anyio
from yarl import URL

from .._config import DEFAULT_TRANSFER, TransferConfig, default_home
from .._http import HttpCore, retry_after_of
from ..errors import (
    ApiError,
    ChecksumMismatch,
    ChecksumRejected,
    Conflict,
    Gone,
    NotFound,
    PayloadTooLarge,
    ProtocolError,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    UploadError,
    collapse,
)
from ..models import FileOut, FileStatus
from . import tus
from .fileio import Reader, Source, bytes_reader, open_source
from .plan import NEAR, plan_slices
from .progress import ProgressCallback, ProgressTracker
from .resume import PartRecord, ResumeStore, UploadRecord, record_key
from .throttle import Throttle, shared

__all__ = (
    "ETIKET_ENDPOINT",
    "UploadClient",
    "UploadResult",
    "Uploader",
    "default_parallel",
    "upload",
)

ETIKET_ENDPOINT = "/api/v1/uploads/"
#: Bytes per PATCH when a per-PATCH checksum is sent (the chunk is held in memory).
CHECKSUM_CHUNK = 8 * 1024 * 1024
#: PATCHes are halved on a 413 down to this size, then the upload gives up.
MIN_CHUNK = 1024 * 1024
#: A part this small goes in its creation request (creation-with-upload).
SMALL = 256 * 1024
#: Default partial uploads to a far server (OPTIONS slower than NEAR seconds): each
#: connection is window-bound there, so several fill the path (benchmarks/upload.py).
FAR_PARTS = 16
_META_PART = "aetiket-part"
_META_FP = "aetiket-fp"


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What an upload did: bytes, time, rate, where the bytes went, how it was checked."""

    name: str
    size: int
    seconds: float
    url: str
    part_urls: tuple[str, ...]
    sha256: str | None
    resumed: bool
    verified: bool

    @property
    def rate(self) -> float:
        """Average bytes per second."""
        return self.size / self.seconds if self.seconds > 0 else math.inf


class _Stalled(Exception):
    pass


class _Engine:
    """One upload: its plan, its record, its parts, its progress."""

    def __init__(
        self,
        http: HttpCore,
        src: Source,
        *,
        endpoint: str,
        scope: str | None,
        file_uid: str | None,
        metadata: Mapping[str, str],
        config: TransferConfig,
        progress: ProgressCallback | None,
        info_cache: dict[str, tus.ServerInfo],
        throttles: dict[float, Throttle] | None = None,
    ) -> None:
        self.http = http
        self.src = src
        self.endpoint = endpoint
        self.endpoint_url = str(http.url(endpoint))
        self.scope = scope
        self.file_uid = file_uid
        self.etiket = scope is not None and file_uid is not None
        self.target = f"{scope}/{file_uid}" if self.etiket else src.name
        self.metadata = dict(metadata)
        if self.etiket:
            assert scope is not None and file_uid is not None
            self.metadata.update(scope=scope, uid=file_uid)
        self.config = config
        self.progress = progress
        self.info_cache = info_cache
        self.store = ResumeStore(config.resume_dir or default_home() / "resume")
        self.throttle = shared(throttles, config.bandwidth)
        self.algorithm: str | None = None
        self.resumed = False
        self._offsets: dict[int, int] = {}  # resumed parts' offsets, asked up front
        self._stranded = False  # every byte is in, yet the server never completed it
        self.keep_records = True
        self.etag: str | None = None  # what the answer completing the upload said
        self.info: tus.ServerInfo | None = None
        self.chunk_size = config.chunk_size  # halved when a 413 says PATCHes are too large
        self._patch_sizes: dict[int, int] = {}  # each part's last PATCH size

    # -- setup

    async def server_info(self, connections: int = 1) -> tus.ServerInfo:
        """OPTIONS, once per server and client. ``connections`` > 1 asks that many times
        at once: the parts then find their connections open (on a long link a new one
        costs a round trip before its first byte)."""
        info = self.info_cache.get(self.endpoint_url)
        if info is not None:
            return info
        answers: list[tus.ServerInfo] = []

        async def ask() -> None:
            answers.append(await tus.options(self.http, self.endpoint))

        async with anyio.create_task_group() as tg:
            for _ in range(max(1, connections)):
                tg.start_soon(ask)
        info = self.info_cache[self.endpoint_url] = answers[0]
        return info

    def _choose_checksum(self, info: tus.ServerInfo) -> str | None:
        wanted = self.config.checksum
        if wanted is None:
            return None
        if wanted == "auto":
            return info.checksum()
        if "checksum" not in info.extensions or wanted not in info.checksum_algorithms:
            raise UploadError(
                f"{self.target}: the server does not offer checksum {wanted!r} "
                f"(it offers {sorted(info.checksum_algorithms) or 'none'})"
            )
        return wanted

    def _parallel(self, info: tus.ServerInfo | None) -> int:
        """Partial uploads per file: the setting, or by the server's latency."""
        if self.config.parallel is not None:
            return self.config.parallel
        if info is None:  # not asked yet: as many as a far server would get
            return FAR_PARTS
        return default_parallel(info.latency)

    async def _plan(self, info: tus.ServerInfo, fingerprint: str) -> UploadRecord:
        parallel = self._parallel(info)
        concat = info.concatenation and parallel > 1
        slices = plan_slices(self.src.size, parallel if concat else 1, self.config.min_part)
        concat = concat and len(slices) > 1
        return UploadRecord(
            endpoint=self.endpoint_url,
            target=self.target,
            fingerprint=fingerprint,
            size=self.src.size,
            concat=concat,
            parts=[PartRecord(start=s, end=e) for s, e in slices],
        )

    async def _listed(self) -> list[tuple[str, tus.UploadState, bool]] | None:
        """The eTiKeT file's uploads, each with its HEAD (asked at once) and whether the
        server completed it; None when the listing cannot be read. An upload that cannot
        be asked is left out."""
        assert self.scope is not None and self.file_uid is not None
        try:
            listing: FileOut = await self.http.call(
                "GET", f"{ETIKET_ENDPOINT}{_seg(self.scope)}/{_seg(self.file_uid)}", expect=FileOut
            )
        except ApiError:
            return None
        found: list[tuple[str, tus.UploadState, bool]] = []
        limiter = anyio.CapacityLimiter(FAR_PARTS)

        async def ask(url: str, completed: bool) -> None:
            async with limiter:
                with contextlib.suppress(ApiError, ProtocolError):
                    found.append((url, await tus.head(self.http, url), completed))

        async with anyio.create_task_group() as tg:
            for item in listing.uploads:
                tg.start_soon(ask, f"{self.endpoint_url}{item.uid}", item.completed)
        return found

    async def _recover(self, fingerprint: str) -> UploadRecord | None:
        """Rebuild a record from an eTiKeT server's upload list (no local record).

        Only what can still be resumed counts: a partial that a final upload names was
        joined (or is being joined), and a finished single upload made an earlier version
        of the file; both may carry this very fingerprint (the same source uploaded
        again after another one), and resuming them would send nothing and fail."""
        listed = await self._listed()
        if listed is None:
            return None
        joined = {uid for _, state, _ in listed for uid in _joins(state.concat)}
        parts: dict[int, PartRecord] = {}
        count = 0
        for url, state, completed in listed:
            # (A single upload with every byte in that its server did not complete is
            # resumed: the run completes it.)
            if _uid_of(url) in joined or (state.concat is None and completed):
                continue
            if state.metadata.get(_META_FP, b"").decode(errors="replace") != fingerprint[:32]:
                continue
            try:
                place, span = state.metadata[_META_PART].decode().split(" ")
                index, count = (int(v) for v in place.split("/"))
                start, end = (int(v) for v in span.split("-"))
            except (KeyError, ValueError):
                continue
            parts[index] = PartRecord(start=start, end=end, url=url)
        if not parts or sorted(parts) != list(range(count)):
            return None
        ordered = [parts[i] for i in range(count)]
        if (
            ordered[0].start != 0
            or ordered[-1].end != self.src.size
            or any(a.end != b.start for a, b in itertools.pairwise(ordered))
        ):
            return None
        return UploadRecord(
            endpoint=self.endpoint_url,
            target=self.target,
            fingerprint=fingerprint,
            size=self.src.size,
            concat=count > 1,
            parts=ordered,
        )

    # -- the run

    async def run(self) -> UploadResult:
        started = time.monotonic()
        fingerprint = await self.src.fingerprint()
        key = record_key(self.endpoint_url, self.target, fingerprint)
        # A source that goes in its creation request has nothing to resume: no record.
        self.keep_records = self.src.size > SMALL
        record = await self.store.load(key) if self.keep_records else None
        recovered: list[UploadRecord | None] = [None]

        async def recover() -> None:
            recovered[0] = await self._recover(fingerprint)

        known = self.info_cache.get(self.endpoint_url)
        slices = len(plan_slices(self.src.size, self._parallel(known), self.config.min_part))
        try:
            async with anyio.create_task_group() as tg:
                if record is None and self.etiket and self.keep_records:
                    tg.start_soon(recover)  # beside OPTIONS: one round trip, not two
                    slices -= 1  # (and one connection more for the parts)
                info = await self.server_info(slices)
        except BaseException as exc:
            raise collapse(exc, lambda msg, errors: UploadError(f"{self.target}: {msg}")) from None
        record = record or recovered[0]
        if info.max_size is not None and self.src.size > info.max_size:
            raise UploadError(
                f"{self.src.name}: {self.src.size} bytes is more than the "
                f"server accepts (Tus-Max-Size {info.max_size})"
            )
        self.algorithm = self._choose_checksum(info)
        self.info = info
        if (
            record is not None
            and record.size == self.src.size
            and (not record.concat or info.concatenation)
        ):
            self.resumed = True
        else:
            record = await self._plan(info, fingerprint)
        self.key, self.record = key, record
        await self._save()
        tracker = ProgressTracker(
            self.target, self.src.size, [p.end - p.start for p in record.parts], self.progress
        )
        digest: dict[str, str] = {}
        hashing = self.config.verify and self.etiket
        hashed = anyio.Event()

        async def hash_source() -> None:
            digest["sha256"] = await self.src.sha256()
            hashed.set()

        async def source_sha256() -> str | None:
            if not hashing:
                return None
            await hashed.wait()
            return digest["sha256"]

        try:
            async with anyio.create_task_group() as tg:
                # Progress callbacks run in the tracker's emitter, never in a body's
                # writer: a slow one delays events, not bytes; one that raises ends this.
                tg.start_soon(tracker.run)
                # The source's hash runs beside the transfer and the final upload: only
                # the check at the very end waits for it.
                if hashing:
                    tg.start_soon(hash_source)
                if self.resumed:
                    await self._resume_offsets(tracker)
                async with anyio.create_task_group() as parts:
                    for index in range(len(record.parts)):
                        parts.start_soon(self._run_part, index, tracker)
                if not await self.src.unchanged():
                    raise UploadError(
                        f"{self.src.name} changed while it was being uploaded; "
                        "upload it again once it is complete"
                    )
                url = await self._finish(record, source_sha256)
                verified = await self._verify(url, await source_sha256())
                if self.keep_records:
                    await self.store.delete(key)
                await tracker.finish()  # the last event; the emitter ends with it
        except BaseException as exc:
            raise tracker.outcome(
                collapse(
                    exc,
                    lambda msg, errors: UploadError(
                        f"{self.target}: parts {msg}", parts=dict(enumerate(errors))
                    ),
                )
            ) from None
        return UploadResult(
            name=self.src.name,
            size=self.src.size,
            seconds=time.monotonic() - started,
            url=url,
            part_urls=tuple(p.url for p in record.parts if p.url),
            sha256=digest.get("sha256"),
            resumed=self.resumed,
            verified=verified,
        )

    async def _save(self) -> None:
        if not self.keep_records:
            return
        with anyio.CancelScope(shield=True):
            await self.store.save(self.key, self.record)

    async def _finish(
        self, record: UploadRecord, source_sha256: Callable[[], Awaitable[str | None]]
    ) -> str:
        """The final upload of a parallel upload (or the single upload's URL)."""
        if not record.concat:
            url = record.parts[0].url
            assert url is not None
            return url
        if record.final_url is not None:
            return record.final_url
        part_urls = [p.url for p in record.parts if p.url]
        failures = 0
        while True:
            try:
                created = await tus.create(
                    self.http,
                    self.endpoint,
                    length=None,
                    metadata=self.metadata,
                    final_of=part_urls,
                )
            except (Gone, Conflict, TransportError, ServerError, TooManyRequests) as exc:
                # The final may exist already (a run that died after sending it, or an
                # answer lost on the way): if the file holds our bytes, that is success.
                # Otherwise a POST is only sent again after checking that.
                sha256 = await source_sha256()
                if sha256 is not None and await self._etiket_matches(sha256):
                    return record.parts[0].url or ""
                if isinstance(exc, Gone | Conflict) and (joined := await self._final_of(part_urls)):
                    record.final_url = joined
                    await self._save()
                    return joined
                failures += 1
                if isinstance(exc, Gone | Conflict) or failures > self.config.max_retries:
                    raise UploadError(f"{self.target}: the final upload failed: {exc}") from exc
                await anyio.sleep(self.http.retry.delay(failures, retry_after_of(exc)))
                continue
            record.final_url = created.url
            self.etag = created.etag
            await self._save()
            return created.url

    async def _final_of(self, part_urls: list[str]) -> str | None:
        """The complete final upload that joined exactly these partials (a POST of ours
        whose answer was lost, or a run that died after it), waiting while the server
        still joins them; None when there is none (or no eTiKeT listing to look in)."""
        if not self.etiket:
            return None
        wanted = [_uid_of(url) for url in part_urls]
        # A join takes as long as the server needs to copy and hash the file: wait as
        # long as a final POST's answer would have been waited for.
        deadline = time.monotonic() + (self.http.timeouts.read or 120.0)
        attempt = 0
        while True:
            listed = await self._listed() or []
            finals = [(u, s) for u, s, _ in listed if _joins(s.concat) == wanted]
            if not finals:
                return None
            for url, state in finals:
                if state.offset is not None and state.offset == state.length:
                    self.etag = state.etag
                    return url
            if time.monotonic() >= deadline:
                raise UploadError(
                    f"{self.target}: the server is still joining the parts in {finals[0][0]}; "
                    "run the upload again later to verify it"
                )
            await anyio.sleep(min(2.0, 0.05 * 2**attempt))
            attempt += 1

    async def _etiket_matches(self, sha256: str) -> bool:
        if not self.etiket:
            return False
        assert self.scope is not None and self.file_uid is not None
        try:
            record: FileOut = await self.http.call(
                "GET", f"{ETIKET_ENDPOINT}{_seg(self.scope)}/{_seg(self.file_uid)}", expect=FileOut
            )
        except ApiError:
            return False
        # Not "available" only: another open upload of the file (an orphaned partial, a
        # concurrent run) makes it "pending", while size and ETag already prove the bytes.
        return record.status is not FileStatus.unavailable and (
            record.size == self.src.size and record.etag == sha256
        )

    async def _verify(self, url: str, sha256: str | None) -> bool:
        if not self.config.verify:
            return False
        if self.etiket and sha256 is not None:
            if self.etag == sha256:
                return True  # the completing answer named the file's SHA-256: ours
            if not await self._etiket_matches(sha256):
                raise ChecksumMismatch(
                    f"{self.target}: after the upload the server's file is not the source "
                    f"(expected {self.src.size} bytes with SHA-256 {sha256})"
                )
            return True
        state = await tus.head(self.http, url)
        if state.offset != self.src.size or (
            state.length is not None and state.length != self.src.size
        ):
            raise ChecksumMismatch(
                f"{self.target}: the server holds {state.offset} of {self.src.size} bytes"
            )
        return True

    # -- one part

    def _part_metadata(self, index: int) -> dict[str, str]:
        part = self.record.parts[index]
        meta = dict(self.metadata) if (self.etiket or not self.record.concat) else {}
        if self.etiket:
            # Its place in the plan: a later run without the local record rebuilds it
            # from the file's upload list (only an eTiKeT server has one).
            meta[_META_PART] = f"{index}/{len(self.record.parts)} {part.start}-{part.end}"
            meta[_META_FP] = self.record.fingerprint[:32]
        return meta

    async def _run_part(self, index: int, tracker: ProgressTracker) -> None:
        part = self.record.parts[index]
        length = part.end - part.start
        failures = refusals = 0
        offset: int | None = self._offsets.pop(index, None)
        async with self.src.reader() as reader:
            while True:
                generation = self.http.token_generation
                try:
                    if part.url is None:
                        offset = await self._create_part(index, reader)
                    if offset is None:
                        state = await tus.head(self.http, part.url or "")
                        offset = state.offset or 0
                        self._note_stranded(state)
                    tracker.start_part_at(index, offset)
                    while offset < length:
                        before = offset
                        offset = await self._patch(index, reader, offset, length, tracker)
                        if offset > before:
                            failures = refusals = 0
                    if self._stranded:
                        # An empty PATCH at the end makes the server complete it again.
                        patched = await tus.patch(self.http, part.url or "", offset, b"", size=0)
                        self.etag, self._stranded = patched.etag, False
                    return
                except Unauthorized as exc:
                    # A token that expired mid-transfer: refresh once for everyone, go on.
                    # Refused again with a fresh token, the refusal is not about expiry.
                    refusals += 1
                    if refusals > 2:
                        raise UploadError(self._refused(index, exc), parts={index: exc}) from exc
                    await self.http.refresh_after(generation)
                    offset = None
                    continue
                except (NotFound, Gone) as exc:
                    failure: Exception = exc
                    part.url, offset = None, None  # the server lost it: start this part over
                    await self._save()
                except PayloadTooLarge as exc:
                    # A PATCH beyond a body limit on the way (a proxy's, e.g. nginx's
                    # client_max_body_size): halve the PATCHes of every part and go on.
                    # A 413 to the creation (the file is too large) is final.
                    tried = self._patch_sizes.get(index)
                    if part.url is None or tried is None or tried <= MIN_CHUNK:
                        raise UploadError(
                            f"{self.target}: part {index}: {exc} (a PATCH of {tried} bytes "
                            "was refused; set a smaller chunk_size?)"
                        ) from exc
                    # Half of what was refused (parts refused at once halve it once).
                    self.chunk_size = min(self.chunk_size, max(MIN_CHUNK, tried // 2))
                    offset = None
                    continue
                except (
                    TransportError,
                    ServerError,
                    TooManyRequests,
                    Conflict,
                    ChecksumRejected,
                    ProtocolError,
                    _Stalled,
                ) as exc:
                    failure, offset = exc, None  # re-sync from the server's offset
                failures += 1
                if failures > self.config.max_retries:
                    raise UploadError(
                        f"{self.target}: part {index} (bytes {part.start}-{part.end}) failed "
                        f"{failures} times in a row; last: {failure}. Run the upload again "
                        "to resume.",
                        parts={index: failure},
                    ) from failure
                await anyio.sleep(self.http.retry.delay(failures, retry_after_of(failure)))

    async def _resume_offsets(self, tracker: ProgressTracker) -> None:
        """Ask for every resumed part's offset at once, so that progress starts from all
        the bytes already there (a part that cannot be asked goes on as usual)."""

        async def ask(index: int, url: str) -> None:
            try:
                state = await tus.head(self.http, url)
            except (ApiError, TransportError, ProtocolError):
                return  # its runner will HEAD again and handle what happened
            if state.offset is not None:
                self._offsets[index] = state.offset
                tracker.start_part_at(index, state.offset)
                self._note_stranded(state)

        async with anyio.create_task_group() as tg:
            for index, part in enumerate(self.record.parts):
                if part.url is not None:
                    tg.start_soon(ask, index, part.url)

    def _note_stranded(self, state: tus.UploadState) -> None:
        """An eTiKeT upload (one, not parts) holding every byte but no ETag: its server
        failed to complete it (a full disk while it hashed or stored the file). Left so,
        every rerun would find nothing to send and fail the check until it expired."""
        self._stranded = (
            self.etiket
            and not self.record.concat
            and state.offset is not None
            and state.offset == state.length
            and state.etag is None
        )

    def _refused(self, index: int, exc: Unauthorized) -> str:
        """Why a part cannot go on after 401s that a fresh token did not end."""
        url = self.record.parts[index].url
        message = f"{self.target}: part {index}: the server keeps refusing the token ({exc})"
        if url is not None and not self.http.same_origin(URL(url)):
            message += (
                f"; the upload's URL is on {URL(url).origin()}, and the token goes only "
                f"to {self.http.origin} (is the server's public URL set right?)"
            )
        return message

    async def _create_part(self, index: int, reader: Reader) -> int:
        part = self.record.parts[index]
        length = part.end - part.start
        body = None
        if length <= SMALL:
            body = await reader.read(part.start, length)
        try:
            created = await tus.create(
                self.http,
                self.endpoint,
                length=length,
                metadata=self._part_metadata(index),
                partial=self.record.concat,
                body=body,
                checksum=self.algorithm if body else None,
            )
        except (Conflict, NotFound, Gone) as exc:
            # Said of a new upload, these are the server's final word about the target
            # (no such file, an immutable one...): trying again cannot change it.
            raise UploadError(
                f"{self.target}: the server refused a new upload: {exc}", parts={index: exc}
            ) from exc
        part.url = created.url
        if created.etag is not None and not self.record.concat:
            self.etag = created.etag  # creation-with-upload completed it
        await self._save()  # the URL is on record before a byte of the body goes
        return created.offset or 0

    async def _patch(
        self, index: int, reader: Reader, offset: int, length: int, tracker: ProgressTracker
    ) -> int:
        """One PATCH from ``offset``; returns the server's new offset."""
        part = self.record.parts[index]
        assert part.url is not None
        block = self.config.block_size
        chunk = self.chunk_size
        algorithm = self.algorithm
        data: bytes | None = None
        if algorithm is not None:
            chunk = min(chunk, CHECKSUM_CHUNK)
        n = min(chunk, length - offset)
        self._patch_sizes[index] = n
        if algorithm is not None:
            # A checksum goes in the headers: the chunk is read (and held) before it goes.
            data = await reader.read(part.start + offset, n)
        stall = self.config.stall_timeout

        done = 0
        with anyio.CancelScope() as scope:
            scope.deadline = anyio.current_time() + stall

            def sent(size: int) -> None:
                nonlocal done
                done += size
                scope.deadline = anyio.current_time() + stall  # bytes moved: not stalled
                tracker.advance(index, offset + done)  # counted; events go from the emitter
                # The deadline stays until the answer: a body that fit in the socket
                # buffers has not reached the server yet.

            wait = None if self.throttle is None else self._throttled(scope)
            header = None
            body: bytes | aiohttp.payload.Payload
            if algorithm is not None and data is not None:
                header = await anyio.to_thread.run_sync(tus.checksum_header, algorithm, data)
                body = await bytes_reader(data).body(0, n, block, sent, wait)
            else:
                body = await reader.body(
                    part.start + offset, n, block, sent, wait, zero_copy=self._zero_copy()
                )
            patched = await tus.patch(self.http, part.url, offset, body, size=n, checksum=header)
            if patched.etag is not None and not self.record.concat:
                self.etag = patched.etag  # the upload is complete: its file's ETag
            # The body's last progress step runs in aiohttp's writer task, which may not
            # have run yet when the answer is in: the answer's offset is the word.
            tracker.advance(index, patched.offset)
            return patched.offset
        raise _Stalled(f"part {index}: no byte moved for {stall:.0f} s at offset {offset}")

    def _zero_copy(self) -> bool:
        """Whether a file goes by sendfile. It spares the CPU, the limit near a server
        and for parallel parts far away (client, server and network share the cores).
        One connection far away is bound by its window instead, and reads and writes
        kept it fuller in every run (benchmarks/upload.py)."""
        near = self.info is not None and self.info.latency < NEAR
        return near or self.record.concat

    def _throttled(self, scope: anyio.CancelScope) -> Callable[[int], Awaitable[None]]:
        """Wait for the bandwidth limit before a piece; the wait is no stall."""
        throttle = self.throttle
        assert throttle is not None

        async def wait(size: int) -> None:
            deadline, scope.deadline = scope.deadline, math.inf
            await throttle.take(size)
            scope.deadline = max(deadline, anyio.current_time() + self.config.stall_timeout)

        return wait


def default_parallel(round_trip: float) -> int:
    """Partial uploads per file when none are asked for: one to a near server (its
    round trip under ``plan.NEAR``), ``FAR_PARTS`` to a far one."""
    return FAR_PARTS if round_trip >= NEAR else 1


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _uid_of(url: str) -> str:
    """An upload's id: the last segment of its URL (absolute or relative)."""
    return url.rstrip("/").rpartition("/")[2]


def _joins(concat: str | None) -> list[str]:
    """The ids of the partial uploads a final upload's Upload-Concat names, in order."""
    if not concat or not concat.startswith("final;"):
        return []
    return [_uid_of(url) for url in concat.removeprefix("final;").split()]


async def upload(
    http: HttpCore,
    source: Any,
    *,
    scope: str | None = None,
    file_uid: str | None = None,
    endpoint: str = ETIKET_ENDPOINT,
    metadata: Mapping[str, str] | None = None,
    config: TransferConfig = DEFAULT_TRANSFER,
    progress: ProgressCallback | None = None,
    info_cache: dict[str, tus.ServerInfo] | None = None,
    name: str | None = None,
    throttles: dict[float, Throttle] | None = None,
) -> UploadResult:
    """Upload ``source`` (a path, bytes, or a seekable binary file object).

    With ``scope`` and ``file_uid`` it is the content of that eTiKeT file record (verified
    against its ETag); without, a generic tus upload to ``endpoint`` with ``metadata``.
    ``throttles``: the bandwidth buckets this upload shares (``throttle.shared``).
    """
    if (scope is None) != (file_uid is None):
        raise ValueError("give both scope and file_uid (an eTiKeT file), or neither")
    src = await open_source(source, name=name)
    engine = _Engine(
        http,
        src,
        endpoint=endpoint,
        scope=scope,
        file_uid=file_uid,
        metadata=metadata or {},
        config=config,
        progress=progress,
        info_cache=info_cache if info_cache is not None else {},
        throttles=throttles,
    )
    return await engine.run()


class Uploader:
    """One file sent the original client's way: one upload, chunk by chunk, awaited.

    ``await up.upload_chunk()`` sends ``chunk_size`` bytes (creating the upload first);
    ``await up.upload(stop_at=n)`` goes on until ``n`` bytes are on the server;
    ``await up.upload()`` until the end. ``offset`` is the server's; ``url`` the upload's.
    """

    def __init__(
        self,
        http: HttpCore,
        source: Any,
        *,
        scope: str,
        file_uid: str,
        chunk_size: int,
        endpoint: str = ETIKET_ENDPOINT,
    ) -> None:
        self._http = http
        self._source_arg = source
        self._src: Source | None = None
        self.scope = scope
        self.file_uid = file_uid
        self.chunk_size = chunk_size
        self.endpoint = endpoint
        self.url: str | None = None
        self.offset = 0

    def __repr__(self) -> str:
        return f"<Uploader {self.scope}/{self.file_uid} offset={self.offset}>"

    async def _source(self) -> Source:
        if self._src is None:
            self._src = await open_source(self._source_arg)
        return self._src

    @property
    def size(self) -> int | None:
        return None if self._src is None else self._src.size

    async def upload_chunk(self) -> int:
        """Send the next chunk; returns the new offset."""
        src = await self._source()
        return await self._send(src.size)

    async def _send(self, stop: int) -> int:
        """Send the next chunk, ending at ``stop`` at the latest; returns the new offset.

        A 409 (the server holds another offset: an interrupted PATCH, e.g. a cancelled
        cell, landed after all) re-syncs from HEAD and sends from the server's offset,
        once; other failures re-sync and are raised."""
        src = await self._source()
        if self.url is None:
            created = await tus.create(
                self._http,
                self.endpoint,
                length=src.size,
                metadata={"scope": self.scope, "uid": self.file_uid},
            )
            self.url, self.offset = created.url, created.offset or 0
        for attempt in (1, 2):
            n = min(self.chunk_size, stop - self.offset, src.size - self.offset)
            if n <= 0:
                return self.offset
            blocks = src.blocks(self.offset, n, 1024 * 1024)
            try:
                patched = await tus.patch(self._http, self.url, self.offset, blocks, size=n)
            except Conflict:
                self.offset = (await tus.head(self._http, self.url)).offset or 0
                if attempt == 2:
                    raise
                continue
            except (ProtocolError, TransportError):
                self.offset = (await tus.head(self._http, self.url)).offset or 0
                raise
            self.offset = patched.offset
            break
        return self.offset

    async def upload(self, stop_at: int | None = None) -> None:
        """Send chunks until ``stop_at`` bytes (default: all) are on the server."""
        src = await self._source()
        target = src.size if stop_at is None else min(stop_at, src.size)
        while self.offset < target or self.url is None:
            before = self.offset
            # Exactly up to stop_at, as tuspy does: the last chunk is cut short there.
            await self._send(target)
            if self.offset == before and self.offset >= target:
                break


class UploadClient:
    """The original ``etiket_client.UploadClient``, awaited: ``uploader(...)`` per file."""

    def __init__(
        self,
        http: HttpCore,
        scope: str | None = None,
        chunk_size: int = DEFAULT_TRANSFER.chunk_size,
    ) -> None:
        self._http = http
        self.scope = scope
        self.chunk_size = chunk_size

    def uploader(
        self,
        file_path: Any = None,
        *,
        file_stream: Any = None,
        file_uid: str,
        scope: str | None = None,
        chunk_size: int | None = None,
    ) -> Uploader:
        """An :class:`Uploader` for a path (or ``file_stream=``) into ``scope/file_uid``."""
        if (file_path is None) == (file_stream is None):
            raise ValueError("give a file path or file_stream=, one of them")
        scope = scope or self.scope
        if scope is None:
            raise ValueError("give scope= here or to UploadClient(client, scope=...)")
        return Uploader(
            self._http,
            file_path if file_path is not None else file_stream,
            scope=scope,
            file_uid=file_uid,
            chunk_size=chunk_size or self.chunk_size,
        )
