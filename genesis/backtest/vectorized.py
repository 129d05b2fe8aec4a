"""A fast mode for parameter sweeps of simple taker strategies: signals over whole arrays, no
order book simulation per parameter set, the same fills as the full replay under its assumptions.

>>> from genesis.backtest.vectorized import book_tops, run_vectorized, sweep
>>> tops = book_tops(rows)                    # once per data set (REPLAY_DTYPE rows)
>>> result = run_vectorized("ofi_signal", {"window": 50, "entry": 5}, tops, latency_ns=5e6, taker_bps=4.5)
>>> table = sweep("ofi_signal", {"window": [20, 50, 100], "entry": [2, 5, 10]}, tops, latency_ns=5e6)

How. :func:`book_tops` replays the rows once (Numba) and keeps the best levels on both clocks:
the local book after every message the strategy sees (its events), and the venue's book after
every venue message. Per parameter set, the strategy's signal and target position at each of
its events are computed over the arrays (:func:`ofi_targets`: NumPy plus an O(n) running sum;
:func:`deeplob_signals`: NumPy), then :func:`execute_targets` walks only the decisions: a
market order for ``target - position`` when none is in flight (the rule of
:func:`genesis.strategy.base.trade_to_target`), sent at the event's local time, arriving at the
venue ``entry`` latency later and filled at the venue's best price at that time, its response
(and the strategy's next chance to trade) ``response`` latency after that.

Assumptions (those of the hftbacktest comparison; under them the fills, fees and PnL equal the
full replay's, checked in tests/test_backtest_vectorized.py):

- constant latency (entry and response);
- taker orders only, each filled whole at the best level (sizes within the best level:
  ``meta["orders_beyond_best"]`` counts the orders whose size exceeded the best level's
  quantity, which the full replay would walk into deeper levels);
- our orders do not deplete the book (the full replay removes what we took until the data
  next sets the level; it matters only when a same-side order arrives before the level was
  set again and what we took left too little of it: ``meta["orders_on_depleted_level"]``
  counts the same-side orders that arrive before any venue depth message since our last fill
  on that side, an upper bound of the cases to look at);
- DeepLOB threshold without stop-loss / take-profit (path dependent: use the full replay).

Replay rules kept exactly: at equal times market rows come before order arrivals, which come
before responses; an order or response due after the last row never happens (the replay ends).
Equity is sampled as the engine does: every ``equity_interval_ns`` of the local clock from the
first local row on (state strictly before the sample time, marked to the local mid, the previous mark while the local
book is one-sided), plus a final sample at the last row.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numba as nb
import numpy as np
import pandas as pd

from genesis.backtest.engine import _book_fill
from genesis.backtest.events import (
    CLEAR, DEPTH, FLAG_EXCH, FLAG_LAST, KIND_MASK, REPLAY_DTYPE, TRADE, check_replay, row_time,
)
from genesis.backtest.result import EQUITY_DTYPE, FILL_DTYPE, BacktestResult
from genesis.book.l2 import _apply_level, _recentered

EVENT_DEPTH = 1  # a depth message (or snapshot) reached the strategy
EVENT_TRADE = 2  # a trade reached the strategy
STRATEGIES = ("ofi_signal", "deeplob_threshold")
_NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class BookTops:
    """Best levels on both clocks, from one pass over a replay (see :func:`book_tops`).

    Local (the strategy's events, in replay order): ``local_ts`` (n,) int64 ns, ``kind`` (n,)
    EVENT_DEPTH / EVENT_TRADE, and the local book's ``bid``, ``bid_qty``, ``ask``, ``ask_qty``
    (n,) after the event (NaN on an empty side). Venue (after every venue depth message):
    ``venue_ts`` (m,) exch_ts, ``venue_bid``, ``venue_bid_qty``, ``venue_ask``,
    ``venue_ask_qty`` (m,). ``first_ts``/``last_ts``: times of the first and last replay rows.
    """

    local_ts: np.ndarray
    kind: np.ndarray
    bid: np.ndarray
    bid_qty: np.ndarray
    ask: np.ndarray
    ask_qty: np.ndarray
    venue_ts: np.ndarray
    venue_bid: np.ndarray
    venue_bid_qty: np.ndarray
    venue_ask: np.ndarray
    venue_ask_qty: np.ndarray
    first_ts: int
    last_ts: int

    def __len__(self) -> int:
        return len(self.local_ts)


def book_tops(rows: np.ndarray | Sequence[np.ndarray], *, book_capacity: int = 1 << 16) -> BookTops:
    """Replay ``rows`` (a REPLAY_DTYPE array, or consecutive chunks of one) into :class:`BookTops`.

    One Numba pass keeps two L2 books (the venue's on venue rows, ours on local rows) with the
    :mod:`genesis.book.l2` level helpers; ``book_capacity`` bounds the levels per side.
    """
    if not isinstance(rows, np.ndarray):
        rows = np.concatenate(list(rows)) if len(rows) else np.empty(0, REPLAY_DTYPE)
    check_replay(rows, "rows")
    if not len(rows):
        raise ValueError("rows: no replay rows (an empty range?)")
    out = _tops_kernel(rows, book_capacity)
    if out is None:
        raise ValueError(f"rows: a side of the book exceeded {book_capacity} levels; raise book_capacity")
    n_local, n_venue, local_i, local_f, venue_t, venue_f = out
    t = row_time(rows[[0, -1]])
    return BookTops(local_i[:n_local, 0].copy(), local_i[:n_local, 1].astype(np.int8),
                    *(local_f[:n_local, j].copy() for j in range(4)),
                    venue_t[:n_venue].copy(), *(venue_f[:n_venue, j].copy() for j in range(4)),
                    int(t[0]), int(t[1]))


@nb.njit(cache=True)
def _best(keys, qtys, lo, n, sign):
    if n == 0:
        return np.nan, np.nan
    return sign * keys[lo + n - 1], qtys[lo + n - 1]


@nb.njit(cache=True)
def _tops_kernel(rows, capacity):
    n = rows.shape[0]
    # Two books (venue 0, local 1), each side a sorted key buffer: bids +price, asks -price, best last.
    keys = np.zeros((4, capacity))
    qtys = np.zeros((4, capacity))
    lo = np.full(4, capacity // 2, np.int64)
    cnt = np.zeros(4, np.int64)
    local_i = np.empty((n, 2), np.int64)
    local_f = np.empty((n, 4))
    venue_t = np.empty(n, np.int64)
    venue_f = np.empty((n, 4))
    n_local = 0
    n_venue = 0
    for i in range(n):
        r = rows[i]
        kind = r.kind & KIND_MASK
        venue = (r.kind & FLAG_EXCH) != 0
        b = 0 if venue else 2  # book index of the bid side; the ask side is b + 1
        if kind == DEPTH:
            s = b if r.side > 0 else b + 1
            if cnt[s] + 2 >= capacity:
                return None
            start = _recentered(keys[s], qtys[s], lo[s], cnt[s], 1)
            key = r.price if r.side > 0 else -r.price
            lo[s], cnt[s] = _apply_level(keys[s], qtys[s], start, cnt[s], key, r.qty)
        elif kind == CLEAR:
            for s in (b, b + 1):
                cnt[s] = 0
                lo[s] = capacity // 2
        if (r.kind & FLAG_LAST) == 0:
            continue
        bid, bid_q = _best(keys[b], qtys[b], lo[b], cnt[b], 1.0)
        ask, ask_q = _best(keys[b + 1], qtys[b + 1], lo[b + 1], cnt[b + 1], -1.0)
        if venue:
            if kind != TRADE:
                venue_t[n_venue] = r.exch_ts
                venue_f[n_venue, 0], venue_f[n_venue, 1] = bid, bid_q
                venue_f[n_venue, 2], venue_f[n_venue, 3] = ask, ask_q
                n_venue += 1
        else:
            local_i[n_local, 0] = r.local_ts
            local_i[n_local, 1] = 2 if kind == TRADE else 1
            local_f[n_local, 0], local_f[n_local, 1] = bid, bid_q
            local_f[n_local, 2], local_f[n_local, 3] = ask, ask_q
            n_local += 1
    return n_local, n_venue, local_i, local_f, venue_t, venue_f


# -- signals -----------------------------------------------------------------------------------

def ofi_targets(tops: BookTops, window: int, entry: float, exit: float, qty: float) -> tuple[np.ndarray, np.ndarray]:
    """Target position after each local event of the ``ofi_signal`` strategy, and whether the
    strategy tries to trade at that event.

    As :mod:`genesis.strategy.ofi_signal`: per depth event with a two-sided book, the OFI
    contribution from the previous such event's best levels; the sum over the last ``window``
    contributions (a running sum, as the kernel keeps it, so that the floats are the same);
    beyond +-``entry`` the target is +-``qty``, within +-``exit`` 0, otherwise unchanged. Depth
    events with a one-sided book are skipped (no trading); trade events trade toward the
    current target. Returns ``(targets, acts)``, both (n_events,).
    """
    window = int(window)
    if window < 1:
        raise ValueError(f"ofi_signal: window={window} must be a whole number >= 1")
    if not 0 <= exit <= entry:
        raise ValueError(f"ofi_signal: need 0 <= exit ({exit}) <= entry ({entry})")
    if not qty > 0:
        raise ValueError(f"ofi_signal: qty={qty} must be > 0")
    depth = tops.kind == EVENT_DEPTH
    two_sided = depth & ~np.isnan(tops.bid) & ~np.isnan(tops.ask)
    at = np.flatnonzero(two_sided)
    b, qb, a, qa = tops.bid[at], tops.bid_qty[at], tops.ask[at], tops.ask_qty[at]
    b0, qb0, a0, qa0 = b[:-1], qb[:-1], a[:-1], qa[:-1]
    b1, qb1, a1, qa1 = b[1:], qb[1:], a[1:], qa[1:]
    # The kernel adds the four terms in this order; keep it (float addition is not associative).
    e = np.zeros(len(b1))
    e = np.where(b1 >= b0, e + qb1, e)
    e = np.where(b1 <= b0, e - qb0, e)
    e = np.where(a1 <= a0, e - qa1, e)
    e = np.where(a1 >= a0, e + qa0, e)
    ofi = _running_sum(e, window)  # NaN until `window` contributions
    raw = np.where(ofi > entry, qty, np.where(ofi < -entry, -qty, np.where(np.abs(ofi) <= exit, 0.0, np.nan)))
    per_depth = np.concatenate([[np.nan], raw])  # the first two-sided event only sets the previous levels
    targets = np.full(len(tops), np.nan)
    targets[at] = per_depth
    targets = _ffill(targets, 0.0)
    acts = two_sided | (tops.kind == EVENT_TRADE)
    return targets, acts


@nb.njit(cache=True)
def _running_sum(e, window):
    """``s[j] = s[j-1] + e[j] - e[j-window]`` as the strategy keeps it (ring of ``window``), NaN
    while fewer than ``window`` contributions were seen."""
    out = np.empty(e.shape[0])
    s = 0.0
    for j in range(e.shape[0]):
        old = e[j - window] if j >= window else 0.0
        s += e[j] - old
        out[j] = s if j + 1 >= window else np.nan
    return out


def _ffill(values: np.ndarray, initial: float) -> np.ndarray:
    """Forward fill NaNs, with ``initial`` before the first value."""
    valid = ~np.isnan(values)
    index = np.where(valid, np.arange(len(values)), -1)
    np.maximum.accumulate(index, out=index)
    return np.where(index >= 0, values[np.maximum(index, 0)], initial)


def deeplob_signals(predictions: Mapping[str, np.ndarray] | pd.DataFrame, threshold: float) -> np.ndarray:
    """Per prediction, the ``deeplob_threshold`` signal: +1 when ``p_up > threshold`` (and
    ``p_up >= p_down``), -1 when ``p_down > threshold``, else 0 (neutral). (n_predictions,) float."""
    if not 0 < threshold < 1:
        raise ValueError(f"deeplob_threshold: threshold={threshold} must be in (0, 1)")
    p_up = np.asarray(predictions["p_up"], np.float64)
    p_down = np.asarray(predictions["p_down"], np.float64)
    return np.where((p_up > threshold) & (p_up >= p_down), 1.0, np.where(p_down > threshold, -1.0, 0.0))


# -- execution -----------------------------------------------------------------------------------

def execute_targets(tops: BookTops, *, targets: np.ndarray | None = None, acts: np.ndarray | None = None,
                    signal_ts: np.ndarray | None = None, signals: np.ndarray | None = None, qty: float = 0.0,
                    exit_on_neutral: bool = True, latency_ns: float = 0.0, response_latency_ns: float | None = None,
                    taker_bps: float = 0.0) -> tuple[np.ndarray, dict[str, int]]:
    """Market orders toward the targets, one in flight at a time; their fills (FILL_DTYPE) and counts.

    Targets come either per local event (``targets``/``acts`` from :func:`ofi_targets`) or from
    timed signals (``signal_ts`` local ns at which each becomes usable, ``signals`` -1/0/+1,
    ``qty``, ``exit_on_neutral``: the DeepLOB rule, applied at every event and response to the
    latest usable signal not yet acted on). See the module docstring for the timing rules.
    """
    response = latency_ns if response_latency_ns is None else response_latency_ns
    if not (latency_ns >= 0 and response >= 0):
        raise ValueError(f"latency: entry {latency_ns} ns and response {response} ns must be >= 0")
    n = len(tops)
    if targets is not None:
        mode = 0
        targets = np.ascontiguousarray(targets, np.float64)
        acts = np.ones(n, np.bool_) if acts is None else np.ascontiguousarray(acts, np.bool_)
        if targets.shape != (n,) or acts.shape != (n,):
            raise ValueError(f"targets/acts: expected ({n},) arrays, one per local event")
        signal_ts, signals = np.zeros(0, np.int64), np.zeros(0)
    elif signal_ts is not None and signals is not None:
        mode = 1
        signal_ts = np.ascontiguousarray(signal_ts, np.int64)
        signals = np.ascontiguousarray(signals, np.float64)
        if signal_ts.shape != signals.shape:
            raise ValueError("signal_ts and signals: expected arrays of one length")
        if len(signal_ts) > 1 and np.any(np.diff(signal_ts) < 0):
            raise ValueError("signal_ts: not in time order")
        if not qty > 0:
            raise ValueError(f"qty={qty} must be > 0")
        targets, acts = np.zeros(n), np.ones(n, np.bool_)
    else:
        raise ValueError("execute_targets: give targets (per event) or signal_ts and signals")
    out_i, out_f, counts = _execute(
        tops.local_ts, targets, acts, mode, signal_ts, signals, float(qty), bool(exit_on_neutral),
        tops.venue_ts, tops.venue_bid, tops.venue_bid_qty, tops.venue_ask, tops.venue_ask_qty,
        np.int64(latency_ns), np.int64(response), float(taker_bps), np.int64(tops.last_ts))
    k = int(counts[0])
    fills = np.empty(k, FILL_DTYPE)
    fills["exch_ts"], fills["local_ts"], fills["order_id"], fills["side"] = (out_i[:k, j] for j in range(4))
    fills["maker"] = False
    fills["price"], fills["qty"], fills["fee"], fills["position"], fills["realized_pnl"] = (
        out_f[:k, j] for j in range(5))
    info = {"orders_sent": int(counts[1]), "orders_unfilled": int(counts[2]), "orders_beyond_best": int(counts[3]),
            "orders_on_depleted_level": int(counts[4])}
    return fills, info


@nb.njit(cache=True)
def _execute(event_ts, targets, acts, mode, signal_ts, signals, qty, exit_on_neutral, venue_ts, vbid, vbid_q, vask,
             vask_q, lat_e, lat_r, taker_bps, last_ts):
    n = event_ts.shape[0]
    cap = 1024
    out_i = np.empty((cap, 4), np.int64)
    out_f = np.empty((cap, 5))
    counts = np.zeros(5, np.int64)
    pos_local = 0.0  # what the strategy knows (responses received)
    avg_local = 0.0
    real_local = 0.0
    pos = 0.0  # the venue's account
    avg = 0.0
    real = 0.0
    in_flight = False
    response_at = _NEVER
    target = 0.0
    cursor = 0  # next signal not yet acted on (mode 1)
    # Venue state after our last fill on each side (price, the level's quantity left, venue index):
    # a same-side order before the venue updates that level would see it depleted in the full replay.
    taken_idx = np.full(2, -1, np.int64)
    i = 0
    pending_fill = -1
    while True:
        t_event = event_ts[i] if i < n else _NEVER
        if in_flight and response_at < t_event and response_at < last_ts:
            # The response reaches the strategy: its position view updates, it may trade again.
            t = response_at
            in_flight = False
            if pending_fill >= 0:
                side = out_i[pending_fill, 3]
                pos_local, avg_local, real_local = _book_fill(pos_local, avg_local, real_local, side,
                                                             out_f[pending_fill, 0], out_f[pending_fill, 1])
            # (mode 0: the target is the last event's, events at `t` having come first)
        elif i < n:
            t = t_event
            if mode == 0:
                target = targets[i]
            i += 1
            if mode == 0 and not acts[i - 1]:
                continue
        else:
            break
        if mode == 1:
            latest = -1
            while cursor < signal_ts.shape[0] and signal_ts[cursor] <= t:
                latest = cursor
                cursor += 1
            if latest >= 0:
                if signals[latest] != 0.0:
                    target = signals[latest] * qty
                elif exit_on_neutral:
                    target = 0.0
        if in_flight:
            continue
        delta = target - pos_local
        if abs(delta) < 1e-12:
            continue
        # Send a market order for |delta| at local time t.
        side = 1 if delta > 0 else -1
        q = abs(delta)
        counts[1] += 1
        order_id = counts[1] - 1
        arrive = t + lat_e
        in_flight = True
        pending_fill = -1
        if arrive >= last_ts:  # the replay ends first: it never arrives, nothing more is sent
            response_at = _NEVER
            continue
        response_at = arrive + lat_r
        j = np.searchsorted(venue_ts, arrive, side="right") - 1  # venue rows at `arrive` come first
        price = np.nan
        level = 0.0
        if j >= 0:
            price = vask[j] if side > 0 else vbid[j]
            level = vask_q[j] if side > 0 else vbid_q[j]
        if np.isnan(price):
            counts[2] += 1  # empty side: the order expires unfilled
            continue
        if q > level * (1 + 1e-12):
            counts[3] += 1
        s = 0 if side > 0 else 1
        if taken_idx[s] == j:
            counts[4] += 1
        taken_idx[s] = j
        k = counts[0]
        if k == out_i.shape[0]:
            grown_i = np.empty((2 * k, 4), np.int64)
            grown_f = np.empty((2 * k, 5))
            grown_i[:k] = out_i
            grown_f[:k] = out_f
            out_i, out_f = grown_i, grown_f
        fee = price * q * taker_bps * 1e-4
        pos, avg, real = _book_fill(pos, avg, real, side, price, q)
        out_i[k, 0] = arrive
        out_i[k, 1] = response_at
        out_i[k, 2] = order_id
        out_i[k, 3] = side
        out_f[k, 0] = price
        out_f[k, 1] = q
        out_f[k, 2] = fee
        out_f[k, 3] = pos
        out_f[k, 4] = real
        counts[0] = k + 1
        pending_fill = k
    return out_i, out_f, counts


def equity_curve(tops: BookTops, fills: np.ndarray, interval_ns: int) -> np.ndarray:
    """The engine's equity samples for ``fills`` over the replay of ``tops`` (EQUITY_DTYPE).

    Grid: multiples of ``interval_ns`` from the first local row's time to the last row's (none
    when 0), each the state strictly before it; then a final sample at the last row if later.
    """
    interval_ns = int(interval_ns)
    if interval_ns < 0:
        raise ValueError(f"equity_interval_ns={interval_ns} must be >= 0")
    if interval_ns and len(tops):
        first = -((-int(tops.local_ts[0])) // interval_ns) * interval_ns  # the local clock starts with its first row
        grid = np.arange(first, tops.last_ts + 1, interval_ns, dtype=np.int64)
    else:
        grid = np.empty(0, np.int64)
    final = grid.size == 0 or grid[-1] < tops.last_ts
    ts = np.concatenate([grid, [tops.last_ts]]) if final else grid
    # Fills with exch_ts < t (before the sample); at the final sample every recorded fill.
    k = np.searchsorted(fills["exch_ts"], ts, side="left")
    if final:
        k[-1] = len(fills)
    # The local mid after events with local_ts < t (all events at the final sample).
    j = np.searchsorted(tops.local_ts, ts, side="left") - 1
    if final:
        j[-1] = len(tops) - 1
    mids = np.where(j >= 0, 0.5 * (tops.bid[np.maximum(j, 0)] + tops.ask[np.maximum(j, 0)]), np.nan)
    mark = _ffill(mids, np.nan)  # the engine keeps the last two-sided mid as the mark
    avg = _average_prices(fills)
    has = k > 0
    last = np.maximum(k - 1, 0)
    position = np.where(has, fills["position"][last], 0.0) if len(fills) else np.zeros(len(ts))
    realized = np.where(has, fills["realized_pnl"][last], 0.0) if len(fills) else np.zeros(len(ts))
    fees = np.concatenate([[0.0], np.cumsum(fills["fee"])])[k]
    turnover = np.concatenate([[0.0], np.cumsum(fills["price"] * fills["qty"])])[k]
    entry = np.where(has, avg[last], 0.0) if len(fills) else np.zeros(len(ts))
    unrealized = np.where(position != 0.0, position * (mark - entry), 0.0)
    out = np.empty(len(ts), EQUITY_DTYPE)
    out["ts"], out["mid"], out["position"], out["realized_pnl"] = ts, mark, position, realized
    out["unrealized_pnl"], out["fees"], out["turnover"] = unrealized, fees, turnover
    out["equity"] = realized + unrealized - fees
    return out


def _average_prices(fills: np.ndarray) -> np.ndarray:
    """Average entry price after each fill (the engine's average-cost accounting)."""
    avg = np.empty(len(fills))
    pos = a = real = 0.0
    for i in range(len(fills)):  # one step per fill: few, and exactly the engine's arithmetic
        pos, a, real = _book_fill(pos, a, real, int(fills["side"][i]), float(fills["price"][i]), float(fills["qty"][i]))
        avg[i] = a
    return avg


# -- runs and sweeps -----------------------------------------------------------------------------

_DEFAULTS = {
    "ofi_signal": {"window": 100.0, "entry": 10.0, "exit": 2.0, "qty": 0.001},
    "deeplob_threshold": {"threshold": 0.5, "qty": 0.001, "stop_loss_bps": 0.0, "take_profit_bps": 0.0,
                          "exit_on_neutral": 1.0, "delay_ns": 0.0},
}


def run_vectorized(strategy: str, params: Mapping[str, Any] | None, tops: BookTops | np.ndarray, *,
                   latency_ns: float = 0.0, response_latency_ns: float | None = None, taker_bps: float = 0.0,
                   maker_bps: float = 0.0, equity_interval_ns: int = 1_000_000_000,
                   predictions: Mapping[str, np.ndarray] | pd.DataFrame | None = None, **config: Any
                   ) -> BacktestResult:
    """``strategy`` ('ofi_signal' or 'deeplob_threshold') over ``tops`` (or REPLAY rows) in the
    vectorised mode; a :class:`BacktestResult` like the full replay's.

    ``params`` as the strategy takes them (defaults for the rest); ``predictions`` (columns
    ``ts``, ``p_down``, ``p_stationary``, ``p_up``) for 'deeplob_threshold'. ``maker_bps`` is
    recorded only (no maker fills here). ``config`` is added to the result's config.
    """
    began = time.perf_counter()
    if isinstance(tops, np.ndarray):
        tops = book_tops(tops)
    if strategy not in _DEFAULTS:
        raise ValueError(f"vectorised mode: strategy {strategy!r} not supported; supported: {', '.join(STRATEGIES)} "
                         "(use genesis.backtest.engine.run_backtest for the others)")
    unknown = sorted(set(params or {}) - set(_DEFAULTS[strategy]))
    if unknown:
        raise ValueError(f"{strategy}: unknown parameter(s) {unknown}; known: {list(_DEFAULTS[strategy])}")
    p = {**_DEFAULTS[strategy], **{k: float(v) for k, v in (params or {}).items()}}
    timing = {"latency_ns": latency_ns, "response_latency_ns": response_latency_ns, "taker_bps": taker_bps}
    if strategy == "ofi_signal":
        targets, acts = ofi_targets(tops, int(p["window"]), p["entry"], p["exit"], p["qty"])
        fills, info = execute_targets(tops, targets=targets, acts=acts, **timing)
    else:
        if p["stop_loss_bps"] > 0 or p["take_profit_bps"] > 0:
            raise ValueError("deeplob_threshold: stop-loss / take-profit depend on the path; the vectorised mode "
                             "does not model them (use the full replay)")
        if predictions is None:
            raise ValueError("deeplob_threshold: predictions (ts, p_down, p_stationary, p_up) are required")
        ts = np.asarray(predictions["ts"], np.int64) + np.int64(p["delay_ns"])
        fills, info = execute_targets(tops, signal_ts=ts, signals=deeplob_signals(predictions, p["threshold"]),
                                      qty=p["qty"], exit_on_neutral=bool(p["exit_on_neutral"]), **timing)
    equity = equity_curve(tops, fills, equity_interval_ns)
    response = latency_ns if response_latency_ns is None else response_latency_ns
    cfg = {"strategy": strategy, "params": p, "mode": "vectorized",
           "latency": {"kind": "constant", "entry_ns": float(latency_ns), "response_ns": float(response)},
           "fees": {"maker_bps": float(maker_bps), "taker_bps": float(taker_bps)},
           "equity_interval_ns": int(equity_interval_ns), **config}
    meta = {"events": len(tops), "seconds": time.perf_counter() - began, **info}
    return BacktestResult(fills, equity, cfg, meta)


def sweep(strategy: str, grid: Mapping[str, Sequence[Any]], tops: BookTops | np.ndarray, *,
          metrics: Sequence[str] = ("pnl_net", "pnl_gross", "fees", "fills", "trades", "win_rate", "sharpe",
                                    "max_drawdown", "turnover"),
          base_params: Mapping[str, Any] | None = None, **run_kwargs: Any) -> pd.DataFrame:
    """Every combination of ``grid`` (parameter -> values) in the vectorised mode: one row per
    combination with its parameters, the chosen ``metrics`` and ``orders_beyond_best``, best
    ``pnl_net`` first. ``base_params`` fixes the others; ``run_kwargs`` go to :func:`run_vectorized`."""
    from genesis.backtest.metrics import compute_metrics

    if isinstance(tops, np.ndarray):
        tops = book_tops(tops)
    if not grid:
        raise ValueError("sweep: the grid is empty; give parameter -> list of values")
    names = list(grid)
    rows = []
    for values in itertools.product(*(list(grid[n]) for n in names)):
        params = {**(base_params or {}), **dict(zip(names, values))}
        try:
            result = run_vectorized(strategy, params, tops, **run_kwargs)
        except ValueError as exc:  # an impossible combination (exit > entry): listed, not fatal
            rows.append({**dict(zip(names, values)), "error": str(exc)})
            continue
        figures = compute_metrics(result)
        rows.append({**dict(zip(names, values)), **{m: figures[m] for m in metrics},
                     "orders_beyond_best": result.meta["orders_beyond_best"], "error": ""})
    frame = pd.DataFrame(rows)
    if "pnl_net" in frame.columns:
        frame = frame.sort_values("pnl_net", ascending=False, na_position="last")
    return frame.reset_index(drop=True)
