"""Layering (L3): several large orders stacked on one side, at distinct levels near the touch,
all pulled without execution.

A *layer candidate* is an added order at least ``size_ratio`` times the typical added size
(see :mod:`.spoofing`) and at most ``max_level`` price levels behind its own touch. Candidates
of one owner and side added within ``stack_window_s`` of the stack's first add form a
*stack* (without owner ids, one stack per side: much weaker evidence, since unrelated
traders then stack together, so the layers must then also be pulled within
``anonymous_pull_window_s`` of each other). A stack is judged when its last live member leaves: it is
layering when at least ``min_layers`` members (at ``min_prices`` distinct prices or more) were deleted within
``max_lifetime_s`` of being added and none was executed (a layer that trades was a genuine
order). Members are pulled one by one (a layer reached by the price is pulled at once, the
rest later), so the pulls need not be simultaneous; the alert is raised at the deletion of
the last member.

Memory: a dense list of at most ``max_candidates`` live candidates and of ``MAX_STACKS``
open stacks, each keeping its first ``STACK_IDS`` members (more members still count). A
candidate older than ``max_lifetime_s`` is dropped as not pulled. When a list is full new
candidates are skipped (documented degradation).

Evidence: price = the pulled layer nearest the touch, size = total pulled size, level =
levels ahead of the nearest layer when placed, metric = layers pulled,
n_events = adds + deletes of the pulled layers, order ids = the layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.feeds.events import EV_ADD, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, NO_ID
from genesis.surveillance.base import (
    KIND_CODES, SRC_BOOK, SRC_NONE, SRC_ORDER, Detector, emit, emit_id, next_source, score_from_ratio,
)
from genesis.surveillance.detectors.spoofing import (
    BOOK_LEVELS_KEPT, keep_book_row, level_ahead, typical_size, update_typical,
)

LAYERING = KIND_CODES["layering"]


@dataclass(frozen=True)
class LayeringParams:
    size_ratio: float = 3.5  # layer candidate: size >= this x typical added size
    size_halflife: float = 1000.0  # adds: half-life of the typical-size EWMA
    warmup_adds: float = 200.0  # adds seen before any candidate is taken
    max_level: float = 6.0  # layer candidate: at most this many levels ahead of it on its side
    stack_window_s: float = 1.0  # s: members of a stack are added within this long of its first add
    max_lifetime_s: float = 10.0  # s: a layer counts as pulled when deleted within this long of its add
    min_layers: float = 3.0  # pulled layers for an alert
    min_prices: float = 2.0  # ... at this many distinct prices at least
    saturation_layers: float = 8.0  # layers scoring 100 (50 at min_layers, log-linear)
    anonymous_pull_window_s: float = 0.1  # s: without owner ids, the layers must all be pulled this close
    max_candidates: float = 256.0  # live candidates remembered at once


# si layout
I_NADDS, I_NLIVE, I_NSTACK, I_HAVE_BOOK, I_SERIAL, I_FULL = range(6)
SI_HEAD = 8
C_ID, C_ADD, C_STACK, C_LEVEL = range(4)
NCI = 4
CF_PRICE, CF_SIZE = range(2)
NCF = 2
MAX_STACKS = 32
STACK_IDS = 16
S_SERIAL, S_OWNER, S_SIDE, S_FIRST, S_LASTPULL, S_NLIVE, S_NPULLED, S_NEXEC, S_MINLEVEL, S_FIRSTPULL, S_IDS = range(11)
NSI = S_IDS + STACK_IDS
SF_SIZE, SF_PRICES = 0, 1
NSF = SF_PRICES + STACK_IDS
# sf layout
F_MEAN = 0
F_BOOK = 1
SF_HEAD = F_BOOK + 2 * BOOK_LEVELS_KEPT


def _new_state(params: LayeringParams) -> tuple[np.ndarray, np.ndarray]:
    cap = int(params.max_candidates)
    if cap < 1:
        raise ValueError(f"LayeringParams.max_candidates={params.max_candidates} must be >= 1")
    if params.max_level >= BOOK_LEVELS_KEPT:
        raise ValueError(f"LayeringParams.max_level={params.max_level} must be < {BOOK_LEVELS_KEPT}")
    si = np.zeros(SI_HEAD + cap * NCI + MAX_STACKS * NSI, np.int64)
    sf = np.zeros(SF_HEAD + cap * NCF + MAX_STACKS * NSF, np.float64)
    sf[F_BOOK:SF_HEAD] = np.nan
    return si, sf


@nb.njit(cache=True)
def _judge(p, si, stk, stkf, j, ts, alerts, ids, counts):
    """Stack ``j`` has no live member left: alert if it was layering, then remove it."""
    n_ids = min(stk[j, S_NPULLED], STACK_IDS)
    distinct = 0
    nearest = np.nan
    side = stk[j, S_SIDE]
    for a in range(n_ids):
        px = stkf[j, SF_PRICES + a]
        seen = False
        for b in range(a):
            if stkf[j, SF_PRICES + b] == px:
                seen = True
                break
        if not seen:
            distinct += 1
        if nearest != nearest or (side > 0 and px > nearest) or (side < 0 and px < nearest):
            nearest = px
    together = stk[j, S_OWNER] != NO_ID or stk[j, S_LASTPULL] - stk[j, S_FIRSTPULL] <= np.int64(p[9] * 1e9)
    if stk[j, S_NEXEC] == 0 and stk[j, S_NPULLED] >= p[6] and distinct >= p[7] and together:
        score = score_from_ratio(float(stk[j, S_NPULLED]), p[6], p[8])
        row = emit(alerts, counts, LAYERING, side, stk[j, S_FIRST], stk[j, S_LASTPULL], ts, score, nearest,
                   stkf[j, SF_SIZE], stk[j, S_MINLEVEL], float(stk[j, S_NPULLED]), 2 * stk[j, S_NPULLED])
        for a in range(n_ids):
            emit_id(alerts, ids, counts, row, stk[j, S_IDS + a])
    last = si[I_NSTACK] - 1
    stk[j, :] = stk[last, :]
    stkf[j, :] = stkf[last, :]
    si[I_NSTACK] = last


@nb.njit(cache=True)
def _leave(p, si, cand, candf, stk, stkf, k, ts, how, alerts, ids, counts):
    """Candidate ``k`` leaves: ``how`` 1 pulled, 2 executed, 0 expired. Judges its stack when it was the last."""
    serial = cand[k, C_STACK]
    for j in range(si[I_NSTACK]):
        if stk[j, S_SERIAL] != serial:
            continue
        if how == 1:
            n = stk[j, S_NPULLED]
            if n < STACK_IDS:
                stk[j, S_IDS + n] = cand[k, C_ID]
                stkf[j, SF_PRICES + n] = candf[k, CF_PRICE]
            stk[j, S_NPULLED] = n + 1
            if n == 0:
                stk[j, S_FIRSTPULL] = ts
            stk[j, S_LASTPULL] = ts
            stkf[j, SF_SIZE] += candf[k, CF_SIZE]
            stk[j, S_MINLEVEL] = min(stk[j, S_MINLEVEL], cand[k, C_LEVEL])
        elif how == 2:
            stk[j, S_NEXEC] += 1
        stk[j, S_NLIVE] -= 1
        if stk[j, S_NLIVE] <= 0:
            _judge(p, si, stk, stkf, j, ts, alerts, ids, counts)
        break
    last = si[I_NLIVE] - 1
    cand[k, :] = cand[last, :]
    candf[k, :] = candf[last, :]
    si[I_NLIVE] = last


@nb.njit(cache=True)
def layering_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                    o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    cap = np.int64(p[10])
    cand = si[SI_HEAD:SI_HEAD + cap * NCI].reshape((cap, NCI))
    stk = si[SI_HEAD + cap * NCI:SI_HEAD + cap * NCI + MAX_STACKS * NSI].reshape((MAX_STACKS, NSI))
    candf = sf[SF_HEAD:SF_HEAD + cap * NCF].reshape((cap, NCF))
    stkf = sf[SF_HEAD + cap * NCF:SF_HEAD + cap * NCF + MAX_STACKS * NSF].reshape((MAX_STACKS, NSF))
    window = np.int64(p[4] * 1e9)
    max_life = np.int64(p[5] * 1e9)
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
        kind = ev["event"]
        side = np.int64(ev["side"])
        if kind == EV_ADD:
            size = ev["qty"]
            if si[I_NADDS] >= p[2] and si[I_HAVE_BOOK] == 1 and size >= p[0] * typical_size(sf, F_MEAN):
                level = level_ahead(sf, F_BOOK, side, ev["price"])
                if level <= p[3]:
                    # join the open stack of this owner and side, or open one
                    j = -1
                    for q in range(si[I_NSTACK]):
                        if stk[q, S_OWNER] == ev["owner"] and stk[q, S_SIDE] == side and ts - stk[q, S_FIRST] <= window:
                            j = q
                            break
                    if j < 0 and si[I_NSTACK] < MAX_STACKS and si[I_NLIVE] < cap:
                        j = si[I_NSTACK]
                        si[I_NSTACK] = j + 1
                        si[I_SERIAL] += 1
                        stk[j, :] = 0
                        stkf[j, :] = 0.0
                        stk[j, S_SERIAL] = si[I_SERIAL]
                        stk[j, S_OWNER] = ev["owner"]
                        stk[j, S_SIDE] = side
                        stk[j, S_FIRST] = ts
                        stk[j, S_MINLEVEL] = BOOK_LEVELS_KEPT
                    if j >= 0 and si[I_NLIVE] < cap:
                        n = si[I_NLIVE]
                        cand[n, C_ID] = ev["order_id"]
                        cand[n, C_ADD] = ts
                        cand[n, C_STACK] = stk[j, S_SERIAL]
                        cand[n, C_LEVEL] = level
                        candf[n, CF_PRICE] = ev["price"]
                        candf[n, CF_SIZE] = size
                        si[I_NLIVE] = n + 1
                        stk[j, S_NLIVE] += 1
                    else:
                        si[I_FULL] = 1
            update_typical(si, sf, I_NADDS, F_MEAN, p[1], size)
        elif kind == EV_DELETE or kind == EV_EXECUTE or kind == EV_EXECUTE_HIDDEN:
            k = 0
            while k < si[I_NLIVE]:
                if cand[k, C_ID] == ev["order_id"]:
                    how = 2 if kind != EV_DELETE else (1 if ts - cand[k, C_ADD] <= max_life else 0)
                    _leave(p, si, cand, candf, stk, stkf, k, ts, how, alerts, ids, counts)
                    break
                if ts - cand[k, C_ADD] > max_life:
                    _leave(p, si, cand, candf, stk, stkf, k, ts, 0, alerts, ids, counts)
                    continue
                k += 1


DETECTOR = Detector(
    name="layering",
    kinds=("layering",),
    inputs=("orders", "book"),
    params=LayeringParams(),
    new_state=_new_state,
    kernel=layering_kernel,
    metric="layers pulled",
    evidence={"price": "nearest_layer_price", "size": "total_pulled_size", "level": "levels_ahead_of_nearest"},
    min_levels=lambda p: int(p.max_level) + 1,  # to count max_level levels ahead of a layer and see its own
    description="several large orders of one owner stacked on one side near the touch, all pulled unexecuted",
)
