"""``noop``: replays the events and does nothing (the engine's own cost, for benchmarks)."""

from __future__ import annotations

import numba as nb

from genesis.backtest import engine as bt
from genesis.strategy.base import Strategy, register


@nb.njit(cache=True, _nrt=False)
def noop_kernel(E, rows, params, state, inputs):
    while bt.next_event(E, rows) != bt.EV_END:
        pass


NOOP = register(Strategy("noop", noop_kernel, params=(), description="does nothing"))
