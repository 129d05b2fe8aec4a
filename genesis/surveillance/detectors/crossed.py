"""Crossed and locked books: the best bid at or above the best ask.

On a continuous venue a crossed book (bid > ask) cannot persist: it means a broken feed, a
bad book rebuild, or a venue halt. A locked book (bid == ask) is legal but rare and short.
An episode runs from the first book row in that condition to the row that ends it; the
alert is raised at that row, or at the end of the stream for an episode still open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.surveillance.base import KIND_CODES, SRC_BOOK, SRC_NONE, Detector, emit, is_final, next_source

CROSSED = KIND_CODES["crossed_book"]
LOCKED = KIND_CODES["locked_book"]


@dataclass(frozen=True)
class CrossedParams:
    min_duration_s: float = 0.0  # episodes shorter than this are not reported
    critical_after_s: float = 1.0  # a crossed book lasting this long scores 100


# si: state (0 none, 1 locked, 2 crossed), start_ts, rows, last_ts; sf: worst bid - ask, bid at start, ask at start
def _new_state(params: CrossedParams) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(4, np.int64), np.zeros(3, np.float64)


@nb.njit(cache=True)
def _close(p, si, sf, alerts, counts, end_ts):
    duration = (si[3] - si[1]) / 1e9
    if duration >= p[0]:
        crossed = si[0] == 2
        base = 60.0 if crossed else 20.0
        score = base + (100.0 - base) * min(1.0, duration / p[1])
        emit(alerts, counts, CROSSED if crossed else LOCKED, 0, si[1], si[3], end_ts, score,
             sf[1], sf[0], 0, duration, si[2])
    si[0] = 0


@nb.njit(cache=True)
def crossed_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                   o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_BOOK:  # only book rows matter here
            if src == 0:
                o += 1
            else:
                t += 1
            continue
        ts = book_ts[b]
        bid, ask = bid_px[b, 0], ask_px[b, 0]
        state = 0
        if bid == bid and ask == ask:  # both sides present
            if bid > ask:
                state = 2
            elif bid == ask:
                state = 1
        if si[0] != 0 and state != si[0]:
            _close(p, si, sf, alerts, counts, ts)
        if state != 0:
            if si[0] == 0:
                si[0] = state
                si[1] = ts
                si[2] = 0
                sf[0] = 0.0
                sf[1] = bid
            si[2] += 1
            si[3] = ts
            sf[0] = max(sf[0], bid - ask)
        b += 1
    if is_final(counts) and si[0] != 0:  # still crossed when the stream ends
        _close(p, si, sf, alerts, counts, si[3])


DETECTOR = Detector(
    name="crossed_book",
    kinds=("crossed_book", "locked_book"),
    inputs=("book",),
    params=CrossedParams(),
    new_state=_new_state,
    kernel=crossed_kernel,
    metric="duration_s",
    evidence={"price": "best_bid_at_start", "size": "worst_bid_minus_ask", "level": "level"},
    description="best bid at or above the best ask (crossed: critical within a second; locked: low)",
)
