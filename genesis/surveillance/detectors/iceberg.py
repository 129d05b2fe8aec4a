"""Iceberg orders (L3): a price level refilled again and again right after each execution.

A *refill* is an add on the side and at the price of the execution just before it on that
side, no more than ``refill_window_s`` later, by the same owner when owners are known (a
venue's iceberg shows its next slice with a new order id at once; a trader re-posting by
hand takes longer and is not an iceberg). Refills of one side, price (and owner) no more
than ``max_gap_s`` apart form a chain; the alert is raised at the chain's ``min_refills``-th
refill (later refills of the chain raise nothing). Open chains are kept in a list of
``MAX_CHAINS``; when full, the stalest gives way.

Evidence: price of the level, size = quantity executed against the chain's slices so far,
level -1, metric = refills, n_events = refills + their executions, order ids = the refilled
slices (first 64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.feeds.events import EV_ADD, EV_EXECUTE, EV_EXECUTE_HIDDEN
from genesis.surveillance.base import (
    KIND_CODES, MAX_IDS_PER_ALERT, SRC_NONE, SRC_ORDER, SRC_TRADE, Detector, emit, emit_id, next_source,
    score_from_ratio,
)

ICEBERG = KIND_CODES["iceberg"]


@dataclass(frozen=True)
class IcebergParams:
    refill_window_s: float = 0.001  # s: an add this soon after an execution at its price and side is a refill
    min_refills: float = 3.0  # refills in a chain for an alert
    max_gap_s: float = 30.0  # s: refills this close belong to one chain
    saturation_refills: float = 15.0  # refills scoring 100 (50 at min_refills, log-linear)


MAX_CHAINS = 16
CHAIN_IDS = 16
# si: last execution per side (bid 0.., ask 4..): ts, owner, order id, seen flag; then chains
I_LAST = 0
I_NCHAINS = 8
SI_HEAD = 10
H_SIDE, H_OWNER, H_FIRST, H_LAST, H_N, H_ALERTED, H_NIDS, H_IDS = range(8)
NHI = H_IDS + CHAIN_IDS
# sf: last execution per side: price, qty; then chains: price, executed qty
F_LAST = 0
SF_HEAD = 4
HF_PRICE, HF_QTY = range(2)
NHF = 2


def _new_state(params: IcebergParams) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(SI_HEAD + MAX_CHAINS * NHI, np.int64), np.zeros(SF_HEAD + MAX_CHAINS * NHF, np.float64)


@nb.njit(cache=True)
def iceberg_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                   o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    ch = si[SI_HEAD:SI_HEAD + MAX_CHAINS * NHI].reshape((MAX_CHAINS, NHI))
    chf = sf[SF_HEAD:SF_HEAD + MAX_CHAINS * NHF].reshape((MAX_CHAINS, NHF))
    window = np.int64(p[0] * 1e9)
    gap = np.int64(p[2] * 1e9)
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
        kind = ev["event"]
        if ev["side"] == 0:
            continue
        s = 0 if ev["side"] > 0 else 1
        ts = ev["exch_ts"]
        if kind == EV_EXECUTE or kind == EV_EXECUTE_HIDDEN:
            si[I_LAST + 4 * s] = ts
            si[I_LAST + 4 * s + 1] = ev["owner"]
            si[I_LAST + 4 * s + 2] = ev["order_id"]
            si[I_LAST + 4 * s + 3] = 1
            sf[F_LAST + 2 * s] = ev["price"]
            sf[F_LAST + 2 * s + 1] = ev["qty"]
            continue
        if kind != EV_ADD:
            continue
        last_seen = si[I_LAST + 4 * s + 3] == 1
        si[I_LAST + 4 * s + 3] = 0  # an execution is refilled at most once
        if not last_seen or ts - si[I_LAST + 4 * s] > window or ev["price"] != sf[F_LAST + 2 * s]:
            continue
        if ev["owner"] != si[I_LAST + 4 * s + 1]:
            continue  # both NO_ID when owners are unknown
        # a refill: find its chain (drop chains past their gap)
        j = -1
        q = 0
        while q < si[I_NCHAINS]:
            if ts - ch[q, H_LAST] > gap:
                last = si[I_NCHAINS] - 1
                ch[q, :] = ch[last, :]
                chf[q, :] = chf[last, :]
                si[I_NCHAINS] = last
                continue
            if ch[q, H_SIDE] == ev["side"] and ch[q, H_OWNER] == ev["owner"] and chf[q, HF_PRICE] == ev["price"]:
                j = q
            q += 1
        if j < 0:
            if si[I_NCHAINS] >= MAX_CHAINS:
                j = 0
                for q in range(1, MAX_CHAINS):
                    if ch[q, H_LAST] < ch[j, H_LAST]:
                        j = q
            else:
                j = si[I_NCHAINS]
                si[I_NCHAINS] = j + 1
            ch[j, :] = 0
            chf[j, :] = 0.0
            ch[j, H_SIDE] = ev["side"]
            ch[j, H_OWNER] = ev["owner"]
            ch[j, H_FIRST] = si[I_LAST + 4 * s]
            chf[j, HF_PRICE] = ev["price"]
        ch[j, H_LAST] = ts
        ch[j, H_N] += 1
        chf[j, HF_QTY] += sf[F_LAST + 2 * s + 1]
        n = ch[j, H_NIDS]
        if n < CHAIN_IDS:
            ch[j, H_IDS + n] = ev["order_id"]
            ch[j, H_NIDS] = n + 1
        if ch[j, H_ALERTED] == 0 and ch[j, H_N] >= p[1]:
            ch[j, H_ALERTED] = 1
            score = score_from_ratio(float(ch[j, H_N]), p[1], p[3])
            row = emit(alerts, counts, ICEBERG, ch[j, H_SIDE], ch[j, H_FIRST], ts, ts, score, chf[j, HF_PRICE],
                       chf[j, HF_QTY], -1, float(ch[j, H_N]), 2 * ch[j, H_N])
            for a in range(min(ch[j, H_NIDS], MAX_IDS_PER_ALERT)):
                emit_id(alerts, ids, counts, row, ch[j, H_IDS + a])


DETECTOR = Detector(
    name="iceberg",
    kinds=("iceberg",),
    inputs=("orders",),
    params=IcebergParams(),
    new_state=_new_state,
    kernel=iceberg_kernel,
    metric="refills",
    evidence={"price": "level_price", "size": "executed_quantity"},
    description="a price level refilled right after each execution, again and again",
)

