"""Depth features: resting size and notional per side, cumulative depth imbalance, book slope.

A level is present when both its price and its size are set (not NaN); missing levels
(a book thinner than ``levels``) count as zero size. Every feature here is NaN on an
empty row (both best prices NaN: the book was invalid); on a one-sided book the empty
side has depth 0.
"""

from __future__ import annotations

import numpy as np

from genesis.features.context import jit, jit_inline
from genesis.features.registry import Feature, Param


LEVELS = Param("levels", 5, "book levels per side", "l")
SLOPE_LEVELS = Param("levels", 10, "book levels per side", "l")


@jit_inline
def row_empty(best_bid, best_ask):
    """The row had no valid book (both best prices NaN)."""
    return best_bid != best_bid and best_ask != best_ask


@jit_inline
def side_depth(px, sz, i, levels):
    """Total size of the present levels among the first ``levels`` of one side of row i (0 if none)."""
    total = 0.0
    for k in range(min(levels, px.shape[1])):
        q = sz[i, k]
        total += q if px[i, k] == px[i, k] and q == q else 0.0  # (a select: faster than a branch)
    return total


@jit_inline
def side_notional(px, sz, i, levels):
    """Sum of price * size over the present levels among the first ``levels`` of row i (0 if none)."""
    total = 0.0
    for k in range(min(levels, px.shape[1])):
        x, q = px[i, k], sz[i, k]
        total += x * q if x == x and q == q else 0.0
    return total


@jit_inline
def side_slope(px, sz, i, levels, m):
    """OLS slope (with intercept) of cumulative size against distance from the mid ``m`` in bps,
    over the present levels among the first ``levels``; NaN with fewer than two of them, no
    mid, or all at the same distance.

    Fits against the distance in price units and converts at the end (x_bps = x * 1e4 / m, so
    the slope per bps is the slope per price unit * m / 1e4). Two passes (means, then centred
    sums) for accuracy; distances are taken relative to the first present level's, so equal
    distances give a variance of exactly 0 rather than rounding noise.
    """
    if m != m:
        return np.nan
    top = min(levels, px.shape[1])
    n = 0
    x0 = sx = sy = cum = 0.0
    for k in range(top):
        if px[i, k] == px[i, k] and sz[i, k] == sz[i, k]:
            cum += sz[i, k]
            x = abs(px[i, k] - m)
            if n == 0:
                x0 = x
            n += 1
            sx += x - x0
            sy += cum
    if n < 2:
        return np.nan
    mx = sx / n
    my = sy / n
    sxx = sxy = cum = 0.0
    for k in range(top):
        if px[i, k] == px[i, k] and sz[i, k] == sz[i, k]:
            cum += sz[i, k]
            dx = abs(px[i, k] - m) - x0 - mx
            sxx += dx * dx
            sxy += dx * (cum - my)
    if sxx == 0.0:
        return np.nan
    return sxy / sxx * m / 1e4


@jit
def bid_depth(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        if row_empty(c.bid_px[i, 0], c.ask_px[i, 0]):
            out[i] = np.nan
        else:
            out[i] = side_depth(c.bid_px, c.bid_sz, i, levels)


@jit
def ask_depth(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        if row_empty(c.bid_px[i, 0], c.ask_px[i, 0]):
            out[i] = np.nan
        else:
            out[i] = side_depth(c.ask_px, c.ask_sz, i, levels)


@jit
def depth_imbalance(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        if row_empty(c.bid_px[i, 0], c.ask_px[i, 0]):
            out[i] = np.nan
            continue
        # Both sides in one loop: two independent sums run in parallel on the CPU (each
        # side still adds its levels in order, as side_depth does).
        qb = qa = 0.0
        for k in range(min(levels, c.bid_px.shape[1])):
            q = c.bid_sz[i, k]
            qb += q if c.bid_px[i, k] == c.bid_px[i, k] and q == q else 0.0
            q = c.ask_sz[i, k]
            qa += q if c.ask_px[i, k] == c.ask_px[i, k] and q == q else 0.0
        out[i] = (qb - qa) / (qb + qa)  # 0 / 0 = NaN when no level is present


@jit
def bid_notional(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        if row_empty(c.bid_px[i, 0], c.ask_px[i, 0]):
            out[i] = np.nan
        else:
            out[i] = side_notional(c.bid_px, c.bid_sz, i, levels)


@jit
def ask_notional(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        if row_empty(c.bid_px[i, 0], c.ask_px[i, 0]):
            out[i] = np.nan
        else:
            out[i] = side_notional(c.ask_px, c.ask_sz, i, levels)


@jit
def book_slope_bid(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        out[i] = side_slope(c.bid_px, c.bid_sz, i, levels, c.mid[i])


@jit
def book_slope_ask(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        out[i] = side_slope(c.ask_px, c.ask_sz, i, levels, c.mid[i])


def _levels(p) -> int:
    return int(p["levels"])


_SLOPE_DOC = ("OLS slope (with intercept) of the cumulative {side} size (levels 1..k) against the level's "
              "distance from the mid in bps, |px - mid| / mid * 1e4, over the {side} levels present among "
              "the first `levels`: how fast depth builds away from the touch (steep = deep book). NaN with "
              "fewer than 2 levels, no mid (one-sided or empty book) or all levels at one distance.")

FEATURES = (
    Feature("bid_depth", "depth", "qty",
            "Sum of bid sizes over the first `levels` levels (missing levels count 0); NaN on an empty row.",
            bid_depth, (LEVELS,), levels=_levels),
    Feature("ask_depth", "depth", "qty",
            "Sum of ask sizes over the first `levels` levels (missing levels count 0); NaN on an empty row.",
            ask_depth, (LEVELS,), levels=_levels),
    Feature("depth_imbalance", "depth", "ratio",
            "Cumulative depth imbalance in [-1, 1]: (Qb - Qa) / (Qb + Qa), Q the sizes summed over the "
            "first `levels` levels; +-1 on a one-sided book, NaN when both sides are empty.",
            depth_imbalance, (LEVELS,), levels=_levels),
    Feature("bid_notional", "depth", "quote",
            "Sum of price * size over the first `levels` bid levels (quote currency); NaN on an empty row.",
            bid_notional, (LEVELS,), levels=_levels),
    Feature("ask_notional", "depth", "quote",
            "Sum of price * size over the first `levels` ask levels (quote currency); NaN on an empty row.",
            ask_notional, (LEVELS,), levels=_levels),
    Feature("book_slope_bid", "depth", "qty/bps", _SLOPE_DOC.format(side="bid"),
            book_slope_bid, (SLOPE_LEVELS,), levels=_levels),
    Feature("book_slope_ask", "depth", "qty/bps", _SLOPE_DOC.format(side="ask"),
            book_slope_ask, (SLOPE_LEVELS,), levels=_levels),
)


@jit_inline
def dispatch(local, c, i0, i1, st, p, out):
    if local == 0:
        bid_depth(c, i0, i1, st, p, out)
    elif local == 1:
        ask_depth(c, i0, i1, st, p, out)
    elif local == 2:
        depth_imbalance(c, i0, i1, st, p, out)
    elif local == 3:
        bid_notional(c, i0, i1, st, p, out)
    elif local == 4:
        ask_notional(c, i0, i1, st, p, out)
    elif local == 5:
        book_slope_bid(c, i0, i1, st, p, out)
    elif local == 6:
        book_slope_ask(c, i0, i1, st, p, out)
