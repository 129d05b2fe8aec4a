"""``deeplob_threshold``: trade the DeepLOB model's class probabilities (the predictions table).

Inputs (one row per prediction, time-ordered): ``ts`` (int64 ns), ``p_down``, ``p_stationary``,
``p_up``. The ``predictions`` table (:mod:`genesis.models.predict`) stamps a prediction with the
time of the book row that ends its window; it becomes usable at ``ts + delay_ns`` on the local
clock (``delay_ns`` stands for the feed and inference delay; paper trading hands the live
predictor's outputs stamped with the local time they were made, and delay 0).

At each event the strategy takes the latest usable prediction (each prediction is acted on
once): ``p_up > threshold`` sets the target +qty, ``p_down > threshold`` -qty, otherwise (neutral)
0 when ``exit_on_neutral`` (else the position is kept). An opposite signal reverses. With
``stop_loss_bps``/``take_profit_bps`` > 0, the position is closed when the local mid has moved
that far against/for the entry price; the strategy then stays flat until the signal changes.
Market orders, one in flight at a time.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from genesis.backtest import engine as bt
from genesis.strategy.base import Strategy, register, trade_to_target

_ORDER, _TARGET, _CURSOR, _SIGNAL, _BLOCKED = range(5)


@nb.njit(cache=True, _nrt=False)
def deeplob_threshold_kernel(E, rows, params, state, inputs):
    threshold, qty, stop_loss, take_profit, exit_on_neutral, delay = (
        params[0], params[1], params[2], params[3], params[4], np.int64(params[5]))
    ts, p_down, p_up = inputs[0], inputs[1], inputs[3]
    n = ts.shape[0]
    while True:
        ev = bt.next_event(E, rows)
        if ev == bt.EV_END:
            return
        t = bt.now(E)
        k = np.int64(state[_CURSOR])
        latest = -1
        while k < n and ts[k] + delay <= t:
            latest = k
            k += 1
        state[_CURSOR] = k
        if latest >= 0:
            signal = 0.0
            if p_up[latest] > threshold and p_up[latest] >= p_down[latest]:
                signal = 1.0
            elif p_down[latest] > threshold:
                signal = -1.0
            if signal != state[_SIGNAL]:
                state[_BLOCKED] = 0.0  # a new signal lifts a stop-loss / take-profit block
            state[_SIGNAL] = signal
            if state[_BLOCKED] == 0.0:
                if signal != 0.0:
                    state[_TARGET] = signal * qty
                elif exit_on_neutral != 0.0:
                    state[_TARGET] = 0.0
        pos = bt.position(E)
        if pos != 0.0 and (stop_loss > 0.0 or take_profit > 0.0):
            entry = bt.entry_price(E)
            m = bt.mid(E)
            if entry > 0.0 and not np.isnan(m):
                move_bps = (m - entry) / entry * 1e4 * (1.0 if pos > 0.0 else -1.0)
                if (stop_loss > 0.0 and move_bps <= -stop_loss) or (take_profit > 0.0 and move_bps >= take_profit):
                    state[_TARGET] = 0.0
                    state[_BLOCKED] = 1.0
        trade_to_target(E, state, _ORDER, state[_TARGET], 1e-12)


def _init(params: np.ndarray) -> np.ndarray:
    return np.array([-1.0, 0.0, 0.0, 0.0, 0.0])


def _checks(p: dict[str, float]) -> None:
    if not 0 < p["threshold"] < 1:
        raise ValueError(f"deeplob_threshold: threshold={p['threshold']} must be in (0, 1)")
    if p["qty"] <= 0:
        raise ValueError(f"deeplob_threshold: qty={p['qty']} must be > 0")
    for name in ("stop_loss_bps", "take_profit_bps", "delay_ns"):
        if p[name] < 0:
            raise ValueError(f"deeplob_threshold: {name}={p[name]} must be >= 0 (0 turns it off)")


DEEPLOB_THRESHOLD = register(Strategy(
    "deeplob_threshold", deeplob_threshold_kernel,
    params=(("threshold", 0.6), ("qty", 0.001), ("stop_loss_bps", 0.0), ("take_profit_bps", 0.0),
            ("exit_on_neutral", 1.0), ("delay_ns", 0.0)),
    inputs=(("ts", "i8"), ("p_down", "f8"), ("p_stationary", "f8"), ("p_up", "f8")),
    description="long/short when the model's p_up/p_down exceeds threshold; exit on neutral/opposite; "
                "optional stop-loss / take-profit", init=_init, checks=_checks))
