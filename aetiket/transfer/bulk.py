"""Many files under one concurrency budget: push a folder as a dataset, pull one back.

A :class:`Budget` of connections is shared by every file in flight: a small file takes
one connection, a large one up to ``parallel``; files start largest first, so the big
ones are under way while the small ones fill the gaps. Each file has its own result; one
failure does not stop the rest unless ``fail_fast`` is asked. A re-run skips what is
already complete and identical (size and SHA-256). Names travel as relative paths and
never escape the destination on the way back.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fnmatch
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from ..errors import AetiketError, Conflict, NotFound, TransferError, collapse
from ..models import DatasetIn, DatasetOut, FileDatasetIn, FileIn, FileStatus, MetaDict, ScopeIn
from .fileio import open_source
from .progress import ProgressCallback

if TYPE_CHECKING:
    from ..client import Client

__all__ = (
    "Budget",
    "BulkResult",
    "ItemResult",
    "file_uid_for",
    "pull_dataset",
    "push_folder",
    "safe_relative",
)

Status = Literal["uploaded", "downloaded", "skipped", "failed", "planned"]


@dataclasses.dataclass(frozen=True)
class ItemResult:
    """What happened to one file."""

    name: str
    uid: str
    size: int
    status: Status
    seconds: float = 0.0
    error: str | None = None
    #: Where a pulled file went, relative to the destination, when that is not its name
    #: (two files of a dataset with one name each get their uid in theirs).
    path: str | None = None


@dataclasses.dataclass(frozen=True)
class BulkResult:
    """What a push or pull did, file by file."""

    dataset: str
    items: tuple[ItemResult, ...]
    seconds: float

    def count(self, status: Status) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if i.status == "failed"]

    @property
    def moved_bytes(self) -> int:
        return sum(i.size for i in self.items if i.status in ("uploaded", "downloaded"))

    def as_json(self, direction: Literal["push", "pull"]) -> dict[str, Any]:
        """The command's JSON document."""
        key = "uploaded_bytes" if direction == "push" else "downloaded_bytes"
        return {
            "dataset": self.dataset,
            "files": len(self.items),
            key: self.moved_bytes,
            "skipped": self.count("skipped"),
            "failed": len(self.failed),
            "seconds": round(self.seconds, 3),
            "items": [dataclasses.asdict(i) for i in self.items],
        }


class Budget:
    """A pool of connections that files take several of at once (a weighted semaphore)."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError("the connection budget must be at least 1")
        self.total = total
        self._free = total
        self._changed = anyio.Condition()

    async def acquire(self, n: int) -> int:
        n = max(1, min(n, self.total))
        async with self._changed:
            while self._free < n:
                await self._changed.wait()
            self._free -= n
        return n

    async def release(self, n: int) -> None:
        async with self._changed:
            self._free += n
            self._changed.notify_all()


def file_uid_for(dataset_uid: str, name: str) -> str:
    """A file's uid in a pushed dataset: stable for the same dataset and relative name,
    so a re-push finds the records it made."""
    digest = hashlib.sha256(f"{dataset_uid}\n{name}".encode()).hexdigest()
    return f"f{digest[:31]}"


def dataset_uid_for(folder: Path) -> str:
    """The default uid of a folder pushed as a dataset: stable for the same absolute path."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()
    return f"d{digest[:23]}"


def _matches(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch.fnmatch(name, g) for g in include):
        return False
    return not any(fnmatch.fnmatch(name, g) for g in exclude)


def collect(
    paths: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Files under ``paths`` as (path, relative name with ``/``), sorted, filtered, and
    the entries that cannot be pushed as (relative name, why).

    Links are followed, to files and to folders alike (wherever they lead), and named by
    where the link is. A link to a folder that holds it (a cycle: ``loop -> ..``) is not
    followed: everything under it is already there under its own names. A broken link
    and a folder that cannot be listed are reported, never silently left out.
    """
    found: list[tuple[Path, str]] = []
    problems: list[tuple[str, str]] = []
    for root in paths:
        if not root.exists():
            if root.is_symlink():
                raise FileNotFoundError(f"{root}: a broken link (to {os.readlink(root)})")
            raise FileNotFoundError(f"{root}: no such file or folder")
        if root.is_file():
            found.append((root, root.name))
            continue
        # Depth first, a folder's files before its subfolders; each folder carries the
        # real paths of the folders above it, so a cycle is seen without a global set
        # (a folder linked from two places is pushed under both names, as cp -rL would).
        stack: list[tuple[Path, frozenset[str]]] = [(root, frozenset([os.path.realpath(root)]))]
        while stack:
            folder, above = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                rel = folder.relative_to(root).as_posix()
                # Reported unless excluded: it may hold files an include would match.
                if not any(fnmatch.fnmatch(f"{rel}/", g) for g in exclude):
                    problems.append((rel, f"cannot list the folder: {exc.strerror or exc}"))
                continue
            subfolders: list[tuple[Path, frozenset[str]]] = []
            for entry in entries:
                path = Path(entry.path)
                rel = path.relative_to(root).as_posix()
                try:  # both follow links
                    is_dir = entry.is_dir()
                    is_file = not is_dir and entry.is_file()
                except OSError:  # links that lead to one another (ELOOP)
                    is_dir = is_file = False
                if is_dir:
                    real = os.path.realpath(path)
                    if real not in above:
                        subfolders.append((path, above | {real}))
                elif is_file:
                    found.append((path, rel))
                elif entry.is_symlink() and not path.exists() and _matches(rel, include, exclude):
                    problems.append((rel, _broken_link(path)))
                # Anything else (a socket, a FIFO, a device) is no file to push.
            stack.extend(reversed(subfolders))
    names = [n for _, n in found]
    if len(set(names)) != len(names):
        raise ValueError("two files would get the same name in the dataset")
    return [(p, n) for p, n in found if _matches(n, include, exclude)], problems


def _broken_link(path: Path) -> str:
    """Why a link leads to nothing: its target is missing, or links loop."""
    try:
        os.stat(path)
    except OSError as exc:
        return f"a broken link (to {os.readlink(path)}): {exc.strerror or exc}"
    return f"a broken link (to {os.readlink(path)})"


def safe_relative(name: str) -> PurePosixPath | None:
    """A stored name as a relative path that stays inside a folder, or None."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or any(not c.isprintable() for c in p) for p in parts):
        return None
    if ":" in parts[0]:  # a Windows drive ("C:")
        return None
    return PurePosixPath(*parts)


def _places(records: Sequence[Any]) -> dict[str, PurePosixPath | None]:
    """Each file's path under the destination, by uid (None: its name would leave it).

    File names are unique in a dataset only with their uids: files whose names would
    land on one path (compared without case, as macOS and Windows do) each get their
    uid before the suffix ("raw.h5" -> "raw.<uid>.h5"), so none overwrites another and
    the layout does not depend on the order the downloads finish in."""
    places = {r.uid: safe_relative(r.name) for r in records}
    taken = collections.Counter(str(p).casefold() for p in places.values() if p is not None)
    for uid, place in places.items():
        if place is not None and taken[str(place).casefold()] > 1:
            places[uid] = place.with_name(f"{place.stem}.{uid}{place.suffix}")
    return places


async def _sha256(path: Path) -> str:
    """The file's SHA-256 for a skip check (a block per thread call: a cancel is heard
    between blocks, never waits for the whole file)."""
    source = await open_source(path)
    return await source.sha256()


ItemProgress = Callable[[str, int, int], Awaitable[None] | None]


async def _tell(
    on_item: Callable[[ItemResult], Awaitable[None] | None] | None, item: ItemResult
) -> None:
    if on_item is not None:
        maybe = on_item(item)
        if maybe is not None:
            await maybe


async def _run_all(
    jobs: Sequence[tuple[int, Callable[[int], Awaitable[ItemResult]]]],
    *,
    budget: Budget,
    parallel: int,
    fail_fast: bool,
    min_large: int,
) -> list[ItemResult]:
    """Run ``(size, job)`` pairs, biggest first, each holding its share of the budget."""
    results: list[ItemResult | None] = [None] * len(jobs)
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0])
    # Several large files already run side by side: split each less (a split costs the
    # server a concatenation; the files themselves are the parallelism).
    large = sum(1 for size, _ in jobs if size >= min_large)
    per_large = max(1, parallel // max(1, min(large, budget.total)))

    async def one(index: int) -> None:
        size, job = jobs[index]
        want = per_large if size >= min_large else 1
        took = await budget.acquire(want)
        try:
            result = await job(took)
        finally:
            await budget.release(took)
        results[index] = result
        if fail_fast and result.status == "failed":
            raise TransferError(f"{result.name}: {result.error}")

    try:
        async with anyio.create_task_group() as tg:
            starter = anyio.Semaphore(budget.total)  # bounded task start-up
            for index in order:
                await starter.acquire()

                async def run(i: int = index) -> None:
                    try:
                        await one(i)
                    finally:
                        starter.release()

                tg.start_soon(run)
    except BaseException as exc:
        raise collapse(exc, lambda msg, errors: TransferError(f"files {msg}")) from None
    return [r for r in results if r is not None]


async def push_folder(
    client: Client,
    paths: Sequence[str | os.PathLike[str]],
    *,
    scope: str,
    uid: str | None = None,
    name: str | None = None,
    meta: MetaDict | None = None,
    parallel: int = 4,
    connections: int = 16,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    create_scope: bool = False,
    progress: ProgressCallback | None = None,
    on_item: Callable[[ItemResult], Awaitable[None] | None] | None = None,
) -> BulkResult:
    """Push files and folders as one dataset ``scope/uid`` (created when missing).

    File records are named by their path relative to the folder pushed; their uids are
    derived from the dataset uid and that name, so a re-push finds them and uploads only
    what is not already there, identical. ``uid`` defaults to one derived from the first
    path's absolute location. ``connections`` bounds all transfers together; a large file
    uses up to ``parallel`` of them.

    Symbolic links are followed, to files and to folders, wherever they lead (as
    ``aws s3 sync`` does); a file is named by the link's path, not its target's. A link
    to a folder above it (a cycle) is not followed: its files are pushed under their own
    names already. A broken link, and a folder that cannot be listed, is a failed item
    with its reason (in a dry run too), never silently left out.
    """
    started = time.monotonic()
    roots = [Path(p) for p in paths]
    if not roots:
        raise ValueError("nothing to push")
    files, problems = await anyio.to_thread.run_sync(collect, roots, include, exclude)
    dataset_uid = uid or dataset_uid_for(roots[0])
    label = f"{scope}/{dataset_uid}"
    sizes: dict[str, int] = {}
    for path, rel in files:
        try:
            sizes[rel] = (await anyio.to_thread.run_sync(os.stat, path)).st_size
        except OSError as exc:  # gone since it was listed
            problems.append((rel, exc.strerror or str(exc)))
    entries = [(path, rel, file_uid_for(dataset_uid, rel)) for path, rel in files if rel in sizes]
    refused = tuple(
        ItemResult(rel, file_uid_for(dataset_uid, rel), 0, "failed", error=why)
        for rel, why in problems
    )
    for item in refused:
        await _tell(on_item, item)
    if refused and fail_fast and not dry_run:
        raise TransferError(f"{refused[0].name}: {refused[0].error}")
    if dry_run:
        items = tuple(
            ItemResult(name=rel, uid=fuid, size=sizes[rel], status="planned")
            for _, rel, fuid in entries
        )
        return BulkResult(label, refused + items, time.monotonic() - started)
    dataset = await _ensure_dataset(
        client, scope, dataset_uid, name or roots[0].name, meta or {}, entries, sizes, create_scope
    )
    remote = {f.uid: f for f in dataset.files}
    budget = Budget(connections)

    def job(path: Path, rel: str, fuid: str) -> Callable[[int], Awaitable[ItemResult]]:
        async def run(conns: int) -> ItemResult:
            t0 = time.monotonic()
            size = sizes[rel]
            try:
                known = remote.get(fuid)
                if (
                    known is not None
                    and known.status is not FileStatus.unavailable
                    and known.size == size
                    and known.etag == await _sha256(path)
                ):
                    result = ItemResult(rel, fuid, size, "skipped")
                else:
                    await client.upload(
                        path, scope=scope, file_uid=fuid, parallel=conns, progress=progress
                    )
                    result = ItemResult(rel, fuid, size, "uploaded", time.monotonic() - t0)
            except (AetiketError, OSError) as exc:
                result = ItemResult(rel, fuid, size, "failed", time.monotonic() - t0, str(exc))
            await _tell(on_item, result)
            return result

        return run

    results = await _run_all(
        [(sizes[rel], job(path, rel, fuid)) for path, rel, fuid in entries],
        budget=budget,
        parallel=parallel,
        fail_fast=fail_fast,
        min_large=client.transfer.min_part * 2,
    )
    return BulkResult(label, refused + tuple(results), time.monotonic() - started)


async def _ensure_dataset(
    client: Client,
    scope: str,
    uid: str,
    name: str,
    meta: MetaDict,
    entries: Iterable[tuple[Path, str, str]],
    sizes: dict[str, int],
    create_scope: bool,
) -> DatasetOut:
    """The dataset with a record for every file (creating what is missing)."""
    files = [FileDatasetIn(name=rel, uid=fuid, size=sizes[rel]) for _, rel, fuid in entries]
    try:
        dataset = await client.datasets.get(scope, uid)
    except NotFound as exc:
        if create_scope and "Scope" in str(exc.detail):
            with contextlib.suppress(Conflict):
                await client.scopes.create(ScopeIn(name=scope, description="created by push"))
        try:
            return await client.datasets.create(
                DatasetIn(name=name, uid=uid, scope=scope, meta=meta, files=files)
            )
        except NotFound:
            raise NotFound(
                f"Scope '{scope}' not found (push creates scopes only on the "
                "embedded local server)",
                status=404,
            ) from None
    have = {f.uid for f in dataset.files}
    for entry in files:
        if entry.uid not in have:
            await client.files.create(
                FileIn(
                    name=entry.name, uid=entry.uid, dataset_uid=uid, scope=scope, size=entry.size
                )
            )
    if meta:
        await client.metadata.add(scope, uid, meta)
    return await client.datasets.get(scope, uid)


async def pull_dataset(
    client: Client,
    scope: str,
    uid: str,
    dest: str | os.PathLike[str],
    *,
    parallel: int | None = None,
    connections: int = 16,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    progress: ProgressCallback | None = None,
    on_item: Callable[[ItemResult], Awaitable[None] | None] | None = None,
) -> BulkResult:
    """Pull the files of dataset ``scope/uid`` into ``dest``, by their relative names.

    A name that would leave ``dest`` (absolute, ``..``) fails that file. Files already
    there with the same size and SHA-256 are skipped; files without content are failed.
    ``connections`` bounds all transfers together; a large file uses up to ``parallel``
    of them (default 8).
    """
    started = time.monotonic()
    root = Path(dest)
    dataset = await client.datasets.get(scope, uid)
    label = f"{scope}/{uid}"
    wanted = [f for f in dataset.files if _matches(f.name, include, exclude)]
    if dry_run:
        return BulkResult(
            label,
            tuple(ItemResult(f.name, f.uid, f.size or 0, "planned") for f in wanted),
            time.monotonic() - started,
        )
    await anyio.to_thread.run_sync(lambda: root.mkdir(parents=True, exist_ok=True))
    base = await anyio.to_thread.run_sync(root.resolve)
    budget = Budget(connections)

    places = _places(wanted)

    def job(record: Any) -> Callable[[int], Awaitable[ItemResult]]:
        async def run(conns: int) -> ItemResult:
            t0 = time.monotonic()
            size = record.size or 0
            rel = places[record.uid]
            moved = None if rel is None or rel == safe_relative(record.name) else str(rel)
            try:
                if rel is None:
                    raise TransferError(f"the name {record.name!r} would leave {root}")
                target = base.joinpath(*rel.parts)
                if not target.resolve().is_relative_to(base):
                    raise TransferError(f"the name {record.name!r} would leave {root}")
                # A pending file with an ETag has content (an upload of it is open).
                if record.status is FileStatus.unavailable or record.etag is None:
                    raise TransferError(f"no content yet (status {record.status.value})")
                if await anyio.to_thread.run_sync(target.is_file) and (
                    (await anyio.to_thread.run_sync(target.stat)).st_size == size
                    and record.etag == await _sha256(target)
                ):
                    result = ItemResult(record.name, record.uid, size, "skipped", path=moved)
                else:
                    # The budget's grant, never more: connections a file takes beyond
                    # it wait for a pool slot, on the connect timeout (_run_all already
                    # keeps the grant within ``parallel``).
                    await client.download(
                        scope, record.uid, target, parallel=conns, progress=progress
                    )
                    result = ItemResult(
                        record.name,
                        record.uid,
                        size,
                        "downloaded",
                        time.monotonic() - t0,
                        path=moved,
                    )
            except (AetiketError, OSError) as exc:
                result = ItemResult(
                    record.name,
                    record.uid,
                    size,
                    "failed",
                    time.monotonic() - t0,
                    str(exc),
                    path=moved,
                )
            await _tell(on_item, result)
            return result

        return run

    results = await _run_all(
        [(f.size or 0, job(f)) for f in wanted],
        budget=budget,
        parallel=parallel or 8,
        fail_fast=fail_fast,
        min_large=client.transfer.min_part * 2,
    )
    return BulkResult(label, tuple(results), time.monotonic() - started)
