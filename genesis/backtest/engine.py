"""The replay engine: a venue and a strategy on two clocks, in Numba, re-entrant by chunks.

Timeline. A replay array (:mod:`genesis.backtest.events`) holds every market event twice: a
venue row at ``exch_ts`` (the venue's book changes, our resting orders may fill) and a local
row at ``local_ts`` (our copy of the book changes and the strategy is woken). Orders the
strategy sends at local time ``t`` reach the venue at ``t + entry latency``; every response
(ack, fill, cancel result, reject) reaches the strategy at ``venue time + response latency``.
Latencies are constant or drawn from a seeded generator (:class:`Latency`); requests and
responses stay in FIFO order (a draw that would overtake the previous one is held behind it),
so a cancel never reaches the venue before its order. All of these happen on one time axis,
in time order; at equal times market rows come first, then order arrivals at the venue, then
responses, then the strategy's timer.

Matching, at the venue:

* Taker orders (market, or limits that cross) fill at their ARRIVAL time against the venue's
  book, walking levels from the best (one fill per level). Taking liquidity DEPLETES the
  replayed venue book: the levels we took are reduced (or removed) until the data next sets
  that level, so two orders arriving before the book is updated do not both take the same
  quantity. (Our local copy of the book is not changed: it shows what the feed shows.)
  A market or IOC remainder is cancelled (EXPIRED); a GTC remainder rests at its price.
* Post-only limits that would take are REJECTED.
* Resting (maker) orders sit in a queue. On arrival, the queue ahead is the level's quantity
  at our price. Trades at our price reduce it; what trades beyond it fills us (partial fills).
  A trade through our price (a sell below our bid, a buy above our ask) or the opposite best
  crossing our price fills the rest of the order at our price. The level shrinking below the
  queue ahead caps it (those ahead of us cancelled). :data:`QUEUE_CONSERVATIVE` stops there.
  :data:`QUEUE_PROBABILISTIC` also moves us forward on decreases of the level not explained
  by trades (cancels): a share ``front**n / (front**n + back**n)`` of the unexplained decrease
  is taken from the queue ahead (``front``) and the rest from behind us (``back``; what
  exceeds ``back`` also comes from ahead), the expected position under a power-law split as
  in hftbacktest's probabilistic queue models; ``n`` is ``QueueModel.power``. Our own orders
  are not in the replayed book, and two of our orders at one price each see the data's queue.
* Fees in bps of notional, maker and taker; negative is a rebate.

Books: both (the venue's and ours) are price ladders, a quantity per tick (O(1) level updates;
the best kept as levels come and go). The tick is given (``tick_size``) or inferred from the
first chunk's prices; prices are rebuilt as ``tick_index * num / den`` (the double nearest the
decimal price the feed sent) and order prices are rounded to the nearest tick. A ladder grows
with the prices it holds, up to MAX_LADDER ticks, then follows the best: levels further away
(stale quotes far from the market) are ignored and counted (``meta['levels_ignored']``).

Account, at the venue: position, average entry price, realized PnL by the average-cost
method, cumulative fees and turnover; the strategy's view of its position changes when the
fill's response arrives. Equity is sampled every ``equity_interval_ns`` of the local clock,
from the first local row on (state after everything strictly before the sample time), marked
to the local mid (the last one seen while the book is one-sided).

Trading mode, enforced at submission: :data:`ENTRIES_ALLOWED`, or :data:`EXITS_ONLY` where an
order is accepted only if it reduces the (locally known) position without reversing it.
:func:`reset_account` cancels everything, flattens at the venue's book and clears the account.

Re-entrancy: all state lives in the arrays of :class:`EngineState`; the engine never looks
past the last row it was given (anything due after it waits for the next chunk), so feeding a
replay in consecutive chunks gives exactly the fills and equity of feeding it whole. When a
buffer fills up mid-chunk the kernel returns, Python grows the buffer and calls again.

Strategies are cached njit functions that loop ``while next_event(E, rows) != EV_END`` and act
through this module's njit API (:func:`submit`, :func:`cancel`, :func:`best_bid`, ...); see
:mod:`genesis.strategy`. Numba caches a function by its own file only: importing
:mod:`genesis.strategy` deletes its cached kernels when this file has changed (a cached kernel holds
the engine code it was compiled with); a strategy kept elsewhere needs its ``__pycache__`` cleared.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numba as nb
import numpy as np

from genesis.backtest.events import CLEAR, DEPTH, FLAG_EXCH, FLAG_LAST, KIND_MASK, REPLAY_DTYPE, TRADE, row_time
from genesis.backtest.result import EQUITY_DTYPE, FILL_DTYPE, BacktestResult

# -- public constants ----------------------------------------------------------------------

BUY = 1
SELL = -1
# Order types and time in force.
MARKET = 0
LIMIT = 1
GTC = 0
IOC = 1
POST_ONLY = 2
# Trading modes.
ENTRIES_ALLOWED = 0
EXITS_ONLY = 1
# What next_event woke the strategy for.
EV_END = 0  # the chunk is done (or a buffer must grow): return to Python
EV_DEPTH = 1  # a depth message (or a snapshot) reached us: the local book changed
EV_TRADE = 2  # a trade reached us: last_trade_* tell which
EV_RESPONSE = 3  # a response to one of our orders: resp_* tell which
EV_TIMER = 4  # the timer set by set_timer fired
# Order statuses (venue side and local view).
S_FREE = 0
S_PENDING = 1  # sent, not yet accepted
S_OPEN = 2  # resting at the venue
S_FILLED = 3
S_CANCELLED = 4
S_REJECTED = 5  # post-only that would take
S_EXPIRED = 6  # market / IOC remainder
# Response kinds.
R_ACK = 1  # resting
R_FILL = 2  # partial fill
R_FILLED = 3  # fill that completes the order
R_CANCELLED = 4
R_EXPIRED = 5
R_REJECTED = 6
R_CANCEL_REJECTED = 7  # the cancel came too late (order already done): the fills stand
# submit() return codes below zero.
REJ_INVALID = -1
REJ_MODE = -2  # EXITS_ONLY and the order would open or increase a position
REJ_CAPACITY = -3  # max_orders working orders already
# Queue models.
QUEUE_CONSERVATIVE = 0
QUEUE_PROBABILISTIC = 1
# Latency models.
LAT_CONSTANT = 0
LAT_EMPIRICAL = 1
LAT_LOGNORMAL = 2

# -- state layout ----------------------------------------------------------------------------

(I_CURSOR, I_NOW, I_STATUS, I_NEED, I_MODE, I_NEXT_ID, I_EQ_INTERVAL, I_NEXT_EQ, I_TIMER, I_RNG,
 I_RQ_HEAD, I_RQ_TAIL, I_RS_HEAD, I_RS_TAIL, I_LAST_ARRIVAL, I_LAST_DELIVER, I_N_FILLS, I_N_EQ, I_N_USED,
 I_N_OPEN, I_X_SNAP, I_EV_SIDE, I_RESP_KIND, I_RESP_ID, I_QUEUE_MODEL, I_LAT_KIND_E, I_LAT_KIND_R, I_UNUSED,
 I_N_REJECTS, I_EV_EXCH_TS, I_EV_LOCAL_TS, I_RESP_SIDE, I_N_IGNORED, I_N_OFFGRID,
 # The four price ladders (venue bid/ask, local bid/ask): tick index of element 0, best element, levels held.
 I_XB_BASE, I_XB_BEST, I_XB_N, I_XA_BASE, I_XA_BEST, I_XA_N,
 I_LB_BASE, I_LB_BEST, I_LB_N, I_LA_BASE, I_LA_BEST, I_LA_N, I_NEED_TICK, I_LAST_ROW_T,
 # Mirrors read by the per-row path (so that it touches no other array): when the head request and
 # response are due, the tick range of our resting bids and asks, the fill buffer's capacity.
 I_RQ_DUE, I_RS_DUE, I_OB_MIN, I_OB_MAX, I_OA_MIN, I_OA_MAX, I_FL_CAP, I_RS_CAP, N_I) = range(57)
(F_POS, F_AVG, F_REAL, F_FEES, F_TURN, F_LPOS, F_LAST_MID, F_MAKER_BPS, F_TAKER_BPS, F_QPOWER, F_LAT_E_A,
 F_LAT_E_B, F_LAT_R_A, F_LAT_R_B, F_EV_PRICE, F_EV_QTY, F_RESP_QTY, F_RESP_PRICE, F_LREAL, F_LAVG,
 F_SCALE, F_TICK_NUM, F_TICK_DEN, F_LOT, N_F) = range(25)
# Order table columns.
OI_ID, OI_SIDE, OI_TYPE, OI_TIF, OI_VSTATUS, OI_LSTATUS, OI_SUBMIT_TS, OI_CANCEL_SENT, OI_TICK, N_OI = range(10)
OF_PRICE, OF_QTY, OF_LEAVES, OF_LLEAVES, OF_QUEUE, OF_CUMTRADE, OF_LFILLED, N_OF = range(8)
# Request queue columns; request kinds.
Q_TS, Q_KIND, Q_SLOT, Q_ID, N_Q = range(5)
Q_NEW, Q_CANCEL = 1, 2
# Response queue columns.
P_TS, P_KIND, P_SLOT, P_ID, N_P = range(5)
PF_QTY, PF_PRICE, N_PF = range(3)
# Fill buffer columns.
FI_EXCH, FI_LOCAL, FI_ID, FI_SIDE, FI_MAKER, N_FI = range(6)
FF_PRICE, FF_QTY, FF_FEE, FF_POS, FF_REAL, N_FF = range(6)
# Equity columns (float part).
EF_MID, EF_POS, EF_REAL, EF_UNREAL, EF_FEES, EF_EQUITY, EF_TURN, N_EF = range(8)
# Run status.
ST_DONE = 0
ST_GROW = 1
ST_DISORDER = 2

_EPS = 1e-12
_NEVER = np.iinfo(np.int64).max
_PX_TOL = 1e-9  # relative tolerance when matching an order's price to a level's

EngineState = collections.namedtuple("EngineState",
                                     "ist fst bk oi of op rq rs_i rs_f fl_i fl_f eq_i eq_f lat_e lat_r")
# Rows of ``bk``: the venue's bids and asks, the local book's bids and asks.
B_XB, B_XA, B_LB, B_LA = range(4)
EngineState.__doc__ = """All engine state, as arrays (what makes the engine re-entrant).

ist/fst: int64/float64 scalars (``I_*``/``F_*``); bk: (4, L) price ladders, the venue's bids and
asks then the local book's (``B_*``; quantity per tick: element ``i`` of ladder ``b`` is the price
``(base_b + i) * tick``, base/best/count in ist at ``I_XB_BASE + 3 * b``; 0 is no level); oi/of: the order table (max_orders, ``OI_*``/``OF_*``); op: the slots of the orders
resting at the venue (the first ist[I_N_OPEN]), so that market rows visit only those; rq: requests in flight
(``Q_*``); rs_i/rs_f: responses in flight; fl_i/fl_f: fills; eq_i/eq_f: equity samples;
lat_e/lat_r: empirical latency samples (ns) for entry and response.
"""

# The largest price ladder (ticks; 2^18 is +-21% around BTCUSDT at a 0.1 tick): levels further from the
# book than that are ignored (counted in the result's meta as levels_ignored); they are never traded.
MAX_LADDER = 1 << 18
_NO_LEVEL = -1


# -- small helpers ---------------------------------------------------------------------------

@nb.njit(cache=True)
def _rand_u01(ist):
    """Uniform in (0, 1) from a splitmix64 generator whose state is ist[I_RNG]."""
    z = np.uint64(ist[I_RNG]) + np.uint64(0x9E3779B97F4A7C15)
    ist[I_RNG] = np.int64(z)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (float(z >> np.uint64(11)) + 0.5) / 9007199254740992.0


@nb.njit(cache=True)
def _latency(ist, kind, a, b, samples):
    if kind == LAT_CONSTANT:
        return np.int64(a)
    if kind == LAT_EMPIRICAL:
        k = int(_rand_u01(ist) * samples.shape[0])
        if k >= samples.shape[0]:
            k = samples.shape[0] - 1
        return samples[k]
    # lognormal: median a ns, log-sd b (Box-Muller)
    u1 = _rand_u01(ist)
    u2 = _rand_u01(ist)
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return np.int64(a * math.exp(b * z))


@nb.njit(cache=True, inline="always")
def _tick_of(fst, price):
    """Tick index of ``price`` (nearest)."""
    return np.int64(np.floor(price * fst[F_SCALE] + 0.5))


@nb.njit(cache=True, inline="always")
def _price_of(fst, tick):
    """Price of tick index ``tick``: (tick * num) / den, the double nearest the decimal price."""
    return (tick * fst[F_TICK_NUM]) / fst[F_TICK_DEN]


@nb.njit(cache=True, inline="always")
def _set_level(bk, b, ist, i, q):
    """Set element ``i`` of ladder ``b`` to ``q``; keep its best and level count. Returns the old quantity."""
    best_i = I_XB_BEST + 3 * b
    n_i = I_XB_N + 3 * b
    old = bk[b, i]
    bk[b, i] = q
    if q > 0.0:
        if old <= 0.0:
            ist[n_i] += 1
        j = ist[best_i]
        if j == _NO_LEVEL or (i > j if b % 2 == 0 else i < j):
            ist[best_i] = i
    elif old > 0.0:
        ist[n_i] -= 1
        if i == ist[best_i]:
            if ist[n_i] == 0:
                ist[best_i] = _NO_LEVEL
            elif b % 2 == 0:
                j = i - 1
                while bk[b, j] <= 0.0:
                    j -= 1
                ist[best_i] = j
            else:
                j = i + 1
                while bk[b, j] <= 0.0:
                    j += 1
                ist[best_i] = j
    return old


@nb.njit(cache=True, inline="always")
def _clear_side(bk, b, ist):
    if ist[I_XB_N + 3 * b] > 0:
        for i in range(bk.shape[1]):
            bk[b, i] = 0.0
    ist[I_XB_N + 3 * b] = 0
    ist[I_XB_BEST + 3 * b] = _NO_LEVEL


@nb.njit(cache=True, inline="always")
def _locate(bk, b, ist, ti):
    """Element of tick ``ti`` in ladder ``b``: >= 0; -1 when the ladders must grow (or, at MAX_LADDER,
    move to a new best); -2 when ``ti`` is a worse price beyond MAX_LADDER (the level is ignored). An
    empty ladder is re-centred on ``ti`` for free."""
    base_i = I_XB_BASE + 3 * b
    i = ti - ist[base_i]
    size = bk.shape[1]
    if 0 <= i < size:
        return i
    if ist[I_XB_N + 3 * b] == 0:
        ist[base_i] = ti - size // 2
        return size // 2
    if size < MAX_LADDER:
        return -1
    # At full size the window follows the best: a better price moves it; a worse one that far is ignored.
    best = ist[base_i] + ist[I_XB_BEST + 3 * b]
    return -1 if (ti > best if b % 2 == 0 else ti < best) else -2


@nb.njit(cache=True)
def _level_at(E, side, ti):
    """Venue quantity at tick ``ti`` on ``side`` (0 when none)."""
    b = B_XB if side > 0 else B_XA
    i = ti - E.ist[I_XB_BASE + 3 * b]
    return E.bk[b, i] if 0 <= i < E.bk.shape[1] else 0.0


@nb.njit(cache=True)
def _venue_best_bid(E):
    b = E.ist[I_XB_BEST]
    return _price_of(E.fst, E.ist[I_XB_BASE] + b) if b != _NO_LEVEL else np.nan


@nb.njit(cache=True)
def _venue_best_ask(E):
    b = E.ist[I_XA_BEST]
    return _price_of(E.fst, E.ist[I_XA_BASE] + b) if b != _NO_LEVEL else np.nan


@nb.njit(cache=True)
def _venue_level(E, side, price):
    """Venue quantity at ``price`` on ``side`` (0 when none)."""
    return _level_at(E, side, _tick_of(E.fst, price))


# -- responses, fills, account ---------------------------------------------------------------

@nb.njit(cache=True)
def _push_response(E, t, kind, slot, order_id, qty, price):
    """Queue a response produced at venue time ``t``; returns its local delivery time."""
    ist = E.ist
    deliver = t + _latency(ist, ist[I_LAT_KIND_R], E.fst[F_LAT_R_A], E.fst[F_LAT_R_B], E.lat_r)
    if deliver < ist[I_LAST_DELIVER]:
        deliver = ist[I_LAST_DELIVER]  # FIFO: responses do not overtake one another
    ist[I_LAST_DELIVER] = deliver
    if ist[I_RS_TAIL] == E.rs_i.shape[0]:  # compact (the caller checked there is room)
        h = ist[I_RS_HEAD]
        m = ist[I_RS_TAIL] - h
        for j in range(m):  # element by element: no array views (kernels may run without Numba's runtime)
            for col in range(N_P):
                E.rs_i[j, col] = E.rs_i[h + j, col]
            for col in range(N_PF):
                E.rs_f[j, col] = E.rs_f[h + j, col]
        ist[I_RS_HEAD] = 0
        ist[I_RS_TAIL] = m
    k = ist[I_RS_TAIL]
    if k == ist[I_RS_HEAD]:
        ist[I_RS_DUE] = deliver  # the queue was empty: this one is next
    E.rs_i[k, P_TS] = deliver
    E.rs_i[k, P_KIND] = kind
    E.rs_i[k, P_SLOT] = slot
    E.rs_i[k, P_ID] = order_id
    E.rs_f[k, PF_QTY] = qty
    E.rs_f[k, PF_PRICE] = price
    ist[I_RS_TAIL] = k + 1
    return deliver


@nb.njit(cache=True)
def _book_fill(pos, avg, real, side, price, qty):
    """Average-cost accounting of one fill: returns (position, average price, realized PnL)."""
    if pos == 0.0 or (pos > 0.0) == (side > 0):
        new_pos = pos + side * qty
        return new_pos, (avg * abs(pos) + price * qty) / abs(new_pos), real
    closing = min(qty, abs(pos))
    real += closing * (price - avg) * (1.0 if pos > 0.0 else -1.0)
    new_pos = pos + side * qty
    if abs(new_pos) <= _EPS:
        return 0.0, 0.0, real
    if (new_pos > 0.0) != (pos > 0.0):
        return new_pos, price, real  # reversed: the rest opens at this price
    return new_pos, avg, real


@nb.njit(cache=True)
def _record_fill(E, t, order_id, side, price, qty, maker, deliver):
    ist, fst = E.ist, E.fst
    fee = price * qty * (fst[F_MAKER_BPS] if maker else fst[F_TAKER_BPS]) * 1e-4
    fst[F_POS], fst[F_AVG], fst[F_REAL] = _book_fill(fst[F_POS], fst[F_AVG], fst[F_REAL], side, price, qty)
    fst[F_FEES] += fee
    fst[F_TURN] += price * qty
    k = ist[I_N_FILLS]
    E.fl_i[k, FI_EXCH] = t
    E.fl_i[k, FI_LOCAL] = deliver
    E.fl_i[k, FI_ID] = order_id
    E.fl_i[k, FI_SIDE] = side
    E.fl_i[k, FI_MAKER] = 1 if maker else 0
    E.fl_f[k, FF_PRICE] = price
    E.fl_f[k, FF_QTY] = qty
    E.fl_f[k, FF_FEE] = fee
    E.fl_f[k, FF_POS] = fst[F_POS]
    E.fl_f[k, FF_REAL] = fst[F_REAL]
    ist[I_N_FILLS] = k + 1


@nb.njit(cache=True)
def _open_bounds(E):
    """Tick range of our resting bids and asks (empty: min > max), for the per-row path."""
    ist = E.ist
    ist[I_OB_MIN] = ist[I_OA_MIN] = 1 << 62
    ist[I_OB_MAX] = ist[I_OA_MAX] = -(1 << 62)
    for j in range(ist[I_N_OPEN]):
        s = E.op[j]
        ti = E.oi[s, OI_TICK]
        if E.oi[s, OI_SIDE] > 0:
            ist[I_OB_MIN] = min(ist[I_OB_MIN], ti)
            ist[I_OB_MAX] = max(ist[I_OB_MAX], ti)
        else:
            ist[I_OA_MIN] = min(ist[I_OA_MIN], ti)
            ist[I_OA_MAX] = max(ist[I_OA_MAX], ti)


@nb.njit(cache=True)
def _open_add(E, slot):
    E.op[E.ist[I_N_OPEN]] = slot
    E.ist[I_N_OPEN] += 1
    _open_bounds(E)


@nb.njit(cache=True)
def _open_remove(E, slot):
    """Take ``slot`` out of the resting list (the last one takes its place)."""
    n = E.ist[I_N_OPEN]
    for j in range(n):
        if E.op[j] == slot:
            E.op[j] = E.op[n - 1]
            E.ist[I_N_OPEN] = n - 1
            break
    _open_bounds(E)


@nb.njit(cache=True)
def _fill_order(E, slot, t, price, qty, maker):
    """Fill ``qty`` of the order in ``slot`` at ``price`` (venue time ``t``): account, fill row, response."""
    oi, of = E.oi, E.of
    of[slot, OF_LEAVES] -= qty
    done = of[slot, OF_LEAVES] <= _EPS * max(1.0, of[slot, OF_QTY])
    if done:
        of[slot, OF_LEAVES] = 0.0
        if oi[slot, OI_VSTATUS] == S_OPEN:
            _open_remove(E, slot)
        oi[slot, OI_VSTATUS] = S_FILLED
    deliver = _push_response(E, t, R_FILLED if done else R_FILL, slot, oi[slot, OI_ID], qty, price)
    _record_fill(E, t, oi[slot, OI_ID], oi[slot, OI_SIDE], price, qty, maker, deliver)
    return done


@nb.njit(cache=True)
def _take(E, slot, t, limit_tick, has_limit):
    """Walk the venue's opposite side for the order in ``slot`` (up to ``limit_tick``), depleting it."""
    ist, fst, oi, of = E.ist, E.fst, E.oi, E.of
    side = oi[slot, OI_SIDE]
    bk = E.bk
    lb = B_XA if side > 0 else B_XB
    base_i, best_i = I_XB_BASE + 3 * lb, I_XB_BEST + 3 * lb
    while of[slot, OF_LEAVES] > 0.0 and ist[best_i] != _NO_LEVEL:
        b = ist[best_i]
        ti = ist[base_i] + b
        if has_limit and (ti > limit_tick if side > 0 else ti < limit_tick):
            break
        avail = bk[lb, b]
        q = min(avail, of[slot, OF_LEAVES])
        rest = avail - q
        if rest <= _EPS * max(1.0, avail):
            _set_level(bk, lb, ist, b, 0.0)  # taken out until the data sets it again
        else:
            bk[lb, b] = rest
        if _fill_order(E, slot, t, _price_of(fst, ti), q, False):
            return True
    return False


@nb.njit(cache=True)
def _finish(E, slot, t, status, kind):
    """End the order in ``slot`` at the venue with ``status`` and tell the strategy."""
    oi = E.oi
    if oi[slot, OI_VSTATUS] == S_OPEN:
        _open_remove(E, slot)
    oi[slot, OI_VSTATUS] = status
    _push_response(E, t, kind, slot, oi[slot, OI_ID], E.of[slot, OF_LEAVES], E.of[slot, OF_PRICE])


@nb.njit(cache=True)
def _arrive(E, t):
    """The request at the head of the queue reaches the venue at ``t``."""
    ist, oi, of = E.ist, E.oi, E.of
    h = ist[I_RQ_HEAD]
    kind, slot, order_id = E.rq[h, Q_KIND], E.rq[h, Q_SLOT], E.rq[h, Q_ID]
    ist[I_RQ_HEAD] = h + 1
    ist[I_RQ_DUE] = E.rq[h + 1, Q_TS] if h + 1 < ist[I_RQ_TAIL] else _NEVER
    if kind == Q_CANCEL:
        if oi[slot, OI_ID] == order_id and oi[slot, OI_VSTATUS] == S_OPEN:
            _finish(E, slot, t, S_CANCELLED, R_CANCELLED)
        else:
            _push_response(E, t, R_CANCEL_REJECTED, slot, order_id, 0.0, np.nan)
        return
    side, price, ti = oi[slot, OI_SIDE], of[slot, OF_PRICE], oi[slot, OI_TICK]
    if oi[slot, OI_TYPE] == MARKET:
        if not _take(E, slot, t, 0, False):
            _finish(E, slot, t, S_EXPIRED, R_EXPIRED)
        return
    if side > 0:
        b = ist[I_XA_BEST]
        crosses = b != _NO_LEVEL and ist[I_XA_BASE] + b <= ti
    else:
        b = ist[I_XB_BEST]
        crosses = b != _NO_LEVEL and ist[I_XB_BASE] + b >= ti
    tif = oi[slot, OI_TIF]
    if crosses:
        if tif == POST_ONLY:
            _finish(E, slot, t, S_REJECTED, R_REJECTED)
            return
        if _take(E, slot, t, ti, True):
            return
    if tif == IOC:
        _finish(E, slot, t, S_EXPIRED, R_EXPIRED)
        return
    oi[slot, OI_VSTATUS] = S_OPEN
    _open_add(E, slot)
    of[slot, OF_QUEUE] = _level_at(E, side, ti)
    of[slot, OF_CUMTRADE] = 0.0
    _push_response(E, t, R_ACK, slot, order_id, of[slot, OF_LEAVES], price)


@nb.njit(cache=True)
def _deliver(E):
    """The response at the head of the queue reaches the strategy: update its view of the order."""
    ist, fst, oi, of = E.ist, E.fst, E.oi, E.of
    h = ist[I_RS_HEAD]
    kind, slot, order_id = E.rs_i[h, P_KIND], E.rs_i[h, P_SLOT], E.rs_i[h, P_ID]
    qty, price = E.rs_f[h, PF_QTY], E.rs_f[h, PF_PRICE]
    ist[I_RS_HEAD] = h + 1
    ist[I_RS_DUE] = E.rs_i[h + 1, P_TS] if h + 1 < ist[I_RS_TAIL] else _NEVER
    ist[I_RESP_KIND] = kind
    ist[I_RESP_ID] = order_id
    ist[I_RESP_SIDE] = oi[slot, OI_SIDE]
    fst[F_RESP_QTY] = qty
    fst[F_RESP_PRICE] = price
    if oi[slot, OI_ID] != order_id:  # cleared by a reset meanwhile
        return
    final = False
    if kind == R_ACK:
        if oi[slot, OI_LSTATUS] == S_PENDING:
            oi[slot, OI_LSTATUS] = S_OPEN
    elif kind == R_FILL or kind == R_FILLED:
        side = oi[slot, OI_SIDE]
        of[slot, OF_LLEAVES] -= qty
        of[slot, OF_LFILLED] += qty
        fst[F_LPOS], fst[F_LAVG], fst[F_LREAL] = _book_fill(fst[F_LPOS], fst[F_LAVG], fst[F_LREAL], side, price, qty)
        if kind == R_FILLED:
            oi[slot, OI_LSTATUS] = S_FILLED
            final = True
    elif kind == R_CANCEL_REJECTED:
        oi[slot, OI_CANCEL_SENT] = 0
    else:
        oi[slot, OI_LSTATUS] = S_CANCELLED if kind == R_CANCELLED else (S_REJECTED if kind == R_REJECTED else S_EXPIRED)
        final = True
    if final:  # both sides are done with this order: the slot is free again
        oi[slot, OI_VSTATUS] = S_FREE
        oi[slot, OI_LSTATUS] = S_FREE
        oi[slot, OI_ID] = -1
        ist[I_N_USED] -= 1


# -- market rows ---------------------------------------------------------------------------------

@nb.njit(cache=True)
def _queue_on_depth(E, side, ti, prev, new):
    """Our resting orders at (side, tick) after the venue's level went from ``prev`` to ``new``."""
    oi, of = E.oi, E.of
    probabilistic = E.ist[I_QUEUE_MODEL] == QUEUE_PROBABILISTIC
    power = E.fst[F_QPOWER]
    for j in range(E.ist[I_N_OPEN]):
        s = E.op[j]
        if oi[s, OI_SIDE] != side or oi[s, OI_TICK] != ti:
            continue
        front = of[s, OF_QUEUE]
        traded = of[s, OF_CUMTRADE]
        of[s, OF_CUMTRADE] = 0.0
        if probabilistic:
            unexplained = (prev - new) - traded
            if unexplained > 0.0 and front > 0.0:
                back = max(prev - traded - front, 0.0)
                fp = front ** power
                bp = back ** power
                share = fp / (fp + bp) if fp + bp > 0.0 else 1.0
                front = front - share * unexplained
                from_back = (1.0 - share) * unexplained
                if from_back > back:
                    front -= from_back - back
        if front > new:
            front = new
        if front < 0.0:
            front = 0.0
        of[s, OF_QUEUE] = front


@nb.njit(cache=True)
def _cross_fills(E, t):
    """Resting orders that the opposite best now crosses fill at their own price."""
    ist, oi, of = E.ist, E.oi, E.of
    bid = ist[I_XB_BASE] + ist[I_XB_BEST] if ist[I_XB_BEST] != _NO_LEVEL else -(1 << 62)
    ask = ist[I_XA_BASE] + ist[I_XA_BEST] if ist[I_XA_BEST] != _NO_LEVEL else 1 << 62
    for j in range(ist[I_N_OPEN] - 1, -1, -1):  # backwards: a filled order is replaced by one already seen
        s = E.op[j]
        ti = oi[s, OI_TICK]
        if (oi[s, OI_SIDE] > 0 and ask <= ti) or (oi[s, OI_SIDE] < 0 and bid >= ti):
            _fill_order(E, s, t, of[s, OF_PRICE], of[s, OF_LEAVES], True)


@nb.njit(cache=True)
def _queue_on_trade(E, t, aggressor, ti, qty):
    """A market trade at the venue: our resting orders it reaches fill (maker)."""
    oi, of = E.oi, E.of
    for j in range(E.ist[I_N_OPEN] - 1, -1, -1):  # backwards: a filled order is replaced by one already seen
        s = E.op[j]
        side = oi[s, OI_SIDE]
        if aggressor == side:  # a buyer's trade cannot fill our bid
            continue
        mine = oi[s, OI_TICK]
        if ti == mine:
            of[s, OF_CUMTRADE] += qty
            ahead = of[s, OF_QUEUE]
            if qty > ahead:
                of[s, OF_QUEUE] = 0.0
                _fill_order(E, s, t, of[s, OF_PRICE], min(qty - ahead, of[s, OF_LEAVES]), True)
            else:
                of[s, OF_QUEUE] = ahead - qty
        elif (side > 0 and ti < mine) or (side < 0 and ti > mine):  # traded through our price
            _fill_order(E, s, t, of[s, OF_PRICE], of[s, OF_LEAVES], True)


@nb.njit(cache=True)
def _after_venue_message(E, t, kind):
    """End of a venue message while we have resting orders: snapshot queues, crossing fills."""
    ist = E.ist
    if ist[I_X_SNAP] == 1:
        ist[I_X_SNAP] = 0
        # A snapshot replaced the book: cap each queue ahead by its level as the snapshot shows it.
        for j in range(ist[I_N_OPEN]):
            s = E.op[j]
            E.of[s, OF_QUEUE] = min(E.of[s, OF_QUEUE], _level_at(E, E.oi[s, OI_SIDE], E.oi[s, OI_TICK]))
            E.of[s, OF_CUMTRADE] = 0.0
    if kind != TRADE and ist[I_N_OPEN] > 0:
        _cross_fills(E, t)


@nb.njit(cache=True)
def _record_equity(E, ts):
    ist, fst = E.ist, E.fst
    m = mid(E)
    if not np.isnan(m):
        fst[F_LAST_MID] = m
    mark = fst[F_LAST_MID]
    unreal = fst[F_POS] * (mark - fst[F_AVG]) if fst[F_POS] != 0.0 else 0.0
    k = ist[I_N_EQ]
    E.eq_i[k] = ts
    E.eq_f[k, EF_MID] = mark
    E.eq_f[k, EF_POS] = fst[F_POS]
    E.eq_f[k, EF_REAL] = fst[F_REAL]
    E.eq_f[k, EF_UNREAL] = unreal
    E.eq_f[k, EF_FEES] = fst[F_FEES]
    E.eq_f[k, EF_EQUITY] = fst[F_REAL] + unreal - fst[F_FEES]
    E.eq_f[k, EF_TURN] = fst[F_TURN]
    ist[I_N_EQ] = k + 1


@nb.njit(cache=True)
def _first_held(bk, b, j, step):
    """First element from ``j`` on (moving by ``step``) holding a level; the ladder must hold one there."""
    while not bk[b, j] > 0.0:
        j += step
    return j


@nb.njit(cache=True)
def _recentre_full(bk, ist, which, ti):
    """:func:`_grown_ladders` for ladders already at MAX_LADDER, in place: the same new bases, the same
    levels dropped and counted, without a new array (allocating and first touching 8 MiB each time the
    window follows a far price cost more than the rest of a replay). Each ladder keeps its levels
    re-centred on them while they fit, else its window follows its best (``ti`` for ladder ``which``)."""
    size = bk.shape[1]
    for b in range(4):
        base_i, best_i, n_i = I_XB_BASE + 3 * b, I_XB_BEST + 3 * b, I_XB_N + 3 * b
        base = ist[base_i]
        bid = b % 2 == 0
        n = ist[n_i]
        if n > 0:
            best = ist[best_i]
            lo_j = _first_held(bk, b, 0, 1) if bid else best
            hi_j = best if bid else _first_held(bk, b, size - 1, -1)
            lo, hi = base + lo_j, base + hi_j
        else:
            lo_j, hi_j = 0, -1
            lo, hi = ti, ti
        if b == which:
            lo, hi = min(lo, ti), max(hi, ti)
        if hi - lo + 1 <= size:
            new_base = (lo + hi) // 2 - size // 2
        else:
            best_t = base + ist[best_i] if ist[best_i] != _NO_LEVEL else ti
            if b == which:
                best_t = max(best_t, ti) if bid else min(best_t, ti)
            new_base = best_t - size + size // 8 if bid else best_t - size // 8
        shift = new_base - base  # element j moves to j - shift
        ist[base_i] = new_base
        if n == 0 or shift == 0:
            continue
        # One pass over the held span, away from where levels land (each lands on a slot already
        # visited and emptied): levels leaving the window are dropped (and counted), the others move
        # by -shift; every visited slot is left empty unless a level landed on it.
        dropped = 0
        start, stop, step = (lo_j, hi_j + 1, 1) if shift > 0 else (hi_j, lo_j - 1, -1)
        for j in range(start, stop, step):
            v = bk[b, j]
            if v != 0.0:
                bk[b, j] = 0.0
                if v > 0.0:
                    if 0 <= j - shift < size:
                        bk[b, j - shift] = v
                    else:
                        dropped += 1
        ist[n_i] = n - dropped
        ist[I_N_IGNORED] += dropped
        if ist[n_i] == 0:
            ist[best_i] = _NO_LEVEL
        else:
            kb = ist[best_i] - shift
            if kb < 0 or kb >= size or not bk[b, kb] > 0.0:  # the best left the window: the next held one
                kb = _first_held(bk, b, size - 1, -1) if bid else _first_held(bk, b, 0, 1)
            ist[best_i] = kb


@nb.njit(cache=True)
def _grow(ist, what, need):
    ist[I_STATUS] = ST_GROW
    ist[I_NEED] = what * 1_000_000_000_000 + need  # which buffer (2 fills/responses, 3 equity) and size
    return EV_END


@nb.njit(cache=True)
def _grow_ladder(ist, which, ti):
    """Price ladder ``which`` (B_XB, B_XA, B_LB, B_LA) must reach tick ``ti``."""
    ist[I_STATUS] = ST_GROW
    ist[I_NEED] = 1 * 1_000_000_000_000 + which
    ist[I_NEED_TICK] = ti
    return EV_END


@nb.njit(cache=True, inline="always")
def _ladder_set(bk, b, bid, i, q, n, best):
    """:func:`_set_level` on ladder ``b`` (a constant where it is called) with its level count and best
    element held by the caller: returns the new (n, best). The count is updated without a branch (a
    level appears or goes at random in the feed) and the best only moves when a level beats it or
    the best level goes."""
    old = bk[b, i]
    bk[b, i] = q
    add = q > 0.0
    had = old > 0.0
    n += np.int64(add & (old <= 0.0)) - np.int64(had & (not add))
    # No level is best = -1: below every element for bids, above every one for asks as unsigned.
    # The rare conditions first: each test is a branch, and whether a level comes or goes is random.
    if ((i > best) if bid else (np.uint64(i) < np.uint64(best))) and add:
        best = i
    elif i == best and had and not add:
        if n == 0:
            best = _NO_LEVEL
        elif bid:
            best = i - 1
            while bk[b, best] <= 0.0:
                best -= 1
        else:
            best = i + 1
            while bk[b, best] <= 0.0:
                best += 1
    return n, best


@nb.njit(cache=True)
def _quiet_rows(ist, bk, rows, c, n, scale):
    """Replay rows from ``c`` on while each of them only sets a level of a book, exactly as the
    general path of :func:`next_event` would; returns the first row that needs the general path
    (anything due before it, a message end that wakes the strategy or may cross our orders, a level
    holding one of our orders, a trade, a snapshot, a price off the ladder or off the tick grid, rows
    out of order). The four ladders' counts and bests live in locals here (written back on return):
    kept in ``ist`` they chain every row's update to the last through memory."""
    last_t = ist[I_LAST_ROW_T]
    due = min(ist[I_RQ_DUE], ist[I_RS_DUE], ist[I_TIMER], ist[I_NEXT_EQ] - 1)
    local_ok = not (ist[I_NEXT_EQ] == _NEVER and ist[I_EQ_INTERVAL] > 0)
    open_orders = ist[I_N_OPEN] > 0
    watch_last = open_orders or ist[I_X_SNAP] == 1
    ob_min, ob_max, oa_min, oa_max = ist[I_OB_MIN], ist[I_OB_MAX], ist[I_OA_MIN], ist[I_OA_MAX]
    size = bk.shape[1]
    base0, base1, base2, base3 = ist[I_XB_BASE], ist[I_XA_BASE], ist[I_LB_BASE], ist[I_LA_BASE]
    n0, n1, n2, n3 = ist[I_XB_N], ist[I_XA_N], ist[I_LB_N], ist[I_LA_N]
    best0, best1, best2, best3 = ist[I_XB_BEST], ist[I_XA_BEST], ist[I_LB_BEST], ist[I_LA_BEST]
    ignored = 0
    while c < n:
        r = rows[c]
        k = r.kind
        is_exch = (k & FLAG_EXCH) != 0
        t = r.exch_ts if is_exch else r.local_ts
        if t < last_t or t > due:
            break
        if (k & KIND_MASK) != DEPTH:
            if (k & KIND_MASK) == TRADE and is_exch and not watch_last:
                last_t = t  # a trade at the venue fills nothing while we have no order there
                c += 1
                continue
            break
        last = (k & FLAG_LAST) != 0
        if is_exch:
            if last and watch_last:
                break
        elif last or not local_ok:
            break
        x = r.price * scale
        ti = np.int64(np.floor(x + 0.5))
        if abs(x - ti) > 1e-6:
            break
        q = r.qty
        side = r.side
        b = (0 if side > 0 else 1) + (0 if is_exch else 2)
        base = base0 if b == 0 else (base1 if b == 1 else (base2 if b == 2 else base3))
        i = ti - base
        if i < 0 or i >= size:
            # Beyond a full-size ladder on the far side of its best: _locate ignores the level.
            nb_ = n0 if b == 0 else (n1 if b == 1 else (n2 if b == 2 else n3))
            bb_ = best0 if b == 0 else (best1 if b == 1 else (best2 if b == 2 else best3))
            if size < MAX_LADDER or nb_ == 0 or ((ti > base + bb_) if side > 0 else (ti < base + bb_)):
                break
            ignored += 1
        elif b == 0:
            if open_orders and ob_min <= ti <= ob_max:
                break
            n0, best0 = _ladder_set(bk, 0, True, i, q, n0, best0)
        elif b == 1:
            if open_orders and oa_min <= ti <= oa_max:
                break
            n1, best1 = _ladder_set(bk, 1, False, i, q, n1, best1)
        elif b == 2:
            n2, best2 = _ladder_set(bk, 2, True, i, q, n2, best2)
        else:
            n3, best3 = _ladder_set(bk, 3, False, i, q, n3, best3)
        last_t = t
        c += 1
    ist[I_LAST_ROW_T] = last_t
    ist[I_N_IGNORED] += ignored
    ist[I_XB_N], ist[I_XA_N], ist[I_LB_N], ist[I_LA_N] = n0, n1, n2, n3
    ist[I_XB_BEST], ist[I_XA_BEST], ist[I_LB_BEST], ist[I_LA_BEST] = best0, best1, best2, best3
    return c


# -- the strategy-facing API ------------------------------------------------------------------------

@nb.njit(cache=True, inline="always")
def next_event(E, rows):
    """Advance the replay until something the strategy sees happens; returns an ``EV_*`` code.

    E: :class:`EngineState`; rows: the current chunk (REPLAY_DTYPE). Returns :data:`EV_END`
    when the chunk is exhausted (or a buffer must grow): the strategy kernel must return then.
    """
    # The per-row path touches only ist, fst, bk and the row: every array taken out of E costs a
    # reference count on each call, and this function is entered once per market message.
    ist, fst, bk = E.ist, E.fst, E.bk
    scale = fst[F_SCALE]
    n = rows.shape[0]
    c = ist[I_CURSOR] - 1
    while True:
        c = _quiet_rows(ist, bk, rows, c + 1, n, scale)
        ist[I_CURSOR] = c  # the row about to be handled (each return leaves the cursor on the next row)
        if c >= n:
            ist[I_STATUS] = ST_DONE
            if ist[I_LAST_ROW_T] > ist[I_NOW]:
                ist[I_NOW] = ist[I_LAST_ROW_T]  # the replay has reached its last row
            return EV_END
        r = rows[c]
        k = r.kind
        is_exch = (k & FLAG_EXCH) != 0
        t = r.exch_ts if is_exch else r.local_ts
        if t < ist[I_LAST_ROW_T]:
            ist[I_STATUS] = ST_DISORDER  # rows out of time order: Python raises, naming the row
            return EV_END
        ist[I_LAST_ROW_T] = t
        what = 0
        if ist[I_RQ_DUE] < t:
            t = ist[I_RQ_DUE]
            what = 1
        if ist[I_RS_DUE] < t:
            t = ist[I_RS_DUE]
            what = 2
        if ist[I_TIMER] < t:
            t = ist[I_TIMER]
            what = 3
        if what != 0:
            c -= 1  # the row waits for this item
        # Equity samples due before anything at time t happens.
        if ist[I_NEXT_EQ] <= t:
            while ist[I_NEXT_EQ] <= t:
                if ist[I_N_EQ] >= E.eq_i.shape[0]:
                    return _grow(ist, 3, E.eq_i.shape[0] * 2)
                _record_equity(E, ist[I_NEXT_EQ])
                ist[I_NEXT_EQ] += ist[I_EQ_INTERVAL]
        elif ist[I_NEXT_EQ] == _NEVER and ist[I_EQ_INTERVAL] > 0 and what == 0 and not is_exch:
            interval = ist[I_EQ_INTERVAL]
            ist[I_NEXT_EQ] = -((-t) // interval) * interval  # the local clock starts with its first row
            c -= 1
            continue
        # Room for whatever this step can write (one fill and response per level walked or order reached);
        # nothing can fill while we have no order.
        if what != 0 or ist[I_N_USED] > 0:
            need = ist[I_N_USED] + 8 + (ist[I_XB_N] + ist[I_XA_N] if what == 1 else 0)
            if ist[I_N_FILLS] + need > ist[I_FL_CAP] or (ist[I_RS_TAIL] - ist[I_RS_HEAD]) + need > ist[I_RS_CAP]:
                return _grow(ist, 2, max(ist[I_FL_CAP], ist[I_RS_CAP]) * 2 + need)
        if what == 0:
            kind = k & KIND_MASK
            if kind == DEPTH:
                x = r.price * scale
                ti = np.int64(np.floor(x + 0.5))
                if abs(x - ti) > 1e-6:
                    ist[I_N_OFFGRID] += 1
                side = r.side
                b = (0 if side > 0 else 1) + (0 if is_exch else 2)
                i = _locate(bk, b, ist, ti)
                if i == -1 and bk.shape[1] == MAX_LADDER:
                    _recentre_full(bk, ist, b, ti)  # the window follows the best, in place
                    i = _locate(bk, b, ist, ti)
                if i == -1:
                    return _grow_ladder(ist, b, ti)
                if i >= 0:
                    old = _set_level(bk, b, ist, i, r.qty)
                    if is_exch and ist[I_N_OPEN] > 0 and ist[I_X_SNAP] == 0 and (
                            (side > 0 and ist[I_OB_MIN] <= ti <= ist[I_OB_MAX])
                            or (side < 0 and ist[I_OA_MIN] <= ti <= ist[I_OA_MAX])):
                        ist[I_NOW] = t
                        _queue_on_depth(E, side, ti, old, r.qty)  # a level holding one of our orders
                else:
                    ist[I_N_IGNORED] += 1
            elif kind == CLEAR:
                if is_exch:
                    _clear_side(bk, B_XB, ist)
                    _clear_side(bk, B_XA, ist)
                    ist[I_X_SNAP] = 1
                else:
                    _clear_side(bk, B_LB, ist)
                    _clear_side(bk, B_LA, ist)
            elif is_exch:
                if ist[I_N_OPEN] > 0:
                    ti = _tick_of(fst, r.price)
                    a = r.side  # only a trade at or through one of our prices matters
                    if (a != 1 and ti <= ist[I_OB_MAX]) or (a != -1 and ti >= ist[I_OA_MIN]):
                        ist[I_NOW] = t
                        _queue_on_trade(E, t, a, ti, r.qty)
            else:
                fst[F_EV_PRICE] = r.price
                fst[F_EV_QTY] = r.qty
                ist[I_EV_SIDE] = r.side
            if is_exch:
                if (k & FLAG_LAST) and (ist[I_N_OPEN] > 0 or ist[I_X_SNAP] == 1):
                    crossing = ist[I_X_SNAP] == 1
                    if not crossing and kind != TRADE:
                        bid = ist[I_XB_BASE] + ist[I_XB_BEST] if ist[I_XB_BEST] != _NO_LEVEL else -(1 << 62)
                        ask = ist[I_XA_BASE] + ist[I_XA_BEST] if ist[I_XA_BEST] != _NO_LEVEL else 1 << 62
                        crossing = ask <= ist[I_OB_MAX] or bid >= ist[I_OA_MIN]
                    if crossing:
                        ist[I_NOW] = t
                        _after_venue_message(E, t, kind)
                continue
            if k & FLAG_LAST:
                ist[I_CURSOR] = c + 1
                ist[I_NOW] = t
                ist[I_EV_EXCH_TS] = r.exch_ts
                ist[I_EV_LOCAL_TS] = r.local_ts
                return EV_TRADE if kind == TRADE else EV_DEPTH
        elif what == 1:
            ist[I_NOW] = t
            _arrive(E, t)
        elif what == 2:
            ist[I_CURSOR] = c + 1
            ist[I_NOW] = t
            _deliver(E)
            return EV_RESPONSE
        else:
            ist[I_CURSOR] = c + 1
            ist[I_NOW] = t
            ist[I_TIMER] = _NEVER
            return EV_TIMER


@nb.njit(cache=True, inline="always")
def _find_slot(E, order_id):
    oi = E.oi
    m = oi.shape[0]
    s = order_id % m
    if oi[s, OI_ID] == order_id:
        return s
    for s in range(m):
        if oi[s, OI_ID] == order_id:
            return s
    return -1


@nb.njit(cache=True)
def submit(E, side, price, qty, order_type, tif):
    """Send an order at the current local time; returns its id (>= 0) or a ``REJ_*`` code (< 0).

    side: BUY (1) / SELL (-1); price: limit price, rounded to the nearest tick (ignored for
    MARKET); qty > 0 (base units), a whole number of lots when the lot size is known;
    order_type: MARKET / LIMIT; tif: GTC / IOC / POST_ONLY (LIMIT only; a MARKET order is IOC).
    In EXITS_ONLY mode an order must reduce the locally known position without reversing it.
    """
    ist, fst, oi, of = E.ist, E.fst, E.oi, E.of
    if not (side == 1 or side == -1) or not (qty > 0.0) or (order_type == LIMIT and not (price > 0.0)) \
            or not (order_type == MARKET or order_type == LIMIT) or tif < 0 or tif > 2:
        ist[I_N_REJECTS] += 1
        return REJ_INVALID
    lot = fst[F_LOT]
    if lot > 0.0 and abs(qty / lot - np.floor(qty / lot + 0.5)) > 1e-9 * max(1.0, qty / lot):
        # Not a whole number of lots: the venue rejects it (Binance's LOT_SIZE filter).
        ist[I_N_REJECTS] += 1
        return REJ_INVALID
    if ist[I_MODE] == EXITS_ONLY:
        pos = fst[F_LPOS]
        if side * pos >= 0.0 or qty > abs(pos) * (1 + 1e-9):
            ist[I_N_REJECTS] += 1
            return REJ_MODE
    m = oi.shape[0]
    if ist[I_N_USED] >= m or ist[I_RQ_TAIL] - ist[I_RQ_HEAD] >= E.rq.shape[0]:
        ist[I_N_REJECTS] += 1
        return REJ_CAPACITY
    order_id = ist[I_NEXT_ID]
    slot = -1
    for j in range(m):
        s = (order_id + j) % m
        if oi[s, OI_VSTATUS] == S_FREE and oi[s, OI_LSTATUS] == S_FREE:
            slot = s
            break
    ist[I_NEXT_ID] = order_id + 1
    ist[I_N_USED] += 1
    oi[slot, OI_ID] = order_id
    oi[slot, OI_SIDE] = side
    oi[slot, OI_TYPE] = order_type
    oi[slot, OI_TIF] = IOC if order_type == MARKET else tif
    oi[slot, OI_VSTATUS] = S_PENDING
    oi[slot, OI_LSTATUS] = S_PENDING
    oi[slot, OI_SUBMIT_TS] = ist[I_NOW]
    oi[slot, OI_CANCEL_SENT] = 0
    if order_type == LIMIT:
        oi[slot, OI_TICK] = _tick_of(fst, price)
        of[slot, OF_PRICE] = _price_of(fst, oi[slot, OI_TICK])  # on the price grid
    else:
        oi[slot, OI_TICK] = 0
        of[slot, OF_PRICE] = np.nan
    of[slot, OF_QTY] = qty
    of[slot, OF_LEAVES] = qty
    of[slot, OF_LLEAVES] = qty
    of[slot, OF_QUEUE] = 0.0
    of[slot, OF_CUMTRADE] = 0.0
    of[slot, OF_LFILLED] = 0.0
    _push_request(E, Q_NEW, slot, order_id)
    return order_id


@nb.njit(cache=True)
def _push_request(E, kind, slot, order_id):
    ist = E.ist
    arrival = ist[I_NOW] + _latency(ist, ist[I_LAT_KIND_E], E.fst[F_LAT_E_A], E.fst[F_LAT_E_B], E.lat_e)
    if arrival < ist[I_LAST_ARRIVAL]:
        arrival = ist[I_LAST_ARRIVAL]  # FIFO: a cancel never overtakes its order
    ist[I_LAST_ARRIVAL] = arrival
    if ist[I_RQ_TAIL] == E.rq.shape[0]:
        h = ist[I_RQ_HEAD]
        m = ist[I_RQ_TAIL] - h
        for j in range(m):
            for col in range(N_Q):
                E.rq[j, col] = E.rq[h + j, col]
        ist[I_RQ_HEAD] = 0
        ist[I_RQ_TAIL] = m
    k = ist[I_RQ_TAIL]
    if k == ist[I_RQ_HEAD]:
        ist[I_RQ_DUE] = arrival
    E.rq[k, Q_TS] = arrival
    E.rq[k, Q_KIND] = kind
    E.rq[k, Q_SLOT] = slot
    E.rq[k, Q_ID] = order_id
    ist[I_RQ_TAIL] = k + 1


@nb.njit(cache=True)
def cancel(E, order_id):
    """Send a cancel for ``order_id``; False if it is not working (done, or a cancel already sent)."""
    s = _find_slot(E, order_id)
    if s < 0 or E.oi[s, OI_CANCEL_SENT] or not (E.oi[s, OI_LSTATUS] == S_PENDING or E.oi[s, OI_LSTATUS] == S_OPEN):
        return False
    if E.ist[I_RQ_TAIL] - E.ist[I_RQ_HEAD] >= E.rq.shape[0]:
        return False
    E.oi[s, OI_CANCEL_SENT] = 1
    _push_request(E, Q_CANCEL, s, order_id)
    return True


@nb.njit(cache=True)
def cancel_all(E):
    """Send a cancel for every working order; returns how many were sent."""
    sent = 0
    if E.ist[I_N_USED] == 0:
        return 0
    for s in range(E.oi.shape[0]):
        if E.oi[s, OI_ID] >= 0 and cancel(E, E.oi[s, OI_ID]):
            sent += 1
    return sent


@nb.njit(cache=True, inline="always")
def set_timer(E, t):
    """Wake the strategy (EV_TIMER) at local time ``t`` (ns); replaces any earlier timer."""
    E.ist[I_TIMER] = t


@nb.njit(cache=True, inline="always")
def now(E):
    """The current time (ns) on the replay's time axis (the local clock when the strategy runs)."""
    return E.ist[I_NOW]


@nb.njit(cache=True, inline="always")
def best_bid(E):
    """Best bid of the local book (what the feed has shown us); NaN when empty."""
    b = E.ist[I_LB_BEST]
    return _price_of(E.fst, E.ist[I_LB_BASE] + b) if b != _NO_LEVEL else np.nan


@nb.njit(cache=True, inline="always")
def best_ask(E):
    b = E.ist[I_LA_BEST]
    return _price_of(E.fst, E.ist[I_LA_BASE] + b) if b != _NO_LEVEL else np.nan


@nb.njit(cache=True, inline="always")
def best_bid_qty(E):
    b = E.ist[I_LB_BEST]
    return E.bk[B_LB, b] if b != _NO_LEVEL else 0.0


@nb.njit(cache=True, inline="always")
def best_ask_qty(E):
    b = E.ist[I_LA_BEST]
    return E.bk[B_LA, b] if b != _NO_LEVEL else 0.0


@nb.njit(cache=True)
def bid_level(E, j):
    """(price, qty) of the j-th best bid of the local book (NaN, 0 beyond its depth)."""
    if j >= E.ist[I_LB_N]:
        return np.nan, 0.0
    i = E.ist[I_LB_BEST]
    seen = 0
    while True:
        if E.bk[B_LB, i] > 0.0:
            if seen == j:
                return _price_of(E.fst, E.ist[I_LB_BASE] + i), E.bk[B_LB, i]
            seen += 1
        i -= 1


@nb.njit(cache=True)
def ask_level(E, j):
    if j >= E.ist[I_LA_N]:
        return np.nan, 0.0
    i = E.ist[I_LA_BEST]
    seen = 0
    while True:
        if E.bk[B_LA, i] > 0.0:
            if seen == j:
                return _price_of(E.fst, E.ist[I_LA_BASE] + i), E.bk[B_LA, i]
            seen += 1
        i += 1


@nb.njit(cache=True, inline="always")
def mid(E):
    """Mid of the local book; NaN unless both sides have a level."""
    return 0.5 * (best_bid(E) + best_ask(E))


@nb.njit(cache=True, inline="always")
def position(E):
    """Position as the strategy knows it (fills whose responses have arrived), base units."""
    return E.fst[F_LPOS]


@nb.njit(cache=True, inline="always")
def entry_price(E):
    """Average entry price of the locally known position (0 when flat)."""
    return E.fst[F_LAVG]


@nb.njit(cache=True, inline="always")
def mode(E):
    return E.ist[I_MODE]


@nb.njit(cache=True, inline="always")
def last_trade(E):
    """(price, qty, aggressor) of the last trade the strategy saw."""
    return E.fst[F_EV_PRICE], E.fst[F_EV_QTY], E.ist[I_EV_SIDE]


@nb.njit(cache=True, inline="always")
def last_response(E):
    """(kind R_*, order id, side, qty, price) of the last response delivered."""
    return E.ist[I_RESP_KIND], E.ist[I_RESP_ID], E.ist[I_RESP_SIDE], E.fst[F_RESP_QTY], E.fst[F_RESP_PRICE]


@nb.njit(cache=True, inline="always")
def order_status(E, order_id):
    """Local status (S_PENDING / S_OPEN) of a working order; S_FREE once it is done (or unknown)."""
    s = _find_slot(E, order_id)
    return E.oi[s, OI_LSTATUS] if s >= 0 else S_FREE


@nb.njit(cache=True, inline="always")
def order_working(E, order_id):
    """True while the order is pending or open as far as the strategy knows."""
    st = order_status(E, order_id)
    return st == S_PENDING or st == S_OPEN


@nb.njit(cache=True, inline="always")
def order_leaves(E, order_id):
    """Unfilled quantity of a working order as far as the strategy knows (0 once done)."""
    s = _find_slot(E, order_id)
    return E.of[s, OF_LLEAVES] if s >= 0 else 0.0


@nb.njit(cache=True, inline="always")
def cancel_pending(E, order_id):
    s = _find_slot(E, order_id)
    return s >= 0 and E.oi[s, OI_CANCEL_SENT] != 0


@nb.njit(cache=True)
def reset_account(E):
    """Cancel every order (and forget those in flight), flatten the venue position by walking the
    venue's book (taker fees, fill rows with order id -1), then clear position, PnL, fees and
    turnover. Happens at the current time."""
    ist, fst, oi = E.ist, E.fst, E.oi
    t = ist[I_NOW]
    for s in range(oi.shape[0]):
        oi[s, OI_ID] = -1
        oi[s, OI_VSTATUS] = S_FREE
        oi[s, OI_LSTATUS] = S_FREE
    ist[I_N_USED] = 0
    ist[I_N_OPEN] = 0
    ist[I_RQ_HEAD] = ist[I_RQ_TAIL] = 0
    ist[I_RS_HEAD] = ist[I_RS_TAIL] = 0
    ist[I_RQ_DUE] = ist[I_RS_DUE] = _NEVER
    _open_bounds(E)
    pos = fst[F_POS]
    if pos != 0.0:
        side = -1 if pos > 0.0 else 1
        remaining = abs(pos)
        bk = E.bk
        lb = B_XA if side > 0 else B_XB
        base_i, best_i = I_XB_BASE + 3 * lb, I_XB_BEST + 3 * lb
        px = fst[F_LAST_MID]
        while remaining > _EPS and ist[best_i] != _NO_LEVEL:
            b = ist[best_i]
            px = _price_of(fst, ist[base_i] + b)
            avail = bk[lb, b]
            q = min(avail, remaining)
            if avail - q <= _EPS * max(1.0, avail):
                _set_level(bk, lb, ist, b, 0.0)
            else:
                bk[lb, b] = avail - q
            _record_fill(E, t, -1, side, px, q, False, t)
            remaining -= q
        if remaining > _EPS:  # the book ran out: close the rest at the last price seen
            _record_fill(E, t, -1, side, px, remaining, False, t)
    fst[F_POS] = fst[F_AVG] = fst[F_REAL] = fst[F_FEES] = fst[F_TURN] = 0.0
    fst[F_LPOS] = fst[F_LAVG] = fst[F_LREAL] = 0.0
    ist[I_LAST_ARRIVAL] = ist[I_LAST_DELIVER] = 0


# -- Python side -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latency:
    """Order latency: entry (local send -> venue) and response (venue -> local), in ns.

    ``kind`` 'constant' (entry/response are ns), 'lognormal' (entry/response are medians in ns,
    ``sigma`` the log-sd) or 'empirical' (draws from ``entry_samples``/``response_samples``).
    Draws use the run's seeded generator.
    """

    kind: str = "constant"
    entry: float = 0.0
    response: float = 0.0
    sigma: float = 0.0
    entry_samples: tuple = ()
    response_samples: tuple = ()

    @classmethod
    def constant(cls, entry_ns: float, response_ns: float | None = None) -> "Latency":
        return cls("constant", float(entry_ns), float(entry_ns if response_ns is None else response_ns))

    @classmethod
    def lognormal(cls, median_entry_ns: float, sigma: float, median_response_ns: float | None = None) -> "Latency":
        return cls("lognormal", float(median_entry_ns),
                   float(median_entry_ns if median_response_ns is None else median_response_ns), float(sigma))

    @classmethod
    def empirical(cls, entry_samples_ns, response_samples_ns=None) -> "Latency":
        e = tuple(int(x) for x in np.asarray(entry_samples_ns).ravel())
        r = e if response_samples_ns is None else tuple(int(x) for x in np.asarray(response_samples_ns).ravel())
        return cls("empirical", entry_samples=e, response_samples=r)

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "lognormal", "empirical"):
            raise ValueError(f"Latency.kind {self.kind!r}: expected 'constant', 'lognormal' or 'empirical'")
        if self.kind == "empirical":
            if not self.entry_samples or not self.response_samples:
                raise ValueError("Latency.empirical: entry and response samples must not be empty")
            if min(self.entry_samples) < 0 or min(self.response_samples) < 0:
                raise ValueError("Latency.empirical: samples must be >= 0 ns")
        elif not (self.entry >= 0 and self.response >= 0 and self.sigma >= 0):
            raise ValueError(f"Latency: entry={self.entry}, response={self.response}, sigma={self.sigma} must be >= 0")

    def describe(self) -> dict[str, Any]:
        if self.kind == "empirical":
            return {"kind": "empirical", "entry_samples": len(self.entry_samples),
                    "entry_median_ns": float(np.median(self.entry_samples)),
                    "response_median_ns": float(np.median(self.response_samples))}
        return {"kind": self.kind, "entry_ns": self.entry, "response_ns": self.response, "sigma": self.sigma}


@dataclass(frozen=True)
class QueueModel:
    """Queue position of resting orders: 'conservative' (only trades at our price advance us)
    or 'probabilistic' (cancels advance us too, power-law split with exponent ``power``)."""

    kind: str = "conservative"
    power: float = 2.0

    @classmethod
    def conservative(cls) -> "QueueModel":
        return cls("conservative")

    @classmethod
    def probabilistic(cls, power: float = 2.0) -> "QueueModel":
        return cls("probabilistic", float(power))

    def __post_init__(self) -> None:
        if self.kind not in ("conservative", "probabilistic"):
            raise ValueError(f"QueueModel.kind {self.kind!r}: expected 'conservative' or 'probabilistic'")
        if not self.power > 0:
            raise ValueError(f"QueueModel.power={self.power} must be > 0")


@dataclass(frozen=True)
class Fees:
    """Fees in basis points of notional; negative is a rebate."""

    maker_bps: float = 0.0
    taker_bps: float = 0.0


_MODES = {"entries_allowed": ENTRIES_ALLOWED, "exits_only": EXITS_ONLY}


def _new_state(max_orders: int, ladder: int, latency: Latency, queue: QueueModel, fees: Fees,
               equity_interval_ns: int, seed: int) -> EngineState:
    ist = np.zeros(N_I, np.int64)
    fst = np.zeros(N_F, np.float64)
    ist[I_NEXT_EQ] = _NEVER
    ist[I_TIMER] = _NEVER
    ist[I_LAST_ROW_T] = np.iinfo(np.int64).min
    ist[I_RQ_DUE] = ist[I_RS_DUE] = _NEVER
    ist[I_OB_MIN] = ist[I_OA_MIN] = 1 << 62
    ist[I_OB_MAX] = ist[I_OA_MAX] = -(1 << 62)
    ist[I_FL_CAP] = ist[I_RS_CAP] = 1024  # the fills / responses buffers below
    ist[I_EQ_INTERVAL] = equity_interval_ns
    ist[I_RNG] = (int(seed) * 0x9E3779B97F4A7C15 + 0x5EED) % 2**63  # splitmix64 state
    for best in (I_XB_BEST, I_XA_BEST, I_LB_BEST, I_LA_BEST):
        ist[best] = _NO_LEVEL
    ist[I_QUEUE_MODEL] = QUEUE_PROBABILISTIC if queue.kind == "probabilistic" else QUEUE_CONSERVATIVE
    fst[F_QPOWER] = queue.power
    fst[F_MAKER_BPS] = fees.maker_bps
    fst[F_TAKER_BPS] = fees.taker_bps
    fst[F_LAST_MID] = np.nan
    kinds = {"constant": LAT_CONSTANT, "empirical": LAT_EMPIRICAL, "lognormal": LAT_LOGNORMAL}
    ist[I_LAT_KIND_E] = ist[I_LAT_KIND_R] = kinds[latency.kind]
    if latency.kind == "lognormal":
        fst[F_LAT_E_A], fst[F_LAT_E_B] = latency.entry, latency.sigma
        fst[F_LAT_R_A], fst[F_LAT_R_B] = latency.response, latency.sigma
    else:
        fst[F_LAT_E_A], fst[F_LAT_R_A] = latency.entry, latency.response
    lat_e = np.asarray(latency.entry_samples or (0,), np.int64)
    lat_r = np.asarray(latency.response_samples or (0,), np.int64)
    oi = np.zeros((max_orders, N_OI), np.int64)
    oi[:, OI_ID] = -1
    fills = 1024
    return EngineState(
        ist, fst,
        np.zeros((4, ladder)),
        oi, np.zeros((max_orders, N_OF)), np.zeros(max_orders, np.int64), np.zeros((2 * max_orders + 8, N_Q), np.int64),
        np.zeros((fills, N_P), np.int64), np.zeros((fills, N_PF)),
        np.zeros((fills, N_FI), np.int64), np.zeros((fills, N_FF)),
        np.zeros(4096, np.int64), np.zeros((4096, N_EF)), lat_e, lat_r,
    )


def _grown_ladders(E: EngineState, which: int, ti: int) -> dict[str, np.ndarray]:
    """Larger ladders (all four: one array) in which ladder ``which`` reaches tick ``ti``.

    Each ladder keeps its levels, re-centred on them, while they fit in MAX_LADDER ticks. When
    they do not, the window follows the side's best (``ti`` when it is a better price): it spans
    from 7/8 of the window below the best bid (above the best ask) to 1/8 beyond it, and levels
    outside are dropped (counted in levels_ignored) - stale far levels must not push the touch out.
    """
    old = E.bk
    size = min(old.shape[1] * 2, MAX_LADDER)
    info = []
    for b in range(4):
        base = int(E.ist[I_XB_BASE + 3 * b])
        held = np.flatnonzero(old[b] > 0)
        lo, hi = (base + int(held[0]), base + int(held[-1])) if len(held) else (ti, ti)
        if b == which:
            lo, hi = min(lo, ti), max(hi, ti)
        info.append((held, base, lo, hi))
    while size < MAX_LADDER and size < 2 * max(hi - lo + 1 for _, _, lo, hi in info):
        size *= 2
    out = np.zeros((4, size))
    for b, (held, base, lo, hi) in enumerate(info):
        bid = b % 2 == 0
        if hi - lo + 1 <= size:
            new_base = (lo + hi) // 2 - size // 2
        else:
            best = base + int(E.ist[I_XB_BEST + 3 * b]) if E.ist[I_XB_BEST + 3 * b] != _NO_LEVEL else ti
            if b == which:
                best = max(best, ti) if bid else min(best, ti)
            new_base = best - size + size // 8 if bid else best - size // 8
        ticks = held + base
        inside = (ticks >= new_base) & (ticks < new_base + size)
        out[b, ticks[inside] - new_base] = old[b, held[inside]]
        dropped = int(np.count_nonzero(~inside))
        E.ist[I_XB_BASE + 3 * b] = new_base
        E.ist[I_XB_N + 3 * b] = int(np.count_nonzero(inside))
        E.ist[I_N_IGNORED] += dropped
        kept = np.flatnonzero(out[b] > 0)
        E.ist[I_XB_BEST + 3 * b] = (kept[-1] if bid else kept[0]) if len(kept) else _NO_LEVEL
    if size == old.shape[1] and int(E.ist[I_XB_BASE + 3 * which]) == info[which][1]:
        raise RuntimeError("the engine asked to grow a price ladder that cannot change: a strategy kernel cached "
                           "against another version of genesis/backtest/engine.py? delete its __pycache__")
    return {"bk": out}


def _grown_rows(a: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows,) + a.shape[1:], a.dtype)
    out[:len(a)] = a
    return out


def _grow_state(E: EngineState) -> EngineState:
    what, need = divmod(int(E.ist[I_NEED]), 1_000_000_000_000)
    E.ist[I_STATUS] = ST_DONE
    if what == 1:
        return E._replace(**_grown_ladders(E, need, int(E.ist[I_NEED_TICK])))
    if what == 2:
        # Responses: compact to the front first (the kernel's indices are absolute).
        h, tail = int(E.ist[I_RS_HEAD]), int(E.ist[I_RS_TAIL])
        rs_i = _grown_rows(E.rs_i[h:tail], need)
        rs_f = _grown_rows(E.rs_f[h:tail], need)
        E.ist[I_RS_HEAD], E.ist[I_RS_TAIL] = 0, tail - h
        E.ist[I_FL_CAP] = E.ist[I_RS_CAP] = need
        return E._replace(rs_i=rs_i, rs_f=rs_f, fl_i=_grown_rows(E.fl_i, need), fl_f=_grown_rows(E.fl_f, need))
    if what == 3:
        return E._replace(eq_i=_grown_rows(E.eq_i, need), eq_f=_grown_rows(E.eq_f, need))
    raise RuntimeError(f"engine asked to grow an unknown buffer ({what})")


def _tick_fraction(tick: float) -> tuple[int, int]:
    """``tick`` as num/den with den a power of ten (0.1 -> 1/10, 0.5 -> 5/10, 0.0001 -> 1/10000)."""
    from genesis.store.instruments import decimal_step

    if not (isinstance(tick, (int, float, np.floating, np.integer)) and np.isfinite(tick) and tick > 0):
        raise ValueError(f"tick_size={tick!r} must be a positive number")
    return decimal_step([float(tick)], "tick_size")


def infer_tick(prices: np.ndarray) -> tuple[int, int]:
    """The price grid of ``prices`` as (num, den), tick = num / den, exactly: the greatest common
    divisor of the prices as the decimals they were written as
    (:func:`genesis.store.instruments.decimal_step`; [61837.63, 61837.64] gives 1/100). Used only
    when no spec is given: a replay of stored data reads its tick from the ``instruments`` table."""
    from genesis.store.instruments import decimal_step

    p = np.asarray(prices, np.float64)
    if not np.any(np.isfinite(p) & (p > 0)):
        return 1, 100  # no prices yet: a cent, refined by nothing (pass tick_size to be sure)
    return decimal_step(p, "prices")


class Backtester:
    """One strategy on one symbol's replay, fed chunk by chunk (or live batches, for paper trading).

    strategy: a :class:`genesis.strategy.Strategy` or its registered name; params: the
    strategy's parameters (dict; defaults for the rest); inputs: the strategy's input arrays
    by name (e.g. predictions for ``deeplob_threshold``); latency, queue, fees: the models
    (defaults: zero latency, conservative queue, no fees); equity_interval_ns: local-clock
    spacing of equity samples (0: only the final one); seed: the latency generator's seed;
    max_orders: working orders at once (more are rejected with REJ_CAPACITY); tick_size: the
    price grid (None: inferred from the first chunk's prices, :func:`infer_tick`); lot_size: the
    quantity increment, orders of other sizes are rejected (None: not enforced); ladder_ticks:
    the books' first size in ticks (they grow as prices move, up to MAX_LADDER).

    ``process(rows)`` replays one REPLAY_DTYPE chunk; call it again with the next chunk.
    ``set_mode``/``reset`` apply at the current replay time; ``result()`` gives the fills and
    the equity so far (plus a final sample) without disturbing the run.
    """

    def __init__(self, strategy, params: dict[str, Any] | None = None, *, inputs: dict[str, np.ndarray] | None = None,
                 latency: Latency | None = None, queue: QueueModel | None = None, fees: Fees | None = None,
                 equity_interval_ns: int = 1_000_000_000, seed: int = 0, max_orders: int = 256,
                 tick_size: float | None = None, lot_size: float | None = None,
                 ladder_ticks: int = 1 << 16) -> None:
        from genesis.strategy import get_strategy

        self.strategy = get_strategy(strategy)
        self.params = self.strategy.params_array(params or {})
        self.param_dict = self.strategy.param_dict(self.params)
        self.latency = latency if latency is not None else Latency.constant(0)
        self.queue = queue if queue is not None else QueueModel.conservative()
        self.fees = fees if fees is not None else Fees()
        for name, value, kind in (("latency", self.latency, Latency), ("queue", self.queue, QueueModel),
                                  ("fees", self.fees, Fees)):
            if not isinstance(value, kind):
                raise TypeError(f"{name}: expected a {kind.__name__}, got {type(value).__name__}")
        if int(equity_interval_ns) < 0:
            raise ValueError(f"equity_interval_ns={equity_interval_ns} must be >= 0")
        if int(max_orders) < 1:
            raise ValueError(f"max_orders={max_orders} must be >= 1")
        self.equity_interval_ns = int(equity_interval_ns)
        self.seed = int(seed)
        if not 16 <= int(ladder_ticks) <= MAX_LADDER:
            raise ValueError(f"ladder_ticks={ladder_ticks} must be in [16, {MAX_LADDER}]")
        self.E = _new_state(int(max_orders), int(ladder_ticks), self.latency, self.queue, self.fees,
                            self.equity_interval_ns, self.seed)
        self.tick_size: float | None = None
        self.lot_size: float | None = None
        self.events = 0  # rows given to process()
        self.set_instrument(tick_size, lot_size)
        self.state = self.strategy.initial_state(self.params)
        self.set_inputs(**(inputs or {}))
        self.seconds = 0.0
        self.actions: list[dict[str, Any]] = []  # mode changes and resets, with their replay time

    def set_instrument(self, tick_size: float | None = None, lot_size: float | None = None) -> None:
        """Set the price grid and the lot (None leaves one as it is), before the first row only:
        a live feed reports the venue's spec after the trader is made."""
        if self.events and (tick_size is not None or lot_size is not None):
            raise RuntimeError("the tick and lot can only be set before the first row is replayed")
        if tick_size is not None:
            self._set_tick(*_tick_fraction(tick_size))
        if lot_size is not None:
            if not (np.isfinite(lot_size) and lot_size >= 0):
                raise ValueError(f"lot_size={lot_size!r} must be a number >= 0 (0: not enforced)")
            self.lot_size = float(lot_size) or None
            self.E.fst[F_LOT] = float(lot_size)

    # inputs --------------------------------------------------------------------------------
    def set_inputs(self, **arrays: np.ndarray) -> None:
        """Give (or replace, e.g. grown by a live predictor) the strategy's input arrays."""
        self.inputs = self.strategy.input_tuple(arrays)

    # running -------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Compile the strategy kernel (or load it from Numba's cache) now rather than on the
        first chunk: a first compile takes seconds, which a live feed cannot wait for."""
        self.E.ist[I_CURSOR] = 0
        self.strategy.kernel(self.E, np.empty(0, REPLAY_DTYPE), self.params, self.state, self.inputs)

    def process(self, rows: np.ndarray) -> None:
        """Replay one chunk of REPLAY_DTYPE rows (time-ordered, continuing the previous chunk)."""
        if not isinstance(rows, np.ndarray) or rows.dtype != REPLAY_DTYPE:
            raise TypeError(f"rows: expected a REPLAY_DTYPE array (genesis.backtest.events), "
                            f"got {getattr(rows, 'dtype', type(rows))}")
        if not len(rows):
            return
        if self.tick_size is None:
            self._set_tick(*infer_tick(rows["price"][:20_000]))
        began = time.perf_counter()
        E = self.E
        E.ist[I_CURSOR] = 0
        kernel = self.strategy.kernel
        while True:
            kernel(E, rows, self.params, self.state, self.inputs)
            if E.ist[I_STATUS] == ST_DONE:
                break
            if E.ist[I_STATUS] == ST_DISORDER:
                c = int(E.ist[I_CURSOR])
                E.ist[I_STATUS] = ST_DONE
                self.E = E
                raise ValueError(f"rows: row {c} of this chunk happens at {int(row_time(rows[c:c + 1])[0])}, before "
                                 f"the row replayed just before it ({int(E.ist[I_LAST_ROW_T])}): rows must be in "
                                 f"time order and chunks must continue one another (genesis.backtest.events)")
            E = _grow_state(E)
        self.E = E
        self.events += len(rows)
        self.seconds += time.perf_counter() - began

    def _set_tick(self, num: int, den: int) -> None:
        self.tick_size = num / den
        self.E.fst[F_TICK_NUM], self.E.fst[F_TICK_DEN] = num, den
        self.E.fst[F_SCALE] = den / num

    def set_mode(self, mode: int | str, *, cancel_entries: bool = False, user: str = "") -> None:
        """ENTRIES_ALLOWED / EXITS_ONLY (or their names). With ``cancel_entries``, EXITS_ONLY also
        cancels every working order (resting quotes would otherwise still open positions)."""
        value = _MODES.get(mode, mode) if isinstance(mode, str) else int(mode)
        if value not in (ENTRIES_ALLOWED, EXITS_ONLY):
            raise ValueError(f"mode {mode!r}: expected ENTRIES_ALLOWED/EXITS_ONLY or {list(_MODES)}")
        self.E.ist[I_MODE] = value
        if value == EXITS_ONLY and cancel_entries:
            cancel_all(self.E)
        self.actions.append({"ts": int(self.E.ist[I_NOW]), "action": "mode",
                             "mode": "exits_only" if value else "entries_allowed", "user": user})

    def reset(self, *, user: str = "") -> None:
        """Cancel all, flatten at the venue's book, clear position and PnL; restart the strategy's state."""
        reset_account(self.E)
        self.state = self.strategy.initial_state(self.params)
        self.actions.append({"ts": int(self.E.ist[I_NOW]), "action": "reset", "user": user})

    # reading -------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return int(self.E.ist[I_NOW])

    @property
    def position(self) -> float:
        """The venue's position (what the account holds now)."""
        return float(self.E.fst[F_POS])

    @property
    def mode(self) -> int:
        return int(self.E.ist[I_MODE])

    def fills(self) -> np.ndarray:
        E = self.E
        k = int(E.ist[I_N_FILLS])
        out = np.empty(k, FILL_DTYPE)
        out["exch_ts"] = E.fl_i[:k, FI_EXCH]
        out["local_ts"] = E.fl_i[:k, FI_LOCAL]
        out["order_id"] = E.fl_i[:k, FI_ID]
        out["side"] = E.fl_i[:k, FI_SIDE]
        out["maker"] = E.fl_i[:k, FI_MAKER] != 0
        out["price"] = E.fl_f[:k, FF_PRICE]
        out["qty"] = E.fl_f[:k, FF_QTY]
        out["fee"] = E.fl_f[:k, FF_FEE]
        out["position"] = E.fl_f[:k, FF_POS]
        out["realized_pnl"] = E.fl_f[:k, FF_REAL]
        return out

    def equity(self, final: bool = True) -> np.ndarray:
        """Equity samples so far; with ``final``, one more at the current time (if later than the last)."""
        E = self.E
        k = int(E.ist[I_N_EQ])
        out = np.empty(k, EQUITY_DTYPE)
        out["ts"] = E.eq_i[:k]
        for j, name in enumerate(("mid", "position", "realized_pnl", "unrealized_pnl", "fees", "equity", "turnover")):
            out[name] = E.eq_f[:k, j]
        if final and self.events and (k == 0 or E.eq_i[k - 1] < E.ist[I_NOW]):
            scratch = E._replace(ist=E.ist.copy(), fst=E.fst.copy(), eq_i=np.zeros(1, np.int64),
                                 eq_f=np.zeros((1, N_EF)))
            scratch.ist[I_N_EQ] = 0
            _record_equity(scratch, scratch.ist[I_NOW])
            last = np.empty(1, EQUITY_DTYPE)
            last["ts"] = scratch.eq_i[0]
            for j, name in enumerate(("mid", "position", "realized_pnl", "unrealized_pnl", "fees", "equity",
                                      "turnover")):
                last[name] = scratch.eq_f[0, j]
            out = np.concatenate((out, last))
        return out

    def config(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.name, "params": dict(self.param_dict), "latency": self.latency.describe(),
            "queue": asdict(self.queue), "fees": asdict(self.fees), "equity_interval_ns": self.equity_interval_ns,
            "seed": self.seed, "max_orders": int(self.E.oi.shape[0]), "tick_size": self.tick_size,
            "lot_size": self.lot_size,
        }

    def result(self, **config: Any) -> BacktestResult:
        """Fills and equity so far, with the run's configuration (``config`` adds e.g. symbol, range)."""
        meta = {"events": self.events, "seconds": self.seconds,
                "levels_ignored": int(self.E.ist[I_N_IGNORED]), "rows_off_tick": int(self.E.ist[I_N_OFFGRID]),
                "rejected_orders": int(self.E.ist[I_N_REJECTS]), "orders_sent": int(self.E.ist[I_NEXT_ID]),
                "actions": list(self.actions)}
        return BacktestResult(self.fills(), self.equity(), {**self.config(), **config}, meta)


def run_backtest(strategy, params: dict[str, Any] | None, events, *, inputs: dict[str, np.ndarray] | None = None,
                 latency: Latency | None = None, queue: QueueModel | None = None, fees: Fees | None = None,
                 equity_interval_ns: int = 1_000_000_000, seed: int = 0, max_orders: int = 256,
                 tick_size: float | None = None, lot_size: float | None = None, ladder_ticks: int = 1 << 16,
                 **config: Any) -> BacktestResult:
    """Replay ``events`` with ``strategy`` and return its fills and equity.

    events: a REPLAY_DTYPE array, a :class:`MarketEvents` (replayed through
    :func:`genesis.backtest.events.from_market_events`), or an iterable of REPLAY_DTYPE chunks
    (e.g. :func:`genesis.backtest.events.store_chunks`). The other arguments are
    :class:`Backtester`'s; ``config`` (symbol, start, end, ...) is recorded in the result's config.
    """
    from genesis.backtest.events import from_market_events
    from genesis.feeds.events import MarketEvents

    bt = Backtester(strategy, params, inputs=inputs, latency=latency, queue=queue, fees=fees,
                    equity_interval_ns=equity_interval_ns, seed=seed, max_orders=max_orders, tick_size=tick_size,
                    lot_size=lot_size, ladder_ticks=ladder_ticks)
    if isinstance(events, MarketEvents):
        config.setdefault("symbol", events.symbol)
        events = from_market_events(events)
    if isinstance(events, np.ndarray):
        bt.process(events)
    else:
        for chunk in events:
            bt.process(chunk)
    return bt.result(**config)


__all__ = [
    "BUY", "SELL", "MARKET", "LIMIT", "GTC", "IOC", "POST_ONLY", "ENTRIES_ALLOWED", "EXITS_ONLY",
    "EV_END", "EV_DEPTH", "EV_TRADE", "EV_RESPONSE", "EV_TIMER",
    "S_FREE", "S_PENDING", "S_OPEN", "S_FILLED", "S_CANCELLED", "S_REJECTED", "S_EXPIRED",
    "R_ACK", "R_FILL", "R_FILLED", "R_CANCELLED", "R_EXPIRED", "R_REJECTED", "R_CANCEL_REJECTED",
    "REJ_INVALID", "REJ_MODE", "REJ_CAPACITY", "EngineState", "Latency", "QueueModel", "Fees", "Backtester",
    "infer_tick", "MAX_LADDER",
    "run_backtest", "next_event", "submit", "cancel", "cancel_all", "set_timer", "now", "best_bid", "best_ask",
    "best_bid_qty", "best_ask_qty", "bid_level", "ask_level", "mid", "position", "entry_price", "mode", "last_trade",
    "last_response", "order_status", "order_working", "order_leaves", "cancel_pending", "reset_account",
]
