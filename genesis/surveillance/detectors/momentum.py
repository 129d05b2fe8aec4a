"""Momentum ignition (trades): a burst of large aggressive orders on one side, then, within
seconds, a large aggressive reversal on the other.

Trades are grouped into aggressive orders (consecutive trades with the same time and
aggressor side: one order walking the book), an order being complete when the next trade
differs (or the stream ends). An order is *large* when its log quantity is at least
``large_z`` standard deviations above the mean of recent aggressive orders' log quantities
(EWMAs, half-life ``size_halflife`` orders): thresholds follow the venue's own size
dispersion (the simulator's sd is 0.82, real crypto futures' about 2).

A *burst* is ``min_burst_orders`` large orders on one side within ``burst_window_s``
adding up to ``min_burst_volume`` times the large-order threshold or more; it goes on while
more come within ``burst_window_s`` of its last, and its volume is that of its busiest
window (a burst sets off a cascade of followers: counting all of it would ask the reversal
to undo the market's reaction as well); it must move the trade price ``min_move_ticks`` its
way. Then, within ``reversal_timeout_s`` of the burst's last order, orders on the other side
at least ``reversal_z`` standard deviations above the mean (in log quantity), placed after
the burst began, adding up within any ``reversal_window_s`` to at least ``reversal_ratio``
of the burst's volume make the alert, raised at the order completing the reversal. One
burst is followed per side. Trades without an aggressor side are ignored. Large orders are
kept in a ring of ``RING`` (the last ones only: a degradation only for bursts of more than
``RING`` large orders within a window).

A burst that made an alert is done with: its large orders do not make another burst (a
cascade going on after the alert would otherwise report the same burst again).

Evidence: price = first trade price of the burst, size = burst volume, level = -1,
metric = reversal volume / burst volume, n_events = large orders in burst and reversal.
No order ids (trades carry none), and no trader: the score (half burst size, half reversal
strength) is capped at ``max_score`` (medium): a burst and its reversal among anonymous
trades are a pattern to look at, and on a real market they are often the market itself
(liquidations, news), so they never reach high or critical on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.surveillance.base import (
    KIND_CODES, SRC_NONE, SRC_TRADE, Detector, emit, is_final, next_source, score_from_ratio,
)

MOMENTUM = KIND_CODES["momentum_ignition"]


@dataclass(frozen=True)
class MomentumParams:
    large_z: float = 1.1  # large order: log quantity >= mean + this x sd of recent aggressive orders' log
    # quantities (EWMA); with the simulator's sd of 0.82, 2.5x the typical (geometric mean) order
    size_halflife: float = 500.0  # aggressive orders: half-life of the EWMAs of log quantity
    min_log_sd: float = 0.5  # floor of that sd (a feed of one repeated size would make every order large)
    warmup_orders: float = 100.0  # aggressive orders seen before any burst
    burst_window_s: float = 1.5  # s: window of a burst
    min_burst_orders: float = 8.0  # large same-side orders within the window for a burst ...
    min_burst_volume: float = 13.0  # ... adding up to at least this x the large-order threshold
    reversal_timeout_s: float = 8.0  # s: the reversal must complete this soon after the burst's last order
    reversal_window_s: float = 3.0  # s: window of the reversal's large orders
    reversal_ratio: float = 0.6  # reversal volume >= this x burst volume ...
    reversal_z: float = 2.2  # ... counting orders whose log quantity is >= mean + this x sd (6x typical at 0.82)
    min_move_ticks: float = 6.0  # the burst moves the trade price this many ticks its way (tick: the
    # smallest positive change between successive trade prices seen so far)
    saturation_orders: float = 15.0  # burst orders scoring 100 on the size half of the score
    max_score: float = 59.0  # scores are capped here (medium): trades name no trader, so a burst and a
    #                          reversal are a pattern for an analyst to look at, never tied to one actor


RING = 128
# si: scalars, then one burst per side (bid/buy 0, ask/sell 1) of NBI values, then the ring
I_NORDERS, I_CUR_TS, I_CUR_SIDE, I_HAVE_CUR, I_RING = range(5)
SI_BURST = 6
B_STATE, B_START, B_END, B_N, B_REPORTED = range(5)  # B_REPORTED: last order time of the side's reported burst
NBI = 5
SI_RING = SI_BURST + 2 * NBI
R_TS, R_SIDE = range(2)
NRI = 2
# sf: scalars, then one burst per side of NBF values, then the ring
F_MEAN, F_CUR_QTY, F_CUR_PX, F_CUR_LASTPX, F_TICK, F_PREVPX, F_VAR = range(7)
SF_BURST = 8
BF_VOL, BF_PX, BF_PEAK = range(3)
NBF = 3
SF_RING = SF_BURST + 2 * NBF
RF_QTY, RF_PX = range(2)
NRF = 2


def _new_state(params: MomentumParams) -> tuple[np.ndarray, np.ndarray]:
    si = np.zeros(SI_RING + RING * NRI, np.int64)
    si[SI_RING::NRI] = np.iinfo(np.int64).min // 2  # empty ring slots are infinitely old
    for side in range(2):
        si[SI_BURST + side * NBI + B_REPORTED] = np.iinfo(np.int64).min // 2  # nothing reported yet
    sf = np.zeros(SF_RING + RING * NRF, np.float64)
    sf[F_TICK] = np.inf
    sf[F_PREVPX] = np.nan
    return si, sf


@nb.njit(cache=True)
def _order(p, si, sf, ring, ringf, ts, side, qty, price, last_price, alerts, ids, counts):
    """One completed aggressive order: ``price`` of its first trade, ``last_price`` of its last."""
    n = si[I_NORDERS]
    sd = max(np.sqrt(sf[F_VAR]), p[2])
    threshold = np.exp(sf[F_MEAN] + p[0] * sd)  # of a large order
    big = np.exp(sf[F_MEAN] + p[10] * sd)  # of an order counted in a reversal
    large = n >= p[3] and qty >= threshold
    if qty > 0.0:
        alpha = max(1.0 / (n + 1), 1.0 - 0.5 ** (1.0 / p[1]))
        delta = np.log(qty) - sf[F_MEAN]
        sf[F_MEAN] += alpha * delta
        sf[F_VAR] = (1.0 - alpha) * (sf[F_VAR] + alpha * delta * delta)  # EW variance (West's update)
        si[I_NORDERS] = n + 1
    bw = np.int64(p[4] * 1e9)
    timeout = np.int64(p[7] * 1e9)
    for s in range(2):
        b = SI_BURST + s * NBI
        if si[b + B_STATE] == 1 and ts - si[b + B_END] > timeout:
            si[b + B_STATE] = 0  # no reversal in time
    if not large:
        return
    r = si[I_RING]
    ring[r, R_TS] = ts
    ring[r, R_SIDE] = side
    ringf[r, RF_QTY] = qty
    ringf[r, RF_PX] = price
    si[I_RING] = (r + 1) % RING
    # the burst of the other side: does this order complete its reversal?
    bo = SI_BURST + (1 if side > 0 else 0) * NBI
    fo = SF_BURST + (1 if side > 0 else 0) * NBF
    if si[bo + B_STATE] == 1:
        rw = np.int64(p[8] * 1e9)
        rev = 0.0
        n_rev = 0
        for k in range(RING):
            if ring[k, R_SIDE] == side and ring[k, R_TS] > si[bo + B_START] and ts - ring[k, R_TS] < rw \
                    and ringf[k, RF_QTY] >= big:
                rev += ringf[k, RF_QTY]
                n_rev += 1
        moved = -side * (sf[fo + BF_PEAK] - sf[fo + BF_PX]) >= p[11] * sf[F_TICK] - 1e-9 * abs(sf[fo + BF_PX])
        if rev >= p[9] * sf[fo + BF_VOL] and moved:
            ratio = rev / sf[fo + BF_VOL]
            score = 0.5 * score_from_ratio(float(si[bo + B_N]), p[5], p[12]) + 0.5 * score_from_ratio(ratio, p[9], 1.0)
            score = min(score, p[13])
            emit(alerts, counts, MOMENTUM, -side, si[bo + B_START], ts, ts, score, sf[fo + BF_PX], sf[fo + BF_VOL], -1,
                 ratio, si[bo + B_N] + n_rev)
            si[bo + B_STATE] = 0
            si[bo + B_REPORTED] = si[bo + B_END]  # its orders make no further burst
    # this side's burst: large orders of this side within the burst window ending now
    bs = SI_BURST + (0 if side > 0 else 1) * NBI
    fs = SF_BURST + (0 if side > 0 else 1) * NBF
    n_same = 0
    vol = 0.0
    start = ts
    px = price
    for k in range(RING):
        if ring[k, R_SIDE] == side and ts - ring[k, R_TS] < bw and ring[k, R_TS] > si[bs + B_REPORTED]:
            n_same += 1
            vol += ringf[k, RF_QTY]
            if ring[k, R_TS] < start:
                start = ring[k, R_TS]
                px = ringf[k, RF_PX]
    if si[bs + B_STATE] == 1 and ts - si[bs + B_END] <= bw:
        # the burst goes on: keep its busiest window and its furthest price
        if side * (last_price - sf[fs + BF_PEAK]) > 0:
            sf[fs + BF_PEAK] = last_price
        si[bs + B_END] = ts
        si[bs + B_N] = max(si[bs + B_N], n_same)
        sf[fs + BF_VOL] = max(sf[fs + BF_VOL], vol)
        return
    if n_same >= p[5] and vol >= p[6] * threshold:  # a new burst (replacing one over and not reversed yet)
        si[bs + B_STATE] = 1
        si[bs + B_START] = start
        si[bs + B_END] = ts
        si[bs + B_N] = n_same
        sf[fs + BF_VOL] = vol
        sf[fs + BF_PX] = px
        sf[fs + BF_PEAK] = last_price if side * (last_price - px) > 0 else px


@nb.njit(cache=True)
def momentum_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                    o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    ring = si[SI_RING:SI_RING + RING * NRI].reshape((RING, NRI))
    ringf = sf[SF_RING:SF_RING + RING * NRF].reshape((RING, NRF))
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_TRADE:
            if src == 0:
                o += 1
            else:
                b += 1
            continue
        tr = trades[t]
        t += 1
        side = np.int64(tr["aggressor"])
        if side == 0:
            continue
        step = abs(tr["price"] - sf[F_PREVPX])
        if step > 0.0:  # NaN (first trade) compares False
            sf[F_TICK] = min(sf[F_TICK], step)
        sf[F_PREVPX] = tr["price"]
        if si[I_HAVE_CUR] == 1 and tr["exch_ts"] == si[I_CUR_TS] and side == si[I_CUR_SIDE]:
            sf[F_CUR_QTY] += tr["qty"]
            sf[F_CUR_LASTPX] = tr["price"]
            continue
        if si[I_HAVE_CUR] == 1:
            _order(p, si, sf, ring, ringf, si[I_CUR_TS], si[I_CUR_SIDE], sf[F_CUR_QTY], sf[F_CUR_PX],
                   sf[F_CUR_LASTPX], alerts, ids, counts)
        si[I_HAVE_CUR] = 1
        si[I_CUR_TS] = tr["exch_ts"]
        si[I_CUR_SIDE] = side
        sf[F_CUR_QTY] = tr["qty"]
        sf[F_CUR_PX] = tr["price"]
        sf[F_CUR_LASTPX] = tr["price"]
    if is_final(counts) and si[I_HAVE_CUR] == 1:  # the stream ends: its last aggressive order is complete
        si[I_HAVE_CUR] = 0
        _order(p, si, sf, ring, ringf, si[I_CUR_TS], si[I_CUR_SIDE], sf[F_CUR_QTY], sf[F_CUR_PX],
               sf[F_CUR_LASTPX], alerts, ids, counts)


DETECTOR = Detector(
    name="momentum_ignition",
    kinds=("momentum_ignition",),
    inputs=("trades",),
    params=MomentumParams(),
    new_state=_new_state,
    kernel=momentum_kernel,
    metric="reversal volume / burst volume",
    evidence={"price": "burst_first_price", "size": "burst_volume"},
    description="a burst of large aggressive orders on one side, reversed by the other side within seconds",
)
