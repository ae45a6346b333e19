"""The client over a flaky network: aetiket.Client -> FaultProxy -> a real `aetiket serve`.

What is checked (aetiket/_http.py, aetiket/api/_base.py): one refresh however many
requests meet an expired token; idempotent calls retried through resets, 5xx, 429 and
Retry-After, and failing with the right error once the policy is spent; timeouts;
truncated answers fetched again; non-idempotent calls never replayed; creates with a
client-chosen uid replayed safely (their own 409 is success, another's is Conflict).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

import aetiket
from aetiket import Client, RetryPolicy, Timeouts
from aetiket.errors import (
    Conflict,
    ConnectError,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    TransportTimeout,
)
from tests.conftest import ServerProcess
from tests.faultproxy import Fault, FaultProxy
from tests.timing import bounded

pytestmark = pytest.mark.anyio

#: Retries without waiting to speak of: the suite stays fast.
FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.02)


class Env:
    """A proxy in front of the session's server, a direct admin client and a scope."""

    def __init__(
        self, server: ServerProcess, proxy: FaultProxy, direct: Client, scope: str
    ) -> None:
        self.server, self.proxy, self.direct, self.scope = server, proxy, direct, scope
        self._holder: str | None = None

    def client(self, **kw: Any) -> Client:
        """A client of the proxy with the admin's token (``retry=FAST`` unless given)."""
        kw.setdefault("retry", FAST)
        return Client(self.proxy.url, token=self.direct.token, **kw)

    async def holder(self) -> str:
        """The uid of a dataset of the scope that files are created in."""
        if self._holder is None:
            self._holder = (await self.dataset(name="holds files")).uid
        return self._holder

    async def dataset(self, name: str = "resilience", **kw: Any) -> aetiket.DatasetOut:
        """A fresh dataset in the scope, created directly (not through the proxy)."""
        return await self.direct.datasets.create(
            aetiket.DatasetIn(name=name, uid=aetiket.new_uid(), scope=self.scope, **kw)
        )


@pytest.fixture
async def env(server: ServerProcess) -> AsyncIterator[Env]:
    async with Client(server.url) as direct, FaultProxy(server.url) as proxy:
        await direct.login(server.admin_user, server.admin_password)
        scope = await direct.scopes.create(
            aetiket.ScopeIn(name="rs-" + aetiket.new_uid()[:12], description="resilience")
        )
        yield Env(server, proxy, direct, scope.name)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- tokens


@bounded(60)
async def test_one_refresh_for_200_concurrent_requests_with_an_expired_token(
    make_server: Callable[..., ServerProcess],
) -> None:
    srv = make_server("--access-token-ttl", "2")
    async with FaultProxy(srv.url) as proxy, Client(proxy.url, retry=FAST) as client:
        await client.login(srv.admin_user, srv.admin_password)
        assert (await client.users.me()).username == srv.admin_user
        await anyio.sleep(3)  # the access token is now expired
        names: list[str] = []

        async def me() -> None:
            names.append((await client.users.me()).username)

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(me)
        assert names == [srv.admin_user] * 200
        assert proxy.count("POST", "/api/v1/refresh") == 1
        assert proxy.count("POST", "/api/v1/refresh", forwarded=True) == 1
        assert any(e.status == 401 for e in proxy.log)  # the token really had expired


# ---------------------------------------------------------------------------- idempotent


FAULTS = {
    "reset-before": Fault(reset_before=True),
    "reset-after": Fault(reset_after=True),
    "503-retry-after": Fault(answer=503, answer_headers={"Retry-After": "1"}),
    "429": Fault(answer=429),
    "502": Fault(answer=502),
    "504": Fault(answer=504),
}


async def _idempotent_call(
    env: Env, client: Client, kind: str
) -> tuple[str, str, Callable[[], Awaitable[None]]]:
    """(method, path, call) of a GET, PUT or DELETE on a fresh dataset; ``call`` checks
    its own outcome on the server afterwards."""
    ds = await env.dataset(meta={"sample": "sampleA1"})

    async def get() -> None:
        out = await client.datasets.get(env.scope, ds.uid)
        assert out.uid == ds.uid

    async def put() -> None:
        out = await client.metadata.set(env.scope, ds.uid, {"fridge": "fridgeB2"})
        assert out.meta == {"fridge": "fridgeB2"}
        assert (await env.direct.datasets.get(env.scope, ds.uid)).meta == out.meta

    async def delete() -> None:
        await client.datasets.delete(env.scope, ds.uid)
        with pytest.raises(NotFound):
            await env.direct.datasets.get(env.scope, ds.uid)

    if kind == "PUT":
        return "PUT", f"/api/v1/metadata/{env.scope}/{ds.uid}", put
    return kind, f"/api/v1/datasets/{env.scope}/{ds.uid}", get if kind == "GET" else delete


@pytest.mark.parametrize("kind", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("fault", list(FAULTS))
@bounded(30)
async def test_idempotent_calls_survive_faults_within_the_budget(
    env: Env, fault: str, kind: str
) -> None:
    async with env.client() as client:
        method, path, call = await _idempotent_call(env, client, kind)
        times = 1 if fault == "503-retry-after" else 2
        rule = env.proxy.add(FAULTS[fault], method=method, path=path, times=times)
        started = time.monotonic()
        await call()
        elapsed = time.monotonic() - started
    assert rule.applied == times
    assert env.proxy.count(method, path) > times  # the faults, then the one that worked
    if fault == "503-retry-after":
        assert elapsed >= 0.9  # the client honoured Retry-After: 1
        assert env.proxy.count(method, path) == 2


OUTLASTING = {
    "reset-before": (Fault(reset_before=True), TransportError, None),
    "reset-after": (Fault(reset_after=True), TransportError, None),
    "503": (Fault(answer=503), ServerError, 503),
    "429": (Fault(answer=429), TooManyRequests, 429),
    "502": (Fault(answer=502), ServerError, 502),
    "504": (Fault(answer=504), ServerError, 504),
}


@pytest.mark.parametrize("fault", list(OUTLASTING))
@bounded(30)
async def test_faults_outlasting_the_policy_raise_the_right_error(env: Env, fault: str) -> None:
    ds = await env.dataset()
    path = f"/api/v1/datasets/{env.scope}/{ds.uid}"
    injected, error, status = OUTLASTING[fault]
    env.proxy.add(injected, method="GET", path=path)
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    async with env.client(retry=policy) as client:
        with pytest.raises(error) as caught:
            await client.datasets.get(env.scope, ds.uid)
    assert not isinstance(caught.value, ConnectError)
    assert "GET" in str(caught.value) and path in str(caught.value)
    if status is not None:
        assert caught.value.status == status  # type: ignore[attr-defined]
        assert env.proxy.count("GET", path) == 3  # exactly the policy's attempts
    else:
        # aiohttp itself sends an idempotent request once more after a reset, so the
        # wire may carry up to two requests per attempt.
        assert 3 <= env.proxy.count("GET", path) <= 6


@bounded(30)
async def test_read_timeout_raises_transport_timeout_after_retries(env: Env) -> None:
    ds = await env.dataset()
    path = f"/api/v1/datasets/{env.scope}/{ds.uid}"
    env.proxy.add(Fault(delay=2.0), method="GET", path=path)
    policy = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with env.client(timeouts=Timeouts(read=0.5), retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(TransportTimeout) as caught:
            await client.datasets.get(env.scope, ds.uid)
        elapsed = time.monotonic() - started
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, TransportError)
    message = str(caught.value)
    assert "GET" in message and f"{env.proxy.url}{path}" in message
    assert env.proxy.count("GET", path) == 2
    assert 0.9 <= elapsed < 1.9  # two read timeouts of 0.5 s, not the 2 s delay


@bounded(30)
async def test_a_truncated_json_answer_is_fetched_again(env: Env) -> None:
    ds = await env.dataset(description="x" * 2000)
    path = f"/api/v1/datasets/{env.scope}/{ds.uid}"
    rule = env.proxy.add(Fault(truncate_after=100), method="GET", path=path, times=1)
    async with env.client() as client:
        out = await client.datasets.get(env.scope, ds.uid)
    assert out == ds
    assert rule.applied == 1
    assert env.proxy.count("GET", path) == 2


@bounded(30)
async def test_answers_truncated_every_time_raise_transport_error(env: Env) -> None:
    ds = await env.dataset()
    path = f"/api/v1/datasets/{env.scope}/{ds.uid}"
    env.proxy.add(Fault(truncate_after=10), method="GET", path=path)
    async with env.client() as client:
        with pytest.raises(TransportError) as caught:
            await client.datasets.get(env.scope, ds.uid)
    assert "GET" in str(caught.value)
    assert FAST.max_attempts <= env.proxy.count("GET", path)


# ---------------------------------------------------------------------------- non-idempotent


@bounded(30)
async def test_login_is_not_replayed_after_an_ambiguous_reset(env: Env) -> None:
    env.proxy.add(Fault(reset_after=True), method="POST", path="/api/v1/token")
    async with Client(env.proxy.url, retry=FAST) as client:
        with pytest.raises(TransportError) as caught:
            await client.login(env.server.admin_user, env.server.admin_password)
        assert client.token is None
    assert not isinstance(caught.value, ConnectError)
    assert "POST" in str(caught.value) and "/api/v1/token" in str(caught.value)
    assert env.proxy.count("POST", "/api/v1/token") == 1
    assert env.proxy.count("POST", "/api/v1/token", forwarded=True) == 1


@bounded(30)
async def test_metadata_add_is_not_replayed_after_an_ambiguous_reset(env: Env) -> None:
    ds = await env.dataset()
    path = f"/api/v1/metadata/{env.scope}/{ds.uid}"
    env.proxy.add(Fault(reset_after=True), method="POST", path=path)
    async with env.client() as client:
        with pytest.raises(TransportError) as caught:
            await client.metadata.add(env.scope, ds.uid, {"sample": "sampleC3"})
    assert not isinstance(caught.value, ConnectError)
    assert "POST" in str(caught.value) and path in str(caught.value)
    assert env.proxy.count("POST", path) == 1
    # The server did apply it: the caller learns the outcome is unknown, not "failed".
    assert (await env.direct.datasets.get(env.scope, ds.uid)).meta == {"sample": "sampleC3"}


# ---------------------------------------------------------------------------- creates


class Kind:
    """How to create, find and conflict with one resource that has a client-chosen id."""

    def __init__(
        self,
        path: str,
        create: Callable[[Client, Env, str, str], Awaitable[Any]],
        count: Callable[[Env, str], Awaitable[int]],
    ) -> None:
        self.path, self.create, self.count = path, create, count


async def _create_dataset(client: Client, env: Env, uid: str, name: str) -> Any:
    return await client.datasets.create(aetiket.DatasetIn(name=name, uid=uid, scope=env.scope))


async def _count_datasets(env: Env, uid: str) -> int:
    return len(await env.direct.datasets.list(env.scope, uid=uid).all())


async def _create_scope(client: Client, env: Env, uid: str, name: str) -> Any:
    return await client.scopes.create(aetiket.ScopeIn(name=uid, description=name))


async def _count_scopes(env: Env, uid: str) -> int:
    return len([s for s in await env.direct.scopes.list(name=uid).all() if s.name == uid])


async def _create_collection(client: Client, env: Env, uid: str, name: str) -> Any:
    return await client.collections.create(
        aetiket.CollectionIn(name=uid, scope=env.scope, description=name)
    )


async def _count_collections(env: Env, uid: str) -> int:
    found = await env.direct.collections.list(env.scope, name=uid).all()
    return len([c for c in found if c.name == uid])


async def _create_file(client: Client, env: Env, uid: str, name: str) -> Any:
    return await client.files.create(
        aetiket.FileIn(name=name, uid=uid, dataset_uid=await env.holder(), scope=env.scope)
    )


async def _count_files(env: Env, uid: str) -> int:
    ds = await env.direct.datasets.get(env.scope, await env.holder())
    return len([f for f in ds.files if f.uid == uid])


KINDS = {
    "dataset": Kind("/api/v1/datasets/", _create_dataset, _count_datasets),
    "scope": Kind("/api/v1/scopes/", _create_scope, _count_scopes),
    "collection": Kind("/api/v1/collections/", _create_collection, _count_collections),
    "file": Kind("/api/v1/files/", _create_file, _count_files),
}


def _name_of(record: Any) -> str:
    return str(
        getattr(record, "description", None)
        if isinstance(record, aetiket.ScopeOut | aetiket.CollectionOut)
        else record.name
    )


@pytest.mark.parametrize("kind", list(KINDS))
@bounded(30)
async def test_a_replayed_create_meets_its_own_record_and_returns_it(env: Env, kind: str) -> None:
    spec = KINDS[kind]
    uid = "r" + aetiket.new_uid()[:15]
    await env.holder()
    rule = env.proxy.add(Fault(reset_after=True), method="POST", path=spec.path, times=1)
    async with env.client() as client:
        out = await spec.create(client, env, uid, "mine")
    assert _name_of(out) == "mine"
    assert rule.applied == 1
    # The first try created it; the replay met 409 and the client fetched the record.
    assert [e.status for e in env.proxy.log if e.method == "POST"] == [None, 409]
    assert await spec.count(env, uid) == 1


@pytest.mark.parametrize("kind", list(KINDS))
@bounded(30)
async def test_a_replayed_create_meeting_another_record_raises_conflict(
    env: Env, kind: str
) -> None:
    spec = KINDS[kind]
    uid = "r" + aetiket.new_uid()[:15]
    await env.holder()
    theirs = await spec.create(env.direct, env, uid, "theirs")
    async with env.client() as client:
        with pytest.raises(Conflict) as plain:  # no fault: a plain conflict
            await spec.create(client, env, uid, "mine")
        assert not plain.value.replayed
        env.proxy.add(Fault(reset_after=True), method="POST", path=spec.path, times=1)
        with pytest.raises(Conflict) as caught:
            await spec.create(client, env, uid, "mine")
    assert caught.value.replayed
    assert caught.value.status == 409
    assert env.proxy.count("POST", spec.path) == 3
    assert await spec.count(env, uid) == 1
    if kind == "dataset":
        assert (await env.direct.datasets.get(env.scope, uid)).name == _name_of(theirs)


# ---------------------------------------------------------------------------- no server


@bounded(30)
async def test_a_closed_port_raises_connect_error_after_retries() -> None:
    port = free_port()
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    async with Client(f"http://127.0.0.1:{port}", token="t", retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            await client.users.me()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "GET" in message and "cannot connect" in message
    assert isinstance(caught.value, TransportError)
