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
trade *echoes* an earlier one when it has the same size and a price within
``price_tolerance`` (relative) of it, comes within ``max_gap_s`` of it, and is on the other
aggressor side (buying back what was sold: the round trip of a wash). ``min_echoes``
echoes of one size within ``max_gap_s`` of each other make an alert. Sizes are compared
exactly (after rounding to ``size_decimals``): random flow rarely repeats a size to the lot,
except for round sizes, which are skipped when ``skip_round`` (sizes that are whole multiples
of ``round_size``). This is weaker evidence than ids and meant for feeds without them.
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


DETECTOR = Detector(
    name="wash_trades",
    kinds=("wash_trades",),
    inputs=("orders",),
    params=WashTradesParams(),
    new_state=_new_state,
    kernel=wash_trades_kernel,
    metric="self-traded quantity",
    evidence={"price": "first_self_trade_price", "size": "first_self_trade_size"},
    description="repeated executions with the same owner on both sides",
)

DETECTORS = [DETECTOR]
