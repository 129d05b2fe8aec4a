"""``market_maker``: post-only quotes at the touch, skewed by inventory, within a position limit.

On every local depth message (and every response but a rejection) the desired quotes are

    bid = best_bid - skew,  ask = best_ask - skew,  skew = round(skew_ticks * position / qty) * tick

so a long position lowers both quotes (buy less eagerly, sell more eagerly) and a short one
raises them; the ask is kept above the best bid and the bid below the best ask. A side whose
fill would take |position| beyond ``max_position`` is not quoted. A working quote whose price
differs from the desired one is cancelled; a new quote goes out once the side has no working
order (the cancel has been confirmed, or the quote was filled): one order per side at a time.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from genesis.backtest import engine as bt
from genesis.strategy.base import Strategy, register, round_to_tick

_BID_ID, _BID_PX, _ASK_ID, _ASK_PX = range(4)


@nb.njit(cache=True, inline="always")
def _quote_side(E, state, id_slot, px_slot, side, price, qty, allowed):
    oid = np.int64(state[id_slot])
    if oid >= 0 and not bt.order_working(E, oid):
        oid = -1
        state[id_slot] = -1.0
    if oid >= 0:
        if (not allowed or abs(state[px_slot] - price) > 1e-9 * price) and not bt.cancel_pending(E, oid):
            bt.cancel(E, oid)
        return
    if allowed:
        sent = bt.submit(E, side, price, qty, bt.LIMIT, bt.POST_ONLY)
        if sent >= 0:
            state[id_slot] = float(sent)
            state[px_slot] = price


@nb.njit(cache=True, _nrt=False)
def market_maker_kernel(E, rows, params, state, inputs):
    qty, max_position, tick, skew_ticks = params[0], params[1], params[2], params[3]
    while True:
        ev = bt.next_event(E, rows)
        if ev == bt.EV_END:
            return
        if ev == bt.EV_TRADE or ev == bt.EV_TIMER:
            continue
        if ev == bt.EV_RESPONSE and bt.last_response(E)[0] == bt.R_REJECTED:
            # A quote refused (post-only that would take: our book lags the venue's) waits for
            # the next depth message; re-sending it at once would loop at the same instant when
            # the latency is zero.
            continue
        bid, ask = bt.best_bid(E), bt.best_ask(E)
        if np.isnan(bid) or np.isnan(ask):
            continue
        pos = bt.position(E)
        skew = round(skew_ticks * pos / qty) * tick
        my_bid = round_to_tick(bid - skew, tick)
        my_ask = round_to_tick(ask - skew, tick)
        if my_ask <= bid:
            my_ask = round_to_tick(bid + tick, tick)
        if my_bid >= ask:
            my_bid = round_to_tick(ask - tick, tick)
        _quote_side(E, state, _BID_ID, _BID_PX, bt.BUY, my_bid, qty, pos + qty <= max_position * (1 + 1e-9))
        _quote_side(E, state, _ASK_ID, _ASK_PX, bt.SELL, my_ask, qty, -pos + qty <= max_position * (1 + 1e-9))


def _init(params: np.ndarray) -> np.ndarray:
    return np.array([-1.0, np.nan, -1.0, np.nan])


def _checks(p: dict[str, float]) -> None:
    for name in ("qty", "max_position", "tick"):
        if p[name] <= 0:
            raise ValueError(f"market_maker: {name}={p[name]} must be > 0")
    if p["skew_ticks"] < 0:
        raise ValueError(f"market_maker: skew_ticks={p['skew_ticks']} must be >= 0")


MARKET_MAKER = register(Strategy(
    "market_maker", market_maker_kernel,
    params=(("qty", 0.001), ("max_position", 0.005), ("tick", 0.1), ("skew_ticks", 1.0)), state_size=4,
    description="post-only quotes at the touch, inventory skew (ticks per qty held), max position",
    init=_init, checks=_checks))
