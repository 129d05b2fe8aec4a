"""``ofi_signal``: trade the order-flow imbalance of the best levels over a window of depth messages.

The order-flow imbalance of one depth message (Cont, Kukanov and Stoikov, 2014), from the local
best levels before (b0, qb0, a0, qa0) and after (b, qb, a, qa) it::

    e = qb*[b >= b0] - qb0*[b <= b0] - qa*[a <= a0] + qa0*[a >= a0]

summed over the last ``window`` messages (base units). Above ``entry`` the target position is
+qty, below -entry it is -qty; once ``|ofi| <= exit`` it is 0 (between exit and entry the
position is kept). Market orders move to the target, one in flight at a time.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from genesis.backtest import engine as bt
from genesis.strategy.base import Strategy, register, trade_to_target

# State: order in flight, target, previous best levels, running sum, ring position, count, then the ring.
_ORDER, _TARGET, _B0, _QB0, _A0, _QA0, _SUM, _POS, _COUNT, _RING = range(10)


@nb.njit(cache=True, _nrt=False)
def ofi_signal_kernel(E, rows, params, state, inputs):
    window = np.int64(params[0])
    entry, exit_, qty = params[1], params[2], params[3]
    while True:
        ev = bt.next_event(E, rows)
        if ev == bt.EV_END:
            return
        if ev == bt.EV_DEPTH:
            b, a = bt.best_bid(E), bt.best_ask(E)
            if np.isnan(b) or np.isnan(a):
                continue
            qb, qa = bt.best_bid_qty(E), bt.best_ask_qty(E)
            if not np.isnan(state[_B0]):
                b0, qb0, a0, qa0 = state[_B0], state[_QB0], state[_A0], state[_QA0]
                e = 0.0
                if b >= b0:
                    e += qb
                if b <= b0:
                    e -= qb0
                if a <= a0:
                    e -= qa
                if a >= a0:
                    e += qa0
                k = np.int64(state[_POS])
                state[_SUM] += e - state[_RING + k]
                state[_RING + k] = e
                state[_POS] = (k + 1) % window
                state[_COUNT] = min(state[_COUNT] + 1, window)
                if state[_COUNT] >= window:
                    ofi = state[_SUM]
                    if ofi > entry:
                        state[_TARGET] = qty
                    elif ofi < -entry:
                        state[_TARGET] = -qty
                    elif abs(ofi) <= exit_:
                        state[_TARGET] = 0.0
            state[_B0], state[_QB0], state[_A0], state[_QA0] = b, qb, a, qa
        trade_to_target(E, state, _ORDER, state[_TARGET], 1e-12)


def _init(params: np.ndarray) -> np.ndarray:
    state = np.zeros(_RING + int(params[0]))
    state[_ORDER] = -1.0
    state[_B0] = np.nan
    return state


def _checks(p: dict[str, float]) -> None:
    if p["window"] < 1 or p["window"] != int(p["window"]):
        raise ValueError(f"ofi_signal: window={p['window']} must be a whole number >= 1")
    if not 0 <= p["exit"] <= p["entry"]:
        raise ValueError(f"ofi_signal: need 0 <= exit ({p['exit']}) <= entry ({p['entry']})")
    if p["qty"] <= 0:
        raise ValueError(f"ofi_signal: qty={p['qty']} must be > 0")


OFI_SIGNAL = register(Strategy(
    "ofi_signal", ofi_signal_kernel,
    params=(("window", 100.0), ("entry", 10.0), ("exit", 2.0), ("qty", 0.001)),
    description="order-flow imbalance of the best levels over `window` depth messages; enter beyond "
                "+-entry, flat within +-exit", init=_init, checks=_checks))
