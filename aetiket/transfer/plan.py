"""Pure planning: how a file is cut into parts. No I/O."""

from __future__ import annotations

import math

__all__ = ("ALIGN", "NEAR", "Segment", "SegmentPlan", "gaps", "merge", "plan_slices")

#: Part boundaries fall on multiples of this (disk- and page-friendly).
ALIGN = 64 * 1024
#: A server whose round trip (``_http.round_trip``) is under this many seconds is near
#: (loopback, LAN): bytes cost CPU there, not waiting, and few connections are best.
NEAR = 0.005


def plan_slices(size: int, parallel: int, min_part: int) -> list[tuple[int, int]]:
    """Cut ``size`` bytes into at most ``parallel`` contiguous ``[start, end)`` slices.

    No slice is smaller than ``min_part`` (so small files get fewer parts, and an empty
    file one empty part); boundaries are aligned to ``ALIGN`` except the file's end. The
    slices cover ``[0, size)`` exactly, in order.
    """
    if size < 0 or parallel < 1 or min_part < 1:
        raise ValueError("size >= 0, parallel >= 1 and min_part >= 1 are required")
    count = max(1, min(parallel, size // min_part))
    step = -(-size // count)  # ceil
    step = -(-step // ALIGN) * ALIGN if size > ALIGN else step
    slices = []
    start = 0
    while start < size:
        end = min(size, start + step)
        slices.append((start, end))
        start = end
    return slices or [(0, 0)]


class Segment:
    """A byte range ``[start, end)`` being fetched; ``pos`` is how far it is written.

    ``end`` may shrink while the segment runs: an idle connection took its tail.
    ``ahead``: bytes after ``pos`` already received (buffered, or being written); a
    split never cuts into them, or they would be written and counted twice.
    ``began``/``base``: when its current answer started and at which position (its rate).
    """

    __slots__ = ("ahead", "base", "began", "end", "pos", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.pos = start
        self.end = end
        self.ahead = 0
        self.began: float | None = None
        self.base = start

    def answered(self, now: float) -> None:
        """Its answer arrived at ``now``: the rate is measured from here."""
        self.began, self.base = now, self.pos

    def time_left(self, now: float | None) -> float:
        """Seconds to its end at its rate so far: 0 while no byte of its answer came (not
        worth splitting yet), infinite without a clock (``now`` None: size decides)."""
        if now is None:
            return math.inf
        if self.began is None or now <= self.began or self.pos <= self.base:
            return 0.0
        return self.remaining * (now - self.began) / (self.pos - self.base)

    def __repr__(self) -> str:
        return f"Segment({self.start}, pos={self.pos}, end={self.end})"

    @property
    def remaining(self) -> int:
        """Bytes still to arrive (those received but not yet written are not)."""
        return self.end - self.pos - self.ahead


class SegmentPlan:
    """Which bytes of a download are done, running, or still to fetch (aria2-style).

    ``take()`` hands out the next missing range; when none is left, it splits the running
    segment with the most time to go in half (never below ``min_split`` each), so a fast
    connection is never idle while a slow one holds the tail, unless that one ends within
    ``min_left`` seconds anyway (a new request costs round trips and a cold start).
    """

    def __init__(
        self, size: int, done: list[tuple[int, int]], min_split: int, first: int | None = None
    ) -> None:
        self.size = size
        self.min_split = max(1, min_split)
        self._done: list[tuple[int, int]] = merge(done)
        self._pending = gaps(self._done, size)
        self.active: list[Segment] = []
        if first is not None:
            # The probe's range, already being fetched by the first connection.
            self._pending = gaps(merge([*self._done, (0, first)]), size)

    def take(self, now: float | None = None, min_left: float = 0.0) -> Segment | None:
        """The next segment to fetch, or None when everything is done, running small, or
        ending within ``min_left`` seconds at its rate (``now``: the rate's clock)."""
        if self._pending:
            start, end = self._pending.pop(0)
            seg = Segment(start, end)
            self.active.append(seg)
            return seg
        candidates = [s for s in self.active if s.remaining >= 2 * self.min_split]
        victim = max(candidates, key=lambda s: (s.time_left(now), s.remaining), default=None)
        if victim is None or victim.time_left(now) <= min_left:
            return None
        middle = victim.pos + victim.ahead + victim.remaining // 2
        seg = Segment(middle, victim.end)
        victim.end = middle  # its connection stops there
        self.active.append(seg)
        return seg

    def cut(self, count: int) -> None:
        """Cut the ranges still to fetch into about ``count`` pieces of near equal size
        (none under ``min_split``), so that connections started together end together."""
        total = sum(end - start for start, end in self._pending)
        if count <= len(self._pending) or total <= 0:
            return
        pieces: list[tuple[int, int]] = []
        for start, end in self._pending:
            share = max(1, round(count * (end - start) / total))
            for a, b in plan_slices(end - start, share, self.min_split):
                pieces.append((start + a, start + b))
        self._pending = pieces

    @property
    def missing(self) -> int:
        """Bytes that no connection has taken yet."""
        return sum(end - start for start, end in self._pending)

    @property
    def waiting(self) -> int:
        """How many ranges wait for a connection (not counting splits)."""
        return len(self._pending)

    def adopt(self, seg: Segment) -> None:
        """Track a segment created outside ``take`` (the probe's)."""
        self.active.append(seg)

    def finish(self, seg: Segment) -> None:
        """A segment is written up to its end."""
        self.active.remove(seg)
        self._done = merge([*self._done, (seg.start, seg.end)])

    def done_ranges(self) -> list[tuple[int, int]]:
        """Every byte range written so far (finished segments and running ones' heads)."""
        return merge([*self._done, *((s.start, s.pos) for s in self.active if s.pos > s.start)])

    @property
    def complete(self) -> bool:
        return (
            not self._pending
            and not self.active
            and self._done == ([(0, self.size)] if self.size else [])
        )

    def splittable(self) -> bool:
        """Whether another connection would find work now."""
        return bool(self._pending) or any(s.remaining >= 2 * self.min_split for s in self.active)


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping, non-empty ranges covering the same bytes."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def gaps(done: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The ranges of ``[0, size)`` not in ``done`` (which is merged)."""
    out = []
    pos = 0
    for start, end in done:
        if start > pos:
            out.append((pos, min(start, size)))
        pos = max(pos, end)
    if pos < size:
        out.append((pos, size))
    return out
