"""Top-L snapshots on a fixed time grid, from the event-driven rows the book emits."""

from __future__ import annotations

import re

import numpy as np

_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "min": 60_000_000_000}


def parse_duration(text: str) -> int:
    """``'100ms'`` -> 100_000_000 (nanoseconds). Units: ns, us, ms, s, min."""
    match = re.fullmatch(r"\s*(\d+)\s*(ns|us|ms|s|min)\s*", str(text))
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"duration {text!r}: expected a positive number with a unit, e.g. 100ms, 1s, 5min")
    return int(match.group(1)) * _UNITS_NS[match.group(2)]


def grid_rows(row_ts: np.ndarray, breaks_ts: np.ndarray, breaks_rows_before: np.ndarray,
              step_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample event-driven book rows on the grid ``k * step_ns`` (the row in force at each time).

    ``row_ts`` are the non-decreasing times of the event-driven rows. The book broke
    (gap, rejected update) at times ``breaks_ts``, each after ``breaks_rows_before`` rows had
    been emitted; it stays invalid until the next row. Returns the grid times and, for each,
    the index of the row in force, or -1 where the book was invalid or not yet built. The
    grid spans the first row to the last.
    """
    if len(row_ts) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    first = -(-int(row_ts[0]) // step_ns) * step_ns
    grid = np.arange(first, int(row_ts[-1]) + 1, step_ns, dtype=np.int64)
    source = np.searchsorted(row_ts, grid, side="right") - 1
    # The first break after each row (there is at most one before the book resyncs).
    broken_at = np.full(len(row_ts), np.iinfo(np.int64).max)
    after_row = np.asarray(breaks_rows_before, dtype=np.int64) - 1
    keep = after_row >= 0
    np.minimum.at(broken_at, after_row[keep], np.asarray(breaks_ts, dtype=np.int64)[keep])
    source[grid >= broken_at[source]] = -1
    return grid, source


def deltas_on_grid(deltas: np.ndarray, step_ns: int, levels: int = 10, *, chunk_events: int = 200_000):
    """The top-``levels`` book on the grid ``k * step_ns`` of exchange time, from DELTA_DTYPE rows.

    The book is rebuilt event by event (:meth:`genesis.book.L2Book.apply_groups`; an event that
    would cross the book is undone and skipped) in chunks of ``chunk_events`` events, keeping
    only the rows in force at the grid times, so memory grows with the grid, not with the
    events (an event-by-event top-10 of a day of a busy book would take gigabytes).

    Returns ``(ts, bid_px, bid_sz, ask_px, ask_sz)``: grid times (int64 ns) from the first
    grid time at or after the first event to the last event, and four (n, levels) arrays.
    """
    from genesis.book.l2 import L2Book
    from genesis.feeds.events import delta_events

    starts, counts, snapshot = delta_events(deltas)
    if not len(starts):
        raise ValueError("deltas_on_grid: no deltas")
    event_ts = deltas["exch_ts"][starts]
    first = -(-int(event_ts[0]) // step_ns) * step_ns
    grid = np.arange(first, int(event_ts[-1]) + 1, step_ns, dtype=np.int64)
    out = [np.full((len(grid), levels), np.nan) for _ in range(4)]
    book = L2Book(levels)
    carry, done = None, 0  # the last valid top before this chunk; grid points written so far
    for lo in range(0, len(starts), chunk_events):
        hi = min(lo + chunk_events, len(starts))
        r0, r1 = starts[lo], starts[hi - 1] + counts[hi - 1]
        *top, crossed = book.apply_groups(starts[lo:hi] - r0, counts[lo:hi], snapshot[lo:hi], deltas["side"][r0:r1],
                                          deltas["price"][r0:r1], deltas["qty"][r0:r1])
        keep = ~crossed
        ts, top = event_ts[lo:hi][keep], [a[keep] for a in top]
        # Grid points up to the chunk's last event take the last row at or before them.
        until = np.searchsorted(grid, ts[-1] if len(ts) else event_ts[hi - 1], side="right")
        points = grid[done:until]
        row = np.searchsorted(ts, points, side="right") - 1
        for dst, src, prev in zip(out, top, carry or [None] * 4):
            dst[done:until][row >= 0] = src[row[row >= 0]]
            if prev is not None:
                dst[done:until][row < 0] = prev
        if len(ts):
            carry = [a[-1].copy() for a in top]
        done = until
    return grid, *out
