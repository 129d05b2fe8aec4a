"""Windows over past rows for the feature kernels: rings of past values, window sums,
elapsed time over a window, and int64 timestamps kept exactly in float64 state.

A kernel may read only the current row, so all history lives in its float64 state ``st``.
These helpers are the one way the feature families keep it. Each structure occupies
``st[at:at + size]``, where ``at`` is an offset the kernel chooses and ``size`` comes from
the matching ``*_size`` function (plain arithmetic, callable from Python in a Feature's
``state=`` and from kernels alike). All are O(1) per row, amortised; none allocates.

Windows are in rows: a window of w rows at row i covers rows ``max(0, i-w+1) .. i``.

**Ring** of the last n rows, k values per row (a delay line): ``ring_size(n, k)`` slots::

    st[at]                     slot of the current row (0 .. n-1), plus n once the ring
                               has wrapped (the slot then holds row i-n)
    st[at + 1 + slot*k + q]    value q of the row kept in that slot (0 before any)

Per row: ``off = ring_slot(st, at, n, k)``; if ``ring_full(st, at, n)``, ``st[off + q]``
is row i-n's value q; store this row's values there; ``ring_advance(st, at, n)``.

**Window sums** of k values per row over the last w rows, sharing one ring:
``sums_size(w, k)`` slots::

    st[at]                     slot, as in a ring
    st[at + 1], st[at + 2]     how many of value 0 in the window are NaN, and non-zero
    st[at + 3 + 2q], ... + 1   value q's running sum and its compensation
    st[at + 3 + 2k + slot*k + q]   the ring of the last w rows' values

NaN values are skipped: a sum is over the non-NaN values. Value 0 is the *counted* one:
``sums_count`` gives its number of non-NaN values in the window and ``sums_nonzero`` its
non-zero ones, exact, so "all NaN / nothing in the window" is decided by a count, never by
a float sum being 0 (put first the value that decides). The sums are compensated (TwoSum:
each add's exact rounding error goes to the compensation), so a burst of large values
leaving the window leaves no residue that a ratio of small sums would magnify; they are
recomputed from the ring each time it wraps (every w rows), so nothing drifts beyond w
rows; and the sum of value 0 is exactly 0 when none of its values is non-zero. Per row::

    off = sums_begin(st, at, w, k)     # the slot of this row (holding the row that leaves)
    sums_put(st, at, off, q, x_q)      # for q in 0..k-1 (whole=True: counts)
    ... sums_total(st, at, q), sums_count(st, at, w), sums_nonzero(st, at) ...
    sums_end(st, at, w, k)             # next slot; recompute on a wrap

``window_sum(st, at, w, x)`` does all of that for one value and returns the sum (NaN
when the window holds no non-NaN value); with w = 1 it returns x and keeps no state.

**Elapsed time** over a window: ``window_elapsed(st, at, w, ts)`` returns
``ts[i] - ts[max(0, i-w)]`` in int64 ns, exactly (0 at row 0). ``elapsed_size(w)`` slots:
a ring of the last w timestamps (2 values each), then ts[0].

**Timestamps** are int64 ns (~1.7e18), beyond float64's exact integers (2**53): a float64
state keeps one as two exact halves, ``hi = ts >> 32`` and ``lo = ts & (2**32 - 1)``
(``ts_put``/``ts_get``; TS_SIZE slots).

Measured choices (features engine, 1M rows): the per-row path has no data-dependent
branch (whether a value is NaN or 0 follows the data; a CPU cannot predict it) and stores
no "wrapped" flag per row (the ring position carries it, +n; slots not yet filled hold 0,
which drops out of every sum and count by itself); only value 0 is counted, not every
value; sums of whole numbers may skip the compensation (``whole=True``: same numbers);
and the recompute on a wrap is a call, not inlined, which keeps the kernels' loops small.
"""

from __future__ import annotations

import numpy as np

from genesis.features.context import jit, jit_inline

RING_HEADER = 1
# Window sums: the ring position, the NaN and non-zero counts of value 0, 2 slots per value.
SUMS_NAN, SUMS_NONZERO, SUMS_HEADER = 1, 2, 3
SUM_TOTAL, SUM_COMP, SUM_SLOTS = 0, 1, 2
TS_SIZE = 2


# -- sizes (Python and kernels) -----------------------------------------------------------

@jit_inline
def ring_size(rows, k=1):
    """State slots of a ring of ``rows`` rows, k values each."""
    return RING_HEADER + int(rows) * k


@jit_inline
def sums_size(window, k=1):
    """State slots of k window sums over ``window`` rows."""
    return SUMS_HEADER + SUM_SLOTS * k + int(window) * k


@jit_inline
def elapsed_size(window):
    """State slots of :func:`window_elapsed` over ``window`` rows."""
    return ring_size(window, TS_SIZE) + TS_SIZE


# -- timestamps ---------------------------------------------------------------------------

@jit_inline
def ts_put(st, s, ts):
    """Store int64 ``ts`` exactly in ``st[s:s + 2]``."""
    st[s] = float(ts >> 32)
    st[s + 1] = float(ts & 0xFFFFFFFF)


@jit_inline
def ts_get(st, s):
    """The int64 stored by :func:`ts_put` at ``st[s]``."""
    return (np.int64(st[s]) << 32) + np.int64(st[s + 1])


# -- ring of past rows --------------------------------------------------------------------

@jit_inline
def _slot(st, at, n):
    step = st[at]
    return int(step - n if step >= n else step)


@jit_inline
def ring_full(st, at, n):
    """True once the ring of n rows has wrapped: the current slot holds row i-n."""
    return st[at] >= n


@jit_inline
def ring_slot(st, at, n, k):
    """Offset in ``st`` of the current row's slot (k values) in the ring of n rows at ``at``."""
    return at + RING_HEADER + _slot(st, at, n) * k


@jit_inline
def ring_advance(st, at, n):
    """Move the ring of n rows to its next slot; True when it just wrapped."""
    step = st[at] + 1.0
    step = n if step == 2 * n else step  # after the first wrap: n + slot
    st[at] = step
    return step == n


# -- window sums --------------------------------------------------------------------------

@jit_inline
def _two_sum(a, b):
    """a + b rounded, and the exact rounding error of that add (Knuth's TwoSum)."""
    t = a + b
    back = t - a
    return t, (a - (t - back)) + (b - back)


@jit_inline
def sums_begin(st, at, w, k):
    """Start a row: the offset of the slot for this row's k values (which holds the row
    leaving the window, or zeros while the ring fills)."""
    return at + SUMS_HEADER + SUM_SLOTS * k + _slot(st, at, w) * k


@jit_inline
def sums_put(st, at, off, q, value, whole=False):
    """Value q of this row (NaN: not part of the sum); it replaces in the sum the value q
    of the row leaving the window. ``whole=True`` (a constant) says the values are whole
    numbers (counts): their sums are exact below 2**53, so the compensation, which would
    stay 0, is skipped; same numbers, ~2.5 ns a row less."""
    old = st[off + q]
    st[off + q] = value
    x = value if value == value else 0.0  # selects, not branches
    y = old if old == old else 0.0
    s = at + SUMS_HEADER + SUM_SLOTS * q
    if whole:
        total, comp = st[s + SUM_TOTAL] + (x - y), 0.0
    else:
        # total + (x - y), compensated: both adds' exact rounding errors go to the compensation
        d, err_d = _two_sum(x, -y)
        total, err = _two_sum(st[s + SUM_TOTAL], d)
        comp = st[s + SUM_COMP] + (err_d + err)
    if q == 0:  # the counted value (q is a constant here: this test compiles away)
        st[at + SUMS_NAN] += (1.0 if value != value else 0.0) - (1.0 if old != old else 0.0)
        nonzero = st[at + SUMS_NONZERO] + ((1.0 if x != 0.0 else 0.0) - (1.0 if y != 0.0 else 0.0))
        st[at + SUMS_NONZERO] = nonzero
        if nonzero == 0.0:  # nothing left to sum: exactly 0, no rounding residue
            total = comp = 0.0
    st[s + SUM_TOTAL] = total
    st[s + SUM_COMP] = comp


@jit_inline
def sums_total(st, at, q):
    """Sum of value q's non-NaN values in the window (0 when there are none)."""
    s = at + SUMS_HEADER + SUM_SLOTS * q
    return st[s + SUM_TOTAL] + st[s + SUM_COMP]


@jit_inline
def sums_count(st, at, w):
    """Number of non-NaN values 0 in the window (exact; after this row's put)."""
    step = st[at]
    rows = w if step >= w else step + 1.0
    return rows - st[at + SUMS_NAN]


@jit_inline
def sums_nonzero(st, at):
    """Number of non-zero (and non-NaN) values 0 in the window (exact)."""
    return st[at + SUMS_NONZERO]


@jit
def _recompute(st, at, w, k):
    """The k sums from the ring, exactly (the counts are exact integers: they need no
    recomputing). Runs once every w rows, so it is a call, not inlined: kept out of the
    kernels, it keeps their per-row loops small."""
    ring = at + SUMS_HEADER + SUM_SLOTS * k
    for q in range(k):
        total = comp = 0.0
        for r in range(w):
            v = st[ring + r * k + q]
            total, err = _two_sum(total, v if v == v else 0.0)
            comp += err
        if q == 0 and st[at + SUMS_NONZERO] == 0.0:
            total = comp = 0.0
        s = at + SUMS_HEADER + SUM_SLOTS * q
        st[s + SUM_TOTAL] = total
        st[s + SUM_COMP] = comp


@jit_inline
def sums_end(st, at, w, k):
    """Finish a row: next slot; when the ring wraps, recompute the sums from it."""
    if ring_advance(st, at, w):
        _recompute(st, at, w, k)


@jit_inline
def window_sum(st, at, w, value, whole=False):
    """Push this row's value to the one window sum at ``st[at:]`` and return the sum of
    the non-NaN values among the last w rows' (NaN when there are none); ``whole`` as
    for :func:`sums_put`."""
    if w == 1:
        return value  # the row alone: nothing to keep
    off = sums_begin(st, at, w, 1)
    sums_put(st, at, off, 0, value, whole)
    total = sums_total(st, at, 0) if sums_count(st, at, w) > 0.0 else np.nan
    sums_end(st, at, w, 1)
    return total


# -- elapsed time -------------------------------------------------------------------------

@jit_inline
def window_elapsed(st, at, w, ts):
    """Push this row's int64 ``ts`` and return ``ts - ts[max(0, i-w)]`` in ns, exactly."""
    off = ring_slot(st, at, w, TS_SIZE)
    if ring_full(st, at, w):
        start = ts_get(st, off)  # row i-w
    else:
        first = at + RING_HEADER + TS_SIZE * w
        if st[at] == 0.0:  # row 0
            ts_put(st, first, ts)
        start = ts_get(st, first)
    ts_put(st, off, ts)
    ring_advance(st, at, w)
    return ts - start


@jit_inline
def window_ratio(st, at, w, numerator, denominator):
    """Sum of ``numerator`` / sum of ``denominator`` over the last ``w`` rows, both whole
    numbers (counts); NaN while the denominator's window sum is 0. ``sums_size(w, 2)`` slots."""
    off = sums_begin(st, at, w, 2)
    sums_put(st, at, off, 0, denominator, True)
    sums_put(st, at, off, 1, numerator, True)
    ratio = sums_total(st, at, 1) / sums_total(st, at, 0) if sums_nonzero(st, at) > 0.0 else np.nan
    sums_end(st, at, w, 2)
    return ratio
