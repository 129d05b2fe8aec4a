"""Spoofing inferred from the L2 book: size added near the touch and pulled without trading.

Without order ids the footprint of a spoof is a size *increase* at one price level near the
touch, large against the sizes usually added there, that goes away again within
``max_life_s`` while no trade prints at that price, and while the opposite side trades (the
spoofer's real business: a bid spoof props up the book while the spoofer sells, so
seller-initiated trades print meanwhile).

Rule, comparing each book row with the previous one (side 1 = bid, -1 = ask):

1. *Add*: on levels ``min_level`` .. ``levels - 1`` of a side (by default 1 and 2: just behind
   the touch, where size is seen but not filled), the size at a price rose by ``added`` (a
   new price behind the touch counts from 0). Size at a price better than the previous best
   is not an add: a new touch is price improvement (market makers re-quoting as the market
   moves), the commonest large "add then gone" on a real book. ``added`` must be at least
   ``size_ratio`` x the typical addition (the time-decayed geometric mean of every size
   increase on those levels, half-life ``halflife_s`` of exchange time, each increase
   weighing 1) and at least ``level_ratio`` x the mean level size near the touch (a
   time-weighted mean: on a real book most additions are dust, so beating them alone means
   little). After ``warmup_s`` such an add becomes a candidate (one per price and side; at
   most ``max_candidates`` live, the oldest overwritten when full).
2. *Executed*: trades at the candidate's price explain that much of a fall (fills of the
   orders queued ahead at that level, or of the added size itself).
3. *Removed*: at a later row the size at that price has fallen from its peak since the add
   by at least ``removed_frac x added`` more than the quantity traded there since that peak
   (or the price left the book on the near side of the visible levels: size 0). Measuring
   from the peak keeps the pull visible when other orders joined the level meanwhile.
   If that happens between ``min_life_s`` and ``max_life_s`` after the add (size that
   flickers for less is ordinary requoting, and a spoof must stay up to be seen) and at
   least ``min_opposite_trades`` trades initiated by the opposite side printed in between,
   an alert is raised at that row. A candidate whose price drifted beyond the visible book is
   dropped (nothing can be said), as is one older than ``max_life_s``.

Evidence: ``price`` the level's price, ``size`` the added size, ``level`` its level at the add
(0 = touch), ``metric`` added / typical addition, ``n_events`` the opposite-side trades,
``start_ts`` the add row, ``end_ts`` the removal row. No order ids exist at L2.

Limits: a row carries the net change between two snapshots, so an add and a pull inside one
snapshot interval (a 100 ms Binance depth stream) are invisible, and one large order landing
with several small ones counts as their sum. On the simulator's background flow
(lognormal sizes, mean lifetime 1 s) a large background order pulled quickly looks the same
as a spoof at L2: the L3 detector (order ids, owners) is the precise one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.surveillance.base import (KIND_CODES, SRC_NONE, SRC_ORDER, SRC_TRADE, Detector, emit, next_source,
                                       score_from_ratio)
from genesis.surveillance.detectors.book_conditions import EWMA_SLOT, ewma_update

SPOOF_L2 = KIND_CODES["spoofing_l2"]
LN2 = math.log(2.0)


@dataclass(frozen=True)
class SpoofL2Params:
    levels: int = 3  # adds on levels min_level .. levels - 1 from the touch count (0 = the touch)
    max_life_s: float = 3.0  # removed within this many seconds of exchange time after the add
    size_ratio: float = 8.0  # added size >= this x the typical addition (time-decayed geometric mean)
    removed_frac: float = 0.8  # at least this share of the added size must go again
    min_opposite_trades: int = 1  # opposite-side-initiated trades needed between add and removal
    halflife_s: float = 60.0  # half-life of the typical-addition average, seconds of exchange time
    warmup_s: float = 30.0  # no candidate before this long after the first row
    max_candidates: int = 64  # live candidates kept (the oldest is overwritten when full)
    ratio_saturation: float = 10.0  # (added / typical) / size_ratio at which the score reaches 100 (50 at 1):
    #                                L2 inference is weak evidence, so its scores rise slowly
    min_life_s: float = 0.5  # pulled sooner than this is requoting, not a spoof (a spoof must be seen)
    level_ratio: float = 0.75  # added size >= this x the mean level size near the touch (time-weighted
    #                            mean): the add must be level-sized, not just beat dust-sized adds
    min_level: int = 1  # adds at the touch (level 0) do not count: size there trades; a spoof is meant
    #                     to be seen, not filled
    max_score: float = 39.0  # scores are scaled into 0..max_score: without order ids this is a lead for an
    #                          analyst (severity info/low), never proof (measured: README, Surveillance)


# si header: started, first_ts, last_add_ts, buys, sells, have_prev, next slot, live count, previous row ts
HI = 9
CI = 5  # per candidate: active, side, t_add, level, opposite trades at the add
# sf header: decayed sum of log(add), decayed weight, EWMA slot of the mean level size
HF = 2 + EWMA_SLOT
CF = 4  # per candidate: price, added, size at the price at its peak since the add, quantity traded there since


def _prev_levels(params: SpoofL2Params) -> int:
    return int(params.levels) + 2  # previous row's levels kept to find a price's former size


def _new_state(params: SpoofL2Params):
    m = int(params.max_candidates)
    k = _prev_levels(params)
    sf = np.zeros(HF + 4 * k + CF * m)
    sf[HF: HF + 4 * k] = np.nan
    return np.zeros(HI + CI * m, np.int64), sf


@nb.njit(cache=True)
def _same_price(a, b):
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


@nb.njit(cache=True)
def _size_now(px, sz, b, price, side):
    """Size at ``price`` in row ``b`` of one side: >= 0, or -1 when the price lies beyond the
    visible levels (unknown)."""
    n = px.shape[1]
    worst = np.nan
    for j in range(n):
        q = px[b, j]
        if q != q:
            break
        if _same_price(q, price):
            return sz[b, j]
        worst = q
    if worst != worst:
        return 0.0  # the side is empty
    if side * (price - worst) < 0.0 and n > 0 and px[b, n - 1] == px[b, n - 1]:
        return -1.0  # behind the last visible level of a full ladder: unknown
    return 0.0  # inside the visible range (or past the touch) and absent: removed


@nb.njit(cache=True)
def _prev_size(sf, base, k, price, side):
    """Size at ``price`` in the stored previous row (``k`` levels at sf[base:]); -1 if unknown."""
    worst = np.nan
    for j in range(k):
        q = sf[base + 2 * j]
        if q != q:
            return 0.0  # the side had fewer levels than stored: no size there
        if _same_price(q, price):
            return sf[base + 2 * j + 1]
        worst = q
    if worst != worst:
        return 0.0
    if side * (price - worst) < 0.0:
        return -1.0  # behind the stored levels: it may have been there
    return 0.0


@nb.njit(cache=True)
def spoof_l2_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                    o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    k_add = int(p[0])
    min_level = int(p[11])
    life_ns = p[1] * 1e9
    min_life_ns = p[9] * 1e9
    warm_ns = p[6] * 1e9
    m = int(p[7])
    kp = k_add + 2
    pf = HF  # previous row: side s at sf[pf + s * 2 * kp], (price, size) pairs
    cf0 = HF + 4 * kp
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src == SRC_ORDER:
            o += 1
            continue
        if src == SRC_TRADE:
            ag = trades[t]["aggressor"]
            if ag == 1:
                si[3] += 1
            elif ag == -1:
                si[4] += 1
            if si[7] > 0:
                price = trades[t]["price"]
                for c in range(m):
                    ci = HI + c * CI
                    if si[ci] == 1 and _same_price(sf[cf0 + c * CF], price):
                        sf[cf0 + c * CF + 3] += trades[t]["qty"]  # fills at its price explain that much of a fall
            t += 1
            continue
        ts = book_ts[b]
        if si[0] == 0:
            si[0] = 1
            si[1] = ts
            si[2] = ts
        # 1. live candidates: pulled, expired or lost from view?
        if si[7] > 0:
            for c in range(m):
                ci = HI + c * CI
                if si[ci] != 1:
                    continue
                side = si[ci + 1]
                if ts - si[ci + 2] > life_ns:
                    si[ci] = 0
                    si[7] -= 1
                    continue
                cfc = cf0 + c * CF
                price, added, peak, filled = sf[cfc], sf[cfc + 1], sf[cfc + 2], sf[cfc + 3]
                if side == 1:
                    now = _size_now(bid_px, bid_sz, b, price, 1)
                else:
                    now = _size_now(ask_px, ask_sz, b, price, -1)
                if now < 0.0:
                    si[ci] = 0
                    si[7] -= 1
                    continue
                if now >= peak:  # more size joined the level: measure the fall from here
                    sf[cfc + 2] = now
                    sf[cfc + 3] = 0.0
                elif peak - now - filled >= p[3] * added:
                    opposite = (si[4] if side == 1 else si[3]) - si[ci + 4]
                    if opposite >= p[4] and ts - si[ci + 2] >= min_life_ns:
                        typical = np.exp(sf[0] / sf[1]) if sf[1] > 0.0 else np.nan
                        ratio = added / typical if typical == typical else np.nan
                        emit(alerts, counts, SPOOF_L2, side, si[ci + 2], ts, ts,
                             score_from_ratio(ratio, p[2], p[2] * p[8]) * p[12] / 100.0, price, added, si[ci + 3],
                             ratio, opposite)
                    si[ci] = 0
                    si[7] -= 1
        # 2. new size near the touch
        level_typ = sf[2] if sf[4] != 0.0 else np.inf
        if si[5] == 1:
            warm = ts - si[1] >= warm_ns
            decay = np.exp(-((ts - si[2]) / 1e9) * LN2 / p[5])
            first_add = True
            for s in range(2):
                side = 1 if s == 0 else -1
                px = bid_px if s == 0 else ask_px
                sz = bid_sz if s == 0 else ask_sz
                for j in range(min(k_add, px.shape[1])):
                    if j < min_level:
                        continue
                    price = px[b, j]
                    if price != price:
                        break
                    prev_best = sf[pf + s * 2 * kp]
                    if prev_best == prev_best and side * (price - prev_best) > 0.0:
                        continue  # a new, better touch: price improvement (quotes following the market), not a spoof
                    before = _prev_size(sf, pf + s * 2 * kp, kp, price, side)
                    if before < 0.0:
                        continue
                    added = sz[b, j] - before
                    if not added > 0.0:
                        continue
                    typical = np.exp(sf[0] / sf[1]) if sf[1] > 0.0 else np.nan
                    if warm and typical == typical and added >= p[2] * typical and added >= p[10] * level_typ:
                        dup = False
                        for c in range(m):
                            ci = HI + c * CI
                            if si[ci] == 1 and si[ci + 1] == side and _same_price(sf[cf0 + c * CF], price):
                                dup = True
                                break
                        if not dup:
                            c = si[6]
                            si[6] = (c + 1) % m
                            ci = HI + c * CI
                            if si[ci] != 1:
                                si[7] += 1
                            si[ci] = 1
                            si[ci + 1] = side
                            si[ci + 2] = ts
                            si[ci + 3] = j
                            si[ci + 4] = si[4] if side == 1 else si[3]
                            cfc = cf0 + c * CF
                            sf[cfc] = price
                            sf[cfc + 1] = added
                            sf[cfc + 2] = sz[b, j]
                            sf[cfc + 3] = 0.0
                    # the typical addition learns every add (after it was judged)
                    if first_add:
                        sf[0] *= decay
                        sf[1] *= decay
                        si[2] = ts
                        first_add = False
                    sf[0] += np.log(added)
                    sf[1] += 1.0
        # 3. the typical level size learns the previous row (it held until now); keep this row's first levels
        if si[5] == 1:
            total = 0.0
            n = 0
            for s in range(2):
                for j in range(kp - 2):
                    q = sf[pf + s * 2 * kp + 2 * j + 1]
                    if q == q:
                        total += q
                        n += 1
            if n > 0:
                ewma_update(sf, 2, total / n, ts - si[8], p[5])
        si[8] = ts
        for s in range(2):
            px = bid_px if s == 0 else ask_px
            sz = bid_sz if s == 0 else ask_sz
            base = pf + s * 2 * kp
            for j in range(kp):
                if j < px.shape[1]:
                    sf[base + 2 * j] = px[b, j]
                    sf[base + 2 * j + 1] = sz[b, j]
                else:
                    sf[base + 2 * j] = np.nan
                    sf[base + 2 * j + 1] = np.nan
        si[5] = 1
        b += 1


DETECTOR = Detector(
    name="spoofing_l2",
    kinds=("spoofing_l2",),
    inputs=("trades", "book"),
    params=SpoofL2Params(),
    new_state=_new_state,
    kernel=spoof_l2_kernel,
    metric="added_over_typical_add",
    evidence={"price": "level_price", "size": "added_size", "level": "level_at_add"},
    min_levels=lambda p: int(p.min_level) + 1,  # the levels behind the touch where adds count
    levels_param="levels",
    description="large size added near the touch and pulled within max_life_s with no trade at its price while "
                "the opposite side trades (L2 inference)",
)

__all__ = ["SpoofL2Params", "DETECTOR", "spoof_l2_kernel"]
