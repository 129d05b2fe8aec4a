"""Trade features: traded volume by side, trade rate and VWAP, spreads paid by takers,
VPIN, Kyle's lambda and Amihud illiquidity.

The trades of row i are those with ``ts[i-1] < trade_ts <= ts[i]``; each carries its final
sign (the given aggressor side, else Lee-Ready against the quote in force, ``mid_before``).
Windows are in rows: ``window=w`` at row i covers rows ``max(0, i-w+1) .. i``.

Windowed sums are :mod:`genesis.features.windows`' (compensated, recomputed from their
ring on each wrap). Where a ratio must be NaN over an empty window (no volume, no trades,
no notional) it is the exact count of non-zero rows that decides, not a float sum being 0.
"""

from __future__ import annotations

import math

import numpy as np

from genesis.features.context import jit, jit_inline
from genesis.features.registry import Feature, Param
from genesis.features.windows import (elapsed_size, ring_advance, ring_full, ring_size, ring_slot, sums_begin,
                                      sums_count, sums_end, sums_nonzero, sums_put, sums_size, sums_total,
                                      window_elapsed, window_ratio, window_sum)

WINDOW = Param("window", 1, "rows in the window", "w")
WINDOW100 = Param("window", 100, "rows in the window", "w")
DELAY = Param("delay", 10, "rows between the trades and the mid they are measured against", "d")
BUCKET_NOTIONAL = Param("bucket_notional", 1_000_000, "notional per volume bucket (quote currency)", "n",
                        integer=False, minimum=1e-9)
BUCKETS = Param("buckets", 50, "completed buckets VPIN averages over", "b")
SIGMA_HALFLIFE = Param("sigma_halflife", 100, "half-life (rows) of the EWMA standard deviation of mid changes", "h")

SQRT2 = math.sqrt(2.0)


# -- windowed volume and counts -----------------------------------------------------------

@jit_inline
def _volume_sum(values, i0, i1, st, w, out, whole=False):
    """out[i] = sum of values over the window ending at row i."""
    for i in range(i0, i1):
        out[i] = window_sum(st, 0, w, values[i], whole)


@jit
def trade_volume(c, i0, i1, st, p, out):
    _volume_sum(c.volume, i0, i1, st, int(p[0]), out)


@jit
def buy_volume(c, i0, i1, st, p, out):
    _volume_sum(c.buy_volume, i0, i1, st, int(p[0]), out)


@jit
def sell_volume(c, i0, i1, st, p, out):
    _volume_sum(c.sell_volume, i0, i1, st, int(p[0]), out)


@jit
def trade_count(c, i0, i1, st, p, out):
    _volume_sum(c.n_trades, i0, i1, st, int(p[0]), out, True)


@jit
def signed_volume(c, i0, i1, st, p, out):
    w = int(p[0])
    for i in range(i0, i1):
        out[i] = window_sum(st, 0, w, c.buy_volume[i] - c.sell_volume[i])


@jit
def trade_imbalance(c, i0, i1, st, p, out):
    # sums: buy + sell (counted: NaN while no row of the window has signed volume), buy - sell
    w = int(p[0])
    for i in range(i0, i1):
        off = sums_begin(st, 0, w, 2)
        b, s = c.buy_volume[i], c.sell_volume[i]
        sums_put(st, 0, off, 0, b + s)
        sums_put(st, 0, off, 1, b - s)
        out[i] = sums_total(st, 0, 1) / sums_total(st, 0, 0) if sums_nonzero(st, 0) > 0.0 else np.nan
        sums_end(st, 0, w, 2)


@jit
def trade_intensity(c, i0, i1, st, p, out):
    # the window's trades, then its elapsed time from the row before it (ts[0] at first)
    w = int(p[0])
    at_elapsed = sums_size(w, 1)
    for i in range(i0, i1):
        trades = window_sum(st, 0, w, c.n_trades[i], True)
        seconds = window_elapsed(st, at_elapsed, w, c.ts[i]) / 1e9
        out[i] = trades / seconds if seconds > 0.0 else np.nan


@jit
def trade_vwap(c, i0, i1, st, p, out):
    # sums: volume (counted: NaN while the window has none), notional
    w = int(p[0])
    for i in range(i0, i1):
        off = sums_begin(st, 0, w, 2)
        sums_put(st, 0, off, 0, c.volume[i])
        sums_put(st, 0, off, 1, c.notional[i])
        out[i] = sums_total(st, 0, 1) / sums_total(st, 0, 0) if sums_nonzero(st, 0) > 0.0 else np.nan
        sums_end(st, 0, w, 2)


@jit
def lee_ready_share(c, i0, i1, st, p, out):
    w = int(p[0])
    for i in range(i0, i1):
        out[i] = window_ratio(st, 0, w, c.n_inferred[i], c.n_trades[i])


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
    # A ring of the last `delay` rows, each (W, A, S, mid_before) with, over the row's
    # usable trades, W = sum q, S = sum q*sign and A = sum q*sign*(px - mid_before). Then
    # sum q*sign*(px - m) = A + (mid_before - m) * S, both terms free of the cancellation a
    # raw sum of q*sign*px would suffer.
    d = int(p[0])
    for i in range(i0, i1):
        off = ring_slot(st, 0, d, 4)
        w_, a, s, mb = st[off], st[off + 1], st[off + 2], st[off + 3]
        m = c.mid[i]
        if ring_full(st, 0, d) and w_ > 0.0 and m == m:
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
        ring_advance(st, 0, d)


# -- VPIN ---------------------------------------------------------------------------------
# State: EWMA variance of dm, the open bucket's notional and buy notional, then the sum of
# the last `buckets` completed buckets' imbalances (window sums: one value per bucket).
VP_VAR, VP_FILLED, VP_BUY, VP_SUMS = 0, 1, 2, 3


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
            off = sums_begin(st, VP_SUMS, n_b, 1)
            sums_put(st, VP_SUMS, off, 0, imbalance)
            sums_end(st, VP_SUMS, n_b, 1)
        # the ring has wrapped once `buckets` buckets are complete
        out[i] = sums_total(st, VP_SUMS, 0) / (n_b * size) if ring_full(st, VP_SUMS, n_b) else np.nan


# -- price impact ----------------------------------------------------------------------------

@jit
def kyle_lambda(c, i0, i1, st, p, out):
    # sums x (counted), y, xx, xy over the rows where dm is defined (NaN elsewhere: skipped)
    w = int(p[0])
    for i in range(i0, i1):
        off = sums_begin(st, 0, w, 4)
        y = c.mid[i] - c.mid_before[i]  # NaN unless both mids are present
        x = c.buy_volume[i] - c.sell_volume[i] if y == y else np.nan
        sums_put(st, 0, off, 0, x)
        sums_put(st, 0, off, 1, y)
        sums_put(st, 0, off, 2, x * x)
        sums_put(st, 0, off, 3, x * y)
        n = sums_count(st, 0, w)
        out[i] = np.nan
        # an all-zero x (no trades) is caught by the exact count, not by a float variance
        if n >= 2.0 and sums_nonzero(st, 0) > 0.0:
            sx, sy, sxx, sxy = sums_total(st, 0, 0), sums_total(st, 0, 1), sums_total(st, 0, 2), sums_total(st, 0, 3)
            den = n * sxx - sx * sx
            if den > 1e-12 * n * sxx:
                out[i] = (n * sxy - sx * sy) / den
        sums_end(st, 0, w, 4)


@jit
def amihud(c, i0, i1, st, p, out):
    # sums: notional (counted: NaN while the window has none), |log return| (NaN where
    # undefined: skipped)
    w = int(p[0])
    for i in range(i0, i1):
        off = sums_begin(st, 0, w, 2)
        sums_put(st, 0, off, 0, c.notional[i])
        sums_put(st, 0, off, 1, abs(math.log(c.mid[i] / c.mid_before[i])))
        out[i] = sums_total(st, 0, 1) / sums_total(st, 0, 0) * 1e6 if sums_nonzero(st, 0) > 0.0 else np.nan
        sums_end(st, 0, w, 2)


# -- registry -----------------------------------------------------------------------------

def _sums(k: int):
    return lambda p: sums_size(p["window"], k)


def _window(p) -> int:
    return int(p["window"])


def _window_and_previous(p) -> int:
    return int(p["window"]) + 1


FEATURES = (
    Feature("trade_volume", "trades", "qty", "Traded base quantity over the window (0 without trades).",
            trade_volume, (WINDOW,), state=_sums(1), lookback=_window),
    Feature("buy_volume", "trades", "qty",
            "Buyer-initiated base quantity over the window (by the trade's sign: given, else Lee-Ready; "
            "trades Lee-Ready cannot sign count in neither side).",
            buy_volume, (WINDOW,), state=_sums(1), lookback=_window),
    Feature("sell_volume", "trades", "qty",
            "Seller-initiated base quantity over the window (signed as for buy_volume).",
            sell_volume, (WINDOW,), state=_sums(1), lookback=_window),
    Feature("trade_count", "trades", "trades", "Number of trades over the window.",
            trade_count, (WINDOW,), state=_sums(1), lookback=_window),
    Feature("signed_volume", "trades", "qty", "Buy - sell volume over the window.",
            signed_volume, (WINDOW,), state=_sums(1), lookback=_window),
    Feature("trade_imbalance", "trades", "ratio",
            "(buy - sell) / (buy + sell) volume over the window, in [-1, 1]; NaN when the window has "
            "no signed volume.",
            trade_imbalance, (WINDOW100,), state=_sums(2), lookback=_window),
    Feature("trade_intensity", "trades", "trades/s",
            "Trades over the window / elapsed seconds, elapsed = ts[i] - ts[i-w] (ts[i] - ts[0] while "
            "the window is not yet full); NaN when no time has elapsed.",
            trade_intensity, (WINDOW100,), state=lambda p: sums_size(p["window"]) + elapsed_size(p["window"]),
            lookback=_window_and_previous),
    Feature("trade_vwap", "trades", "price",
            "Volume-weighted average trade price over the window: sum px*qty / sum qty; NaN without volume.",
            trade_vwap, (WINDOW100,), state=_sums(2), lookback=_window),
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
            realized_spread_bps, (DELAY,), state=lambda p: ring_size(p["delay"], 4),
            lookback=lambda p: int(p["delay"]) + 2),
    Feature("lee_ready_share", "trades", "ratio",
            "Share of the window's trades the feed gave no side for, so Lee-Ready signed them (or "
            "found nothing to tell: those count in neither volume), in [0, 1]; NaN without trades.",
            lee_ready_share, (WINDOW100,), state=_sums(2), lookback=_window),
    Feature("vpin", "trades", "ratio",
            "VPIN (Easley, Lopez de Prado and O'Hara 2012) with bulk-volume classification: each row is a "
            "bar of notional N and mid change dm, with buy fraction Phi(dm / sigma) (sigma the EWMA std "
            "of dm over the previous rows, half-life `sigma_halflife`; 0.5 while sigma is 0). Bars fill "
            "buckets of `bucket_notional` in order (split across boundaries); VPIN = sum of |buy - sell| "
            "over the last `buckets` completed buckets / (buckets * bucket_notional), in [0, 1]. NaN until "
            "`buckets` buckets are complete: how many rows that takes depends on the traded notional, so "
            "the lookback (10 half-lives, for sigma) does not guarantee the buckets are filled.",
            vpin, (BUCKET_NOTIONAL, BUCKETS, SIGMA_HALFLIFE),
            state=lambda p: VP_SUMS + sums_size(p["buckets"]), lookback=lambda p: 10 * int(p["sigma_halflife"])),
    Feature("kyle_lambda", "trades", "price/qty",
            "Kyle's lambda: OLS slope (with intercept) of the mid change dm = mid[i] - mid[i-1] on the "
            "signed volume buy - sell, over the window's rows where dm is defined; NaN with fewer than "
            "2 such rows or no variance of the signed volume (relative 1e-12).",
            kyle_lambda, (WINDOW100,), state=_sums(4), lookback=_window_and_previous),
    Feature("amihud", "trades", "1/(1M quote)",
            "Amihud illiquidity: sum of |log(mid[i] / mid[i-1])| over the window (undefined terms skipped) "
            "/ sum of notional over the window * 1e6. A ratio of sums, so rows without trades do not "
            "blow it up; NaN when the window has no notional.",
            amihud, (WINDOW100,), state=_sums(2), lookback=_window_and_previous),
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
