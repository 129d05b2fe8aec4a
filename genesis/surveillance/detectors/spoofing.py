"""Spoofing at order level (L3): a large order near the touch, pulled soon, never executed,
while its owner trades on the other side.

A *candidate* is an added order at least ``size_ratio`` times the typical added size (the
geometric mean of recent adds: an EWMA of log size over ``size_halflife`` adds) resting
``min_level`` to ``max_level`` price levels behind its own touch (levels of its side strictly
better than its price in the last book row before it: a spoof sits just behind the touch,
where it moves the book but is not hit). The detector remembers candidates only (a dense list
of at most ``max_candidates``; a candidate older than ``max_lifetime_s`` is dropped, since it
can no longer qualify; when the list is full new candidates are skipped: the documented
degradation). It counts *opposite aggressions*: aggressing orders from the other side
executed against the candidate's side (the spoofer of a bid sells into the bids its spoof
attracted), from the candidate's add until ``post_window_s`` after its deletion (a spoof
reached by the price is pulled at once, and the selling goes on); when the candidate has an
owner, only aggressions by that owner count (``contra_owner == owner``), which is what tells
a spoofer from a large passive order that happened to be cancelled. An execution of the
candidate itself ends it (it was a genuine order).

A candidate deleted within ``max_lifetime_s`` is a spoof once ``min_opposite`` opposite
aggressions are counted; the alert is raised at the event after that. It is not one when the
same owner added another order of at least ``stack_size_ratio`` times the typical size on
the same side within ``stack_window_s`` of it: a stack of orders is layering, reported by the
layering detector (this check needs owner ids).

Evidence: price and size of the spoof order, level = price levels ahead of it when placed,
metric = its size / the typical added size, n_events = 2 + opposite aggressions, order ids:
the spoof order, then the aggressing orders (up to 4). Score: 70% from the size ratio
(50 at ``size_ratio``, 100 at ``saturation_ratio``), 30% from the aggressions.

The helpers here (typical size, book rows kept in state, level of a price) are shared with
the layering detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.feeds.events import EV_ADD, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, NO_ID
from genesis.surveillance.base import (
    KIND_CODES, SRC_BOOK, SRC_NONE, SRC_ORDER, Detector, emit, emit_id, next_source, score_from_ratio,
)

SPOOFING = KIND_CODES["spoofing"]
BOOK_LEVELS_KEPT = 8  # book levels a side kept in state: enough for max_level <= 7


# -- shared helpers ------------------------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def keep_book_row(sf, base, bid_px, ask_px, b):
    """Copy the first BOOK_LEVELS_KEPT bid/ask prices of book row ``b`` to ``sf[base:base+2K]``."""
    levels = bid_px.shape[1]
    for k in range(BOOK_LEVELS_KEPT):
        sf[base + k] = bid_px[b, k] if k < levels else np.nan
        sf[base + BOOK_LEVELS_KEPT + k] = ask_px[b, k] if k < levels else np.nan


@nb.njit(cache=True, inline="always")
def level_ahead(sf, base, side, price):
    """Levels of ``side`` strictly better than ``price`` in the kept book row (0: at or inside the touch;
    BOOK_LEVELS_KEPT means that many or more)."""
    off = base if side > 0 else base + BOOK_LEVELS_KEPT
    n = 0
    for k in range(BOOK_LEVELS_KEPT):
        px = sf[off + k]
        if px != px:  # NaN: the book ends here
            break
        if (side > 0 and px > price) or (side < 0 and px < price):
            n += 1
        else:
            break
    return n


@nb.njit(cache=True, inline="always")
def typical_size(sf, i_mean):
    """The typical added size: exp of the EWMA of log size at ``sf[i_mean]``."""
    return np.exp(sf[i_mean])


@nb.njit(cache=True, inline="always")
def update_typical(si, sf, i_count, i_mean, halflife, size):
    """Fold one added ``size`` into the EWMA of log size (a plain mean for the first ``halflife`` adds)."""
    if size <= 0.0:
        return
    n = si[i_count] + 1
    si[i_count] = n
    alpha = max(1.0 / n, 1.0 - 0.5 ** (1.0 / halflife))
    sf[i_mean] += alpha * (np.log(size) - sf[i_mean])


# -- parameters and state --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpoofingParams:
    size_ratio: float = 7.5  # candidate: size >= this x typical added size (geometric mean of recent adds)
    size_halflife: float = 1000.0  # adds: half-life of the typical-size EWMA
    warmup_adds: float = 200.0  # adds seen before any candidate is taken (the typical size must settle)
    min_level: float = 1.0  # candidate: at least this many price levels ahead of it (spoofs rest behind the
    # touch, out of reach of incoming orders; 0 also takes orders at or inside the touch)
    max_level: float = 2.0  # candidate: at most this many price levels ahead of it on its side (0 = at the touch)
    max_lifetime_s: float = 5.0  # s: deleted within this long after being added
    min_opposite: float = 2.0  # opposite-side aggressions (by the order's owner when known) while it rests
    stack_window_s: float = 1.0  # s: another order of the same owner and side added this close makes it layering
    post_window_s: float = 1.0  # s: opposite aggressions also count this long after the deletion
    stack_size_ratio: float = 2.0  # ... when that other order is at least this x typical size
    saturation_ratio: float = 20.0  # size ratio scoring 100 (score 50 at size_ratio, log-linear)
    max_candidates: float = 256.0  # candidates remembered at once (full: new ones skipped)


# si layout
I_NADDS, I_NLIVE, I_HAVE_BOOK, I_NPEND = 0, 1, 2, 3
I_FULL = 4  # 1 once a candidate was skipped because a list was full
I_RING = 5  # next slot of the ring of recent large adds
SI_HEAD = 8
# one row per candidate (resting) and per pulled candidate (deleted, still counting aggressions)
C_ID, C_ADD, C_SIDE, C_OWNER, C_LEVEL, C_NOPP, C_LASTAGG, C_DEL, C_LAST, C_STACKED, C_AGG0 = range(11)
N_AGG = 4
NCI = C_AGG0 + N_AGG
MAX_PENDING = 64
RING = 64  # recent large adds (ts, owner, side) remembered to tell a lone order from a stack of them
NRI = 3
# sf layout
F_MEAN = 0
F_BOOK = 1
SF_HEAD = F_BOOK + 2 * BOOK_LEVELS_KEPT
CF_PRICE, CF_SIZE, CF_RATIO = range(3)
NCF = 3


def _layout(params: SpoofingParams) -> tuple[int, int]:
    cap = int(params.max_candidates)
    return SI_HEAD + (cap + MAX_PENDING) * NCI + RING * NRI, SF_HEAD + (cap + MAX_PENDING) * NCF


def _new_state(params: SpoofingParams) -> tuple[np.ndarray, np.ndarray]:
    if int(params.max_candidates) < 1:
        raise ValueError(f"SpoofingParams.max_candidates={params.max_candidates} must be >= 1")
    if params.max_level >= BOOK_LEVELS_KEPT:
        raise ValueError(f"SpoofingParams.max_level={params.max_level} must be < {BOOK_LEVELS_KEPT}")
    n_i, n_f = _layout(params)
    si = np.zeros(n_i, np.int64)
    sf = np.zeros(n_f, np.float64)
    sf[F_BOOK:SF_HEAD] = np.nan
    ring = si[SI_HEAD + (int(params.max_candidates) + MAX_PENDING) * NCI:].reshape(RING, NRI)
    ring[:, 0] = np.iinfo(np.int64).min // 2
    ring[:, 1] = NO_ID - 1  # matches no owner
    return si, sf


@nb.njit(cache=True, inline="always")
def _remove(rows, rowsf, n, k):
    """Remove row ``k`` of a dense list of ``n`` rows (the last row takes its place); returns n - 1."""
    last = n - 1
    rows[k, :] = rows[last, :]
    rowsf[k, :] = rowsf[last, :]
    return last


@nb.njit(cache=True)
def _count_aggression(rows, k, ev, ts):
    """An aggressor hit the side of row ``k``: count it (once per aggressing order)."""
    if ev["contra_id"] != NO_ID and ev["contra_id"] == rows[k, C_LASTAGG]:
        return
    n_opp = rows[k, C_NOPP]
    if n_opp < N_AGG:
        rows[k, C_AGG0 + n_opp] = ev["contra_id"]
    rows[k, C_NOPP] = n_opp + 1
    rows[k, C_LASTAGG] = ev["contra_id"]
    rows[k, C_LAST] = ts


@nb.njit(cache=True, inline="always")
def _is_opposite_aggression(rows, k, ev):
    # an aggressor from the other side hit this row's side, by its owner when the owner is known
    return rows[k, C_SIDE] == ev["side"] and (rows[k, C_OWNER] == NO_ID or rows[k, C_OWNER] == ev["contra_owner"])


@nb.njit(cache=True)
def _flush(p, si, pend, pendf, ts, alerts, ids, counts):
    """Emit pulled candidates with enough aggressions once their group window has passed; drop the
    ones whose post-cancel window ran out."""
    post = np.int64(p[8] * 1e9)
    k = 0
    while k < si[I_NPEND]:
        if pend[k, C_NOPP] >= p[6]:
            ratio = pendf[k, CF_RATIO]
            score = 0.7 * score_from_ratio(ratio, p[0], p[10]) + 0.3 * score_from_ratio(
                pend[k, C_NOPP], p[6], 4.0 * p[6])
            row = emit(alerts, counts, SPOOFING, pend[k, C_SIDE], pend[k, C_ADD], max(pend[k, C_DEL], pend[k, C_LAST]),
                       ts, score, pendf[k, CF_PRICE], pendf[k, CF_SIZE], pend[k, C_LEVEL], ratio, 2 + pend[k, C_NOPP])
            emit_id(alerts, ids, counts, row, pend[k, C_ID])
            for a in range(min(N_AGG, pend[k, C_NOPP])):
                emit_id(alerts, ids, counts, row, pend[k, C_AGG0 + a])
            si[I_NPEND] = _remove(pend, pendf, si[I_NPEND], k)
        elif ts > pend[k, C_DEL] + post:
            si[I_NPEND] = _remove(pend, pendf, si[I_NPEND], k)
        else:
            k += 1


@nb.njit(cache=True)
def spoofing_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                    o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    cap = np.int64(p[11])
    cand = si[SI_HEAD:SI_HEAD + cap * NCI].reshape((cap, NCI))
    pend = si[SI_HEAD + cap * NCI:SI_HEAD + (cap + MAX_PENDING) * NCI].reshape((MAX_PENDING, NCI))
    candf = sf[SF_HEAD:SF_HEAD + cap * NCF].reshape((cap, NCF))
    pendf = sf[SF_HEAD + cap * NCF:SF_HEAD + (cap + MAX_PENDING) * NCF].reshape((MAX_PENDING, NCF))
    max_life = np.int64(p[5] * 1e9)
    ring = si[SI_HEAD + (cap + MAX_PENDING) * NCI:SI_HEAD + (cap + MAX_PENDING) * NCI + RING * NRI].reshape((RING, NRI))
    stack = np.int64(p[7] * 1e9)
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src == SRC_BOOK:
            keep_book_row(sf, F_BOOK, bid_px, ask_px, b)
            si[I_HAVE_BOOK] = 1
            b += 1
            continue
        if src != SRC_ORDER:
            t += 1
            continue
        ev = orders[o]
        o += 1
        ts = ev["exch_ts"]
        if si[I_NPEND] > 0:
            _flush(p, si, pend, pendf, ts, alerts, ids, counts)
        kind = ev["event"]
        side = np.int64(ev["side"])
        if kind == EV_ADD:
            size = ev["qty"]
            if ev["owner"] != NO_ID and size >= p[9] * typical_size(sf, F_MEAN):
                # a large add: candidates of this owner and side added just before are part of a stack
                stacked = 0
                for k in range(si[I_NLIVE]):
                    if cand[k, C_OWNER] == ev["owner"] and cand[k, C_SIDE] == side and ts - cand[k, C_ADD] <= stack:
                        cand[k, C_STACKED] = 1
                for r in range(RING):
                    if ring[r, 1] == ev["owner"] and ring[r, 2] == side and ts - ring[r, 0] <= stack:
                        stacked = 1
                r = si[I_RING]
                ring[r, 0] = ts
                ring[r, 1] = ev["owner"]
                ring[r, 2] = side
                si[I_RING] = (r + 1) % RING
            else:
                stacked = 0
            if si[I_NADDS] >= p[2] and si[I_HAVE_BOOK] == 1 and size >= p[0] * typical_size(sf, F_MEAN):
                level = level_ahead(sf, F_BOOK, side, ev["price"])
                if p[3] <= level <= p[4]:
                    n = si[I_NLIVE]
                    if n < cap:
                        cand[n, C_ID] = ev["order_id"]
                        cand[n, C_ADD] = ts
                        cand[n, C_SIDE] = side
                        cand[n, C_OWNER] = ev["owner"]
                        cand[n, C_LEVEL] = level
                        cand[n, C_NOPP] = 0
                        cand[n, C_LASTAGG] = NO_ID
                        cand[n, C_DEL] = 0
                        cand[n, C_LAST] = ts
                        cand[n, C_STACKED] = stacked
                        candf[n, CF_PRICE] = ev["price"]
                        candf[n, CF_SIZE] = size
                        candf[n, CF_RATIO] = size / typical_size(sf, F_MEAN)
                        si[I_NLIVE] = n + 1
                    else:
                        si[I_FULL] = 1
            update_typical(si, sf, I_NADDS, F_MEAN, p[1], size)
        elif kind == EV_EXECUTE or kind == EV_EXECUTE_HIDDEN:
            k = 0
            while k < si[I_NLIVE]:
                if ts - cand[k, C_ADD] > max_life or cand[k, C_ID] == ev["order_id"]:
                    # too old to qualify, or executed: a genuine order
                    si[I_NLIVE] = _remove(cand, candf, si[I_NLIVE], k)
                    continue
                if _is_opposite_aggression(cand, k, ev):
                    _count_aggression(cand, k, ev, ts)
                k += 1
            for k in range(si[I_NPEND]):
                if _is_opposite_aggression(pend, k, ev):
                    _count_aggression(pend, k, ev, ts)
        elif kind == EV_DELETE:
            k = 0
            while k < si[I_NLIVE]:
                if cand[k, C_ID] != ev["order_id"]:
                    if ts - cand[k, C_ADD] > max_life:
                        si[I_NLIVE] = _remove(cand, candf, si[I_NLIVE], k)
                    else:
                        k += 1
                    continue
                if ts - cand[k, C_ADD] <= max_life and cand[k, C_STACKED] == 0:
                    if si[I_NPEND] >= MAX_PENDING:  # full: the oldest pulled candidate gives way
                        si[I_FULL] = 1
                        si[I_NPEND] = _remove(pend, pendf, si[I_NPEND], 0)
                    j = si[I_NPEND]
                    pend[j, :] = cand[k, :]
                    pendf[j, :] = candf[k, :]
                    pend[j, C_DEL] = ts
                    si[I_NPEND] = j + 1
                si[I_NLIVE] = _remove(cand, candf, si[I_NLIVE], k)
                break
            if si[I_NPEND] > 0:
                _flush(p, si, pend, pendf, ts, alerts, ids, counts)


DETECTOR = Detector(
    name="spoofing",
    kinds=("spoofing",),
    inputs=("orders", "book"),
    params=SpoofingParams(),
    new_state=_new_state,
    kernel=spoofing_kernel,
    metric="size / typical added size",
    evidence={"price": "order_price", "size": "order_size", "level": "levels_ahead_when_placed"},
    min_levels=lambda p: int(p.max_level) + 1,  # to count max_level levels ahead of an order and see its own
    description="a large order near the touch, deleted within seconds without execution while its owner "
                "aggresses the other side",
)
