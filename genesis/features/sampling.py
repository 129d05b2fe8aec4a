"""Resampling the event-driven book rows: event time, a time grid, or volume/notional time.

Features and labels count windows and horizons in rows of the series they are given, so
the sampling chosen here sets what "100 rows" means: 100 book events, 100 grid steps, or
100 bars of traded volume.

Every sampled row is a row that was in force at its time (never a later one), and its
``updates`` is the sum over the rows it covers since the previous sampled row, so
message-rate features count every update once.
"""

from __future__ import annotations

import re

import numba as nb
import numpy as np

from genesis.book.sampling import grid_rows, parse_duration
from genesis.features.engine import Snapshots, Trades

_BAD_EVERY = "expected 'event', a duration such as 100ms, 'volume:<qty>' or 'notional:<quote>'"
_DURATION = re.compile(r"\d+(ns|us|ms|s|min)")
_BARS = re.compile(r"(volume|notional):([0-9.eE+-]+)")
# Volume bars count multiples of V with this relative slack, so that decimal quantities
# cross where decimal arithmetic says (10 trades of 0.1 make a bar of 1).
REL_SLACK = 1e-12
# A grid this long (8 GB of times alone) is a typo of the step, not a plan.
_MAX_GRID = 1_000_000_000


def sample(snapshots, trades, every: str) -> Snapshots:
    """Resample ``snapshots`` (and the trades' clock) to ``every``:

    - ``"event"``: every row, unchanged.
    - a duration (``"100ms"``, ``"1s"``, ``"1min"``; units ns, us, ms, s, min): one row per grid
      time ``k * step`` from the first row's time (rounded up to the grid) to the last row's;
      the row in force then (the last with ``ts <= grid time``), with ``ts`` set to the grid time.
    - ``"volume:V"`` / ``"notional:N"``: a row each time the cumulative traded quantity
      (base units) / notional (sum of price * qty) of ``trades`` crosses a multiple of V / N:
      the row in force right after the crossing trade (the first row with ``ts >=`` its
      time), keeping that row's ``ts``. Several crossings on one row give one row; crossing
      trades later than the last row give none.

    ``updates`` of a sampled row is the sum over the rows it covers (those after the previous
    sampled row, up to and including its own). See :func:`sample_index` for the source rows.
    """
    snapshots = Snapshots.coerce(snapshots)
    if str(every).strip() == "event":
        return snapshots
    rows, ts = sample_index(snapshots, trades, every)
    s = snapshots
    return Snapshots(ts, s.bid_px[rows], s.bid_sz[rows], s.ask_px[rows], s.ask_sz[rows],
                     _covered_sums(s.updates, rows))


def sample_index(snapshots, trades, every: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, ts)`` of :func:`sample`: for each sampled row, the index of the snapshot row it
    takes (int64, increasing for the grid's distinct times, never after ``ts``) and its time."""
    snapshots = Snapshots.coerce(snapshots)
    text = str(every).strip()
    if text == "event":
        rows = np.arange(len(snapshots), dtype=np.int64)
        return rows, snapshots.ts.copy()
    if _DURATION.fullmatch(text):
        try:
            step = parse_duration(text)
        except ValueError:
            raise ValueError(f"every={every!r}: a zero duration; {_BAD_EVERY}") from None
        if len(snapshots) and (int(snapshots.ts[-1]) - int(snapshots.ts[0])) // step > _MAX_GRID:
            raise ValueError(f"every={every!r}: over {_MAX_GRID:,} grid rows for this span; use a longer step")
        empty = np.empty(0, np.int64)
        grid, rows = grid_rows(snapshots.ts, empty, empty, step)
        return rows.astype(np.int64), grid
    match = _BARS.fullmatch(text)
    if match:
        try:
            size = float(match.group(2))
        except ValueError:
            size = np.nan
        if not (np.isfinite(size) and size > 0):
            raise ValueError(f"every={every!r}: the bar size must be a positive number; {_BAD_EVERY}")
        trades = Trades.coerce(trades)
        amount = trades.qty if match.group(1) == "volume" else trades.price * trades.qty
        if np.any(amount < 0):
            raise ValueError(f"every={every!r}: trades with a negative {match.group(1)} "
                             f"(trade {int(np.flatnonzero(amount < 0)[0])}); quantities must be >= 0")
        crossing = _crossings(amount, size)
        rows = np.unique(np.searchsorted(snapshots.ts, trades.ts[crossing], side="left"))
        rows = rows[rows < len(snapshots)].astype(np.int64)
        return rows, snapshots.ts[rows]
    raise ValueError(f"every={every!r}: {_BAD_EVERY}")


@nb.njit(cache=True)
def _crossings(amount, size):
    """Indices of the trades at which the running total of ``amount`` crosses a multiple of
    ``size`` (NaN amounts count as 0). The total is summed with Neumaier's compensation."""
    n = amount.shape[0]
    hits = np.empty(n, np.int64)
    m = 0
    total = comp = 0.0
    bars = 0.0
    for k in range(n):
        x = amount[k]
        if x != x:
            continue
        s = total + x
        if abs(total) >= abs(x):
            comp += (total - s) + x
        else:
            comp += (x - s) + total
        total = s
        now = np.floor((total + comp) / size * (1.0 + REL_SLACK))
        if now > bars:
            bars = now
            hits[m] = k
            m += 1
    return hits[:m]


@nb.njit(cache=True)
def _covered_sums(values, rows):
    """``out[k] = values[rows[k-1]+1 .. rows[k]].sum()`` (from row 0 for k = 0); a row
    repeated (no new row since the previous sample) covers nothing."""
    out = np.zeros(rows.shape[0])
    done = 0  # rows below this are already counted
    for k in range(rows.shape[0]):
        s = 0.0
        for i in range(done, rows[k] + 1):
            s += values[i]
        out[k] = s
        done = max(done, rows[k] + 1)
    return out
