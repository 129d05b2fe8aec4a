"""Dynamics features: log returns, realised volatility and range, EWMA baselines of spread,
depth and volume with z-scores against them, and message rates.

Windows, horizons and half-lives are in rows. A window of w rows at row i covers rows
``max(0, i-w+1)..i``. Every kernel is O(1) amortised per row: rings, window sums and
elapsed times from :mod:`genesis.features.windows` (sums recomputed exactly from the ring
each time it wraps, so floating error cannot build up), block-wise prefix/suffix maxima for
the rolling max/min, and one shared EWMA update.

EWMA (all six EWMA features): ``alpha = 1 - 0.5 ** (1 / halflife)``; the first valid x sets
``m = x, v = 0``, then ``m_i = m_{i-1} + alpha (x_i - m_{i-1})`` and
``v_i = (1 - alpha) (v_{i-1} + alpha (x_i - m_{i-1})**2)``. A NaN x leaves m, v unchanged.
``*_ewma`` is m after the row's update (NaN on a NaN x); ``*_z`` is
``(x_i - m_{i-1}) / sqrt(v_{i-1})``, the row against the baseline before it, so a shock shows
in full (NaN on a NaN x, before two valid values, and while ``v_{i-1} == 0``, which here
means ``sqrt(v_{i-1}) <= 1e-9 |m_{i-1}|``: below that v is the inputs' rounding noise).
"""

from __future__ import annotations

import math

import numpy as np

from genesis.features.context import jit, jit_inline
from genesis.features.registry import Feature, Param
from genesis.features.windows import (elapsed_size, ring_advance, ring_full, ring_size, ring_slot, sums_size,
                                      window_elapsed, window_ratio, window_sum)

HORIZON = Param("horizon", 1, "rows between the two mids", "h")
WINDOW = Param("window", 100, "rows in the window", "w")
HALFLIFE = Param("halflife", 100, "EWMA half-life in rows", "hl", integer=False)
LEVELS = Param("levels", 10, "book levels per side", "l")


# -- returns, volatility, range -----------------------------------------------------------

@jit
def log_return(c, i0, i1, st, p, out):
    # st: a ring of the last h mids
    h = int(p[0])
    for i in range(i0, i1):
        off = ring_slot(st, 0, h, 1)
        m = c.mid[i]
        out[i] = np.log(m / st[off]) if ring_full(st, 0, h) else np.nan
        st[off] = m
        ring_advance(st, 0, h)


RV_PREV, RV_SEEN, RV_SUMS = 0, 1, 2


@jit
def realized_vol(c, i0, i1, st, p, out):
    # st: previous mid, rows seen (0/1), then the window sum of squared returns (NaN where
    # undefined: skipped). A window of unchanged mids sums to exactly 0 (no rounding
    # residue for sqrt to turn from 1e-24 into 1e-12).
    w = int(p[0])
    for i in range(i0, i1):
        m = c.mid[i]
        r = np.log(m / st[RV_PREV]) if st[RV_SEEN] != 0.0 else np.nan
        total = window_sum(st, RV_SUMS, w, r * r)
        st[RV_PREV], st[RV_SEEN] = m, 1.0
        # Removing values can leave a sum of squares a rounding error below 0.
        out[i] = math.sqrt(max(total, 0.0)) if total == total else np.nan


# Own bookkeeping (not a windows.py ring): four rings sharing one position, kept in locals.
RR_POS, RR_FULL, RR_LAST, RR_HI, RR_LO, RR_RINGS = 0, 1, 2, 3, 4, 5


@jit
def realized_range_bps(c, i0, i1, st, p, out):
    # Rolling max and min by blocks of w rows (van Herk / Gil-Werman): at ring slot pos the
    # window is the previous block's slots pos+1..w-1 plus this block's slots 0..pos, so its
    # max is max(the previous block's suffix max from pos+1, this block's running max). The
    # suffix maxima are computed once per block, when the ring wraps: O(1) amortised, exact,
    # and without the data-dependent loop of a monotone deque (measured ~40 ns/row against
    # ~6 on real mids). NaN mids enter as -inf (for the max) and +inf (for the min).
    # st: position, wrapped (0/1), last valid mid, this block's running max and min, then four rings:
    # mids for the max, mids for the min, the previous block's suffix maxima and minima.
    w = int(p[0])
    a = RR_RINGS
    ring_hi, ring_lo = st[a:a + w], st[a + w:a + 2 * w]
    suffix_hi, suffix_lo = st[a + 2 * w:a + 3 * w], st[a + 3 * w:a + 4 * w]
    # Kept in locals through the rows (stored back at the end): no store/load chain per row.
    pos, full = int(st[RR_POS]), st[RR_FULL] != 0.0
    last, run_hi, run_lo = st[RR_LAST], st[RR_HI], st[RR_LO]
    for i in range(i0, i1):
        m = c.mid[i]
        up, down = (m, m) if m == m else (-np.inf, np.inf)
        if pos == 0:
            run_hi, run_lo = up, down
        else:
            run_hi, run_lo = max(run_hi, up), min(run_lo, down)
        hi, lo = run_hi, run_lo
        if full and pos + 1 < w:
            hi, lo = max(hi, suffix_hi[pos + 1]), min(lo, suffix_lo[pos + 1])
        ring_hi[pos], ring_lo[pos] = up, down
        if m == m:
            last = m  # the latest valid mid: in the window whenever the window has any
        pos += 1
        if pos == w:
            pos, full = 0, True
            hi_, lo_ = -np.inf, np.inf
            for k in range(w - 1, -1, -1):
                hi_, lo_ = max(hi_, ring_hi[k]), min(lo_, ring_lo[k])
                suffix_hi[k], suffix_lo[k] = hi_, lo_
        out[i] = (hi - lo) / last * 1e4 if hi != -np.inf else np.nan
    st[RR_POS], st[RR_FULL] = pos, 1.0 if full else 0.0
    st[RR_LAST], st[RR_HI], st[RR_LO] = last, run_hi, run_lo


# -- EWMA baselines -----------------------------------------------------------------------

EW_STARTED, EW_MEAN, EW_VAR = 0, 1, 2
EW_SIZE = 3
# A baseline whose standard deviation is below this fraction of its mean counts as constant
# (v = 0, z NaN): that much is input rounding, not variation. A spread of one tick computed
# from prices near 6e4 carries ~1e-11 of representation noise; over a calm stretch v decays
# to that noise and z-scores of 1e11 (noise / noise) would follow, different in every
# implementation.
Z_FLOOR = 1e-9


@jit_inline
def ewma_alpha(halflife):
    return 1.0 - 0.5 ** (1.0 / halflife)


@jit_inline
def ewma_update(st, x, alpha):
    """Feed x to the EWMA held in ``st[0:3]`` (started, m, v). Returns (m after the update,
    z of x against m and v before it); (NaN, NaN) and no change for a NaN x."""
    if x != x:
        return np.nan, np.nan
    if st[EW_STARTED] == 0.0:
        st[EW_STARTED], st[EW_MEAN], st[EW_VAR] = 1.0, x, 0.0
        return x, np.nan
    m, v = st[EW_MEAN], st[EW_VAR]
    d = x - m
    z = d / math.sqrt(v) if v > (Z_FLOOR * m) ** 2 else np.nan
    m += alpha * d
    st[EW_MEAN], st[EW_VAR] = m, (1.0 - alpha) * (v + alpha * d * d)
    return m, z


@jit_inline
def row_depth(c, i, levels):
    """Bid + ask size over the first ``levels`` levels (missing levels count 0); NaN on an empty row."""
    if c.bid_px[i, 0] != c.bid_px[i, 0] and c.ask_px[i, 0] != c.ask_px[i, 0]:
        return np.nan
    total = 0.0
    for k in range(min(levels, c.bid_px.shape[1])):
        if c.bid_px[i, k] == c.bid_px[i, k] and c.bid_sz[i, k] == c.bid_sz[i, k]:
            total += c.bid_sz[i, k]
        if c.ask_px[i, k] == c.ask_px[i, k] and c.ask_sz[i, k] == c.ask_sz[i, k]:
            total += c.ask_sz[i, k]
    return total


@jit
def spread_ewma(c, i0, i1, st, p, out):
    alpha = ewma_alpha(p[0])
    for i in range(i0, i1):
        out[i] = ewma_update(st, c.ask_px[i, 0] - c.bid_px[i, 0], alpha)[0]


@jit
def spread_z(c, i0, i1, st, p, out):
    alpha = ewma_alpha(p[0])
    for i in range(i0, i1):
        out[i] = ewma_update(st, c.ask_px[i, 0] - c.bid_px[i, 0], alpha)[1]


@jit
def depth_ewma(c, i0, i1, st, p, out):
    levels, alpha = int(p[0]), ewma_alpha(p[1])
    for i in range(i0, i1):
        out[i] = ewma_update(st, row_depth(c, i, levels), alpha)[0]


@jit
def depth_z(c, i0, i1, st, p, out):
    levels, alpha = int(p[0]), ewma_alpha(p[1])
    for i in range(i0, i1):
        out[i] = ewma_update(st, row_depth(c, i, levels), alpha)[1]


@jit
def volume_ewma(c, i0, i1, st, p, out):
    alpha = ewma_alpha(p[0])
    for i in range(i0, i1):
        out[i] = ewma_update(st, c.volume[i], alpha)[0]


@jit
def volume_z(c, i0, i1, st, p, out):
    alpha = ewma_alpha(p[0])
    for i in range(i0, i1):
        out[i] = ewma_update(st, c.volume[i], alpha)[1]


# -- message rates ------------------------------------------------------------------------

@jit
def message_rate(c, i0, i1, st, p, out):
    # st: the window sum of updates, then the window's elapsed time
    w = int(p[0])
    at_elapsed = sums_size(w, 1)
    for i in range(i0, i1):
        total = window_sum(st, 0, w, c.updates[i], True)
        elapsed = window_elapsed(st, at_elapsed, w, c.ts[i]) / 1e9
        out[i] = total / elapsed if elapsed != 0.0 else np.nan


@jit
def order_to_trade(c, i0, i1, st, p, out):
    w = int(p[0])
    for i in range(i0, i1):
        out[i] = window_ratio(st, 0, w, c.updates[i], c.n_trades[i])


# -- registry -----------------------------------------------------------------------------

def _h(p) -> int:
    return int(p["horizon"])


def _w(p) -> int:
    return int(p["window"])


def _hl10(p) -> int:
    return int(math.ceil(10 * p["halflife"]))


def _levels(p) -> int:
    return int(p["levels"])


def _ewma_state(p) -> int:
    return EW_SIZE

FEATURES = (
    Feature("log_return", "dynamics", "log",
            "log(mid_i / mid_{i-h}); NaN for the first h rows and when either mid is NaN.",
            log_return, (HORIZON,), state=lambda p: ring_size(_h(p)), lookback=_h),
    Feature("realized_vol", "dynamics", "log",
            "sqrt(sum of squared one-row log returns of the mid over the window); undefined returns "
            "(empty rows, row 0) are skipped; NaN when the window has none.",
            realized_vol, (WINDOW,), state=lambda p: RV_SUMS + sums_size(_w(p)), lookback=_w),
    Feature("realized_range_bps", "dynamics", "bps",
            "(max mid - min mid) / last mid * 1e4 over the window, NaN mids skipped (the last mid is "
            "the window's latest valid one); NaN when the window has no valid mid.",
            realized_range_bps, (WINDOW,), state=lambda p: RR_RINGS + 4 * _w(p), lookback=_w),
    Feature("spread_ewma", "dynamics", "price",
            "EWMA of the spread (best ask - best bid); NaN on a row without both sides.",
            spread_ewma, (HALFLIFE,), state=_ewma_state, lookback=_hl10),
    Feature("spread_z", "dynamics", "z",
            "(spread - EWMA before the row) / sqrt(EW variance before the row); NaN on a row without "
            "both sides, before two spreads and while the variance is 0.",
            spread_z, (HALFLIFE,), state=_ewma_state, lookback=_hl10),
    Feature("depth_ewma", "dynamics", "qty",
            "EWMA of the total depth (bid + ask size over `levels` levels, missing levels 0); "
            "NaN on an empty row.",
            depth_ewma, (LEVELS, HALFLIFE), state=_ewma_state, levels=_levels, lookback=_hl10),
    Feature("depth_z", "dynamics", "z",
            "(depth - EWMA before the row) / sqrt(EW variance before the row), depth as in "
            "depth_ewma; NaN on an empty row, before two values and while the variance is 0.",
            depth_z, (LEVELS, HALFLIFE), state=_ewma_state, levels=_levels, lookback=_hl10),
    Feature("volume_ewma", "dynamics", "qty",
            "EWMA of the row's traded volume (0 for a row without trades).",
            volume_ewma, (HALFLIFE,), state=_ewma_state, lookback=_hl10),
    Feature("volume_z", "dynamics", "z",
            "(volume - EWMA before the row) / sqrt(EW variance before the row); NaN on the first "
            "row and while the variance is 0 (e.g. no trades yet).",
            volume_z, (HALFLIFE,), state=_ewma_state, lookback=_hl10),
    Feature("message_rate", "dynamics", "updates/s",
            "Book level updates per second over the window: sum of updates / (ts_i - ts_{i-w}), "
            "from ts_0 while row i-w does not exist; NaN when no time has elapsed.",
            message_rate, (WINDOW,), state=lambda p: sums_size(_w(p)) + elapsed_size(_w(p)), lookback=_w),
    Feature("order_to_trade", "dynamics", "ratio",
            "Book level updates / trades over the window; NaN when the window has no trade.",
            order_to_trade, (WINDOW,), state=lambda p: sums_size(_w(p), 2), lookback=_w),
)


@jit_inline
def dispatch(local, c, i0, i1, st, p, out):
    if local == 0:
        log_return(c, i0, i1, st, p, out)
    elif local == 1:
        realized_vol(c, i0, i1, st, p, out)
    elif local == 2:
        realized_range_bps(c, i0, i1, st, p, out)
    elif local == 3:
        spread_ewma(c, i0, i1, st, p, out)
    elif local == 4:
        spread_z(c, i0, i1, st, p, out)
    elif local == 5:
        depth_ewma(c, i0, i1, st, p, out)
    elif local == 6:
        depth_z(c, i0, i1, st, p, out)
    elif local == 7:
        volume_ewma(c, i0, i1, st, p, out)
    elif local == 8:
        volume_z(c, i0, i1, st, p, out)
    elif local == 9:
        message_rate(c, i0, i1, st, p, out)
    elif local == 10:
        order_to_trade(c, i0, i1, st, p, out)
