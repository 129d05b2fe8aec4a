"""Trade features: traded volume by side, trade rate and VWAP, spreads paid by takers,
VPIN, Kyle's lambda and Amihud illiquidity.

The trades of row i are those with ``ts[i-1] < trade_ts <= ts[i]``; each carries its final
sign (the given aggressor side, else Lee-Ready against the quote in force, ``mid_before``).
Windows are in rows: ``window=w`` at row i covers rows ``max(0, i-w+1) .. i``.

Windowed sums keep the last w rows' values in a ring in the state, with running sums.
Sums of fractional values are compensated (the rounding error of each add rides along),
so a burst leaving the window leaves no residue that a ratio of small sums would magnify;
sums of whole numbers (counts, nanoseconds) are exact as they are. Either way the sums
are recomputed from the ring each time it wraps, so nothing drifts beyond w rows. Where a
ratio must be NaN over an empty window (no volume, no trades, no notional) it is the
exact count of contributing rows that decides, not a float sum being 0.
"""

from __future__ import annotations

import math

import numpy as np

from genesis.features.context import jit, jit_inline
from genesis.features.registry import Feature, Param

WINDOW = Param("window", 1, "rows in the window", "w")
WINDOW100 = Param("window", 100, "rows in the window", "w")
DELAY = Param("delay", 10, "rows between the trades and the mid they are measured against", "d")
BUCKET_NOTIONAL = Param("bucket_notional", 1_000_000, "notional per volume bucket (quote currency)", "n",
                        integer=False, minimum=1e-9)
BUCKETS = Param("buckets", 50, "completed buckets VPIN averages over", "b")
SIGMA_HALFLIFE = Param("sigma_halflife", 100, "half-life (rows) of the EWMA standard deviation of mid changes", "h")

SQRT2 = math.sqrt(2.0)


# -- ring of the last w rows, k values per row, with running sums -------------------------
# Layout in st: [position, k sums, k compensations, w rows of k values]. Values 0..kc-1 are
# fractional (compensated sums), values kc..k-1 whole numbers (plain sums, exact).

def ring_size(window: float, k: int) -> int:
    return 1 + 2 * k + k * int(window)


@jit_inline
def _add(st, k, q, value):
    """Sum q += value, compensated: TwoSum's exact rounding error goes to the compensation."""
    s = st[1 + q]
    t = s + value
    back = t - s
    st[1 + k + q] += (s - (t - back)) + (value - back)
    st[1 + q] = t


@jit_inline
def ring_start(st, k, kc):
    """Start a row: the sums drop the row that leaves the window (the oldest slot, zeros
    while the ring is filling); returns the offset of the slot for the new row's values."""
    off = 1 + 2 * k + int(st[0]) * k
    for q in range(kc):
        _add(st, k, q, -st[off + q])
    for q in range(kc, k):
        st[1 + q] -= st[off + q]
    return off


@jit_inline
def ring_put(st, k, off, q, value):
    """Value q of the new row (a fractional one)."""
    st[off + q] = value
    _add(st, k, q, value)


@jit_inline
def ring_put_whole(st, off, q, value):
    """Value q of the new row (a whole number)."""
    st[off + q] = value
    st[1 + q] += value


@jit_inline
def ring_sum(st, k, q):
    """The window's sum of value q."""
    return st[1 + q] + st[1 + k + q]


@jit_inline
def ring_whole(st, q):
    """The window's sum of value q (a whole-number one: no compensation)."""
    return st[1 + q]


@jit_inline
def ring_end(st, w, k):
    """Finish a row; when the ring wraps, recompute the sums from it."""
    pos = int(st[0]) + 1
    if pos == w:
        pos = 0
        for q in range(k):
            st[1 + q] = 0.0
            st[1 + k + q] = 0.0
            for r in range(w):
                _add(st, k, q, st[1 + 2 * k + r * k + q])
    st[0] = pos


# -- windowed volume and counts -----------------------------------------------------------

@jit_inline
def _window_sum(values, i0, i1, st, w, out):
    """out[i] = sum of values over the window ending at row i."""
    if w == 1:  # the row itself (the default): no ring needed
        for i in range(i0, i1):
            out[i] = values[i]
        return
    for i in range(i0, i1):
        off = ring_start(st, 1, 1)
        ring_put(st, 1, off, 0, values[i])
        out[i] = ring_sum(st, 1, 0)
        ring_end(st, w, 1)


@jit
def trade_volume(c, i0, i1, st, p, out):
    _window_sum(c.volume, i0, i1, st, int(p[0]), out)


@jit
def buy_volume(c, i0, i1, st, p, out):
    _window_sum(c.buy_volume, i0, i1, st, int(p[0]), out)


@jit
def sell_volume(c, i0, i1, st, p, out):
    _window_sum(c.sell_volume, i0, i1, st, int(p[0]), out)


@jit
def trade_count(c, i0, i1, st, p, out):
    _window_sum(c.n_trades, i0, i1, st, int(p[0]), out)


@jit
def signed_volume(c, i0, i1, st, p, out):
    w = int(p[0])
    for i in range(i0, i1):
        x = c.buy_volume[i] - c.sell_volume[i]
        if w == 1:
            out[i] = x
        else:
            off = ring_start(st, 1, 1)
            ring_put(st, 1, off, 0, x)
            out[i] = ring_sum(st, 1, 0)
            ring_end(st, w, 1)


@jit
def trade_imbalance(c, i0, i1, st, p, out):
    # values: buy - sell, buy + sell | 1 if the row has signed volume
    w = int(p[0])
    for i in range(i0, i1):
        off = ring_start(st, 3, 2)
        b, s = c.buy_volume[i], c.sell_volume[i]
        ring_put(st, 3, off, 0, b - s)
        ring_put(st, 3, off, 1, b + s)
        ring_put_whole(st, off, 2, 1.0 if b + s > 0.0 else 0.0)
        out[i] = ring_sum(st, 3, 0) / ring_sum(st, 3, 1) if ring_whole(st, 2) > 0.0 else np.nan
        ring_end(st, w, 3)


# After trade_intensity's ring: the previous row's ts split into two float64 halves that
# hold it exactly (one float64 cannot hold every int64), and whether a row was seen.
TS_HI, TS_LO, TS_SEEN = 0, 1, 2


@jit
def trade_intensity(c, i0, i1, st, p, out):
    # values (whole numbers): trades, ns since the previous row (0 at the first row). Their
    # sum is exact below 2**53 ns (104 days) and the gaps sum to ts[i] - ts[i-w].
    w = int(p[0])
    tail = 1 + 2 * 2 + 2 * w  # ring_size(w, 2)
    for i in range(i0, i1):
        ts = c.ts[i]
        gap = 0.0
        if st[tail + TS_SEEN] > 0.0:
            gap = float(ts - ((np.int64(st[tail + TS_HI]) << 32) + np.int64(st[tail + TS_LO])))
        st[tail + TS_HI] = float(ts >> 32)
        st[tail + TS_LO] = float(ts & 0xFFFFFFFF)
        st[tail + TS_SEEN] = 1.0
        off = ring_start(st, 2, 0)
        ring_put_whole(st, off, 0, c.n_trades[i])
        ring_put_whole(st, off, 1, gap)
        seconds = ring_whole(st, 1) / 1e9
        out[i] = ring_whole(st, 0) / seconds if seconds > 0.0 else np.nan
        ring_end(st, w, 2)


@jit
def trade_vwap(c, i0, i1, st, p, out):
    # values: notional, volume | 1 if the row has volume
    w = int(p[0])
    for i in range(i0, i1):
        off = ring_start(st, 3, 2)
        v = c.volume[i]
        ring_put(st, 3, off, 0, c.notional[i])
        ring_put(st, 3, off, 1, v)
        ring_put_whole(st, off, 2, 1.0 if v > 0.0 else 0.0)
        out[i] = ring_sum(st, 3, 0) / ring_sum(st, 3, 1) if ring_whole(st, 2) > 0.0 else np.nan
        ring_end(st, w, 3)


@jit
def lee_ready_share(c, i0, i1, st, p, out):
    # values (whole numbers): trades signed by Lee-Ready, trades
    w = int(p[0])
    for i in range(i0, i1):
        off = ring_start(st, 2, 0)
        ring_put_whole(st, off, 0, c.n_inferred[i])
        ring_put_whole(st, off, 1, c.n_trades[i])
        trades = ring_whole(st, 1)
        out[i] = ring_whole(st, 0) / trades if trades > 0.0 else np.nan
        ring_end(st, w, 2)


# -- spreads paid by takers ---------------------------------------------------------------

@jit
def effective_spread_bps(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        mb = c.mid_before[i]
        num = den = 0.0
        if mb == mb:
            for t in range(c.trade_lo[i], c.trade_hi[i]):
                sign = c.trade_sign[t]
                if sign != 0.0:
                    q = c.trade_qty[t]
                    num += q * (2.0 * sign * (c.trade_px[t] - mb) / mb * 1e4)
                    den += q
        out[i] = num / den if den > 0.0 else np.nan


@jit
def realized_spread_bps(c, i0, i1, st, p, out):
    # A delay line of `delay` rows in st: [position, then per row (W, A, S, mid_before)]
    # with, over the row's usable trades, W = sum q, S = sum q*sign and
    # A = sum q*sign*(px - mid_before). Then sum q*sign*(px - m) = A + (mid_before - m) * S,
    # both terms free of the cancellation a raw sum of q*sign*px would suffer.
    d = int(p[0])
    for i in range(i0, i1):
        off = 1 + 4 * int(st[0])
        w_, a, s, mb = st[off], st[off + 1], st[off + 2], st[off + 3]
        m = c.mid[i]
        if w_ > 0.0 and m == m:
            out[i] = 2.0 * (a + (mb - m) * s) / mb * 1e4 / w_
        else:
            out[i] = np.nan
        mb = c.mid_before[i]
        w_ = a = s = 0.0
        if mb == mb:
            for t in range(c.trade_lo[i], c.trade_hi[i]):
                sign = c.trade_sign[t]
                if sign != 0.0:
                    q = c.trade_qty[t]
                    w_ += q
                    s += q * sign
                    a += q * sign * (c.trade_px[t] - mb)
        st[off], st[off + 1], st[off + 2], st[off + 3] = w_, a, s, mb
        st[0] = (int(st[0]) + 1) % d


# -- VPIN ---------------------------------------------------------------------------------
# State: EWMA variance of dm, the open bucket's notional and buy notional, completed
# buckets, then a ring of the last `buckets` imbalances with its position and sum.
VP_VAR, VP_FILLED, VP_BUY, VP_DONE, VP_POS, VP_SUM, VP_RING = 0, 1, 2, 3, 4, 5, 6


@jit
def vpin(c, i0, i1, st, p, out):
    size, n_b = p[0], int(p[1])
    alpha = 1.0 - 0.5 ** (1.0 / p[2])
    for i in range(i0, i1):
        dm = c.mid[i] - c.mid_before[i]
        if dm != dm:
            dm = 0.0
        sigma = math.sqrt(st[VP_VAR])
        # bulk-volume classification: the bar's buy fraction from its standardised mid change
        f = 0.5 * (1.0 + math.erf(dm / sigma / SQRT2)) if sigma > 0.0 else 0.5
        st[VP_VAR] = (1.0 - alpha) * st[VP_VAR] + alpha * dm * dm
        remaining = c.notional[i]
        while remaining > 0.0:  # a large bar may complete several buckets
            space = size - st[VP_FILLED]
            if remaining < space:
                st[VP_FILLED] += remaining
                st[VP_BUY] += f * remaining
                break
            # the bar fills the open bucket: |B - S| = |2B - size|
            imbalance = abs(2.0 * (st[VP_BUY] + f * space) - size)
            remaining -= space
            st[VP_FILLED] = 0.0
            st[VP_BUY] = 0.0
            st[VP_DONE] += 1.0
            pos = int(st[VP_POS])
            st[VP_SUM] += imbalance - st[VP_RING + pos]
            st[VP_RING + pos] = imbalance
            pos += 1
            if pos == n_b:
                pos = 0
                total = 0.0
                for r in range(n_b):
                    total += st[VP_RING + r]
                st[VP_SUM] = total
            st[VP_POS] = pos
        out[i] = st[VP_SUM] / (n_b * size) if st[VP_DONE] >= n_b else np.nan


# -- price impact ----------------------------------------------------------------------------

@jit
def kyle_lambda(c, i0, i1, st, p, out):
    # values over the rows where dm is defined: x, y, xx, xy | 1, 1 if x != 0
    w = int(p[0])
    for i in range(i0, i1):
        off = ring_start(st, 6, 4)
        y = c.mid[i] - c.mid_before[i]
        valid = y == y  # dm defined: both mids present
        x = c.buy_volume[i] - c.sell_volume[i] if valid else 0.0
        if not valid:
            y = 0.0
        ring_put(st, 6, off, 0, x)
        ring_put(st, 6, off, 1, y)
        ring_put(st, 6, off, 2, x * x)
        ring_put(st, 6, off, 3, x * y)
        ring_put_whole(st, off, 4, 1.0 if valid else 0.0)
        ring_put_whole(st, off, 5, 1.0 if x != 0.0 else 0.0)
        n = ring_whole(st, 4)
        out[i] = np.nan
        # an all-zero x (no trades) is caught by the exact count, not by a float variance
        if n >= 2.0 and ring_whole(st, 5) > 0.0:
            sx, sy, sxx, sxy = ring_sum(st, 6, 0), ring_sum(st, 6, 1), ring_sum(st, 6, 2), ring_sum(st, 6, 3)
            den = n * sxx - sx * sx
            if den > 1e-12 * n * sxx:
                out[i] = (n * sxy - sx * sy) / den
        ring_end(st, w, 6)


@jit
def amihud(c, i0, i1, st, p, out):
    # values: |log return| (0 where undefined), notional | 1 if the row has notional
    w = int(p[0])
    for i in range(i0, i1):
        off = ring_start(st, 3, 2)
        r = abs(math.log(c.mid[i] / c.mid_before[i]))
        notional = c.notional[i]
        ring_put(st, 3, off, 0, r if r == r else 0.0)
        ring_put(st, 3, off, 1, notional)
        ring_put_whole(st, off, 2, 1.0 if notional > 0.0 else 0.0)
        out[i] = ring_sum(st, 3, 0) / ring_sum(st, 3, 1) * 1e6 if ring_whole(st, 2) > 0.0 else np.nan
        ring_end(st, w, 3)


# -- registry -----------------------------------------------------------------------------

def _ring(k: int):
    return lambda p: ring_size(p["window"], k)


def _window(p) -> int:
    return int(p["window"])


def _window_and_previous(p) -> int:
    return int(p["window"]) + 1


FEATURES = (
    Feature("trade_volume", "trades", "qty", "Traded base quantity over the window (0 without trades).",
            trade_volume, (WINDOW,), state=_ring(1), lookback=_window),
    Feature("buy_volume", "trades", "qty",
            "Buyer-initiated base quantity over the window (by the trade's sign: given, else Lee-Ready; "
            "trades Lee-Ready cannot sign count in neither side).",
            buy_volume, (WINDOW,), state=_ring(1), lookback=_window),
    Feature("sell_volume", "trades", "qty",
            "Seller-initiated base quantity over the window (signed as for buy_volume).",
            sell_volume, (WINDOW,), state=_ring(1), lookback=_window),
    Feature("trade_count", "trades", "trades", "Number of trades over the window.",
            trade_count, (WINDOW,), state=_ring(1), lookback=_window),
    Feature("signed_volume", "trades", "qty", "Buy - sell volume over the window.",
            signed_volume, (WINDOW,), state=_ring(1), lookback=_window),
    Feature("trade_imbalance", "trades", "ratio",
            "(buy - sell) / (buy + sell) volume over the window, in [-1, 1]; NaN when the window has "
            "no signed volume.",
            trade_imbalance, (WINDOW100,), state=_ring(3), lookback=_window),
    Feature("trade_intensity", "trades", "trades/s",
            "Trades over the window / elapsed seconds, elapsed = ts[i] - ts[i-w] (ts[i] - ts[0] while "
            "the window is not yet full); NaN when no time has elapsed.",
            trade_intensity, (WINDOW100,), state=lambda p: ring_size(p["window"], 2) + 3,
            lookback=_window_and_previous),
    Feature("trade_vwap", "trades", "price",
            "Volume-weighted average trade price over the window: sum px*qty / sum qty; NaN without volume.",
            trade_vwap, (WINDOW100,), state=_ring(3), lookback=_window),
    Feature("effective_spread_bps", "trades", "bps",
            "Effective spread paid by row i's trades: volume-weighted mean of "
            "2 * sign * (px - mid_before) / mid_before * 1e4 over its signed trades, mid_before the "
            "quote in force when they traded; NaN when none is signed, the quote was empty or "
            "the volume is 0.",
            effective_spread_bps, lookback=lambda p: 2),
    Feature("realized_spread_bps", "trades", "bps",
            "Realized spread of the trades of row i-delay, measured against the mid now: volume-weighted "
            "mean of 2 * sign * (px - mid[i]) / mid_before[i-delay] * 1e4 over their signed trades. Known "
            "at row i (no look-ahead), so it lags its trades by `delay` rows by construction. NaN when "
            "row i-delay has no usable trade (none signed, empty quote, zero volume) or mid[i] is NaN.",
            realized_spread_bps, (DELAY,), state=lambda p: 1 + 4 * int(p["delay"]),
            lookback=lambda p: int(p["delay"]) + 2),
    Feature("lee_ready_share", "trades", "ratio",
            "Share of the window's trades the feed gave no side for, so Lee-Ready signed them (or "
            "found nothing to tell: those count in neither volume), in [0, 1]; NaN without trades.",
            lee_ready_share, (WINDOW100,), state=_ring(2), lookback=_window),
    Feature("vpin", "trades", "ratio",
            "VPIN (Easley, Lopez de Prado and O'Hara 2012) with bulk-volume classification: each row is a "
            "bar of notional N and mid change dm, with buy fraction Phi(dm / sigma) (sigma the EWMA std "
            "of dm over the previous rows, half-life `sigma_halflife`; 0.5 while sigma is 0). Bars fill "
            "buckets of `bucket_notional` in order (split across boundaries); VPIN = sum of |buy - sell| "
            "over the last `buckets` completed buckets / (buckets * bucket_notional), in [0, 1]. NaN until "
            "`buckets` buckets are complete: how many rows that takes depends on the traded notional, so "
            "the lookback (10 half-lives, for sigma) does not guarantee the buckets are filled.",
            vpin, (BUCKET_NOTIONAL, BUCKETS, SIGMA_HALFLIFE),
            state=lambda p: VP_RING + int(p["buckets"]), lookback=lambda p: 10 * int(p["sigma_halflife"])),
    Feature("kyle_lambda", "trades", "price/qty",
            "Kyle's lambda: OLS slope (with intercept) of the mid change dm = mid[i] - mid[i-1] on the "
            "signed volume buy - sell, over the window's rows where dm is defined; NaN with fewer than "
            "2 such rows or no variance of the signed volume (relative 1e-12).",
            kyle_lambda, (WINDOW100,), state=_ring(6), lookback=_window_and_previous),
    Feature("amihud", "trades", "1/(1M quote)",
            "Amihud illiquidity: sum of |log(mid[i] / mid[i-1])| over the window (undefined terms skipped) "
            "/ sum of notional over the window * 1e6. A ratio of sums, so rows without trades do not "
            "blow it up; NaN when the window has no notional.",
            amihud, (WINDOW100,), state=_ring(3), lookback=_window_and_previous),
)


@jit_inline
def dispatch(local, c, i0, i1, st, p, out):
    if local == 0:
        trade_volume(c, i0, i1, st, p, out)
    elif local == 1:
        buy_volume(c, i0, i1, st, p, out)
    elif local == 2:
        sell_volume(c, i0, i1, st, p, out)
    elif local == 3:
        trade_count(c, i0, i1, st, p, out)
    elif local == 4:
        signed_volume(c, i0, i1, st, p, out)
    elif local == 5:
        trade_imbalance(c, i0, i1, st, p, out)
    elif local == 6:
        trade_intensity(c, i0, i1, st, p, out)
    elif local == 7:
        trade_vwap(c, i0, i1, st, p, out)
    elif local == 8:
        effective_spread_bps(c, i0, i1, st, p, out)
    elif local == 9:
        realized_spread_bps(c, i0, i1, st, p, out)
    elif local == 10:
        lee_ready_share(c, i0, i1, st, p, out)
    elif local == 11:
        vpin(c, i0, i1, st, p, out)
    elif local == 12:
        kyle_lambda(c, i0, i1, st, p, out)
    elif local == 13:
        amihud(c, i0, i1, st, p, out)
