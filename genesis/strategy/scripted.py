"""``scripted``: sends the orders of a script at given local times (tests, reference comparisons).

Inputs, one row per action, time-ordered: ``ts`` (int64, local ns), ``side`` (1/-1),
``price``, ``qty``, ``order_type`` (MARKET 0 / LIMIT 1), ``tif`` (GTC 0 / IOC 1 / POST_ONLY 2),
``cancel_id`` (-1: submit this order; >= 0: cancel the order with that id instead; the engine
numbers accepted orders 0, 1, 2, ... in submission order). An action is taken at the first
moment the strategy runs at or after its ``ts`` (a timer makes sure it runs at ``ts``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from genesis.backtest import engine as bt
from genesis.strategy.base import Strategy, register


@nb.njit(cache=True, _nrt=False)
def scripted_kernel(E, rows, params, state, inputs):
    ts, side, price, qty, order_type, tif, cancel_id = inputs
    n = ts.shape[0]
    while True:
        ev = bt.next_event(E, rows)
        if ev == bt.EV_END:
            return
        k = np.int64(state[0])
        t = bt.now(E)
        while k < n and ts[k] <= t:
            if cancel_id[k] >= 0:
                bt.cancel(E, np.int64(cancel_id[k]))
            else:
                bt.submit(E, np.int64(side[k]), price[k], qty[k], np.int64(order_type[k]), np.int64(tif[k]))
            k += 1
        state[0] = k
        if k < n:
            bt.set_timer(E, ts[k])


SCRIPTED = register(Strategy(
    "scripted", scripted_kernel, params=(), state_size=1,
    inputs=(("ts", "i8"), ("side", "f8"), ("price", "f8"), ("qty", "f8"), ("order_type", "f8"), ("tif", "f8"),
            ("cancel_id", "f8")),
    description="orders (and cancels) from a script of local times"))
