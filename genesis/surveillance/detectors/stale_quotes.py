"""Stale quotes: the top of the book stops updating while trades that should move it keep printing.

The definition a market-data analyst uses: the displayed best bid and offer (prices *and*
sizes) do not change for longer than ``max_age_s`` of exchange time while at least
``min_trades`` trades print *at or through* them. A trade at the displayed touch takes
displayed size, so it changes the touch; trades without a quote change mean the quote feed
(or the book built from it) has stopped reflecting the market: a lagging or dropped depth
stream, a stuck gateway, a halted quote publisher. Trades printing *through* the stale quote
(a buy above the stale ask, a sell below the stale bid) prove it wrong and raise the score.

Not every trade is evidence. A trade strictly inside the displayed spread executed against
liquidity that was never displayed (hidden or mid-point orders: ordinary on Nasdaq), and so
is an execution the order events mark hidden (``EV_EXECUTE_HIDDEN``, read where the data has
order events: LOBSTER type 5, at any price). Such *hidden* executions give the quote no
reason to change: they do not count towards ``min_trades``, and the score is scaled by the
share of the trades that were evidence (a quote standing while hidden orders trade is
normal, not stale). Trades at the very instant of the row that changes the quote are not
counted either: they are the change (ties are read orders < trades < book).

An episode starts at the book row that set the current top and ends at the row that next
changes it; the alert is raised at that row (``at_ts``), or, for a quote still unchanged when
the stream ends, at its last event. Rows that change only deeper levels do not end it. The
trades counted are those with ``start_ts < exch_ts < end_ts`` (``<= end_ts`` for a quote still
standing at the end of the stream: nothing changed it at its last instant).

Evidence: ``price`` the stale best bid, ``size`` trades through the stale quote, ``level`` 0,
``metric`` the quote's age in seconds, ``n_events`` every trade printed meanwhile; ``x0`` the
trades at or through the quote (the evidence), ``x1`` the hidden executions, ``x2`` the
stale best ask, ``x3`` the quantity traded at or through the quote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.feeds.events import EV_EXECUTE_HIDDEN
from genesis.surveillance.base import (KIND_CODES, SRC_NONE, SRC_ORDER, SRC_TRADE, Detector, emit, emit_extra,
                                       is_final, next_source, score_from_ratio)

STALE = KIND_CODES["stale_quotes"]
HIDDEN_RING = 64  # hidden executions of one instant remembered to recognise their trades


@dataclass(frozen=True)
class StaleParams:
    max_age_s: float = 2.0  # the top of the book unchanged for longer than this (exchange time) is stale
    min_trades: int = 5  # ... if at least this many trades printed at or through it meanwhile
    age_saturation: float = 10.0  # age / max_age_s at which the score reaches 100 (50 at 1)
    through_bonus: float = 30.0  # score added when trades printed through the stale quote


# si: top seen, top_ts, trades, through, last book ts, last trade ts, evidence trades, hidden,
#     pending ts, pending trades, pending through, pending evidence, pending hidden, hidden-ring ts, ring count
# sf: bid px, bid sz, ask px, ask sz, evidence volume, pending evidence volume, ring prices, ring quantities
I_SEEN, I_TOP_TS, I_N, I_THROUGH, I_LAST_BOOK, I_LAST_TRADE, I_VIS, I_HID = range(8)
I_PTS, I_PN, I_PTHROUGH, I_PVIS, I_PHID, I_RTS, I_RN = range(8, 15)
F_VOL, F_PVOL, F_RING = 4, 5, 6


def _new_state(params: StaleParams):
    si = np.zeros(15, np.int64)
    si[I_PTS] = -(2 ** 62)
    si[I_RTS] = -(2 ** 62)
    return si, np.zeros(F_RING + 2 * HIDDEN_RING, np.float64)


@nb.njit(cache=True)
def _same(a, b):
    return a == b or (a != a and b != b)


@nb.njit(cache=True)
def _commit(si, sf):
    """The pending trades (of an instant now passed) join the quote's counts."""
    si[I_N] += si[I_PN]
    si[I_THROUGH] += si[I_PTHROUGH]
    si[I_VIS] += si[I_PVIS]
    si[I_HID] += si[I_PHID]
    sf[F_VOL] += sf[F_PVOL]
    si[I_PN] = 0
    si[I_PTHROUGH] = 0
    si[I_PVIS] = 0
    si[I_PHID] = 0
    sf[F_PVOL] = 0.0


@nb.njit(cache=True)
def _report(p, si, sf, until, max_age, alerts, counts):
    """The quote held since si[1] until ``until``: an alert if it aged past max_age with enough evidence."""
    age = until - si[I_TOP_TS]
    vis = si[I_VIS]
    if age > max_age and vis >= p[1]:
        score = score_from_ratio(age / max_age, 1.0, p[2])
        if si[I_THROUGH] > 0:
            score += p[3]
        score *= vis / (vis + si[I_HID])  # hidden executions explain a quote standing still
        row = emit(alerts, counts, STALE, 0, si[I_TOP_TS], until, until, score, sf[0], float(si[I_THROUGH]), 0,
                   age / 1e9, si[I_N])
        emit_extra(alerts, row, -1, -1, float(vis), float(si[I_HID]), sf[2], sf[F_VOL])


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
            ev = orders[o]
            if ev["event"] == EV_EXECUTE_HIDDEN:  # remember it: its trade (same instant) is hidden
                if ev["exch_ts"] != si[I_RTS]:
                    si[I_RTS] = ev["exch_ts"]
                    si[I_RN] = 0
                if si[I_RN] < HIDDEN_RING:
                    sf[F_RING + si[I_RN]] = ev["price"]
                    sf[F_RING + HIDDEN_RING + si[I_RN]] = ev["qty"]
                    si[I_RN] += 1
            o += 1
            continue
        if src == SRC_TRADE:
            tr = trades[t]
            ts = tr["exch_ts"]
            si[I_LAST_TRADE] = ts
            if si[I_SEEN] == 1:
                if ts != si[I_PTS]:
                    _commit(si, sf)
                    si[I_PTS] = ts
                px = tr["price"]
                hidden = False
                if ts == si[I_RTS]:  # a hidden execution of this instant with this price and size?
                    for j in range(si[I_RN]):
                        if sf[F_RING + j] == px and sf[F_RING + HIDDEN_RING + j] == tr["qty"]:
                            sf[F_RING + HIDDEN_RING + j] = -1.0  # used
                            hidden = True
                            break
                if not hidden and px > sf[0] and px < sf[2]:  # strictly inside the spread: not displayed
                    hidden = True
                si[I_PN] += 1
                if hidden:
                    si[I_PHID] += 1
                else:
                    si[I_PVIS] += 1
                    sf[F_PVOL] += tr["qty"]
                    if px > sf[2] or px < sf[0]:  # NaN sides compare False: not "through"
                        si[I_PTHROUGH] += 1
            t += 1
            continue
        ts = book_ts[b]
        if ts != si[I_PTS]:
            _commit(si, sf)  # trades of an earlier instant
        bp, bs, ap, as_ = bid_px[b, 0], bid_sz[b, 0], ask_px[b, 0], ask_sz[b, 0]
        if si[I_SEEN] == 1 and _same(bp, sf[0]) and _same(bs, sf[1]) and _same(ap, sf[2]) and _same(as_, sf[3]):
            si[I_LAST_BOOK] = ts
            b += 1
            continue  # a row that changed only deeper levels
        if si[I_SEEN] == 1:
            _report(p, si, sf, ts, max_age, alerts, counts)
        # a new quote: trades pending at this instant belong to the change, not to it
        si[I_SEEN] = 1
        si[I_TOP_TS] = ts
        si[I_N] = 0
        si[I_THROUGH] = 0
        si[I_VIS] = 0
        si[I_HID] = 0
        sf[F_VOL] = 0.0
        si[I_PN] = 0
        si[I_PTHROUGH] = 0
        si[I_PVIS] = 0
        si[I_PHID] = 0
        sf[F_PVOL] = 0.0
        sf[0], sf[1], sf[2], sf[3] = bp, bs, ap, as_
        si[I_LAST_BOOK] = ts
        b += 1
    if is_final(counts) and si[I_SEEN] == 1:  # a quote still unchanged when the stream ends, aged to the last event
        _commit(si, sf)  # nothing changed it: trades at the last instant count too
        _report(p, si, sf, max(si[I_LAST_BOOK], si[I_LAST_TRADE]), max_age, alerts, counts)
        si[I_SEEN] = 0


DETECTOR = Detector(
    name="stale_quotes",
    kinds=("stale_quotes",),
    inputs=("trades", "book"),
    params=StaleParams(),
    new_state=_new_state,
    kernel=stale_kernel,
    metric="quote_age_s",
    evidence={"price": "stale_best_bid", "size": "trades_through_quote", "level": "level",
              "x0": "trades_at_or_through_quote", "x1": "hidden_executions", "x2": "stale_best_ask",
              "x3": "quantity_at_or_through_quote"},
    description="best bid/offer unchanged for longer than max_age_s while at least min_trades trades print at or "
                "through it (hidden executions, inside the spread or marked hidden, do not count and lower the score)",
    optional=("orders",),
)

__all__ = ["StaleParams", "DETECTOR", "stale_kernel"]
