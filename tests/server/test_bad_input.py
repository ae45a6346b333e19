"""Hypothesis against the live server: whatever a client sends, the answer is a 2xx or a
4xx with the contract's JSON error body (ETIKET_API.md, "Errors"), never a 5xx, and no
request hangs.

Property of every answer: status 2xx or 4xx; a 4xx carries JSON ``{"detail": ...}``; a
422's detail is a list of ``{loc, msg, type}``; another 4xx's detail is a message.

Hypothesis and the anyio plugin do not mix, so these tests are plain ``def``s and each
request runs in its own ``asyncio.run`` (one short-lived aiohttp session, 10 s timeout).
Requests are made as a non-admin user with a scope of its own, so that generated bodies
that happen to be valid create records there and nowhere else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import string
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerProcess
from tests.http import TUS, Answer, Api, api_for, tus_metadata
from tests.server import _hypothesis  # noqa: F401  (quiet libcst import, see there)

MiB = 1024 * 1024
OCTETS = "application/offset+octet-stream"
TIMEOUT = aiohttp.ClientTimeout(total=10)
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Placeholders the strategies use for the records of the module fixture; replaced
# before sending (strategies are built before the server runs).
SCOPE, DATASET, FILE, TUS_FILE, UPLOAD = "@SCOPE@", "@DATASET@", "@FILE@", "@TUSFILE@", "@UP@"


@dataclasses.dataclass
class Target:
    url: str
    token: str
    scope: str
    dataset_uid: str
    file_uid: str
    tus_file_uid: str
    upload_url: str

    def fill(self, value: Any) -> Any:
        """Replace the placeholders in a generated value (recursively)."""
        if isinstance(value, str):
            return (value.replace(SCOPE, self.scope).replace(DATASET, self.dataset_uid)
                    .replace(TUS_FILE, self.tus_file_uid).replace(FILE, self.file_uid)
                    .replace(UPLOAD, self.upload_url))
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.fill(v) for v in value)
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value


async def _setup(server: ServerProcess) -> Target:
    async with api_for(server.url, server.admin_user, server.admin_password) as admin:
        user, password = await admin.new_user()
    async with api_for(server.url, user, password) as api:
        scope = await api.new_scope()
        dataset_uid = f"ds-{uuid.uuid4().hex[:8]}"
        file_uid = await api.new_file(scope, dataset_uid=dataset_uid)
        tus_file_uid = await api.new_file(scope)
        ans = await api.request("POST", "/api/v1/uploads/", headers={
            **TUS, "Upload-Length": "1000",
            "Upload-Metadata": tus_metadata(scope=scope, uid=tus_file_uid)})
        assert ans.status == 201, ans.body
        assert api.token is not None
        return Target(url=server.url, token=api.token, scope=scope, dataset_uid=dataset_uid,
                      file_uid=file_uid, tus_file_uid=tus_file_uid,
                      upload_url=ans.headers["Location"])


@pytest.fixture(scope="module")
def target(server: ServerProcess) -> Target:
    return asyncio.run(_setup(server))


def call(t: Target, method: str, path: str, *, body: Any = None, params: Any = None,
         headers: dict[str, str] | None = None) -> Answer:
    """One request in its own event loop; a request that takes 10 s fails the test."""

    async def go() -> Answer:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            return await Api(session, t.url, t.token).request(
                method, path, data=body, params=params, headers=headers)

    try:
        return asyncio.run(go())
    except asyncio.TimeoutError:
        pytest.fail(f"{method} {path} got no answer within 10 s")


def check_answer(ans: Answer, what: str) -> None:
    """The property: 2xx, or 4xx with the contract's JSON error body."""
    shown = f"{what} -> {ans.status} {ans.body[:300]!r}"
    assert ans.status < 500, shown
    assert 200 <= ans.status < 300 or 400 <= ans.status < 500, shown
    if ans.status < 400:
        return
    assert ans.headers.get("Content-Type", "").startswith("application/json"), shown
    doc = json.loads(ans.body)
    assert isinstance(doc, dict) and "detail" in doc, shown
    detail = doc["detail"]
    if ans.status == 422:
        assert isinstance(detail, list) and detail, shown
        for item in detail:
            assert isinstance(item, dict), shown
            assert isinstance(item.get("loc"), list) and item["loc"], shown
            assert all(isinstance(p, (str, int)) for p in item["loc"]), shown
            assert isinstance(item.get("msg"), str), shown
            assert isinstance(item.get("type"), str), shown
    else:
        assert isinstance(detail, str) and detail, shown


def json_body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


JSON_HEADERS = {"Content-Type": "application/json"}

# ---------------------------------------------------------------------------- strategies

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
HUGE = st.sampled_from([5_000, 20_000, 300_000]).map(lambda n: "é" * n)
STRINGS = st.one_of(TEXT, st.sampled_from(["", " ", "a", "\x00", "a/b", "x" * 257]), HUGE)
EDGE_INTS = st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                             -(2**63), -(2**63) - 1, 10**30, -(10**30)])
INTS = st.one_of(st.integers(-1000, 1000), EDGE_INTS, st.integers())
NUMBERS = st.one_of(INTS, st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([-0.0, 1e308, -1e308, 5e-324]))
EDGE_DATETIMES = st.sampled_from([
    "9999-12-31T23:59:59-01:00",  # UTC is year 10000
    "0001-01-01T00:00:00+01:00",  # UTC is year 0
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00",
    "2026-02-30T00:00:00",
    "2026-11-26T25:00:00Z",
    "2026-11-26",
    "2026-11-26T10:00:00+24:00",
    "2026-11-26T10:00:00+23:59",
    "2026-11-26T10:00:00.1234567890Z",
    "now", "", "1e9", "-1",
])
OFFSETS = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
DATETIMES = st.one_of(
    EDGE_DATETIMES,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                 timezones=st.one_of(st.none(), OFFSETS)).map(lambda d: d.isoformat()),
)
IDENT_CHARS = string.ascii_letters + string.digits + "-_."
IDENTS = st.one_of(
    st.text(alphabet=IDENT_CHARS, min_size=1, max_size=24),
    st.sampled_from(["", "a/b", "a\x00b", "a\nb", "x" * 129, "..", "%2F", " "]),
    TEXT,
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=False, allow_infinity=False),
              TEXT),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12,
)
META_STR = st.text(alphabet=st.characters(codec="utf-8"), min_size=3, max_size=19)
META = st.one_of(
    st.dictionaries(META_STR, st.one_of(META_STR, st.lists(META_STR, max_size=3)), max_size=4),
    st.dictionaries(st.one_of(META_STR, TEXT),
                    st.one_of(META_STR, TEXT, st.lists(st.one_of(META_STR, TEXT, INTS)),
                              JSON_VALUES), max_size=4),
    JSON_VALUES,
)


def either(typed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right type, sometimes any JSON value."""
    return st.one_of(typed, typed, JSON_VALUES)


FILE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": either(STRINGS),
    "uid": either(st.one_of(IDENTS, st.just(FILE))),
    "dataset_uid": either(st.one_of(st.just(DATASET), IDENTS)),
    "scope": either(st.one_of(st.just(SCOPE), IDENTS)),
    "collected": either(DATETIMES),
    "duration": either(NUMBERS),
    "creator": either(STRINGS),
    "etag": either(STRINGS),
    "size": either(INTS),
    "mimetype": either(STRINGS),
    "altlocation": either(STRINGS),
    "rating": either(INTS),
    "immutable": either(st.booleans()),
    "filetype": either(st.sampled_from(["undefined", "src", "preview", "raw", "derived",
                                        "conf", "SRC", ""])),
}
FILES = st.lists(st.fixed_dictionaries({}, optional=FILE_FIELDS), max_size=3)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **FILE_FIELDS,
    "uid": either(IDENTS),
    "description": either(STRINGS),
    "meta": META,
    "ranking": either(INTS),
    "files": either(FILES),
    "restricted": either(st.one_of(DATETIMES, st.none())),
    "archived": either(st.one_of(DATETIMES, st.none())),
    "keys": either(st.lists(TEXT, max_size=4)),
}
#: The fields most endpoints require, mostly with workable values: gets deeper than 422.
REQUIRED = {
    "name": st.one_of(st.text(alphabet=IDENT_CHARS, min_size=1, max_size=12), STRINGS),
    "uid": st.one_of(st.text(alphabet=IDENT_CHARS, min_size=6, max_size=16), IDENTS),
    "scope": st.one_of(st.just(SCOPE), st.just(SCOPE), IDENTS),
    "dataset_uid": st.one_of(st.just(DATASET), IDENTS),
}
BODIES = st.one_of(
    JSON_VALUES,  # any JSON value at all
    st.fixed_dictionaries({}, optional=FIELDS),  # any subset of fields, any types
    st.fixed_dictionaries(REQUIRED, optional={k: v for k, v in FIELDS.items()
                                              if k not in REQUIRED}),  # plausible
)

WRITE_ENDPOINTS = st.sampled_from([
    ("POST", "/api/v1/datasets/"),
    ("POST", "/api/v1/files/"),
    ("POST", "/api/v1/collections/"),
    ("POST", "/api/v1/scopes/"),
    ("POST", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
    ("PUT", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
    ("DELETE", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
    ("PATCH", f"/api/v1/datasets/{SCOPE}/{DATASET}"),
    ("PATCH", f"/api/v1/files/{SCOPE}/{FILE}"),
    ("PATCH", f"/api/v1/scopes/{SCOPE}"),
])


# ---------------------------------------------------------------------------- JSON bodies


@FUZZ
@given(endpoint=WRITE_ENDPOINTS, body=BODIES)
def test_json_bodies(target: Target, endpoint: tuple[str, str], body: Any) -> None:
    method, path = endpoint
    path, body = target.fill(path), target.fill(body)
    ans = call(target, method, path, body=json_body(body), headers=JSON_HEADERS)
    check_answer(ans, f"{method} {path} {json.dumps(body)[:300]}")


@FUZZ
@given(endpoint=WRITE_ENDPOINTS, meta=META)
def test_meta_bodies(target: Target, endpoint: tuple[str, str], meta: Any) -> None:
    method, path = endpoint
    path = target.fill(path)
    body: dict[str, Any] = {"meta": meta}
    if path.endswith("/datasets/"):
        body.update(name="meta", uid=f"m-{uuid.uuid4().hex[:8]}", scope=target.scope)
    ans = call(target, method, path, body=json_body(body), headers=JSON_HEADERS)
    check_answer(ans, f"{method} {path} {json.dumps(body)[:300]}")


@FUZZ
@given(field=st.sampled_from(sorted(FIELDS)), value=st.one_of(
    EDGE_INTS, EDGE_DATETIMES, HUGE, st.sampled_from([None, True, [], {}, 1.5, -1]), TEXT))
def test_one_bad_field(target: Target, field: str, value: Any) -> None:
    """A body that is valid but for one field, on every endpoint that takes it."""
    uid = f"o-{uuid.uuid4().hex[:8]}"
    cases = [
        ("POST", "/api/v1/datasets/", {"name": "n", "uid": uid, "scope": target.scope}),
        ("POST", "/api/v1/files/", {"name": "n", "uid": uid, "scope": target.scope,
                                    "dataset_uid": target.dataset_uid}),
        ("POST", "/api/v1/collections/", {"name": uid, "scope": target.scope}),
        ("PATCH", f"/api/v1/datasets/{target.scope}/{target.dataset_uid}", {}),
        ("PATCH", f"/api/v1/files/{target.scope}/{target.file_uid}", {}),
        ("PATCH", f"/api/v1/scopes/{target.scope}", {}),
    ]
    for method, path, body in cases:
        body = {**body, field: value}
        ans = call(target, method, path, body=json_body(body), headers=JSON_HEADERS)
        check_answer(ans, f"{method} {path} {json.dumps(body)[:300]}")


# ---------------------------------------------------------------------------- queries

QUERY_KEYS = st.one_of(
    st.sampled_from(["scope", "collection", "name", "uid", "since", "until", "sample",
                     "fridge", "setup", "measurementType", "keywords", "variablesMeasured",
                     "preview", "ranking", "offset", "limit"]),
    TEXT,
)
QUERY_VALUES = st.one_of(
    TEXT, INTS.map(str), DATETIMES, st.sampled_from(["", "true", "false", "yes", "1.5",
                                                     "-1", "0", "10001", "NaN", "1e3"]),
)


@FUZZ
@given(path=st.sampled_from(["/api/v1/datasets/", "/api/v1/collections/",
                             "/api/v1/scopes/", "/api/v1/users/"]),
       with_scope=st.booleans(),
       pairs=st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=8))
def test_queries(target: Target, path: str, with_scope: bool,
                 pairs: list[tuple[str, str]]) -> None:
    params = ([("scope", target.scope)] if with_scope else []) + pairs
    ans = call(target, "GET", path, params=params)
    check_answer(ans, f"GET {path} {params!r}"[:600])


@FUZZ
@given(key=st.sampled_from(["offset", "limit", "ranking", "since", "until", "preview"]),
       value=st.one_of(EDGE_INTS.map(str), EDGE_DATETIMES, QUERY_VALUES))
def test_query_bounds(target: Target, key: str, value: str) -> None:
    for path in ("/api/v1/datasets/", "/api/v1/collections/", "/api/v1/scopes/"):
        params = [("scope", target.scope), (key, value)]
        ans = call(target, "GET", path, params=params)
        check_answer(ans, f"GET {path} {params!r}")


# ---------------------------------------------------------------------------- tus headers

#: Header values aiohttp will send: no CR/LF or other controls (those never reach the app).
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x17F,
                                             exclude_characters="\x7f"), max_size=40)
B64 = st.binary(max_size=20).map(lambda b: __import__("base64").b64encode(b).decode())
UPLOAD_URLS = st.one_of(
    st.just(UPLOAD),
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=8, max_size=64)
    .map(lambda uid: f"/api/v1/uploads/{uid}"),
    st.sampled_from(["http://[x/api/v1/uploads/abcdefghij", "http://[::1/api/v1/uploads/x",
                     "/api/v1/files/abcdefghij", "", "/api/v1/uploads/"]),
    HEADER_TEXT,
)
TUS_HEADERS: dict[str, st.SearchStrategy[str]] = {
    "Upload-Length": st.one_of(INTS.map(str), st.sampled_from(["0", "10", "1000", " 5 "]),
                               HEADER_TEXT),
    "Upload-Defer-Length": st.one_of(st.just("1"), HEADER_TEXT),
    "Upload-Metadata": st.one_of(
        st.just(tus_metadata(scope=SCOPE, uid=TUS_FILE)),
        st.builds(lambda s, u: f"scope {s},uid {u}", B64, B64),
        st.lists(st.tuples(st.text(alphabet="abcs\"', =", min_size=0, max_size=5), B64),
                 max_size=3).map(lambda kv: ",".join(f"{k} {v}" for k, v in kv)),
        HEADER_TEXT,
    ),
    "Upload-Concat": st.one_of(
        st.just("partial"),
        st.lists(UPLOAD_URLS, max_size=3).map(lambda urls: "final;" + " ".join(urls)),
        HEADER_TEXT,
    ),
    "Upload-Checksum": st.one_of(
        st.builds(lambda a, d: f"{a} {d}", st.sampled_from(["sha1", "md5", "sha256", "crc"]),
                  B64),
        HEADER_TEXT,
    ),
    "Upload-Offset": st.one_of(INTS.map(str), st.just("0"), HEADER_TEXT),
    "Content-Type": st.one_of(st.just(OCTETS), st.just(OCTETS), HEADER_TEXT),
    "Tus-Resumable": st.one_of(st.just("1.0.0"), st.just("1.0.0"), st.just("1.0.0"),
                               HEADER_TEXT),
}


@FUZZ
@given(headers=st.fixed_dictionaries({}, optional=TUS_HEADERS),
       body=st.one_of(st.none(), st.binary(max_size=64)))
def test_tus_create(target: Target, headers: dict[str, str], body: bytes | None) -> None:
    headers = target.fill(headers)
    ans = call(target, "POST", "/api/v1/uploads/", body=body, headers=headers)
    check_answer(ans, f"POST /api/v1/uploads/ {headers!r} body={body!r}")


@FUZZ
@given(path=st.one_of(st.just(UPLOAD), UPLOAD_URLS),
       headers=st.fixed_dictionaries({}, optional=TUS_HEADERS),
       body=st.one_of(st.none(), st.binary(max_size=64)))
def test_tus_patch(target: Target, path: str, headers: dict[str, str],
                   body: bytes | None) -> None:
    path, headers = target.fill(path), target.fill(headers)
    if not path.startswith(("http://", "/")) or path.startswith("http://["):
        path = f"/api/v1/uploads/{uuid.uuid4().hex}"
    ans = call(target, "PATCH", path, body=body, headers=headers)
    check_answer(ans, f"PATCH {path} {headers!r} body={body!r}")


# ---------------------------------------------------------------------------- fixed cases


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/v1/datasets/", {"name": "n", "uid": "@NEW@", "scope": SCOPE,
                                   "collected": "9999-12-31T23:59:59-01:00"}),
    ("POST", "/api/v1/datasets/", {"name": "n", "uid": "@NEW@", "scope": SCOPE,
                                   "collected": "0001-01-01T00:00:00+01:00"}),
    ("POST", "/api/v1/datasets/", {"name": "n", "uid": "@NEW@", "scope": SCOPE,
                                   "ranking": 2**63}),
    ("POST", "/api/v1/datasets/", {"name": "n", "uid": "@NEW@", "scope": SCOPE,
                                   "files": [{"name": "f", "uid": "@NEW@", "size": 2**63}]}),
    ("POST", "/api/v1/files/", {"name": "n", "uid": "@NEW@", "scope": SCOPE,
                                "dataset_uid": DATASET, "rating": 2**63}),
    ("POST", "/api/v1/files/", {"name": "n", "uid": "@NEW@", "scope": SCOPE,
                                "dataset_uid": DATASET, "size": 2**64}),
    ("POST", "/api/v1/scopes/", {"name": "@NEW@", "archived": "9999-12-31T23:59:59-01:00"}),
    ("PATCH", f"/api/v1/datasets/{SCOPE}/{DATASET}", {"ranking": -(2**63) - 1}),
    ("PATCH", f"/api/v1/datasets/{SCOPE}/{DATASET}",
     {"collected": "0001-01-01T00:00:00+01:00"}),
    ("PATCH", f"/api/v1/files/{SCOPE}/{FILE}", {"rating": 2**63}),
])
def test_out_of_range_values_are_4xx(target: Target, method: str, path: str,
                                     body: dict[str, Any]) -> None:
    """Values that pass the models' types but not SQLite or datetime (64-bit integers,
    year 0 or 10000 in UTC) must be refused with a 4xx, not crash the handler."""
    new = f"n-{uuid.uuid4().hex[:8]}"
    path, body = target.fill(path), json.loads(json.dumps(target.fill(body)).replace("@NEW@", new))
    ans = call(target, method, path, body=json_body(body), headers=JSON_HEADERS)
    check_answer(ans, f"{method} {path} {body}")
    assert ans.status in (400, 422), (ans.status, ans.body)


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v1/datasets/", {"offset": str(2**63)}),
    ("/api/v1/datasets/", {"ranking": str(2**63)}),
    ("/api/v1/datasets/", {"ranking": str(-(2**63) - 1)}),
    ("/api/v1/datasets/", {"since": "9999-12-31T23:59:59-01:00"}),
    ("/api/v1/datasets/", {"until": "0001-01-01T00:00:00+01:00"}),
    ("/api/v1/scopes/", {"offset": str(2**63)}),
    ("/api/v1/collections/", {"offset": str(2**64)}),
    ("/api/v1/users/", {"offset": str(2**63)}),
])
def test_out_of_range_queries_are_4xx(target: Target, path: str,
                                      params: dict[str, str]) -> None:
    ans = call(target, "GET", path, params={"scope": target.scope, **params})
    check_answer(ans, f"GET {path} {params}")
    assert ans.status in (400, 403, 422), (ans.status, ans.body)


@pytest.mark.parametrize("concat", [
    "final;http://[x/api/v1/uploads/abcdefghij",
    "final;http://[::1/api/v1/uploads/abcdefghij",
    "final;http://]/api/v1/uploads/abcdefghij",
])
def test_unparsable_concat_url_is_400(target: Target, concat: str) -> None:
    ans = call(target, "POST", "/api/v1/uploads/", headers={**TUS, "Upload-Concat": concat})
    check_answer(ans, f"POST /api/v1/uploads/ Upload-Concat: {concat}")
    assert ans.status == 400


async def _chunks(total: int) -> AsyncIterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < total:
        yield b"x" * min(MiB, total - sent)
        sent += MiB
    yield b'"}'


@pytest.mark.parametrize("path", ["/api/v1/datasets/", "/api/v1/scopes/", "/api/v1/files/"])
@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_4_mib_is_413(target: Target, path: str, chunked: bool) -> None:
    size = 4 * MiB + 1
    body: Any = (_chunks(size) if chunked
                 else io.BytesIO(b'{"name": "' + b"x" * (size - 12) + b'"}'))
    ans = call(target, "POST", path, body=body, headers=JSON_HEADERS)
    assert ans.status == 413, (ans.status, ans.body[:300])
    check_answer(ans, f"POST {path} ({size} bytes)")


def test_body_of_almost_4_mib_is_read(target: Target) -> None:
    body = json_body({"name": "x" * (4 * MiB - 100), "uid": "u", "scope": target.scope})
    assert len(body) <= 4 * MiB
    ans = call(target, "POST", "/api/v1/datasets/", body=io.BytesIO(body),
               headers=JSON_HEADERS)
    assert ans.status == 422  # name is longer than 256: the body was read and validated
    check_answer(ans, "POST /api/v1/datasets/ (4 MiB)")


NOT_JSON = [
    b"\xff\xfe",
    b'{"name": "\xff", "uid": "u", "scope": "s"}',  # invalid UTF-8 inside a string
    b'{"name": "\xc3", "uid": "u", "scope": "s"}',  # truncated UTF-8 sequence
    b'{"name": "\xed\xa0\x80", "uid": "u", "scope": "s"}',  # an encoded surrogate
    '{"name": "é", "uid": "u", "scope": "s"}'.encode("latin-1"),
    b"not json",
    b"{",
    b'{"name": "a",}',
    b"\x00",
    b"",
    b"[]",
    b"null",
]


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/datasets/"),
    ("POST", "/api/v1/files/"),
    ("POST", "/api/v1/collections/"),
    ("POST", "/api/v1/scopes/"),
    ("POST", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
    ("PATCH", f"/api/v1/datasets/{SCOPE}/{DATASET}"),
    ("PATCH", f"/api/v1/files/{SCOPE}/{FILE}"),
])
@pytest.mark.parametrize("body", NOT_JSON, ids=[repr(b)[:30] for b in NOT_JSON])
def test_non_json_body_is_422(target: Target, method: str, path: str, body: bytes) -> None:
    path = target.fill(path)
    ans = call(target, method, path, body=body, headers=JSON_HEADERS)
    check_answer(ans, f"{method} {path} {body!r}")
    assert ans.status == 422, (ans.status, ans.body)
