"""Shared pieces of the reference implementations: the same inputs, computed plainly."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from genesis.features.engine import Snapshots, Trades


class RefData:
    """Snapshots and trades with the per-row quantities the features share, in vectorised
    NumPy/pandas (no Numba): the oracle the kernels are tested against."""

    def __init__(self, snapshots: Snapshots, trades: Trades):
        self.snaps = snapshots
        self.trades = trades
        self.n = len(snapshots)

    @cached_property
    def mid(self) -> np.ndarray:
        return (self.snaps.bid_px[:, 0] + self.snaps.ask_px[:, 0]) / 2

    @cached_property
    def mid_before(self) -> np.ndarray:
        """Mid of the previous row: the quote in force when a row's trades happened."""
        return np.concatenate([[np.nan], self.mid[:-1]])

    @cached_property
    def trade_row(self) -> np.ndarray:
        """Row each trade belongs to: the first row at or after it (trades after the last row: none, -1)."""
        row = np.searchsorted(self.snaps.ts, self.trades.ts, side="left")
        return np.where(row < self.n, row, -1)

    @cached_property
    def trade_sign(self) -> np.ndarray:
        """Given side, else Lee-Ready: quote test against the previous row's mid, else the tick
        test with zero ticks taking the last non-zero tick's sign."""
        t = self.trades
        px = t.price
        quote = np.sign(px - self.mid_before[np.maximum(self.trade_row, 0)])
        quote = np.where(np.isnan(quote), 0.0, quote)
        tick = np.sign(np.diff(px, prepend=np.nan))
        tick = pd.Series(np.where(tick == 0, np.nan, tick)).ffill().fillna(0.0).to_numpy()
        inferred = np.where(quote != 0, quote, tick)
        return np.where(t.side != 0, t.side, inferred)

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-trade quantity over each row's trades."""
        keep = self.trade_row >= 0
        return np.bincount(self.trade_row[keep], weights=values[keep], minlength=self.n)[: self.n]

    @cached_property
    def volume(self) -> np.ndarray:
        return self.per_row(self.trades.qty)

    @cached_property
    def buy_volume(self) -> np.ndarray:
        return self.per_row(np.where(self.trade_sign > 0, self.trades.qty, 0.0))

    @cached_property
    def sell_volume(self) -> np.ndarray:
        return self.per_row(np.where(self.trade_sign < 0, self.trades.qty, 0.0))

    @cached_property
    def notional(self) -> np.ndarray:
        return self.per_row(self.trades.price * self.trades.qty)

    @cached_property
    def n_trades(self) -> np.ndarray:
        return self.per_row(np.ones(len(self.trades)))


def rolling_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum over the last ``window`` rows (fewer at the start), NaN-free input."""
    return pd.Series(values).rolling(window, min_periods=1).sum().to_numpy()
