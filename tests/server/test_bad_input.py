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
import base64
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
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tests.conftest import ServerProcess
from tests.http import TUS, Answer, Api, api_for, tus_metadata
from tests.server import _hypothesis  # noqa: F401  (quiet libcst import, see there)

MiB = 1024 * 1024
OCTETS = "application/offset+octet-stream"
TIMEOUT = aiohttp.ClientTimeout(total=10)
# No shrinking: against a live server it takes minutes, and the assertion message already
# shows the whole request.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Placeholders the strategies use for the records of the module fixture; replaced
# before sending (strategies are built before the server runs).
SCOPE, DATASET, FILE, TUS_FILE, UPLOAD = "@SCOPE@", "@DATASET@", "@FILE@", "@TUSFILE@", "@UP@"
SPARE = "@SPARE@"  # a scope whose PATCHes may archive it
PARTIAL, OFFSET = "@PARTIAL@", "@OFFSET@"  # a partial upload; the current Upload-Offset
TUS_META = "@TUSMETA@"  # Upload-Metadata naming TUS_FILE (base64: filled in whole)


@dataclasses.dataclass
class Target:
    url: str
    token: str
    scope: str
    dataset_uid: str
    file_uid: str
    tus_file_uid: str
    upload_url: str
    spare_scope: str
    partial_url: str
    admin_token: str

    def fill(self, value: Any) -> Any:
        """Replace the placeholders in a generated value (recursively)."""
        if isinstance(value, str):
            meta = tus_metadata(scope=self.scope, uid=self.tus_file_uid)
            for mark, real in (
                (TUS_META, meta),
                (SPARE, self.spare_scope),
                (PARTIAL, self.partial_url),
                (SCOPE, self.scope),
                (DATASET, self.dataset_uid),
                (TUS_FILE, self.tus_file_uid),
                (FILE, self.file_uid),
                (UPLOAD, self.upload_url),
            ):
                value = value.replace(mark, real)
            return value
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
        assert admin.token is not None
        admin_token = admin.token
    async with api_for(server.url, user, password) as api:
        scope = await api.new_scope()
        dataset_uid = f"ds-{uuid.uuid4().hex[:8]}"
        file_uid = await api.new_file(scope, dataset_uid=dataset_uid)
        tus_file_uid = await api.new_file(scope)
        ans = await api.request(
            "POST",
            "/api/v1/uploads/",
            headers={
                **TUS,
                "Upload-Length": "1000",
                "Upload-Metadata": tus_metadata(scope=scope, uid=tus_file_uid),
            },
        )
        assert ans.status == 201, ans.body
        partial = await api.request(
            "POST",
            "/api/v1/uploads/",
            headers={**TUS, "Upload-Length": "100", "Upload-Concat": "partial"},
        )
        assert partial.status == 201, partial.body
        spare_scope = await api.new_scope()
        assert api.token is not None
        return Target(
            url=server.url,
            token=api.token,
            scope=scope,
            dataset_uid=dataset_uid,
            file_uid=file_uid,
            tus_file_uid=tus_file_uid,
            upload_url=ans.headers["Location"],
            spare_scope=spare_scope,
            partial_url=partial.headers["Location"],
            admin_token=admin_token,
        )


@pytest.fixture(scope="module")
def target(server: ServerProcess) -> Target:
    return asyncio.run(_setup(server))


def call(
    t: Target,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: Any = None,
    headers: dict[str, str] | None = None,
    admin: bool = False,
) -> Answer:
    """One request in its own event loop; a request that takes 10 s fails the test."""

    async def go() -> Answer:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            token = t.admin_token if admin else t.token
            return await Api(session, t.url, token).request(
                method, path, data=body, params=params, headers=headers
            )

    try:
        return asyncio.run(go())
    except asyncio.TimeoutError:
        pytest.fail(f"{method} {path} got no answer within 10 s")


def call_many(t: Target, requests: list[tuple[str, str, dict[str, Any]]]) -> list[Answer]:
    """Several requests, one after the other, on one session (10 s each at most)."""

    async def go() -> list[Answer]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            api = Api(session, t.url, t.token)
            return [await api.request(method, path, **kw) for method, path, kw in requests]

    try:
        return asyncio.run(go())
    except asyncio.TimeoutError:
        pytest.fail("a request got no answer within 10 s")


def check_answer(ans: Answer, what: str) -> None:
    """The property: 2xx, or 4xx with the contract's JSON error body."""
    if currently_in_test_context():
        event(f"status {ans.status}")  # --hypothesis-show-statistics: how deep we got
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
# Long, but short enough for hypothesis to print (it refuses reprs over 30 000 characters);
# test_body_over_4_mib_is_413 and test_body_of_almost_4_mib_is_read send the big ones.
HUGE = st.sampled_from([1_000, 5_000, 9_000]).map(lambda n: "é" * n)
STRINGS = st.one_of(TEXT, st.sampled_from(["", " ", "a", "\x00", "a/b", "x" * 257]), HUGE)
EDGE_INTS = st.sampled_from(
    [
        0,
        -1,
        1,
        2**31,
        2**53 + 1,
        2**63 - 1,
        2**63,
        2**64 - 1,
        2**64,
        -(2**63),
        -(2**63) - 1,
        10**30,
        -(10**30),
    ]
)
INTS = st.one_of(st.integers(-1000, 1000), EDGE_INTS, st.integers())
NUMBERS = st.one_of(
    INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 1e308, -1e308, 5e-324]),
)
EDGE_DATETIMES = st.sampled_from(
    [
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
        "now",
        "",
        "1e9",
        "-1",
    ]
)
OFFSETS = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
DATETIMES = st.one_of(
    EDGE_DATETIMES,
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.one_of(st.none(), OFFSETS),
    ).map(lambda d: d.isoformat()),
)
IDENT_CHARS = string.ascii_letters + string.digits + "-_."
IDENTS = st.one_of(
    st.text(alphabet=IDENT_CHARS, min_size=1, max_size=24),
    st.sampled_from(["", "a/b", "a\x00b", "a\nb", "x" * 129, "..", "%2F", " "]),
    TEXT,
)
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), INTS, st.floats(allow_nan=False, allow_infinity=False), TEXT
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
META_STR = st.text(alphabet=st.characters(codec="utf-8"), min_size=3, max_size=19)
META = st.one_of(
    st.dictionaries(META_STR, st.one_of(META_STR, st.lists(META_STR, max_size=3)), max_size=4),
    st.dictionaries(
        st.one_of(META_STR, TEXT),
        st.one_of(META_STR, TEXT, st.lists(st.one_of(META_STR, TEXT, INTS)), JSON_VALUES),
        max_size=4,
    ),
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
    "filetype": either(
        st.sampled_from(["undefined", "src", "preview", "raw", "derived", "conf", "SRC", ""])
    ),
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
    st.fixed_dictionaries(
        REQUIRED, optional={k: v for k, v in FIELDS.items() if k not in REQUIRED}
    ),  # plausible
)

WRITE_ENDPOINTS = st.sampled_from(
    [
        ("POST", "/api/v1/datasets/"),
        ("POST", "/api/v1/files/"),
        ("POST", "/api/v1/collections/"),
        ("POST", "/api/v1/scopes/"),
        ("POST", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
        ("PUT", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
        ("DELETE", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
        ("PATCH", f"/api/v1/datasets/{SCOPE}/{DATASET}"),
        ("PATCH", f"/api/v1/files/{SCOPE}/{FILE}"),
        ("PATCH", f"/api/v1/scopes/{SPARE}"),  # not SCOPE: archiving it would 403 the rest
    ]
)


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


#: Which endpoint takes which field, with a body that is valid without it.
ONE_FIELD_ENDPOINTS: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    (
        "POST",
        "/api/v1/datasets/",
        {"name": "n", "uid": "@NEW@", "scope": SCOPE},
        (
            "name",
            "uid",
            "scope",
            "collected",
            "creator",
            "description",
            "meta",
            "duration",
            "ranking",
            "files",
        ),
    ),
    (
        "POST",
        "/api/v1/files/",
        {"name": "n", "uid": "@NEW@", "scope": SCOPE, "dataset_uid": DATASET},
        (
            "name",
            "uid",
            "dataset_uid",
            "scope",
            "collected",
            "duration",
            "creator",
            "etag",
            "size",
            "mimetype",
            "altlocation",
            "rating",
            "immutable",
            "filetype",
        ),
    ),
    (
        "POST",
        "/api/v1/collections/",
        {"name": "@NEW@", "scope": SCOPE},
        ("name", "scope", "description"),
    ),
    (
        "POST",
        "/api/v1/scopes/",
        {"name": "@NEW@"},
        ("name", "description", "restricted", "archived"),
    ),
    (
        "PATCH",
        f"/api/v1/datasets/{SCOPE}/{DATASET}",
        {},
        ("name", "collected", "duration", "description", "creator", "ranking"),
    ),
    (
        "PATCH",
        f"/api/v1/files/{SCOPE}/{FILE}",
        {},
        ("name", "mimetype", "altlocation", "filetype", "rating"),
    ),
    ("PATCH", f"/api/v1/scopes/{SPARE}", {}, ("description", "restricted", "archived")),
]
ONE_VALUES: st.SearchStrategy[Any] = st.one_of(
    EDGE_INTS, EDGE_DATETIMES, HUGE, st.sampled_from([None, True, [], {}, 1.5, -1, "", "a/b"]), TEXT
)


@settings(FUZZ, max_examples=20)
@given(value=ONE_VALUES)
def test_one_bad_field(target: Target, value: Any) -> None:
    """A body that is valid but for one field, for every field of every endpoint."""
    requests = []
    for method, path, base, fields in ONE_FIELD_ENDPOINTS:
        for field in fields:
            body = target.fill({**base, field: value})
            body = {k: f"o-{uuid.uuid4().hex[:8]}" if v == "@NEW@" else v for k, v in body.items()}
            requests.append((method, target.fill(path), body))
    answers = call_many(
        target, [(m, p, {"data": json_body(b), "headers": JSON_HEADERS}) for m, p, b in requests]
    )
    for (method, path, body), ans in zip(requests, answers, strict=True):
        check_answer(ans, f"{method} {path} {json.dumps(body)[:300]}")


# ---------------------------------------------------------------------------- queries

QUERY_KEYS = st.one_of(
    st.sampled_from(
        [
            "scope",
            "collection",
            "name",
            "uid",
            "since",
            "until",
            "sample",
            "fridge",
            "setup",
            "measurementType",
            "keywords",
            "variablesMeasured",
            "preview",
            "ranking",
            "offset",
            "limit",
        ]
    ),
    TEXT,
)
QUERY_VALUES = st.one_of(
    TEXT,
    INTS.map(str),
    DATETIMES,
    st.sampled_from(["", "true", "false", "yes", "1.5", "-1", "0", "10001", "NaN", "1e3"]),
)


@FUZZ
@given(
    path=st.sampled_from(
        ["/api/v1/datasets/", "/api/v1/collections/", "/api/v1/scopes/", "/api/v1/users/"]
    ),
    with_scope=st.booleans(),
    pairs=st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=8),
)
def test_queries(target: Target, path: str, with_scope: bool, pairs: list[tuple[str, str]]) -> None:
    params = ([("scope", target.scope)] if with_scope else []) + pairs
    ans = call(target, "GET", path, params=params)
    check_answer(ans, f"GET {path} {params!r}"[:600])


@FUZZ
@given(
    key=st.sampled_from(["offset", "limit", "ranking", "since", "until", "preview"]),
    value=st.one_of(EDGE_INTS.map(str), EDGE_DATETIMES, QUERY_VALUES),
)
def test_query_bounds(target: Target, key: str, value: str) -> None:
    for path in ("/api/v1/datasets/", "/api/v1/collections/", "/api/v1/scopes/"):
        params = [("scope", target.scope), (key, value)]
        ans = call(target, "GET", path, params=params)
        check_answer(ans, f"GET {path} {params!r}")


# ---------------------------------------------------------------------------- tus headers

#: Header values aiohttp will send: no CR/LF or other controls (those never reach the app).
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x17F, exclude_characters="\x7f"),
    max_size=40,
)
B64 = st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
UPLOAD_URLS = st.one_of(
    st.just(UPLOAD),
    st.just(PARTIAL),
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=8, max_size=64).map(
        lambda uid: f"/api/v1/uploads/{uid}"
    ),
    st.sampled_from(
        [
            "http://[x/api/v1/uploads/abcdefghij",
            "http://[::1/api/v1/uploads/x",
            "/api/v1/files/abcdefghij",
            "",
            "/api/v1/uploads/",
        ]
    ),
    HEADER_TEXT,
)
OMIT = "@OMIT@"  # a header value that means "send no such header"
TUS_HEADERS: dict[str, st.SearchStrategy[str]] = {
    "Upload-Length": st.one_of(
        INTS.map(str), st.sampled_from(["0", "10", "1000", " 5 "]), HEADER_TEXT
    ),
    "Upload-Defer-Length": st.one_of(st.just("1"), HEADER_TEXT),
    "Upload-Metadata": st.one_of(
        st.just(TUS_META),
        st.just(TUS_META),
        st.builds(lambda s, u: f"scope {s},uid {u}", B64, B64),
        st.lists(
            st.tuples(st.text(alphabet="abcs\"', =", min_size=0, max_size=5), B64), max_size=3
        ).map(lambda kv: ",".join(f"{k} {v}" for k, v in kv)),
        HEADER_TEXT,
    ),
    "Upload-Concat": st.one_of(
        st.just("partial"),
        st.lists(UPLOAD_URLS, max_size=3).map(lambda urls: "final;" + " ".join(urls)),
        HEADER_TEXT,
    ),
    "Upload-Checksum": st.one_of(
        st.builds(lambda a, d: f"{a} {d}", st.sampled_from(["sha1", "md5", "sha256", "crc"]), B64),
        HEADER_TEXT,
    ),
}
TUS_HEADERS.update(
    {
        "Tus-Resumable": st.one_of(HEADER_TEXT, st.sampled_from(["1.0.0", "1.0.1", "", OMIT])),
        "Content-Type": st.one_of(HEADER_TEXT, st.sampled_from([OCTETS, OCTETS.upper(), OMIT])),
        "Upload-Offset": st.one_of(
            INTS.map(str), HEADER_TEXT, st.sampled_from([OFFSET, "0", OMIT])
        ),
    }
)
BODIES_BYTES = st.one_of(st.none(), st.binary(max_size=64))


def tus_headers(base: dict[str, str]) -> st.SearchStrategy[dict[str, str]]:
    """Headers that are ``base`` (a workable request) with up to three of them changed,
    or any set of generated headers at all."""
    changes = st.lists(st.sampled_from(sorted(TUS_HEADERS)), max_size=3, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: TUS_HEADERS[k] for k in keys})
    )
    return st.one_of(
        changes.map(lambda c: {**base, **c}),
        changes.map(lambda c: {**base, **c}),
        st.fixed_dictionaries({}, optional=TUS_HEADERS),
    )


def _present(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if v != OMIT}


@FUZZ
@given(
    headers=tus_headers(
        {"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": TUS_META}
    ),
    body=BODIES_BYTES,
)
def test_tus_create(target: Target, headers: dict[str, str], body: bytes | None) -> None:
    headers = _present(target.fill(headers))
    if body and "Content-Type" not in headers:
        headers["Content-Type"] = OCTETS
    ans = call(target, "POST", "/api/v1/uploads/", body=body, headers=headers)
    check_answer(ans, f"POST /api/v1/uploads/ {headers!r} body={body!r}")


@FUZZ
@given(
    path=st.one_of(st.just(UPLOAD), st.just(PARTIAL), UPLOAD_URLS),
    headers=tus_headers(
        {"Tus-Resumable": "1.0.0", "Content-Type": OCTETS, "Upload-Offset": OFFSET}
    ),
    body=BODIES_BYTES,
)
def test_tus_patch(target: Target, path: str, headers: dict[str, str], body: bytes | None) -> None:
    path, headers = target.fill(path), _present(target.fill(headers))
    if not path.startswith(("http://", "/")) or path.startswith("http://["):
        path = f"/api/v1/uploads/{uuid.uuid4().hex}"
    if headers.get("Upload-Offset") == OFFSET:  # the upload's current offset, if it has one
        head = call(target, "HEAD", path, headers=TUS)
        headers["Upload-Offset"] = head.headers.get("Upload-Offset", "0")
    ans = call(target, "PATCH", path, body=body, headers=headers)
    check_answer(ans, f"PATCH {path} {headers!r} body={body!r}")


# ---------------------------------------------------------------------------- fixed cases


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/api/v1/datasets/",
            {"name": "n", "uid": "@NEW@", "scope": SCOPE, "collected": "9999-12-31T23:59:59-01:00"},
        ),
        (
            "POST",
            "/api/v1/datasets/",
            {"name": "n", "uid": "@NEW@", "scope": SCOPE, "collected": "0001-01-01T00:00:00+01:00"},
        ),
        (
            "POST",
            "/api/v1/datasets/",
            {"name": "n", "uid": "@NEW@", "scope": SCOPE, "ranking": 2**63},
        ),
        (
            "POST",
            "/api/v1/datasets/",
            {
                "name": "n",
                "uid": "@NEW@",
                "scope": SCOPE,
                "files": [{"name": "f", "uid": "@NEW@", "size": 2**63}],
            },
        ),
        (
            "POST",
            "/api/v1/files/",
            {
                "name": "n",
                "uid": "@NEW@",
                "scope": SCOPE,
                "dataset_uid": DATASET,
                "collected": "9999-12-31T23:59:59-01:00",
            },
        ),
        (
            "POST",
            "/api/v1/files/",
            {"name": "n", "uid": "@NEW@", "scope": SCOPE, "dataset_uid": DATASET, "rating": 2**63},
        ),
        (
            "POST",
            "/api/v1/files/",
            {"name": "n", "uid": "@NEW@", "scope": SCOPE, "dataset_uid": DATASET, "size": 2**64},
        ),
        ("POST", "/api/v1/scopes/", {"name": "@NEW@", "archived": "9999-12-31T23:59:59-01:00"}),
        ("PATCH", f"/api/v1/datasets/{SCOPE}/{DATASET}", {"ranking": -(2**63) - 1}),
        (
            "PATCH",
            f"/api/v1/datasets/{SCOPE}/{DATASET}",
            {"collected": "0001-01-01T00:00:00+01:00"},
        ),
        ("PATCH", f"/api/v1/files/{SCOPE}/{FILE}", {"rating": 2**63}),
        ("PATCH", f"/api/v1/scopes/{SPARE}", {"restricted": "9999-12-31T23:59:59-01:00"}),
    ],
)
def test_out_of_range_values_are_4xx(
    target: Target, method: str, path: str, body: dict[str, Any]
) -> None:
    """Values that pass the models' types but not SQLite or datetime (64-bit integers,
    year 0 or 10000 in UTC) must be refused with a 4xx, not crash the handler."""
    new = f"n-{uuid.uuid4().hex[:8]}"
    path, body = target.fill(path), json.loads(json.dumps(target.fill(body)).replace("@NEW@", new))
    ans = call(target, method, path, body=json_body(body), headers=JSON_HEADERS)
    check_answer(ans, f"{method} {path} {body}")
    assert ans.status in (400, 422), (ans.status, ans.body)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/datasets/", {"offset": str(2**63)}),
        ("/api/v1/datasets/", {"ranking": str(2**63)}),
        ("/api/v1/datasets/", {"ranking": str(-(2**63) - 1)}),
        ("/api/v1/datasets/", {"since": "9999-12-31T23:59:59-01:00"}),
        ("/api/v1/datasets/", {"until": "0001-01-01T00:00:00+01:00"}),
        ("/api/v1/scopes/", {"offset": str(2**63)}),
        ("/api/v1/collections/", {"offset": str(2**64)}),
        ("/api/v1/users/", {"offset": str(2**63)}),  # as admin: a member gets 403 first
    ],
)
def test_out_of_range_queries_are_4xx(target: Target, path: str, params: dict[str, str]) -> None:
    ans = call(
        target,
        "GET",
        path,
        params={"scope": target.scope, **params},
        admin=path == "/api/v1/users/",
    )
    check_answer(ans, f"GET {path} {params}")
    assert ans.status in (400, 422), (ans.status, ans.body)


@pytest.mark.parametrize(
    "concat",
    [
        "final;http://[x/api/v1/uploads/abcdefghij",
        "final;http://[::1/api/v1/uploads/abcdefghij",
        "final;http://]/api/v1/uploads/abcdefghij",
    ],
)
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
    body: Any = _chunks(size) if chunked else io.BytesIO(b'{"name": "' + b"x" * (size - 12) + b'"}')
    ans = call(target, "POST", path, body=body, headers=JSON_HEADERS)
    assert ans.status == 413, (ans.status, ans.body[:300])
    check_answer(ans, f"POST {path} ({size} bytes)")


def test_body_of_almost_4_mib_is_read(target: Target) -> None:
    body = json_body({"name": "x" * (4 * MiB - 100), "uid": "u", "scope": target.scope})
    assert len(body) <= 4 * MiB
    ans = call(target, "POST", "/api/v1/datasets/", body=io.BytesIO(body), headers=JSON_HEADERS)
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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/datasets/"),
        ("POST", "/api/v1/files/"),
        ("POST", "/api/v1/collections/"),
        ("POST", "/api/v1/scopes/"),
        ("POST", f"/api/v1/metadata/{SCOPE}/{DATASET}"),
        ("PATCH", f"/api/v1/datasets/{SCOPE}/{DATASET}"),
        ("PATCH", f"/api/v1/files/{SCOPE}/{FILE}"),
    ],
)
@pytest.mark.parametrize("body", NOT_JSON, ids=[repr(b)[:30] for b in NOT_JSON])
def test_non_json_body_is_422(target: Target, method: str, path: str, body: bytes) -> None:
    path = target.fill(path)
    ans = call(target, method, path, body=body, headers=JSON_HEADERS)
    check_answer(ans, f"{method} {path} {body!r}")
    assert ans.status == 422, (ans.status, ans.body)
