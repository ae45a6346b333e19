"""Decoding one JSON page of datasets: aetiket vs the original client vs pydantic v2.

A page of 10,000 ``DatasetOut`` with 2 files each, as the server encodes it (ISO datetimes
with Z, optional fields left out when empty; every file with the fields the server sends
for an uploaded file: about 1.4 kB a dataset, 14 MB in all), is decoded by

* aetiket: ``msgspec.json.Decoder(list[DatasetOut]).decode(raw)`` (typed and validated);
* pydantic v2: ``TypeAdapter(list[Model]).validate_json(raw)`` with a BaseModel mirror
  of the same shape (enums, datetimes, nested lists);
* the original etiket-client 0.1.4: ``json.loads`` then ``DatasetOut.from_dict`` for each
  record, as its API functions do, run in the original client's own virtualenv.

Printed: the best time of each over at least N runs and S seconds (time.perf_counter; GC
on, as in an application; each result freed outside the timed part), the throughput and
the ratio to aetiket, with the goals: >= 20x the original and >= 4.5x pydantic. All three
must agree on the page (records, files, last uid, total size, a last timestamp).

    python benchmarks/decode.py [--datasets 10000] [--repeats 7] [--seconds 3]
"""

from __future__ import annotations

import argparse
import enum
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
from _original import Unavailable, original_python

from aetiket import new_uid
from aetiket.models import (
    CollectionDatasetOut,
    DatasetOut,
    FileDatasetOut,
    FileStatus,
    FileType,
)

GOALS = {"original etiket-client 0.1.4": 20.0, "pydantic v2": 4.5}

# Runs in the original client's virtualenv: python -c ORIGINAL_TIMER PAGE REPEATS SECONDS
# (the same loop as best_of).
ORIGINAL_TIMER = """
import gc, json, sys, time
from etiket_client.models import DatasetOut

path, repeats, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(path, "rb") as f:
    raw = f.read()
best, runs, spent = float("inf"), 0, 0.0
while runs < repeats or (spent < seconds and runs < 100):
    start = time.perf_counter()
    out = [DatasetOut.from_dict(d) for d in json.loads(raw)]
    took = time.perf_counter() - start
    best, runs, spent = min(best, took), runs + 1, spent + took
    del out
    gc.collect()
out = [DatasetOut.from_dict(d) for d in json.loads(raw)]
print(json.dumps({
    "best": best,
    "runs": runs,
    "records": len(out),
    "files": sum(len(d.files) for d in out),
    "last_uid": out[-1].uid,
    "size": sum(f.size or 0 for d in out for f in d.files),
    "last_modified": out[-1].files[-1].modified.isoformat(),
}))
"""

# ---------------------------------------------------------------------------- the page

WORDS = (
    "rabi",
    "ramsey",
    "t1",
    "echo",
    "chevron",
    "spectroscopy",
    "readout",
    "flux_sweep",
    "resonator",
    "coupler",
    "cz_gate",
    "randomized_bm",
    "allxy",
    "cryoscope",
)
SAMPLES = ("SQ-7721-B", "SQ-7721-C", "TWPA-12", "QDEV-A04", "XLD-dev-3", "NbTiN-R7")
FRIDGES = ("bluefors-ld400", "triton-500", "xld1000-b", "proteox-mx")
SETUPS = ("cryo-probe-2", "rf-rack-a", "dc-rack-1", "ctrl-qblox-3")
KEYWORDS = (
    "qubit",
    "coherence",
    "calibration",
    "readout",
    "two-qubit",
    "flux",
    "tomography",
    "noise",
    "tuneup",
    "leakage",
)
VARIABLES = (
    "amplitude",
    "phase",
    "frequency",
    "flux_bias",
    "drive_power",
    "iq_signal",
    "time_delay",
    "population",
)
PEOPLE = ("a.vermeulen", "j.smith", "l.nakamura", "m.rossi", "s.okafor", "t.de_vries")
COLLECTIONS = ("cooldown-14", "paper-2026-coherence", "tuneup-Q3", "weekly-calib")
HOST = "http://127.0.0.1:8000"


def make_page(n: int, seed: int = 1) -> bytes:
    """``n`` datasets with 2 files each, encoded as the server encodes a list answer."""
    rng = random.Random(seed)
    scope = "qdev-lab1"
    start = datetime(2026, 1, 5, 8, 30, tzinfo=timezone.utc)
    page: list[DatasetOut] = []
    for i in range(n):
        collected = start + timedelta(seconds=i * 97.3 + rng.random())
        created = collected + timedelta(seconds=rng.uniform(30, 900))
        modified = created + timedelta(seconds=rng.uniform(0, 3600))
        kind = rng.choice(WORDS)
        qubit = f"q{rng.randrange(1, 17)}"
        meta: dict[str, Any] = {
            "sample": rng.choice(SAMPLES),
            "fridge": rng.choice(FRIDGES),
            "setup": rng.choice(SETUPS),
            "measurementType": kind,
            "keywords": rng.sample(KEYWORDS, rng.randrange(1, 4)),
            "variablesMeasured": rng.sample(VARIABLES, 2),
        }
        files = []
        for j, (suffix, mimetype, filetype) in enumerate(
            (("hdf5", "application/x-hdf5", FileType.raw), ("png", "image/png", FileType.preview))
        ):
            fuid = new_uid()
            available = rng.random() < 0.9
            files.append(
                FileDatasetOut(
                    name=f"{kind}_{qubit}_{i:05d}.{suffix}",
                    uid=fuid,
                    status=FileStatus.available if available else FileStatus.unavailable,
                    mimetype=mimetype,
                    rating=rng.choice((0, 0, 1, 2)),
                    immutable=j == 0 and available,
                    filetype=filetype,
                    collected=collected,
                    creator=rng.choice(PEOPLE),
                    etag=f"{rng.getrandbits(256):064x}" if available else None,
                    size=rng.randrange(20_000, 80_000_000) if available else None,
                    created=created,
                    modified=modified,
                    download_link=f"{HOST}/api/v1/files/{scope}/{fuid}",
                )
            )
        page.append(
            DatasetOut(
                name=f"{kind} {qubit} {collected:%Y-%m-%d %H:%M}",
                uid=new_uid(),
                scope=scope,
                collected=collected,
                meta=meta,
                ranking=rng.choice((0, 0, 0, 1, 2, -1)),
                created=created,
                modified=modified,
                files=files,
                collections=(
                    [CollectionDatasetOut(name=rng.choice(COLLECTIONS))]
                    if rng.random() < 0.3
                    else []
                ),
                creator=rng.choice(PEOPLE),
                description=(
                    f"{kind} on {qubit}, {rng.choice(SETUPS)}" if rng.random() < 0.5 else None
                ),
                duration=round(rng.uniform(2, 3600), 3),
            )
        )
    return msgspec.json.encode(page)


# ---------------------------------------------------------------------------- decoders


def best_of(fn: Callable[[], object], repeats: int, seconds: float) -> tuple[float, int]:
    """The best time of ``fn`` over at least ``repeats`` runs and ``seconds``, and the
    number of runs; each result is freed outside the timed part."""
    best, runs, spent = float("inf"), 0, 0.0
    while runs < repeats or (spent < seconds and runs < 100):
        start = time.perf_counter()
        out = fn()
        took = time.perf_counter() - start
        best, runs, spent = min(best, took), runs + 1, spent + took
        del out
        gc.collect()
    return best, runs


def summary(records: list[Any]) -> dict[str, Any]:
    """What every decoder must agree on."""
    return {
        "records": len(records),
        "files": sum(len(d.files) for d in records),
        "last_uid": records[-1].uid,
        "size": sum(f.size or 0 for d in records for f in d.files),
        "last_modified": records[-1].files[-1].modified.isoformat(),
    }


def pydantic_decoder() -> tuple[str, Callable[[bytes], list[Any]]] | str:
    """The pydantic v2 mirror of DatasetOut's shape, or why it is unavailable."""
    try:
        import pydantic
    except ImportError:
        return "pydantic is not installed (nox -s bench installs it)"
    if not pydantic.VERSION.startswith("2."):
        return f"pydantic {pydantic.VERSION} is not v2"

    class PStatus(str, enum.Enum):
        unavailable = "unavailable"
        pending = "pending"
        available = "available"
        secured = "secured"

    class PType(str, enum.Enum):
        undefined = "undefined"
        src = "src"
        preview = "preview"
        raw = "raw"
        derived = "derived"
        conf = "conf"

    class PFile(pydantic.BaseModel):
        name: str
        uid: str
        status: PStatus
        mimetype: str
        rating: int
        immutable: bool
        filetype: PType
        collected: datetime | None = None
        duration: float | None = None
        creator: str | None = None
        etag: str | None = None
        size: int | None = None
        altlocation: str | None = None
        created: datetime | None = None
        modified: datetime | None = None
        download_link: str | None = None

    class PCollection(pydantic.BaseModel):
        name: str
        description: str | None = None

    class PDataset(pydantic.BaseModel):
        name: str
        uid: str
        scope: str
        collected: datetime
        meta: dict[str, Any]
        ranking: int
        created: datetime
        modified: datetime
        files: list[PFile]
        collections: list[PCollection]
        creator: str | None = None
        description: str | None = None
        duration: float | None = None

    adapter = pydantic.TypeAdapter(list[PDataset])
    return f"pydantic {pydantic.VERSION}", adapter.validate_json


def run_original(page: Path, repeats: int, seconds: float) -> dict[str, Any] | str:
    """The original client's best time and summary, or why it is unavailable."""
    try:
        python = original_python()
    except (Unavailable, subprocess.SubprocessError, OSError) as exc:
        return f"original client unavailable: {exc}"
    out = subprocess.run(
        [python, "-c", ORIGINAL_TIMER, str(page), str(repeats), str(seconds)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        return f"original client failed:\n{out.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=7, help="at least this many runs")
    p.add_argument("--seconds", type=float, default=3.0, help="and at least this long")
    args = p.parse_args()
    raw = make_page(args.datasets)
    mb = len(raw) / 1e6

    def timed(fn: Callable[[], object]) -> tuple[float, int]:
        return best_of(fn, args.repeats, args.seconds)

    decoder = msgspec.json.Decoder(list[DatasetOut])
    reference = summary(decoder.decode(raw))
    rows = [("aetiket (msgspec)", *timed(lambda: decoder.decode(raw)))]
    notes: list[str] = []

    peer = pydantic_decoder()
    if isinstance(peer, str):
        notes.append(f"pydantic v2 unavailable: {peer}")
    else:
        label, validate = peer
        got = summary(validate(raw))
        assert got == reference, (got, reference)
        rows.append(("pydantic v2", *timed(lambda: validate(raw))))
        notes.append(f"pydantic v2: {label}, TypeAdapter(list[Model]).validate_json")

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        page = Path(tmp) / "page.json"
        page.write_bytes(raw)
        original = run_original(page, args.repeats, args.seconds)
    if isinstance(original, str):
        notes.append(original)
    else:
        best, runs = original.pop("best"), original.pop("runs")
        assert original == reference, (original, reference)
        rows.append(("original etiket-client 0.1.4", best, runs))
        notes.append("original: json.loads + DatasetOut.from_dict, in its own virtualenv")

    ours = rows[0][1]
    print(
        f"\ndecoding a page of {reference['records']} DatasetOut with "
        f"{reference['files']} files, {mb:.1f} MB; Python {sys.version.split()[0]}, "
        f"msgspec {msgspec.__version__}, {os.cpu_count()} cores"
    )
    print(f"{'decoder':30} {'runs':>5} {'best ms':>9} {'MB/s':>7} {'vs aetiket':>11}  goal")
    for name, took, runs in rows:
        goal = GOALS.get(name)
        ratio = took / ours
        verdict = f">= {goal:g}x {'PASS' if ratio >= goal else 'FAIL'}" if goal else ""
        print(f"{name:30} {runs:5} {took * 1e3:9.1f} {mb / took:7.0f} {ratio:10.1f}x  {verdict}")
    if len(rows) > 1:
        print(
            f"the decoders agree: {reference['records']} records, {reference['files']} "
            f"files, last uid {reference['last_uid']}"
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
