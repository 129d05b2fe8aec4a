"""Stale quotes: the top of the book stops updating while trades keep printing.

The definition a market-data analyst uses: the displayed best bid and offer (prices *and*
sizes) do not change for longer than ``max_age_s`` of exchange time while at least
``min_trades`` trades print. On a live venue every trade at the touch changes the touch size,
so trades without a quote change mean the quote feed (or the book built from it) has
stopped reflecting the market: a lagging or dropped depth stream, a stuck gateway, a halted
quote publisher. Trades printing *through* the stale quote (a buy above the stale ask, a sell
below the stale bid) prove it wrong and raise the score.

An episode starts at the book row that set the current top and ends at the row that next
changes it; the alert is raised at that row (``at_ts``). Rows that change only deeper levels
do not end it. A feed that never recovers is not reported (the kernel contract has no
end-of-stream hook): the regime classifier and the engine's watermark see that case.
Evidence: ``price`` the stale best bid, ``size`` trades printed through the stale quote,
``level`` 0, ``n_events`` the trades printed meanwhile, ``metric`` the quote's age in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.surveillance.base import (KIND_CODES, SRC_NONE, SRC_ORDER, SRC_TRADE, Detector, emit, is_final,
                                       next_source, score_from_ratio)

STALE = KIND_CODES["stale_quotes"]


@dataclass(frozen=True)
class StaleParams:
    max_age_s: float = 2.0  # the top of the book unchanged for longer than this (exchange time) is stale
    min_trades: int = 5  # ... if at least this many trades printed meanwhile
    age_saturation: float = 10.0  # age / max_age_s at which the score reaches 100 (50 at 1)
    through_bonus: float = 30.0  # score added when trades printed through the stale quote


# si: top seen, top_ts, trades since, trades through, last book ts, last trade ts | sf: bid px, bid sz, ask px, ask sz
def _new_state(params: StaleParams):
    return np.zeros(6, np.int64), np.zeros(4, np.float64)


@nb.njit(cache=True)
def _same(a, b):
    return a == b or (a != a and b != b)


@nb.njit(cache=True)
def _report(p, si, sf, until, max_age, alerts, counts):
    """The quote held since si[1] until ``until``: an alert if it aged past max_age with enough trades."""
    age = until - si[1]
    if age > max_age and si[2] >= p[1]:
        score = score_from_ratio(age / max_age, 1.0, p[2])
        if si[3] > 0:
            score += p[3]
        emit(alerts, counts, STALE, 0, si[1], until, until, score, sf[0], float(si[3]), 0, age / 1e9, si[2])


@nb.njit(cache=True)
def stale_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                 o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    max_age = p[0] * 1e9
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src == SRC_ORDER:
            o += 1
            continue
        if src == SRC_TRADE:
            if si[0] == 1:
                si[2] += 1
                si[5] = trades[t]["exch_ts"]
                px = trades[t]["price"]
                if px > sf[2] or px < sf[0]:  # NaN sides compare False: not "through"
                    si[3] += 1
            t += 1
            continue
        ts = book_ts[b]
        bp, bs, ap, as_ = bid_px[b, 0], bid_sz[b, 0], ask_px[b, 0], ask_sz[b, 0]
        if si[0] == 1 and _same(bp, sf[0]) and _same(bs, sf[1]) and _same(ap, sf[2]) and _same(as_, sf[3]):
            si[4] = ts
            b += 1
            continue  # a row that changed only deeper levels
        if si[0] == 1:
            _report(p, si, sf, ts, max_age, alerts, counts)
        si[0] = 1
        si[1] = ts
        si[2] = 0
        si[3] = 0
        sf[0], sf[1], sf[2], sf[3] = bp, bs, ap, as_
        si[4] = ts
        b += 1
    if is_final(counts) and si[0] == 1:  # a quote still unchanged when the stream ends, aged to the last event
        _report(p, si, sf, max(si[4], si[5]), max_age, alerts, counts)
        si[0] = 0


DETECTOR = Detector(
    name="stale_quotes",
    kinds=("stale_quotes",),
    inputs=("trades", "book"),
    params=StaleParams(),
    new_state=_new_state,
    kernel=stale_kernel,
    metric="quote_age_s",
    evidence={"price": "stale_best_bid", "size": "trades_through_quote", "level": "level"},
    description="best bid/offer unchanged for longer than max_age_s while at least min_trades trades print",
)

__all__ = ["StaleParams", "DETECTOR", "stale_kernel"]
