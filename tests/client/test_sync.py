"""``aetiket.sync.Client``: the same calls without await, from plain code and from inside a
running event loop; its private thread stops on close."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import aetiket
import aetiket.sync
from aetiket import DatasetIn, DatasetOut, ScopeIn, ScopeOut, new_uid
from aetiket.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from tests.conftest import ServerProcess


def wait_threads(count: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while threading.active_count() > count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def exercise(server: ServerProcess, client: aetiket.sync.Client) -> None:
    """The calls every sync test makes: login, create, list with pages, errors."""
    client.login(server.admin_user, server.admin_password)
    assert client.users.me().username == server.admin_user
    scope = client.scopes.create(ScopeIn(name="s-" + new_uid(), description="sync"))
    assert isinstance(scope, ScopeOut)
    assert client.scopes.get(scope.name) == scope
    made = [
        client.datasets.create(DatasetIn(name=f"run-{i}", uid=new_uid(), scope=scope.name))
        for i in range(5)
    ]
    assert all(isinstance(d, DatasetOut) for d in made)

    pager = client.datasets.list(scope.name, page_size=2)
    seen = list(pager)  # three pages
    assert {d.uid for d in seen} == {d.uid for d in made} and len(seen) == 5
    assert pager.all() == seen
    assert pager.page() == seen[:2]
    assert pager.page(1, 3) == seen[1:4]
    # Stop part-way: the iterator is closed without fetching more.
    for n, _ in enumerate(client.datasets.list(scope.name, page_size=2)):
        if n == 2:
            break

    up = client.datasets.update(scope.name, made[0].uid, name="renamed")
    assert up.name == "renamed"
    with pytest.raises(NotFound):
        client.datasets.get(scope.name, "nope")
    with pytest.raises(ValidationFailed):
        client.datasets.create(
            DatasetIn(name="x", uid=new_uid(), scope=scope.name, meta={"ab": "value"})
        )
    with pytest.raises(ValidationFailed):
        client.datasets.list(scope.name).page(0, 10_001)
    client.datasets.delete(scope.name, made[1].uid)
    with pytest.raises(NotFound):
        client.datasets.get(scope.name, made[1].uid)


def test_sync_client_in_plain_code(server: ServerProcess) -> None:
    before = threading.active_count()
    client = aetiket.sync.Client(server.url)
    try:
        assert threading.active_count() > before  # the private loop's thread
        assert client.base_url == server.url
        exercise(server, client)
    finally:
        client.close()
    assert wait_threads(before) == before
    client.close()  # twice is fine


def test_sync_client_as_context_manager(server: ServerProcess) -> None:
    before = threading.active_count()
    with aetiket.sync.Client(server.url) as client:
        with pytest.raises(Unauthorized):
            client.users.me()
        client.login(server.admin_user, server.admin_password)
        assert client.token
        assert client.users.me().admin is True
    assert wait_threads(before) == before


def test_sync_errors_are_the_async_types(server: ServerProcess) -> None:
    with aetiket.sync.Client(server.url) as admin:
        admin.login(server.admin_user, server.admin_password)
        name = "u-" + new_uid()[:12]
        admin.users.create(
            aetiket.UserIn(
                username=name,
                firstname="A",
                lastname="B",
                email=f"{name}@example.org",
                hashed_password="pw-sync",
            )
        )
        scope = admin.scopes.create(ScopeIn(name="s-" + new_uid())).name
        with aetiket.sync.Client(server.url) as user:
            user.login(name, "pw-sync")
            with pytest.raises(Forbidden) as info:
                user.scopes.get(scope)
            assert type(info.value) is aetiket.errors.Forbidden and info.value.status == 403
            with pytest.raises(Forbidden):
                list(user.datasets.list(scope))
            with pytest.raises(Unauthorized):
                user.login(name, "wrong")


def test_sync_client_inside_asyncio_run(server: ServerProcess) -> None:
    before = threading.active_count()

    async def main() -> str:
        asyncio.get_running_loop()  # a loop is running here
        with aetiket.sync.Client(server.url) as client:
            exercise(server, client)
            return client.users.me().username

    assert asyncio.run(main()) == server.admin_user
    assert wait_threads(before) == before


@pytest.mark.anyio
async def test_sync_client_inside_an_async_test(server: ServerProcess) -> None:
    before = threading.active_count()
    client = aetiket.sync.Client(server.url)
    try:
        exercise(server, client)
    finally:
        client.close()
    assert wait_threads(before) == before


def test_many_sync_clients_leave_no_threads(server: ServerProcess) -> None:
    before = threading.active_count()
    for _ in range(3):
        with (
            aetiket.sync.Client(server.url, token="whatever") as client,
            pytest.raises(Unauthorized),
        ):
            client.scopes.list().all()
    assert wait_threads(before) == before
