"""Wash trades: the same owner on both sides of executions (L3 with owner ids), and, from
trades alone, repeated matched size/price patterns.

``wash_trades`` (orders): an execution whose resting order's owner is also the aggressor's
(``owner == contra_owner``, both known) is a self-trade. Self-trades of one owner no more
than ``max_gap_s`` apart form a group; the alert is raised at the group's ``min_trades``-th
self-trade (so a live analyst sees it at once, and a group at the end of a batch is not
lost); later self-trades of the same group extend nothing and raise nothing. Evidence:
price and size of the first self-trade, metric = self-traded quantity of the group so far,
n_events = its self-trades, order ids = both orders of each (resting, aggressing).

``wash_trades_pattern`` (trades only, no ids): the same kind, from prints that repeat. A
trade *echoes* the one before it in a chain when it has the same size (to 1e-9 relative),
a price within ``price_tolerance`` (relative), comes within ``max_gap_s`` and is on the other
aggressor side (buying back what was just sold: the round trip of a wash). A chain starts
at a trade echoing one of the last ``TRADE_RING`` trades and is reported when it reaches
``min_prints`` trades (at that trade). Random flow rarely repeats a size to the lot, but real
venues have popular sizes: only sizes at least ``min_size_z`` standard deviations above
the mean log trade size (EWMAs) are considered, and sizes that are whole multiples of
``round_size`` are skipped when it is set. This is weaker evidence than ids, meant for feeds without them
(on the simulator, whose wash crosses are single prints of random size, it finds nothing,
and it raised no alert in 5 clean hours). Evidence: price and size of the prints, metric =
quantity traded back and forth, n_events = prints; no order ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.feeds.events import EV_EXECUTE, EV_EXECUTE_HIDDEN, NO_ID
from genesis.surveillance.base import (
    KIND_CODES, SRC_NONE, SRC_ORDER, SRC_TRADE, Detector, emit, emit_id, next_source, score_from_ratio,
)

WASH = KIND_CODES["wash_trades"]


@dataclass(frozen=True)
class WashTradesParams:
    min_trades: float = 2.0  # self-trades of one owner in a group for an alert
    max_gap_s: float = 10.0  # s: self-trades this close belong to one group
    saturation_trades: float = 8.0  # self-trades scoring 100 (50 at min_trades, log-linear)


MAX_GROUPS = 16  # owners with an open group at once (full: the stalest group gives way)
GROUP_IDS = 8  # order ids kept per group for the evidence (both orders of the first 4 self-trades)
G_OWNER, G_FIRST, G_LAST, G_N, G_ALERTED, G_NIDS, G_IDS = range(7)
NGI = G_IDS + GROUP_IDS
GF_PRICE, GF_SIZE, GF_QTY = range(3)
NGF = 3
I_NGROUPS = 0
SI_HEAD = 2


def _new_state(params: WashTradesParams) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(SI_HEAD + MAX_GROUPS * NGI, np.int64), np.zeros(MAX_GROUPS * NGF, np.float64)


@nb.njit(cache=True)
def wash_trades_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                       o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    grp = si[SI_HEAD:SI_HEAD + MAX_GROUPS * NGI].reshape((MAX_GROUPS, NGI))
    grpf = sf[:MAX_GROUPS * NGF].reshape((MAX_GROUPS, NGF))
    gap = np.int64(p[1] * 1e9)
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_ORDER:
            if src == SRC_TRADE:
                t += 1
            else:
                b += 1
            continue
        ev = orders[o]
        o += 1
        if ev["event"] != EV_EXECUTE and ev["event"] != EV_EXECUTE_HIDDEN:
            continue
        if ev["owner"] == NO_ID or ev["owner"] != ev["contra_owner"]:
            continue
        ts = ev["exch_ts"]
        j = -1
        for q in range(si[I_NGROUPS]):
            if grp[q, G_OWNER] == ev["owner"] and ts - grp[q, G_LAST] <= gap:
                j = q
                break
        if j < 0:
            # drop closed groups of this owner and of others past their gap
            q = 0
            while q < si[I_NGROUPS]:
                if ts - grp[q, G_LAST] > gap:
                    last = si[I_NGROUPS] - 1
                    grp[q, :] = grp[last, :]
                    grpf[q, :] = grpf[last, :]
                    si[I_NGROUPS] = last
                else:
                    q += 1
            if si[I_NGROUPS] >= MAX_GROUPS:
                j = 0
                for q in range(1, MAX_GROUPS):
                    if grp[q, G_LAST] < grp[j, G_LAST]:
                        j = q
            else:
                j = si[I_NGROUPS]
                si[I_NGROUPS] = j + 1
            grp[j, :] = 0
            grp[j, G_OWNER] = ev["owner"]
            grp[j, G_FIRST] = ts
            grpf[j, GF_PRICE] = ev["price"]
            grpf[j, GF_SIZE] = ev["qty"]
            grpf[j, GF_QTY] = 0.0
        grp[j, G_LAST] = ts
        grp[j, G_N] += 1
        grpf[j, GF_QTY] += ev["qty"]
        for oid in (ev["order_id"], ev["contra_id"]):
            n = grp[j, G_NIDS]
            if n < GROUP_IDS and oid != NO_ID:
                grp[j, G_IDS + n] = oid
                grp[j, G_NIDS] = n + 1
        if grp[j, G_ALERTED] == 0 and grp[j, G_N] >= p[0]:
            grp[j, G_ALERTED] = 1
            score = score_from_ratio(float(grp[j, G_N]), p[0], p[2])
            row = emit(alerts, counts, WASH, 0, grp[j, G_FIRST], ts, ts, score, grpf[j, GF_PRICE],
                       grpf[j, GF_SIZE], -1, grpf[j, GF_QTY], grp[j, G_N])
            for a in range(grp[j, G_NIDS]):
                emit_id(alerts, ids, counts, row, grp[j, G_IDS + a])


@dataclass(frozen=True)
class WashPatternParams:
    min_prints: float = 5.0  # trades of one size alternating sides, each echoing the one before, for an alert
    max_gap_s: float = 2.0  # s: an echo comes this soon after the trade it answers
    price_tolerance: float = 1e-4  # relative: an echo's price is this close to the answered trade's
    round_size: float = 0.0  # sizes that are whole multiples of this are skipped (0: none skipped)
    min_size_z: float = 1.0  # sizes at least this many sd above the mean log trade size (EWMA) only:
    # the small sizes everybody trades repeat by chance
    size_halflife: float = 1000.0  # trades: half-life of the EWMAs of log size
    warmup_trades: float = 100.0  # trades seen before any chain
    saturation_prints: float = 10.0  # prints scoring 100 (50 at min_prints, log-linear)


TRADE_RING = 256  # recent trades searched for an echo partner
MAX_CHAINS = 32
# si: ring next slot, chains in use; ring (ts, side); chains (first, last, last side, n, alerted, first trade id)
P_RING, P_NCH, P_NTRADES = 0, 1, 2
SIP_RING = 4
SIP_CHAINS = SIP_RING + TRADE_RING * 2
K_FIRST, K_LAST, K_SIDE, K_N, K_ALERTED = range(5)
NKI = 5
# sf: ring (qty, price); chains (qty, price)
SFP_CHAINS = TRADE_RING * 2
SFP_MEAN = SFP_CHAINS + MAX_CHAINS * 2  # then the EWMA mean and variance of log size


def _new_pattern_state(params: WashPatternParams) -> tuple[np.ndarray, np.ndarray]:
    si = np.zeros(SIP_CHAINS + MAX_CHAINS * NKI, np.int64)
    si[SIP_RING:SIP_CHAINS:2] = np.iinfo(np.int64).min // 2  # empty ring slots are infinitely old
    return si, np.zeros(SFP_MEAN + 2, np.float64)


@nb.njit(cache=True)
def wash_pattern_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                        o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    ring = si[SIP_RING:SIP_CHAINS].reshape((TRADE_RING, 2))
    ringf = sf[:SFP_CHAINS].reshape((TRADE_RING, 2))
    ch = si[SIP_CHAINS:SIP_CHAINS + MAX_CHAINS * NKI].reshape((MAX_CHAINS, NKI))
    chf = sf[SFP_CHAINS:SFP_CHAINS + MAX_CHAINS * 2].reshape((MAX_CHAINS, 2))
    gap = np.int64(p[1] * 1e9)
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_TRADE:
            if src == SRC_ORDER:
                o += 1
            else:
                b += 1
            continue
        tr = trades[t]
        t += 1
        side = np.int64(tr["aggressor"])
        qty = tr["qty"]
        price = tr["price"]
        ts = tr["exch_ts"]
        if side == 0 or not qty > 0.0:
            continue
        n = si[P_NTRADES]
        sd = np.sqrt(sf[SFP_MEAN + 1])
        small = n < p[6] or np.log(qty) < sf[SFP_MEAN] + p[4] * sd
        alpha = max(1.0 / (n + 1), 1.0 - 0.5 ** (1.0 / p[5]))
        delta = np.log(qty) - sf[SFP_MEAN]
        sf[SFP_MEAN] += alpha * delta
        sf[SFP_MEAN + 1] = (1.0 - alpha) * (sf[SFP_MEAN + 1] + alpha * delta * delta)
        si[P_NTRADES] = n + 1
        if small:
            continue
        if p[3] > 0.0:
            units = qty / p[3]
            if abs(units - np.round(units)) <= 1e-9 * max(1.0, units):
                continue
        tol_q = 1e-9 * qty
        tol_p = p[2] * price
        # extend a chain this trade answers (drop chains past their gap on the way)
        found = False
        k = 0
        while k < si[P_NCH]:
            if ts - ch[k, K_LAST] > gap:
                last = si[P_NCH] - 1
                ch[k, :] = ch[last, :]
                chf[k, :] = chf[last, :]
                si[P_NCH] = last
                continue
            if not found and ch[k, K_SIDE] == -side and abs(chf[k, 0] - qty) <= tol_q \
                    and abs(chf[k, 1] - price) <= tol_p:
                found = True
                ch[k, K_LAST] = ts
                ch[k, K_SIDE] = side
                ch[k, K_N] += 1
                if ch[k, K_ALERTED] == 0 and ch[k, K_N] >= p[0]:
                    ch[k, K_ALERTED] = 1
                    score = score_from_ratio(float(ch[k, K_N]), p[0], p[7])
                    emit(alerts, counts, WASH, 0, ch[k, K_FIRST], ts, ts, score, chf[k, 1], qty, -1,
                         qty * ch[k, K_N], ch[k, K_N])
            k += 1
        if not found:
            # a new chain when a recent trade of the other side had this size and price
            for r in range(TRADE_RING):
                if ring[r, 1] == -side and ts - ring[r, 0] <= gap and abs(ringf[r, 0] - qty) <= tol_q \
                        and abs(ringf[r, 1] - price) <= tol_p:
                    j = si[P_NCH]
                    if j >= MAX_CHAINS:  # full: the stalest chain gives way
                        j = 0
                        for q in range(1, MAX_CHAINS):
                            if ch[q, K_LAST] < ch[j, K_LAST]:
                                j = q
                    else:
                        si[P_NCH] = j + 1
                    ch[j, K_FIRST] = ring[r, 0]
                    ch[j, K_LAST] = ts
                    ch[j, K_SIDE] = side
                    ch[j, K_N] = 2
                    ch[j, K_ALERTED] = 0
                    chf[j, 0] = qty
                    chf[j, 1] = price
                    break
        r = si[P_RING]
        ring[r, 0] = ts
        ring[r, 1] = side
        ringf[r, 0] = qty
        ringf[r, 1] = price
        si[P_RING] = (r + 1) % TRADE_RING


DETECTOR = Detector(
    name="wash_trades",
    kinds=("wash_trades",),
    inputs=("orders",),
    params=WashTradesParams(),
    new_state=_new_state,
    kernel=wash_trades_kernel,
    metric="self-traded quantity",
    evidence={"price": "first_self_trade_price", "size": "first_self_trade_size"},
    needs=("owners",),  # a self-trade is the same owner on both sides
    description="repeated executions with the same owner on both sides",
)

PATTERN_DETECTOR = Detector(
    name="wash_trades_pattern",
    kinds=("wash_trades",),
    inputs=("trades",),
    params=WashPatternParams(),
    new_state=_new_pattern_state,
    kernel=wash_pattern_kernel,
    metric="quantity traded back and forth",
    evidence={"price": "price", "size": "repeated_size"},
    description="one size traded back and forth at one price, again and again (trades only)",
)

DETECTORS = [DETECTOR, PATTERN_DETECTOR]
