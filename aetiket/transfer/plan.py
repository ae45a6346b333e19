"""Pure planning: how a file is cut into parts. No I/O."""

from __future__ import annotations

__all__ = ("ALIGN", "plan_slices")

#: Part boundaries fall on multiples of this (disk- and page-friendly).
ALIGN = 64 * 1024


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
