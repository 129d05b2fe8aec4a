"""Price features: mid, weighted mid, microprice, spread, book VWAP and market-order impact."""

from __future__ import annotations

import numpy as np

from genesis.features.context import jit, jit_inline
from genesis.features.registry import Feature, Param

LEVELS = Param("levels", 1, "book levels per side", "l")
NOTIONAL = Param("notional", 100_000, "order size in quote currency (e.g. USDT)", "n", integer=False)


@jit
def mid(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        out[i] = 0.5 * (c.bid_px[i, 0] + c.ask_px[i, 0])


@jit
def weighted_mid(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        bs, asz = c.bid_sz[i, 0], c.ask_sz[i, 0]
        out[i] = (c.bid_px[i, 0] * bs + c.ask_px[i, 0] * asz) / (bs + asz)


@jit_inline
def side_vwap(px, sz, i, levels):
    """(VWAP, total size) of the first ``levels`` levels of one side at row i; (NaN, 0) when empty."""
    value = size = 0.0
    for k in range(min(levels, px.shape[1])):
        if sz[i, k] == sz[i, k] and px[i, k] == px[i, k]:
            value += px[i, k] * sz[i, k]
            size += sz[i, k]
    if size > 0.0:
        return value / size, size
    return np.nan, 0.0


@jit
def microprice(c, i0, i1, st, p, out):
    levels = int(p[0])
    for i in range(i0, i1):
        bid, qb = side_vwap(c.bid_px, c.bid_sz, i, levels)
        ask, qa = side_vwap(c.ask_px, c.ask_sz, i, levels)
        out[i] = (bid * qa + ask * qb) / (qa + qb)


@jit
def spread(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        out[i] = c.ask_px[i, 0] - c.bid_px[i, 0]


@jit
def spread_bps(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        bid, ask = c.bid_px[i, 0], c.ask_px[i, 0]
        out[i] = (ask - bid) / (0.5 * (bid + ask)) * 1e4


@jit_inline
def fill_vwap(px, sz, i, notional):
    """Average price of filling ``notional`` (quote currency) against one side at row i,
    walking its levels from the best; NaN when the visible levels cannot fill it."""
    remaining = notional
    base = 0.0
    for k in range(px.shape[1]):
        p, q = px[i, k], sz[i, k]
        if not (p == p and q == q) or q <= 0.0:
            break
        level = p * q
        if level >= remaining:
            base += remaining / p
            return notional / base
        base += q
        remaining -= level
    return np.nan


@jit
def vwap_bid(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        out[i] = fill_vwap(c.bid_px, c.bid_sz, i, p[0])


@jit
def vwap_ask(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        out[i] = fill_vwap(c.ask_px, c.ask_sz, i, p[0])


@jit
def impact_buy_bps(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        m = 0.5 * (c.bid_px[i, 0] + c.ask_px[i, 0])
        out[i] = (fill_vwap(c.ask_px, c.ask_sz, i, p[0]) - m) / m * 1e4


@jit
def impact_sell_bps(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        m = 0.5 * (c.bid_px[i, 0] + c.ask_px[i, 0])
        out[i] = (m - fill_vwap(c.bid_px, c.bid_sz, i, p[0])) / m * 1e4



def _levels(p) -> int:
    return int(p["levels"])


FEATURES = (
    Feature("mid", "prices", "price", "(best bid + best ask) / 2; NaN when a side is empty.", mid),
    Feature("weighted_mid", "prices", "price",
            "Best prices weighted by their own sizes: (b1*qb1 + a1*qa1) / (qb1 + qa1).", weighted_mid),
    Feature("microprice", "prices", "price",
            "Imbalance-weighted price over `levels` levels: (VWAPb*Qa + VWAPa*Qb) / (Qa + Qb), Q the "
            "cumulative sizes; at levels=1 the classic L1 microprice (b1*qa1 + a1*qb1) / (qa1 + qb1).",
            microprice, (LEVELS,), levels=_levels),
    Feature("spread", "prices", "price", "Best ask - best bid.", spread),
    Feature("spread_bps", "prices", "bps", "(best ask - best bid) / mid * 1e4.", spread_bps),
    Feature("vwap_bid", "prices", "price",
            "Average price of selling `notional` (quote currency) into the bids, walking the visible "
            "levels; NaN when they cannot fill it.", vwap_bid, (NOTIONAL,)),
    Feature("vwap_ask", "prices", "price",
            "Average price of buying `notional` (quote currency) from the asks, walking the visible "
            "levels; NaN when they cannot fill it.", vwap_ask, (NOTIONAL,)),
    Feature("impact_buy_bps", "prices", "bps",
            "Price impact of a market buy of `notional`: (VWAP ask - mid) / mid * 1e4.", impact_buy_bps, (NOTIONAL,)),
    Feature("impact_sell_bps", "prices", "bps",
            "Price impact of a market sell of `notional`: (mid - VWAP bid) / mid * 1e4.", impact_sell_bps, (NOTIONAL,)),
)


@jit_inline
def dispatch(local, c, i0, i1, st, p, out):
    if local == 0:
        mid(c, i0, i1, st, p, out)
    elif local == 1:
        weighted_mid(c, i0, i1, st, p, out)
    elif local == 2:
        microprice(c, i0, i1, st, p, out)
    elif local == 3:
        spread(c, i0, i1, st, p, out)
    elif local == 4:
        spread_bps(c, i0, i1, st, p, out)
    elif local == 5:
        vwap_bid(c, i0, i1, st, p, out)
    elif local == 6:
        vwap_ask(c, i0, i1, st, p, out)
    elif local == 7:
        impact_buy_bps(c, i0, i1, st, p, out)
    elif local == 8:
        impact_sell_bps(c, i0, i1, st, p, out)
