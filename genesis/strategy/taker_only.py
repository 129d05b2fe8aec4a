"""``taker_only``: a fixed-size market order every ``interval_ns`` of the local clock, alternating
buy and sell (so the position goes 0, +qty, 0, +qty, ...).

Orders go at the local times ``k * interval_ns`` (multiples since the epoch) at which the
local book has both sides; the first is a buy, and the side flips after each order sent.
It is the strategy the hftbacktest comparison reproduces (benchmarks/): only taker fills,
whose prices depend only on the book at the orders' arrival and on the latency.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from genesis.backtest import engine as bt
from genesis.strategy.base import Strategy, register

_NEXT_SIDE, _STARTED = range(2)


@nb.njit(cache=True, _nrt=False)
def taker_only_kernel(E, rows, params, state, inputs):
    interval = np.int64(params[0])
    qty = params[1]
    while True:
        ev = bt.next_event(E, rows)
        if ev == bt.EV_END:
            return
        if state[_STARTED] == 0.0:
            state[_STARTED] = 1.0
            state[_NEXT_SIDE] = 1.0
            t = bt.now(E)
            bt.set_timer(E, (t // interval + 1) * interval)
        elif ev == bt.EV_TIMER:
            if not np.isnan(bt.best_bid(E)) and not np.isnan(bt.best_ask(E)):
                side = np.int64(state[_NEXT_SIDE])
                if bt.submit(E, side, 0.0, qty, bt.MARKET, bt.IOC) >= 0:
                    state[_NEXT_SIDE] = -state[_NEXT_SIDE]
            bt.set_timer(E, bt.now(E) + interval)


def _checks(p: dict[str, float]) -> None:
    if p["interval_ns"] < 1:
        raise ValueError(f"taker_only: interval_ns={p['interval_ns']} must be >= 1")
    if p["qty"] <= 0:
        raise ValueError(f"taker_only: qty={p['qty']} must be > 0")


TAKER_ONLY = register(Strategy(
    "taker_only", taker_only_kernel, params=(("interval_ns", 1e9), ("qty", 0.001)), state_size=2,
    description="market order of qty every interval_ns (local clock), alternating buy/sell", checks=_checks))
