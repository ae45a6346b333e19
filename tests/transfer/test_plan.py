"""The pure planning of transfers (aetiket.transfer.plan): slices, shares and splits."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from aetiket.transfer.plan import ALIGN, Segment, SegmentPlan, merge, plan_slices

MiB = 1024 * 1024


@given(
    size=st.integers(0, 1 << 40),
    parallel=st.integers(1, 64),
    min_part=st.integers(1, 64 * MiB),
)
def test_slices_cover_the_file_in_order(size: int, parallel: int, min_part: int) -> None:
    slices = plan_slices(size, parallel, min_part)
    assert 1 <= len(slices) <= parallel
    assert slices[0][0] == 0 and slices[-1][1] == size
    for (_, end), (start, _) in itertools.pairwise(slices):
        assert end == start
    if len(slices) > 1:
        assert all(end - start >= min_part or end == size for start, end in slices)
        if size > ALIGN:
            assert all(start % ALIGN == 0 for start, _ in slices)


@settings(max_examples=200)
@given(
    size=st.integers(1, 512 * MiB),
    done=st.lists(st.tuples(st.integers(0, 512 * MiB), st.integers(0, 64 * MiB)), max_size=6),
    count=st.integers(1, 32),
    seed=st.integers(0, 2**32),
)
def test_cut_take_and_finish_fetch_every_byte_once(
    size: int, done: list[tuple[int, int]], count: int, seed: int
) -> None:
    """Shares cut from what is missing, then connections that take, advance, get split
    and finish in a random order: every missing byte is fetched exactly once."""
    rng = random.Random(seed)
    have = merge([(min(a, size), min(a + n, size)) for a, n in done])
    plan = SegmentPlan(size, have, min_split=2 * MiB)
    plan.cut(count)
    fetched: list[tuple[int, int]] = []
    running: list[Segment] = []
    clock = 0.0
    for _ in range(10_000):
        if plan.complete:
            break
        clock += 0.01
        if not running or (rng.random() < 0.3 and len(running) < count):
            seg = plan.take(clock, min_left=rng.choice([0.0, 0.05]))
            if seg is not None:
                seg.answered(clock)
                running.append(seg)
                continue
        if not running:
            continue
        seg = rng.choice(running)
        step = min(seg.remaining, rng.randint(0, 8 * MiB))
        fetched.append((seg.pos, seg.pos + step))
        seg.pos += step
        if seg.pos >= seg.end:
            running.remove(seg)
            plan.finish(seg)
    assert plan.complete
    fetched = [r for r in fetched if r[1] > r[0]]
    assert sum(b - a for a, b in fetched) == sum(b - a for a, b in merge(fetched))  # no overlap
    assert merge(fetched + have) == [(0, size)]


def test_cut_makes_equal_shares_of_what_is_missing() -> None:
    plan = SegmentPlan(256 * MiB, [], min_split=2 * MiB, first=4 * MiB)
    plan.cut(15)
    shares = [plan.take() for _ in range(plan.waiting)]
    sizes = {seg.end - seg.start for seg in shares if seg is not None and seg.end != 256 * MiB}
    assert len(shares) == 15 and len(sizes) == 1
    assert shares[0] is not None and shares[0].start == 4 * MiB
    assert shares[-1] is not None and shares[-1].end == 256 * MiB


def test_a_segment_about_to_end_is_not_split() -> None:
    """A new request costs round trips: with the clock given, a running segment is split
    only if its own connection would need longer than ``min_left`` for the rest."""
    plan = SegmentPlan(64 * MiB, [], min_split=2 * MiB)
    seg = plan.take(0.0)
    assert seg is not None and seg.end == 64 * MiB
    assert plan.take(0.0) is None  # no byte of its answer yet: no rate, no split
    seg.answered(0.0)
    seg.pos = 32 * MiB  # 32 MiB in 1 s: 32 MiB to go is 1 s more
    assert plan.take(1.0, min_left=2.0) is None
    thief = plan.take(1.0, min_left=0.5)
    assert thief is not None and (thief.start, thief.end) == (48 * MiB, 64 * MiB)
    assert seg.end == 48 * MiB
    # Without a clock, size alone decides (as long as both halves keep min_split).
    assert plan.take() is not None


def test_a_split_leaves_the_bytes_a_segment_already_received() -> None:
    """``ahead``: bytes received but not yet written (a buffered block, a write in
    flight). Half of what is left is taken from after them, never from among them."""
    plan = SegmentPlan(8 * MiB, [], min_split=64 * 1024)
    seg = plan.take()
    assert seg is not None
    seg.pos, seg.ahead = 2 * MiB, 3 * MiB  # 2 MiB written, 3 MiB more in memory
    thief = plan.take()
    assert thief is not None
    assert thief.start == seg.end == 5 * MiB + 3 * MiB // 2
    assert seg.remaining == 3 * MiB // 2 and thief.remaining == 3 * MiB // 2
