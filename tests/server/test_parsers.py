"""Property tests of the server's pure parsers and of the metadata rule of the models.

``parse_range`` is checked against a small reference model written from RFC 9110
section 14 (Range requests), ``if_range_allows`` against section 13.1.5, the tus header
parsers against the tus 1.0.0 grammar (round trips, and "garbage only ever raises
BadRequest"), and ``DatasetIn.meta`` against the rule of ETIKET_API.md ("Metadata").
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import re
import string
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aetiket.errors import BadRequest, RangeNotSatisfiable
from aetiket.models import DatasetIn
from aetiket.server.content import if_range_allows, parse_range
from aetiket.server.tus import parse_checksum, parse_concat, parse_metadata, parse_uint
from tests.server import _hypothesis  # noqa: F401  (quiet libcst import, see there)

# ---------------------------------------------------------------------------- Range model

#: Sizes every generated Range header is checked against (plus a few large ones).
SIZES = [*range(0, 41), 99, 100, 101, 1000, 5000, 2**40, 2**62]
IGNORE = "ignore"  # 200 with the whole representation (parse_range returns None)
UNSATISFIABLE = "416"
_OWS = " \t"
_SPEC = re.compile(r"([0-9]*)[ \t]*-[ \t]*([0-9]*)", re.ASCII)
_MAX_DIGITS = 19  # aetiket ignores (never misreads) positions of more digits


def rfc_range(header: str | None, size: int) -> Any:
    """What RFC 9110 section 14 makes of ``Range: header`` for a ``size``-byte
    representation: IGNORE, UNSATISFIABLE or the inclusive ``(first, last)``.

    The grammar (14.1.1, 14.1.2): ``"bytes" "=" ( 1*DIGIT "-" [1*DIGIT] / "-" 1*DIGIT )``,
    DIGIT being ASCII 0-9 and the unit an ASCII token compared case-insensitively. Leading
    and trailing OWS is not part of a field value. aetiket's documented choices, all within
    what the RFC allows ("a server MAY ignore the Range header field"): several ranges
    (anything with a comma) are ignored, positions of more than 19 digits are ignored,
    and SP/HTAB around "=" and "-" is tolerated. An invalid spec (last < first) is
    ignored; an int-range is satisfiable when first < size, a suffix-range when its length
    is non-zero -- also on an empty representation, where it selects the (empty) whole,
    which a 206 cannot describe, so the header is ignored and the 200 carries it.
    """
    if header is None:
        return IGNORE
    value = header.strip(_OWS)
    if "," in value:
        return IGNORE
    unit, eq, spec = value.partition("=")
    unit = unit.rstrip(_OWS)
    if not eq or not unit.isascii() or unit.lower() != "bytes":
        return IGNORE
    match = _SPEC.fullmatch(spec.strip(_OWS))
    if match is None:
        return IGNORE
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return IGNORE
    if len(first_s) > _MAX_DIGITS or len(last_s) > _MAX_DIGITS:
        return IGNORE
    if not first_s:  # suffix-range
        suffix = int(last_s)
        if suffix == 0:
            return UNSATISFIABLE
        if size == 0:
            return IGNORE
        return max(0, size - suffix), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return IGNORE  # invalid int-range
    if first >= size:
        return UNSATISFIABLE
    last = int(last_s) if last_s else size - 1
    return first, min(last, size - 1)


def server_range(header: str | None, size: int) -> Any:
    try:
        got = parse_range(header, size)
    except RangeNotSatisfiable:
        return UNSATISFIABLE
    return IGNORE if got is None else got


def _positions() -> st.SearchStrategy[str]:
    numbers = st.one_of(
        st.integers(0, 45).map(str),
        st.sampled_from(["0", "00", "007", "99", "100", "101", "999", "4999", "5000"]),
        st.integers(0, 2**64).map(str),
        st.integers(0, 3).map(lambda z: "0" * 18 + "1" + "0" * z),  # around the 19-digit cap
        st.integers(1, 30).map(lambda n: "9" * n),
    )
    return st.one_of(st.just(""), numbers)


_UNITS = st.sampled_from(
    ["bytes", "BYTES", "Bytes", "bYtEs", "byte", "bytess", "items", "none", "", "bytes "]
)
_EQ = st.sampled_from(["=", " = ", "\t=", "", "==", ":"])
_DASH = st.sampled_from(["-", " - ", "\t-", "", "--", "+", "\u2013"])
_PAD = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def range_headers(draw: st.DrawFn) -> str:
    """Mostly well-formed single ranges, with the usual ways of getting them wrong."""
    spec = draw(_positions()) + draw(_DASH) + draw(_positions())
    header = draw(_PAD) + draw(_UNITS) + draw(_EQ) + spec
    if draw(st.integers(0, 5)) == 0:
        header += (
            draw(st.sampled_from([",", ", ", " ,"])) + draw(_positions()) + "-" + draw(_positions())
        )
    return header + draw(_PAD)


_ASCII_GARBAGE = st.text(
    alphabet=string.printable.replace("\n", "")
    .replace("\r", "")
    .replace("\x0b", "")
    .replace("\x0c", ""),
    max_size=30,
)
_RANGE_ALPHABET = st.text(alphabet="bytesBYTES=-0123456789, \t", max_size=20)


def _check_range(header: str) -> None:
    for size in SIZES:
        want = rfc_range(header, size)
        got = server_range(header, size)
        assert got == want, f"Range {header!r} of {size} bytes: expected {want}, got {got}"
        if isinstance(got, tuple):
            first, last = got
            assert 0 <= first <= last < size


@settings(max_examples=400)
@given(st.one_of(range_headers(), _RANGE_ALPHABET, _ASCII_GARBAGE))
@example("bytes=0-99")
@example("bytes=-100")
@example("bytes=500-")
@example("bytes=5-2")
@example("bytes=-0")
@example("bytes=0-0,5-9")
@example("bytes=-")
@example("bytes=")
@example("BYTES=1-")
@example(" bytes = 1 - 2 ")
@example("bytes=00000000000000000001-")  # 20 digits: aetiket ignores it
@example("bytes=-5")  # of an empty representation: RFC 9110 calls it satisfiable
def test_parse_range_follows_rfc_9110(header: str) -> None:
    _check_range(header)


def test_parse_range_without_header_is_whole() -> None:
    for size in SIZES:
        assert parse_range(None, size) is None


def test_suffix_range_of_empty_representation_is_not_416() -> None:
    """RFC 9110 14.1.1: "When a selected representation has zero length, the only
    satisfiable form of range-spec is a suffix-range with a non-zero suffix-length."
    A 206 cannot describe zero bytes, so the server ignores the Range (200, empty body)."""
    assert server_range("bytes=-5", 0) == IGNORE
    assert server_range("bytes=-1", 0) == IGNORE
    assert server_range("bytes=-0", 0) == UNSATISFIABLE
    assert server_range("bytes=0-", 0) == UNSATISFIABLE


@pytest.mark.parametrize(
    "header",
    [
        "bytes=\u0661-\u0662",  # ARABIC-INDIC DIGITS ONE and TWO: not DIGIT
        "bytes=\uff11-\uff12",  # FULLWIDTH DIGITS
        "byte\u017f=1-2",  # LATIN SMALL LETTER LONG S folds to "s" under re.I
        "bytes=1-2\x0b",  # VT is not OWS
        "bytes=1\x1c-2",  # INFORMATION SEPARATOR FOUR is str.isspace() but not OWS
        "bytes\u00a0=1-2",  # NO-BREAK SPACE
        "bytes=1-2\u2003",  # EM SPACE
    ],
)
def test_parse_range_is_ascii_only(header: str) -> None:
    """DIGIT, the range unit and OWS are ASCII (RFC 9110 5.6.1, 14.1): a header
    spelled with other characters is not a valid Range and is ignored."""
    for size in (0, 1, 10, 100):
        assert server_range(header, size) == IGNORE, (header, size)


@settings(max_examples=200)
@given(st.text(max_size=30))
def test_parse_range_never_raises_anything_else(header: str) -> None:
    for size in (0, 1, 7, 5000):
        server_range(header, size)  # only RangeNotSatisfiable may escape


# ---------------------------------------------------------------------------- If-Range model

_HTTP_DATE_FORMATS = (
    "%a, %d %b %Y %H:%M:%S GMT",  # IMF-fixdate
    "%A, %d-%b-%y %H:%M:%S GMT",  # obsolete RFC 850
    "%a %b %d %H:%M:%S %Y",  # asctime (day padded with a space: normalised below)
)


def _parse_http_date(value: str) -> datetime | None:
    """An HTTP-date (RFC 9110 5.6.7) in any of its three forms, or None."""
    normal = re.sub(r"^(\w{3} \w{3}) +(\d) ", r"\1 0\2 ", value)  # asctime "Mar  4"
    for fmt in _HTTP_DATE_FORMATS:
        try:
            when = datetime.strptime(normal, fmt)
        except ValueError:
            continue
        return when.replace(tzinfo=timezone.utc)
    return None


def rfc_if_range(header: str | None, etag: str, last_modified: datetime) -> bool:
    """RFC 9110 13.1.5: true when the entity-tag is strong and equals the current one, or
    the HTTP-date equals Last-Modified (to the second); otherwise the Range is ignored."""
    if header is None:
        return True
    value = header.strip(_OWS)
    if value.startswith('"') or value.startswith("W/"):
        return value == etag
    when = _parse_http_date(value)
    return when is not None and int(when.timestamp()) == int(last_modified.timestamp())


def _date_forms(when: datetime) -> list[str]:
    when = when.astimezone(timezone.utc)
    asctime = when.strftime("%a %b ") + f"{when.day:2d}" + when.strftime(" %H:%M:%S %Y")
    return [when.strftime(_HTTP_DATE_FORMATS[0]), when.strftime(_HTTP_DATE_FORMATS[1]), asctime]


_DATES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(timezone.utc)
)


@st.composite
def if_range_cases(draw: st.DrawFn) -> tuple[str, str, datetime]:
    content = draw(st.binary(max_size=16))
    etag = f'"{hashlib.sha256(content).hexdigest()}"'
    last_modified = draw(_DATES)
    kind = draw(st.integers(0, 7))
    if kind == 0:
        header = draw(_PAD) + etag + draw(_PAD)
    elif kind == 1:
        header = draw(
            st.sampled_from(
                [
                    f"W/{etag}",
                    etag[1:-1],
                    etag.upper(),
                    f'"{etag}"',
                    etag[:-2] + '"',
                    '"*"',
                    "*",
                    '""',
                ]
            )
        )
    elif kind == 2:
        other = f'"{hashlib.sha256(content + b"x").hexdigest()}"'
        header = draw(st.sampled_from([other, f"W/{other}"]))
    elif kind == 3:
        header = draw(st.sampled_from(_date_forms(last_modified)))
    elif kind == 4:
        delta = draw(st.sampled_from([-86400, -3600, -1, 1, 2, 3600, 86400 * 365]))
        header = draw(st.sampled_from(_date_forms(last_modified + timedelta(seconds=delta))))
    elif kind == 5:
        header = draw(st.text(max_size=40))
    else:
        header = draw(_ASCII_GARBAGE)
    return header, etag, last_modified


@settings(max_examples=300)
@given(if_range_cases())
def test_if_range_follows_rfc_9110(case: tuple[str, str, datetime]) -> None:
    header, etag, last_modified = case
    assert if_range_allows(header, etag, last_modified) == rfc_if_range(
        header, etag, last_modified
    ), header


@given(_DATES, st.integers(0, 999_999))
def test_if_range_date_matches_to_the_second(when: datetime, micro: int) -> None:
    last_modified = when.replace(microsecond=micro)
    header = email.utils.format_datetime(when, usegmt=True)
    assert if_range_allows(header, '"x"', last_modified)
    assert not if_range_allows(
        email.utils.format_datetime(when - timedelta(seconds=1), usegmt=True), '"x"', last_modified
    )


def test_if_range_without_header_allows() -> None:
    assert if_range_allows(None, '"x"', datetime.now(timezone.utc))


@given(st.text(max_size=60))
def test_if_range_never_raises(header: str) -> None:
    if_range_allows(header, '"abc"', datetime.now(timezone.utc))


# ---------------------------------------------------------------------------- tus headers

#: tus 1.0.0: "The key MUST NOT contain spaces and commas and MUST NOT be empty."
_KEY_ALPHABET = [chr(c) for c in range(0x21, 0x7F) if c != 0x2C]
_META_KEYS = st.text(alphabet=_KEY_ALPHABET, min_size=1, max_size=16)


def _bad_request_or(fn: Any, *args: Any) -> Any:
    """Call ``fn``; BadRequest is fine, any other exception fails the test."""
    try:
        return fn(*args)
    except BadRequest as exc:
        assert exc.status == 400
        assert isinstance(exc.detail, str) and exc.detail
        return exc


@st.composite
def metadata_headers(draw: st.DrawFn) -> tuple[str, dict[str, bytes]]:
    pairs = draw(st.dictionaries(_META_KEYS, st.binary(max_size=40), max_size=6))
    items = []
    for key, value in pairs.items():
        if value:
            items.append(f"{key} {base64.b64encode(value).decode()}")
        else:
            items.append(draw(st.sampled_from([key, f"{key} "])))
    header = draw(st.sampled_from([",", ", "])).join(items)
    return header, pairs


@settings(max_examples=300)
@given(metadata_headers())
@example(
    (
        "filename d29ybGQ=,scope c2NvcGU=,uid dWlk",
        {"filename": b"world", "scope": b"scope", "uid": b"uid"},
    )
)
@example(('a"b YQ==', {'a"b': b"a"}))  # '"' is visible ASCII, neither space nor comma
def test_parse_metadata_round_trips(case: tuple[str, dict[str, bytes]]) -> None:
    header, pairs = case
    assert parse_metadata(header) == pairs


def test_parse_metadata_key_may_be_any_visible_ascii() -> None:
    key = "".join(_KEY_ALPHABET)
    assert parse_metadata(f"{key} YQ==") == {key: b"a"}


@pytest.mark.parametrize(
    "header",
    [
        "a YQ==,a Yg==",  # repeated key
        "a Y",  # not base64
        "a YQ== extra",  # three parts
        ",",  # empty pair
        "a YQ==,",
        "k\u00e9y YQ==",  # not ASCII
        "a \u00e9",
    ],
)
def test_parse_metadata_rejects(header: str) -> None:
    with pytest.raises(BadRequest):
        parse_metadata(header)


_META_GARBAGE = st.text(alphabet='ab =+/,"\t\u00e9YQ', max_size=30)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=60), _META_GARBAGE))
def test_parse_metadata_garbage_is_bad_request(header: str) -> None:
    got = _bad_request_or(parse_metadata, header)
    if not isinstance(got, BadRequest):
        assert isinstance(got, dict)
        assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in got.items())


_ALGOS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}


@given(st.sampled_from(sorted(_ALGOS)), st.binary(max_size=50), st.booleans(), _PAD)
def test_parse_checksum_round_trips(algo: str, data: bytes, upper: bool, pad: str) -> None:
    digest = _ALGOS[algo](data).digest()
    name = algo.upper() if upper else algo
    assert parse_checksum(f"{pad}{name} {base64.b64encode(digest).decode()}{pad}") == (algo, digest)


@given(st.sampled_from(sorted(_ALGOS)), st.binary(max_size=70))
def test_parse_checksum_wrong_length_is_bad_request(algo: str, digest: bytes) -> None:
    if len(digest) == _ALGOS[algo]().digest_size:
        return
    with pytest.raises(BadRequest):
        parse_checksum(f"{algo} {base64.b64encode(digest).decode()}")


_CHECKSUM_GARBAGE = st.builds(
    lambda a, s, b: a + s + b,
    st.sampled_from(["sha1", "SHA256", "md5", "crc32", "", "sha-1", "sha256\u00e9"]),
    st.sampled_from([" ", "  ", "", "\t"]),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=\u00e9 ", max_size=50),
)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=60), _CHECKSUM_GARBAGE))
def test_parse_checksum_garbage_is_bad_request(header: str) -> None:
    got = _bad_request_or(parse_checksum, header)
    if not isinstance(got, BadRequest):
        algo, digest = got
        assert algo in _ALGOS and len(digest) == _ALGOS[algo]().digest_size


_UPLOAD_UIDS = st.text(
    alphabet=string.ascii_letters + string.digits + "_-", min_size=8, max_size=64
)


@given(
    st.lists(_UPLOAD_UIDS, min_size=1, max_size=5),
    st.sampled_from(["http://127.0.0.1:8000", "https://etiket.example.org", ""]),
)
def test_parse_concat_round_trips(uids: list[str], base: str) -> None:
    header = "final;" + " ".join(f"{base}/api/v1/uploads/{uid}" for uid in uids)
    assert parse_concat(header) == ("final", uids)
    assert parse_concat("partial") == ("partial", [])
    assert parse_concat(None) == ("none", [])


#: Path segments a public base URL may put before /api/v1/uploads/ (behind a proxy).
_SEGMENTS = st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=1, max_size=12)
_BASES = st.sampled_from(["http://127.0.0.1:8000", "https://etiket.example.org", ""])


@st.composite
def prefixed_upload_urls(draw: st.DrawFn, uid: str) -> str:
    """An absolute or relative URL of upload ``uid`` under a path prefix (maybe none)."""
    prefix = "".join("/" + s for s in draw(st.lists(_SEGMENTS, max_size=3)))
    query = draw(st.sampled_from(["", "?x=1", "#frag"]))
    return f"{draw(_BASES)}{prefix}/api/v1/uploads/{uid}{query}"


@st.composite
def prefixed_finals(draw: st.DrawFn) -> tuple[str, list[str]]:
    """An Upload-Concat final header naming uploads under path prefixes, and its uids."""
    uids = draw(st.lists(_UPLOAD_UIDS, min_size=1, max_size=5))
    return "final;" + " ".join(draw(prefixed_upload_urls(uid)) for uid in uids), uids


@settings(max_examples=300)
@given(prefixed_finals())
@example(("final;https://host.example/etiket/api/v1/uploads/abcdefghij", ["abcdefghij"]))
def test_parse_concat_accepts_a_path_prefix(case: tuple[str, list[str]]) -> None:
    header, uids = case
    assert parse_concat(header) == ("final", uids)


@st.composite
def not_upload_urls(draw: st.DrawFn) -> str:
    """A URL whose path does not end with /api/v1/uploads/<uid>: another endpoint, no
    uid, a segment after the uid, or a relative path not under the uploads endpoint."""
    base, uid = draw(_BASES), draw(_UPLOAD_UIDS)
    prefix = "".join("/" + s for s in draw(st.lists(_SEGMENTS, max_size=2)))
    extra = draw(_SEGMENTS)
    return draw(
        st.sampled_from(
            [
                f"{base}{prefix}/api/v1/uploads/",
                f"{base}{prefix}/api/v1/uploads/{uid}/",
                f"{base}{prefix}/api/v1/uploads/{uid}/{extra}",
                f"{base}{prefix}/api/v1/files/{uid}",
                f"{base}{prefix}/api/v2/uploads/{uid}",
                f"{base}{prefix}/api/v1/uploads{uid}",
                f"{base}{prefix}/{uid}",
                uid,
                f"{extra}/api/v1/uploads/{uid}",
            ]
        )
    )


@settings(max_examples=300)
@given(st.lists(prefixed_upload_urls("abcdefghij"), max_size=2), not_upload_urls())
def test_parse_concat_rejects_other_paths(good: list[str], bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_concat("final;" + " ".join([*good, bad]))


_URL_GARBAGE = st.text(
    alphabet=string.ascii_letters + string.digits + ":/[]@?#%._- \u00e9", max_size=60
)


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(lambda u: "final;" + u, _URL_GARBAGE),
        st.builds(lambda u: "final;http://" + u + "/api/v1/uploads/abcdefghij", _URL_GARBAGE),
    )
)
@example("final;http://[x/api/v1/uploads/abcdefghij")  # urlsplit: "Invalid IPv6 URL"
@example("final;http://[::1/api/v1/uploads/abcdefghij")
def test_parse_concat_garbage_is_bad_request(header: str) -> None:
    got = _bad_request_or(parse_concat, header)
    if not isinstance(got, BadRequest):
        kind, uids = got
        assert kind in ("partial", "final")
        assert all(re.fullmatch(r"[A-Za-z0-9_-]{8,64}", uid) for uid in uids)


@given(st.integers(0, 10**19 - 1), _PAD, _PAD)
def test_parse_uint_round_trips(number: int, left: str, right: str) -> None:
    assert parse_uint(f"{left}{number}{right}", "Upload-Length") == number
    assert parse_uint(None, "Upload-Length") is None


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=30), st.text(alphabet="0123456789 -+_.e\u0661\t", max_size=25)))
@example("-1")
@example("1e3")
@example("\uff11\uff12")  # fullwidth digits
@example("12345678901234567890")  # 20 digits
def test_parse_uint_garbage_is_bad_request(value: str) -> None:
    got = _bad_request_or(parse_uint, value, "Upload-Offset")
    if not isinstance(got, BadRequest):
        assert isinstance(got, int) and 0 <= got < 10**19
        assert re.fullmatch(r"[0-9]{1,19}", value.strip())


# ---------------------------------------------------------------------------- meta rule

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=24)
_META_STR = st.text(alphabet=st.characters(codec="utf-8"), min_size=3, max_size=19)


def _meta_str_ok(value: Any) -> bool:
    return isinstance(value, str) and 3 <= len(value) <= 19


def meta_allowed(meta: dict[str, Any]) -> bool:
    """ETIKET_API.md: every key and string value has 3..19 characters; a value is a
    string or a list of such strings."""
    for key, value in meta.items():
        if not _meta_str_ok(key):
            return False
        if isinstance(value, list):
            if not all(_meta_str_ok(v) for v in value):
                return False
        elif not _meta_str_ok(value):
            return False
    return True


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
)
_META_VALUES = st.one_of(
    _META_STR,
    st.lists(_META_STR, max_size=4),
    _TEXT,
    st.lists(st.one_of(_META_STR, _TEXT, _JSON_SCALARS), max_size=4),
    _JSON_SCALARS,
    st.dictionaries(_META_STR, _META_STR, max_size=2),
    st.lists(st.lists(_META_STR, max_size=2), min_size=1, max_size=2),
)
_VALID_META = st.dictionaries(
    _META_STR, st.one_of(_META_STR, st.lists(_META_STR, max_size=4)), max_size=5
)
_ANY_META = st.dictionaries(st.one_of(_META_STR, _TEXT), _META_VALUES, max_size=5)


def _decode_dataset(meta: Any) -> DatasetIn:
    body = {"name": "n", "uid": "u", "scope": "s", "meta": meta}
    return msgspec.json.decode(msgspec.json.encode(body), type=DatasetIn)


@settings(max_examples=300)
@given(st.one_of(_VALID_META, _ANY_META))
@example({"abc": "abc"})
@example({"ab": "abc"})
@example({"abc": "ab"})
@example({"a" * 19: "b" * 19})
@example({"a" * 20: "abc"})
@example({"abc": "b" * 20})
@example({"abc": []})
@example({"abc": ["abc", "ab"]})
@example({"abc": 123})
@example({"abc": None})
@example({"héé": "ünï"})  # 3 characters, more bytes
def test_dataset_meta_rule(meta: dict[str, Any]) -> None:
    if meta_allowed(meta):
        assert _decode_dataset(meta).meta == meta
    else:
        with pytest.raises(msgspec.ValidationError):
            _decode_dataset(meta)


@given(st.one_of(_JSON_SCALARS, st.lists(_META_STR, max_size=2), _TEXT))
def test_dataset_meta_must_be_an_object(meta: Any) -> None:
    with pytest.raises(msgspec.ValidationError):
        _decode_dataset(meta)


def test_dataset_meta_defaults_to_empty() -> None:
    body = msgspec.json.encode({"name": "n", "uid": "u", "scope": "s"})
    assert msgspec.json.decode(body, type=DatasetIn).meta == {}
