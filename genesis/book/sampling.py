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
