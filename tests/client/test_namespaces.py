"""Every namespace method of ``aetiket.Client`` against a real ``aetiket serve``: typed
results with the right values, and the mapping of error statuses to exceptions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, quote, urlsplit

import pytest

import aetiket
from aetiket import (
    CollectionIn,
    CollectionOut,
    CollectionUpdate,
    DatasetIn,
    DatasetOut,
    DatasetUpdate,
    FileDatasetIn,
    FileIn,
    FileOut,
    FileStatus,
    FileType,
    FileUpdate,
    ScopeIn,
    ScopeOut,
    ScopeUpdate,
    UserIn,
    UserOut,
    UserUpdate,
    new_uid,
)
from aetiket.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from aetiket.models import CollectionDatasetOut, FileDatasetOut, UploadOut
from aetiket.transfer.tus import Created, ServerInfo, UploadState
from tests.client.conftest import PASSWORD, Member, Traced, new_user
from tests.conftest import ServerProcess

pytestmark = pytest.mark.anyio

UTC = timezone.utc


def when(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, 12, 0, 0, tzinfo=UTC)


def queries(traced: Traced) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(url).query) for _, url in traced.requests]


def check_api_error(exc: ApiError, status: int, method: str, url: str) -> None:
    """The fields every ApiError carries."""
    assert exc.status == status
    assert exc.method == method
    assert exc.url == url
    assert exc.detail
    assert isinstance(exc.request_id, str) and re.fullmatch(r"[0-9a-f]{16}", exc.request_id)
    assert str(status) in str(exc)


@asynccontextmanager
async def other_user(server: ServerProcess, admin: aetiket.Client) -> AsyncIterator[aetiket.Client]:
    name = await new_user(admin)
    async with aetiket.Client(server.url) as client:
        await client.login(name, PASSWORD)
        yield client


async def new_file(client: aetiket.Client, scope: str, n: int = 1) -> list[str]:
    uids = [new_uid() for _ in range(n)]
    await client.datasets.create(
        DatasetIn(
            name="uploads",
            uid=new_uid(),
            scope=scope,
            files=[FileDatasetIn(name=f"f{i}.bin", uid=u) for i, u in enumerate(uids)],
        )
    )
    return uids


# ---------------------------------------------------------------------------- session


async def test_login_refresh_and_token_properties(server: ServerProcess) -> None:
    async with aetiket.Client(server.url + "/") as client:
        assert client.base_url == server.url
        assert client.token is None and client.refresh_token is None
        await client.login(server.admin_user, server.admin_password)
        first = (client.token, client.refresh_token)
        assert all(first)
        await client.refresh()
        assert client.token and client.refresh_token
        assert client.token != first[0] and client.refresh_token != first[1]
        assert (await client.users.me()).username == server.admin_user
        with pytest.raises(Unauthorized):
            await client.login(server.admin_user, "not-the-password")
    # The refresh token is single-use: the first one is spent.
    async with aetiket.Client(server.url, refresh_token=first[1]) as stale:
        with pytest.raises(Unauthorized):
            await stale.refresh()


# ---------------------------------------------------------------------------- users


async def test_users_create_get_me_update(server: ServerProcess, admin: aetiket.Client) -> None:
    name = "u-" + new_uid()[:12]
    made = await admin.users.create(
        UserIn(
            username=name,
            firstname="Ada",
            lastname="Lovelace",
            email=f"{name}@example.org",
            hashed_password=PASSWORD,
        )
    )
    assert isinstance(made, UserOut)
    assert (made.username, made.firstname, made.lastname, made.email) == (
        name,
        "Ada",
        "Lovelace",
        f"{name}@example.org",
    )
    assert made.active is True and made.admin is False and made.scopes == []
    assert made.disabled is None
    assert isinstance(made.created, datetime) and made.created.tzinfo is not None
    assert not hasattr(made, "hashed_password")

    assert await admin.users.get(name) == made

    me = await admin.users.me()
    assert isinstance(me, UserOut)
    assert me.username == server.admin_user and me.admin is True

    up = await admin.users.update(name, firstname="Grace")
    assert isinstance(up, UserOut)
    assert (up.firstname, up.lastname) == ("Grace", "Lovelace")
    up = await admin.users.update(name, UserUpdate(lastname="Hopper", email=f"{name}@example.com"))
    assert (up.firstname, up.lastname, up.email) == ("Grace", "Hopper", f"{name}@example.com")
    assert await admin.users.get(name) == up
    with pytest.raises(TypeError):
        await admin.users.update(name, UserUpdate(lastname="X"), firstname="Y")

    async with aetiket.Client(server.url) as client:
        await client.login(name, PASSWORD)
        me = await client.users.me()
        assert (me.username, me.firstname, me.admin) == (name, "Grace", False)

    with pytest.raises(Conflict) as info:
        await admin.users.create(
            UserIn(
                username=name,
                firstname="Other",
                lastname="Person",
                email="other@example.org",
                hashed_password=PASSWORD,
            )
        )
    assert info.value.replayed is False


async def test_users_list_pages(traced: Traced) -> None:
    client = traced.client
    made = {await new_user(client) for _ in range(3)}
    traced.reset()
    pager = client.users.list(page_size=2)
    seen = [u async for u in pager]
    assert all(isinstance(u, UserOut) for u in seen)
    names = [u.username for u in seen]
    assert len(names) == len(set(names)) >= 4
    assert made <= set(names)
    # Pages of 2 until a short one.
    assert len(traced.requests) == len(seen) // 2 + 1
    assert [(q["offset"], q["limit"]) for q in queries(traced)] == [
        ([str(2 * i)], ["2"]) for i in range(len(seen) // 2 + 1)
    ]
    assert await pager.all() == seen
    assert await pager.page() == seen[:2]
    assert await pager.page(1, 3) == seen[1:4]


# ---------------------------------------------------------------------------- scopes


async def test_scopes_create_get_list_update(admin: aetiket.Client) -> None:
    prefix = "p-" + new_uid()[:12]
    names = [f"{prefix}-{i}" for i in range(3)]
    made = [
        await admin.scopes.create(ScopeIn(name=n, description=f"d{i}")) for i, n in enumerate(names)
    ]
    first = made[0]
    assert isinstance(first, ScopeOut)
    assert (first.name, first.description, first.restricted, first.archived) == (
        names[0],
        "d0",
        None,
        None,
    )
    assert isinstance(first.created, datetime)
    assert await admin.scopes.get(names[1]) == made[1]

    pager = admin.scopes.list(name=prefix, page_size=2)
    listed = [s async for s in pager]
    assert sorted(s.name for s in listed) == names
    assert await pager.all() == listed
    assert await pager.page(0, 2) == listed[:2]
    assert await pager.page(2) == listed[2:]
    assert await admin.scopes.list(name=prefix + "-nothing").all() == []

    up = await admin.scopes.update(names[0], description="changed")
    assert isinstance(up, ScopeOut) and up.description == "changed"
    stamp = when(2026, 1, 2)
    up = await admin.scopes.update(names[0], ScopeUpdate(restricted=stamp, archived=stamp))
    assert (up.description, up.restricted, up.archived) == ("changed", stamp, stamp)
    # An archived scope is read-only.
    with pytest.raises(Forbidden):
        await admin.datasets.create(DatasetIn(name="late", uid=new_uid(), scope=names[0]))
    up = await admin.scopes.update(names[0], archived=None)
    assert up.archived is None and up.restricted == stamp
    assert await admin.scopes.get(names[0]) == up
    await admin.datasets.create(DatasetIn(name="now", uid=new_uid(), scope=names[0]))

    with pytest.raises(Conflict) as info:
        await admin.scopes.create(ScopeIn(name=names[2], description="another"))
    assert info.value.replayed is False


async def test_scope_members(server: ServerProcess, admin: aetiket.Client, member: Member) -> None:
    async with other_user(server, admin) as other:
        me = await other.users.me()
        with pytest.raises(Forbidden):
            await other.scopes.get(member.scope)
        out = await member.client.scopes.add_member(member.scope, me.username)
        assert isinstance(out, ScopeOut) and out.name == member.scope
        assert (await other.scopes.get(member.scope)).name == member.scope
        assert [s.name for s in (await other.users.me()).scopes] == [member.scope]
        assert [s.name async for s in other.scopes.list()] == [member.scope]
        out = await member.client.scopes.remove_member(member.scope, me.username)
        assert isinstance(out, ScopeOut) and out.name == member.scope
        with pytest.raises(Forbidden):
            await other.scopes.get(member.scope)
        assert await other.scopes.list().all() == []


# ---------------------------------------------------------------------------- datasets


async def test_dataset_create_get_update_delete(member: Member) -> None:
    client, scope = member.client, member.scope
    collected = datetime(2025, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
    fuid = new_uid()
    ds_in = DatasetIn(
        name="run 1",
        uid=new_uid(),
        scope=scope,
        collected=collected,
        creator="Ada",
        description="first run",
        meta={"sample": "sampleA1", "keywords": ["kw_one", "kw_two"]},
        duration=12.5,
        ranking=3,
        files=[
            FileDatasetIn(
                name="raw.h5", uid=fuid, mimetype="application/x-hdf5", filetype=FileType.raw
            )
        ],
    )
    out = await client.datasets.create(ds_in)
    assert isinstance(out, DatasetOut)
    assert (out.name, out.uid, out.scope, out.collected, out.creator, out.description) == (
        "run 1",
        ds_in.uid,
        scope,
        collected,
        "Ada",
        "first run",
    )
    assert out.meta == {"sample": "sampleA1", "keywords": ["kw_one", "kw_two"]}
    assert (out.duration, out.ranking, out.collections) == (12.5, 3, [])
    assert isinstance(out.created, datetime) and isinstance(out.modified, datetime)
    [file] = out.files
    assert isinstance(file, FileDatasetOut)
    assert (file.uid, file.name, file.mimetype, file.filetype, file.status) == (
        fuid,
        "raw.h5",
        "application/x-hdf5",
        FileType.raw,
        FileStatus.unavailable,
    )
    assert await client.datasets.get(scope, ds_in.uid) == out

    up = await client.datasets.update(scope, ds_in.uid, DatasetUpdate(name="renamed", ranking=5))
    assert isinstance(up, DatasetOut)
    assert (up.name, up.ranking, up.description, up.creator) == ("renamed", 5, "first run", "Ada")
    later = when(2026, 2, 3)
    up = await client.datasets.update(
        scope,
        ds_in.uid,
        description="second look",
        creator="Grace",
        duration=1.5,
        collected=later,
    )
    assert (up.name, up.description, up.creator, up.duration, up.collected) == (
        "renamed",
        "second look",
        "Grace",
        1.5,
        later,
    )
    up = await client.datasets.update(scope, ds_in.uid, description=None)
    assert up.description is None and up.creator == "Grace"
    assert await client.datasets.get(scope, ds_in.uid) == up
    with pytest.raises(TypeError):
        await client.datasets.update(scope, ds_in.uid, DatasetUpdate(name="x"), ranking=1)

    assert await client.datasets.delete(scope, ds_in.uid) is None
    with pytest.raises(NotFound):
        await client.datasets.get(scope, ds_in.uid)
    with pytest.raises(NotFound):  # its files went too
        await client.files.get(scope, fuid)
    with pytest.raises(NotFound):
        await client.datasets.delete(scope, ds_in.uid)


async def test_dataset_conflict_is_real(member: Member) -> None:
    client, scope = member.client, member.scope
    uid = new_uid()
    await client.datasets.create(DatasetIn(name="first", uid=uid, scope=scope))
    with pytest.raises(Conflict) as info:
        await client.datasets.create(DatasetIn(name="second", uid=uid, scope=scope))
    exc = info.value
    assert exc.replayed is False
    check_api_error(exc, 409, "POST", f"{client.base_url}/api/v1/datasets/")
    assert (await client.datasets.get(scope, uid)).name == "first"


async def test_dataset_list_every_filter(member: Member) -> None:
    client, scope = member.client, member.scope
    coll = await client.collections.create(CollectionIn(name="c-" + new_uid(), scope=scope))
    d1 = DatasetIn(
        name="alpha-1",
        uid=new_uid(),
        scope=scope,
        collected=when(2024),
        ranking=2,
        meta={
            "sample": "sampleA",
            "fridge": "fridge01",
            "setup": "setup01",
            "measurement_type": "mtype01",
            "keywords": ["kw_one", "kw_two"],
            "variablesMeasured": ["var_x", "var_y"],
        },
        files=[FileDatasetIn(name="p.png", uid=new_uid(), filetype=FileType.preview)],
    )
    d2 = DatasetIn(
        name="beta-2",
        uid=new_uid(),
        scope=scope,
        collected=when(2025),
        meta={
            "sample": "sampleB",
            "fridge": "fridge02",
            "keywords": ["kw_one"],
            "variablesMeasured": ["var_x"],
        },
    )
    d3 = DatasetIn(
        name="alpha-3",
        uid=new_uid(),
        scope=scope,
        collected=when(2026),
        ranking=1,
        meta={"sample": ["sampleA", "sampleC"], "setup": "setup02", "measurement_type": "mtype02"},
        files=[FileDatasetIn(name="r.h5", uid=new_uid(), filetype=FileType.raw)],
    )
    for d in (d1, d2, d3):
        await client.datasets.create(d)
    await client.collections.add_dataset(scope, coll.name, d1.uid)
    await client.collections.add_dataset(scope, coll.name, d3.uid)
    a, b, c = d1.uid, d2.uid, d3.uid

    everything = await client.datasets.list(scope).all()
    assert all(isinstance(d, DatasetOut) for d in everything)
    assert {d.uid for d in everything} == {a, b, c}
    # Newest created first, then uid.
    order = sorted(everything, key=lambda d: (-d.created.timestamp(), d.uid))
    assert [d.uid for d in everything] == [d.uid for d in order]

    cases: list[tuple[dict[str, object], set[str]]] = [
        ({"collection": coll.name}, {a, c}),
        ({"name": "alpha"}, {a, c}),
        ({"name": "beta"}, {b}),
        ({"uid": b}, {b}),
        ({"since": when(2024, 6)}, {b, c}),
        ({"until": when(2025, 6)}, {a, b}),
        ({"since": when(2024, 6), "until": when(2025, 6)}, {b}),
        ({"sample": "sampleA"}, {a, c}),
        ({"sample": "sampleC"}, {c}),
        ({"fridge": "fridge02"}, {b}),
        ({"setup": "setup02"}, {c}),
        ({"measurement_type": "mtype01"}, {a}),
        ({"keywords": ["kw_one"]}, {a, b}),
        ({"keywords": ["kw_one", "kw_two"]}, {a}),
        ({"variables_measured": ["var_x"]}, {a, b}),
        ({"variables_measured": ["var_x", "var_y"]}, {a}),
        ({"preview": True}, {a}),
        ({"ranking": 1}, {a, c}),
        ({"ranking": 2}, {a}),
        ({"sample": "sampleA", "ranking": 2}, {a}),
        ({"name": "alpha", "collection": coll.name, "setup": "setup02"}, {c}),
        ({"sample": "nothing-here"}, set()),
    ]
    for filters, expected in cases:
        got = {d.uid for d in await client.datasets.list(scope, **filters).all()}  # type: ignore[arg-type]
        assert got == expected, filters


async def test_dataset_list_pages(traced: Traced, scope: str) -> None:
    client = traced.client
    made = [
        await client.datasets.create(DatasetIn(name=f"run-{i}", uid=new_uid(), scope=scope))
        for i in range(7)
    ]
    traced.reset()
    pager = client.datasets.list(scope, page_size=2)
    seen = [d async for d in pager]
    assert {d.uid for d in seen} == {d.uid for d in made} and len(seen) == 7
    qs = queries(traced)
    assert [(q["offset"], q["limit"]) for q in qs] == [
        (["0"], ["2"]),
        (["2"], ["2"]),
        (["4"], ["2"]),
        (["6"], ["2"]),
    ]
    assert all(q["scope"] == [scope] for q in qs)

    traced.reset()
    assert await pager.all() == seen
    assert len(traced.requests) == 4

    traced.reset()
    assert await pager.page(2, 3) == seen[2:5]
    assert [(q["offset"], q["limit"]) for q in queries(traced)] == [(["2"], ["3"])]
    assert await pager.page() == seen[:2]
    assert await pager.page(6) == seen[6:]

    traced.reset()
    assert await client.datasets.list(scope, page_size=7).all() == seen
    assert len(traced.requests) == 2  # a full page, then an empty one
    with pytest.raises(ValueError):
        client.datasets.list(scope, page_size=0)


# ---------------------------------------------------------------------------- metadata


async def test_metadata_add_set_delete(member: Member) -> None:
    client, scope = member.client, member.scope
    uid = new_uid()
    await client.datasets.create(
        DatasetIn(name="m", uid=uid, scope=scope, meta={"sample": "sampleA", "fridge": "fridge01"})
    )
    out = await client.metadata.add(
        scope, uid, {"setup": "setup01", "sample": ["sampleB", "sampleC"]}
    )
    assert isinstance(out, DatasetOut) and out.uid == uid
    assert out.meta == {"sample": ["sampleB", "sampleC"], "fridge": "fridge01", "setup": "setup01"}
    out = await client.metadata.set(scope, uid, {"keywords": ["kw_one"], "fridge": "fridge02"})
    assert out.meta == {"keywords": ["kw_one"], "fridge": "fridge02"}
    out = await client.metadata.delete(scope, uid, ["keywords"])
    assert isinstance(out, DatasetOut) and out.meta == {"fridge": "fridge02"}
    assert (await client.datasets.get(scope, uid)).meta == {"fridge": "fridge02"}
    assert [d.uid for d in await client.datasets.list(scope, fridge="fridge02").all()] == [uid]

    # Checked before sending: nothing changes on the server.
    with pytest.raises(ValidationFailed, match=r"meta\.setup\.0"):
        await client.metadata.add(scope, uid, {"setup": ["ab"]})
    with pytest.raises(ValidationFailed, match=r"meta\.ab"):
        await client.metadata.set(scope, uid, {"ab": "value"})
    assert (await client.datasets.get(scope, uid)).meta == {"fridge": "fridge02"}


# ---------------------------------------------------------------------------- collections


async def test_collections(member: Member) -> None:
    client, scope = member.client, member.scope
    prefix = "c-" + new_uid()[:12]
    names = [f"{prefix}-{i}" for i in range(3)]
    made = [
        await client.collections.create(CollectionIn(name=n, scope=scope, description=f"d{i}"))
        for i, n in enumerate(names)
    ]
    first = made[0]
    assert isinstance(first, CollectionOut)
    assert (first.name, first.scope, first.description) == (names[0], scope, "d0")
    assert isinstance(first.created, datetime) and isinstance(first.modified, datetime)
    assert await client.collections.get(scope, names[1]) == made[1]

    pager = client.collections.list(scope, name=prefix, page_size=2)
    listed = [c async for c in pager]
    assert sorted(c.name for c in listed) == names
    assert await pager.all() == listed
    assert await pager.page(1, 2) == listed[1:3]
    assert {c.name for c in await client.collections.list(scope).all()} == set(names)
    assert await client.collections.list(scope, name="zz-none").all() == []

    up = await client.collections.update(scope, names[0], description="changed")
    assert isinstance(up, CollectionOut) and (up.name, up.description) == (names[0], "changed")
    renamed = prefix + "-renamed"
    up = await client.collections.update(scope, names[0], CollectionUpdate(name=renamed))
    assert (up.name, up.description) == (renamed, "changed")
    with pytest.raises(NotFound):
        await client.collections.get(scope, names[0])
    assert await client.collections.get(scope, renamed) == up
    up = await client.collections.update(scope, renamed, description=None)
    assert up.description is None

    uid = new_uid()
    await client.datasets.create(DatasetIn(name="in a collection", uid=uid, scope=scope))
    out = await client.collections.add_dataset(scope, renamed, uid)
    assert isinstance(out, CollectionOut) and out.name == renamed
    ds = await client.datasets.get(scope, uid)
    assert ds.collections == [CollectionDatasetOut(name=renamed)]
    assert [d.uid for d in await client.datasets.list(scope, collection=renamed).all()] == [uid]
    out = await client.collections.remove_dataset(scope, renamed, uid)
    assert isinstance(out, CollectionOut) and out.name == renamed
    assert (await client.datasets.get(scope, uid)).collections == []
    assert await client.datasets.list(scope, collection=renamed).all() == []

    with pytest.raises(Conflict):
        await client.collections.create(CollectionIn(name=names[1], scope=scope, description="x"))


# ---------------------------------------------------------------------------- files


async def test_files(member: Member) -> None:
    client, scope = member.client, member.scope
    ds_uid = new_uid()
    await client.datasets.create(DatasetIn(name="with files", uid=ds_uid, scope=scope))
    f_in = FileIn(
        name="notes.txt",
        uid=new_uid(),
        dataset_uid=ds_uid,
        scope=scope,
        mimetype="text/plain",
        creator="Ada",
        rating=1,
    )
    out = await client.files.create(f_in)
    assert isinstance(out, FileOut)
    assert (out.name, out.uid, out.scope, out.mimetype, out.creator, out.rating) == (
        "notes.txt",
        f_in.uid,
        scope,
        "text/plain",
        "Ada",
        1,
    )
    assert (out.status, out.filetype, out.uploads, out.immutable) == (
        FileStatus.unavailable,
        FileType.undefined,
        [],
        False,
    )
    got = await client.files.get(scope, f_in.uid)
    assert isinstance(got, FileOut) and (got.uid, got.status) == (f_in.uid, FileStatus.unavailable)
    assert [f.uid for f in (await client.datasets.get(scope, ds_uid)).files] == [f_in.uid]

    with pytest.raises(Conflict):  # no content yet
        await client.files.read(scope, f_in.uid)

    data = bytes(range(256)) * 4
    await client.uploads.create(length=len(data), scope=scope, file_uid=f_in.uid, body=data)
    got = await client.files.get(scope, f_in.uid)
    assert (got.status, got.size) == (FileStatus.available, len(data)) and got.etag
    assert got.download_link

    assert await client.files.read(scope, f_in.uid) == data
    assert await client.files.read(scope, f_in.uid, range=(2, 5)) == data[2:6]
    assert await client.files.read(scope, f_in.uid, range=(0, len(data) - 1)) == data
    assert await client.files.read(scope, f_in.uid, range=(1000, 1023)) == data[1000:]
    assert await client.files.read(scope, f_in.uid, max_bytes=len(data)) == data
    with pytest.raises(ValueError, match="max_bytes"):
        await client.files.read(scope, f_in.uid, max_bytes=len(data) - 1)
    assert await client.files.read(scope, f_in.uid, range=(0, 9), max_bytes=10) == data[:10]
    with pytest.raises(ValueError):
        await client.files.read(scope, f_in.uid, range=(5, 2))

    up = await client.files.update(scope, f_in.uid, name="renamed.txt")
    assert isinstance(up, FileOut) and (up.name, up.mimetype) == ("renamed.txt", "text/plain")
    up = await client.files.update(
        scope,
        f_in.uid,
        FileUpdate(filetype=FileType.derived, rating=4, altlocation="s3://bucket/key"),
    )
    assert (up.name, up.filetype, up.rating, up.altlocation) == (
        "renamed.txt",
        FileType.derived,
        4,
        "s3://bucket/key",
    )
    with pytest.raises(TypeError):
        await client.files.update(scope, f_in.uid, FileUpdate(rating=1), name="x")

    with pytest.raises(Conflict) as info:
        await client.files.create(
            FileIn(name="other.txt", uid=f_in.uid, dataset_uid=ds_uid, scope=scope)
        )
    assert info.value.replayed is False

    assert await client.files.delete(scope, f_in.uid) is None
    with pytest.raises(NotFound):
        await client.files.get(scope, f_in.uid)
    with pytest.raises(NotFound):
        await client.files.read(scope, f_in.uid)
    assert (await client.datasets.get(scope, ds_uid)).files == []


async def test_files_read_whole_content_of_a_few_mib(member: Member) -> None:
    """More than one network read's worth: every byte comes back, not the first buffer."""
    client, scope = member.client, member.scope
    [fuid] = await new_file(client, scope)
    data = bytes(range(251)) * (3 * 2**20 // 251)
    created = await client.uploads.create(length=len(data), scope=scope, file_uid=fuid)
    step = 2**19
    for offset in range(0, len(data), step):
        await client.uploads.send(created.url, offset, data[offset : offset + step])
    assert (await client.files.get(scope, fuid)).size == len(data)
    got = await client.files.read(scope, fuid)
    assert len(got) == len(data) and got == data
    got = await client.files.read(scope, fuid, range=(100, 2**21 + 99))
    assert got == data[100 : 2**21 + 100]


# ---------------------------------------------------------------------------- uploads


async def test_uploads_single(member: Member) -> None:
    client, scope = member.client, member.scope
    info = await client.uploads.options()
    assert isinstance(info, ServerInfo)
    assert "1.0.0" in info.versions
    assert {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "checksum",
        "termination",
        "concatenation",
        "expiration",
    } <= info.extensions
    assert {"sha1", "md5", "sha256"} <= info.checksum_algorithms
    assert info.concatenation and info.checksum() == "sha256"

    [fuid] = await new_file(client, scope)
    created = await client.uploads.create(length=15, scope=scope, file_uid=fuid)
    assert isinstance(created, Created)
    assert created.url.startswith(client.base_url + "/api/v1/uploads/")
    assert created.offset in (0, None)
    assert created.expires is not None and created.expires > datetime.now(UTC)

    state = await client.uploads.status(created.url)
    assert isinstance(state, UploadState)
    assert (state.offset, state.length, state.concat) == (0, 15, None)
    assert state.metadata == {"scope": scope.encode(), "uid": fuid.encode()}
    assert (await client.files.get(scope, fuid)).status == FileStatus.pending

    assert await client.uploads.send(created.url, 0, b"hello") == 5
    with pytest.raises(Conflict):  # not the server's offset
        await client.uploads.send(created.url, 0, b"again")
    assert await client.uploads.send(created.url, 5, b"world", checksum="sha256") == 10

    async def stream() -> AsyncIterator[bytes]:
        yield b"!!"
        yield b"!!!"

    with pytest.raises(ValueError):
        await client.uploads.send(created.url, 10, stream())
    assert await client.uploads.send(created.url, 10, stream(), size=5) == 15
    assert (await client.uploads.status(created.url)).offset == 15
    record = await client.files.get(scope, fuid)
    assert (record.status, record.size) == (FileStatus.available, 15)
    assert await client.files.read(scope, fuid) == b"helloworld!!!!!"

    uploads = await client.uploads.list(scope, fuid)
    assert all(isinstance(u, UploadOut) for u in uploads)
    [mine] = [u for u in uploads if created.url.endswith("/" + u.uid)]
    assert (mine.offset, mine.length, mine.completed, mine.concat) == (15, 15, True, False)


async def test_uploads_terminate_deferred_and_concat(member: Member) -> None:
    client, scope = member.client, member.scope
    f_term, f_defer, f_concat = await new_file(client, scope, 3)

    created = await client.uploads.create(length=10, scope=scope, file_uid=f_term)
    assert await client.uploads.terminate(created.url) is None
    with pytest.raises((NotFound, aetiket.Gone)):
        await client.uploads.status(created.url)
    assert created.url.rsplit("/", 1)[1] not in {
        u.uid for u in await client.uploads.list(scope, f_term)
    }

    deferred = await client.uploads.create(length=None, scope=scope, file_uid=f_defer)
    assert (await client.uploads.status(deferred.url)).length is None
    assert await client.uploads.send(deferred.url, 0, b"xyz", length=3) == 3
    assert await client.files.read(scope, f_defer) == b"xyz"

    p1 = await client.uploads.create(
        length=3, scope=scope, file_uid=f_concat, partial=True, body=b"abc", checksum="sha256"
    )
    p2 = await client.uploads.create(length=2, scope=scope, file_uid=f_concat, partial=True)
    assert p1.offset == 3
    assert await client.uploads.send(p2.url, 0, b"de") == 2
    assert (await client.uploads.status(p1.url)).concat == "partial"
    final = await client.uploads.create(
        length=None, scope=scope, file_uid=f_concat, final_of=[p1.url, p2.url]
    )
    assert (await client.uploads.status(final.url)).concat.startswith("final;")  # type: ignore[union-attr]
    assert await client.files.read(scope, f_concat) == b"abcde"
    listed = await client.uploads.list(scope, f_concat)
    assert sum(u.concat for u in listed) == 3


async def test_uploads_large_chunks(member: Member) -> None:
    """One PATCH (and one creation-with-upload) of several MiB of bytes."""
    client, scope = member.client, member.scope
    f_send, f_create = await new_file(client, scope, 2)
    data = bytes(range(256)) * (3 * 2**20 // 256)
    created = await client.uploads.create(length=len(data), scope=scope, file_uid=f_send)
    assert await client.uploads.send(created.url, 0, data) == len(data)
    assert (await client.files.get(scope, f_send)).size == len(data)
    created = await client.uploads.create(
        length=len(data), scope=scope, file_uid=f_create, body=data
    )
    assert created.offset == len(data)
    assert (await client.files.get(scope, f_create)).status == FileStatus.available


# ---------------------------------------------------------------------------- errors


async def test_unauthorized(server: ServerProcess) -> None:
    async with aetiket.Client(server.url) as anonymous:
        with pytest.raises(Unauthorized) as info:
            await anonymous.users.me()
        check_api_error(info.value, 401, "GET", f"{server.url}/api/v1/users/me")
        with pytest.raises(Unauthorized):
            await anonymous.datasets.list("anything").all()
        with pytest.raises(Unauthorized) as info:
            await anonymous.login(server.admin_user, "wrong password")
        check_api_error(info.value, 401, "POST", f"{server.url}/api/v1/token")
    async with aetiket.Client(server.url, token="not-a-real-token") as bad:
        with pytest.raises(Unauthorized):
            await bad.scopes.list().all()


async def test_forbidden_for_a_non_member(
    server: ServerProcess, admin: aetiket.Client, member: Member
) -> None:
    scope = member.scope
    ds_uid = new_uid()
    [fuid] = await new_file(member.client, scope)
    await member.client.datasets.create(DatasetIn(name="secret", uid=ds_uid, scope=scope))
    coll = await member.client.collections.create(CollectionIn(name="c-x", scope=scope))
    async with other_user(server, admin) as other:
        with pytest.raises(Forbidden) as info:
            await other.scopes.get(scope)
        check_api_error(info.value, 403, "GET", f"{server.url}/api/v1/scopes/{scope}")
        calls = [
            lambda: other.datasets.get(scope, ds_uid),
            lambda: other.datasets.list(scope).all(),
            lambda: other.datasets.create(DatasetIn(name="x", uid=new_uid(), scope=scope)),
            lambda: other.datasets.update(scope, ds_uid, name="stolen"),
            lambda: other.datasets.delete(scope, ds_uid),
            lambda: other.metadata.add(scope, ds_uid, {"sample": "sampleX"}),
            lambda: other.collections.get(scope, coll.name),
            lambda: other.collections.list(scope).all(),
            lambda: other.files.get(scope, fuid),
            lambda: other.files.read(scope, fuid),
            lambda: other.uploads.create(length=1, scope=scope, file_uid=fuid),
            lambda: other.scopes.add_member(scope, "admin"),
            # the users API is the admin's
            lambda: other.users.list().all(),
            lambda: other.users.get(member.username),
        ]
        for call in calls:
            with pytest.raises(Forbidden):
                await call()
    # Nothing changed.
    assert (await member.client.datasets.get(scope, ds_uid)).name == "secret"


async def test_not_found(admin: aetiket.Client, scope: str) -> None:
    base = admin.base_url
    with pytest.raises(NotFound) as info:
        await admin.datasets.get(scope, "no-such-dataset")
    check_api_error(info.value, 404, "GET", f"{base}/api/v1/datasets/{scope}/no-such-dataset")
    assert "no-such-dataset" in info.value.detail
    with pytest.raises(NotFound) as info:
        await admin.datasets.update(scope, "no-such", name="x")
    assert info.value.method == "PATCH"
    missing = "missing-" + new_uid()
    for call in (
        lambda: admin.scopes.get(missing),
        lambda: admin.collections.get(scope, "no-such"),
        lambda: admin.files.get(scope, "no-such"),
        lambda: admin.users.get(missing),
        lambda: admin.metadata.add(scope, "no-such", {"sample": "sampleA"}),
        lambda: admin.collections.add_dataset(scope, "no-such", "no-such"),
    ):
        with pytest.raises(NotFound):
            await call()


async def test_server_side_validation(admin: aetiket.Client, scope: str) -> None:
    # The client checks the query it builds, not the page a caller asks for.
    with pytest.raises(ValidationFailed) as info:
        await admin.datasets.list(scope).page(0, 10_001)
    exc = info.value
    check_api_error(exc, 422, "GET", f"{admin.base_url}/api/v1/datasets/")
    assert [d["loc"] for d in exc.details] == [["query", "limit"]]
    assert all({"loc", "msg", "type"} <= d.keys() for d in exc.details)
    assert "query.limit" in str(exc)
    with pytest.raises(ValidationFailed) as info:
        await admin.datasets.list(scope).page(-1, 5)
    assert [d["loc"] for d in info.value.details] == [["query", "offset"]]
    assert info.value.request_id  # the server's answer
    # scopes.list checks each page's query itself: refused before sending.
    with pytest.raises(ValidationFailed, match="offset") as info:
        await admin.scopes.list().page(-1, 5)
    assert info.value.request_id is None


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"ab": "value"}, "meta.ab"),
        ({"k" * 20: "value"}, "meta." + "k" * 20),
        ({"sample": "ab"}, "meta.sample"),
        ({"sample": "v" * 20}, "meta.sample"),
        ({"sample": ["good-one", "ab"]}, "meta.sample.1"),
        ({"fridge": "fridge01", "sample": ["good-one", "good-two", "y" * 20]}, "meta.sample.2"),
    ],
)
async def test_client_side_validation_sends_nothing(
    traced: Traced, scope: str, meta: dict[str, object], field: str
) -> None:
    client = traced.client
    uid = new_uid()
    with pytest.raises(ValidationFailed) as info:
        await client.datasets.create(DatasetIn(name="bad", uid=uid, scope=scope, meta=meta))  # type: ignore[arg-type]
    exc = info.value
    assert exc.status == 422
    assert ["body", *field.split(".")] in [[str(p) for p in d["loc"]] for d in exc.details]
    assert field in str(exc)
    assert traced.requests == []
    with pytest.raises(NotFound):
        await client.datasets.get(scope, uid)


async def test_client_side_validation_of_other_bodies(traced: Traced, scope: str) -> None:
    client = traced.client
    with pytest.raises(ValidationFailed, match="name"):
        await client.scopes.create(ScopeIn(name="has/slash"))
    with pytest.raises(ValidationFailed, match="ranking"):
        await client.datasets.update(scope, "x", ranking=2**63)
    with pytest.raises(ValidationFailed, match="uid"):
        await client.files.create(FileIn(name="f", uid="", dataset_uid="d", scope=scope))
    assert traced.requests == []


# ---------------------------------------------------------------------------- models


def test_new_uid_unique_and_url_safe() -> None:
    uids = [new_uid() for _ in range(2000)]
    assert len(set(uids)) == len(uids)
    for uid in uids:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", uid)
        assert quote(uid, safe="") == uid
        assert len(uid) >= 16


def test_dataset_collected_defaults_to_now_utc() -> None:
    before = datetime.now(UTC)
    ds = DatasetIn(name="n", uid=new_uid(), scope="s")
    after = datetime.now(UTC)
    assert ds.collected.tzinfo is not None
    assert ds.collected.utcoffset() == timedelta(0)
    assert before <= ds.collected <= after
    other = DatasetIn(name="n", uid=new_uid(), scope="s")
    assert other.meta == {} and other.files == [] and other.meta is not ds.meta
