"""Reference dynamics features (vectorised NumPy/pandas).

The EWMAs use pandas' ``ewm(alpha, adjust=False, ignore_na=True)``: its mean is
``y_i = (1 - alpha) y_{i-1} + alpha x_i`` from ``y_0 = x_0`` and its ``var(bias=True)`` is
``(1 - alpha) (v_{i-1} + (y_{i-1} - y_i)**2) + alpha (x_i - y_i)**2``, which is the kernels'
``(1 - alpha) (v_{i-1} + alpha (x_i - y_{i-1})**2)`` rearranged; NaN inputs are skipped and
the last value carried, so ``.shift(1)`` is the baseline before each row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis.features.reference.common import RefData


def _rolling(values: np.ndarray, window: float):
    return pd.Series(values).rolling(int(window), min_periods=1)


def log_return(d: RefData, horizon: float) -> np.ndarray:
    h = int(horizon)
    before = pd.Series(d.mid).shift(h).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(d.mid / before)


def realized_vol(d: RefData, window: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.log(d.mid / d.mid_before) ** 2
    # Rolling sums skip NaN and give NaN where the window has no value at all.
    total = _rolling(r2, window).sum().to_numpy()
    # pandas' running sum can leave a sum of zeros a rounding error below 0.
    return np.sqrt(np.maximum(total, 0.0), where=~np.isnan(total), out=np.full(d.n, np.nan))


def realized_range_bps(d: RefData, window: float) -> np.ndarray:
    w = int(window)
    mid = pd.Series(d.mid)
    hi = _rolling(d.mid, w).max().to_numpy()
    lo = _rolling(d.mid, w).min().to_numpy()
    last = mid.ffill(limit=w - 1).to_numpy() if w > 1 else d.mid  # latest valid mid in the window
    return (hi - lo) / last * 1e4


def _ewm(x: np.ndarray, halflife: float):
    alpha = 1.0 - 0.5 ** (1.0 / halflife)
    return pd.Series(x).ewm(alpha=alpha, adjust=False, ignore_na=True)


def _ewma(x: np.ndarray, halflife: float) -> np.ndarray:
    return np.where(np.isnan(x), np.nan, _ewm(x, halflife).mean().to_numpy())


def _z(x: np.ndarray, halflife: float) -> np.ndarray:
    ewm = _ewm(x, halflife)
    m = ewm.mean().shift(1).to_numpy()
    v = ewm.var(bias=True).shift(1).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        # v at or below (1e-9 m)**2 is the inputs' rounding noise: taken as 0 (see the kernels).
        return np.where(v > (1e-9 * m) ** 2, (x - m) / np.sqrt(v), np.nan)


def _spread(d: RefData) -> np.ndarray:
    return d.snaps.ask_px[:, 0] - d.snaps.bid_px[:, 0]


def _depth(d: RefData, levels: float) -> np.ndarray:
    s, k = d.snaps, int(levels)
    sizes = [np.where(np.isnan(px[:, :k]), 0.0, np.nan_to_num(sz[:, :k])).sum(axis=1)
             for px, sz in ((s.bid_px, s.bid_sz), (s.ask_px, s.ask_sz))]
    empty = np.isnan(s.bid_px[:, 0]) & np.isnan(s.ask_px[:, 0])
    return np.where(empty, np.nan, sizes[0] + sizes[1])


def spread_ewma(d: RefData, halflife: float) -> np.ndarray:
    return _ewma(_spread(d), halflife)


def spread_z(d: RefData, halflife: float) -> np.ndarray:
    return _z(_spread(d), halflife)


def depth_ewma(d: RefData, levels: float, halflife: float) -> np.ndarray:
    return _ewma(_depth(d, levels), halflife)


def depth_z(d: RefData, levels: float, halflife: float) -> np.ndarray:
    return _z(_depth(d, levels), halflife)


def volume_ewma(d: RefData, halflife: float) -> np.ndarray:
    return _ewma(d.volume, halflife)


def volume_z(d: RefData, halflife: float) -> np.ndarray:
    return _z(d.volume, halflife)


def message_rate(d: RefData, window: float) -> np.ndarray:
    w, ts = int(window), d.snaps.ts
    start = np.concatenate([np.full(min(w, d.n), ts[0] if d.n else 0), ts[:-w]])  # ts[i-w], else ts[0]
    elapsed = (ts - start) / 1e9
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(elapsed != 0, _rolling(d.snaps.updates, w).sum().to_numpy() / elapsed, np.nan)


def order_to_trade(d: RefData, window: float) -> np.ndarray:
    updates = _rolling(d.snaps.updates, window).sum().to_numpy()
    trades = _rolling(d.n_trades, window).sum().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(trades > 0, updates / trades, np.nan)


REFERENCE = {f.__name__: f for f in (log_return, realized_vol, realized_range_bps, spread_ewma, spread_z,
                                     depth_ewma, depth_z, volume_ewma, volume_z, message_rate,
                                     order_to_trade)}
# z = (x - m) / sd cancels where x is close to its mean: pandas forms the mean as
# (1 - alpha) m + alpha x, the kernels as m + alpha (x - m), and the last bits in which the
# two means differ are magnified by the cancellation (seen: 1.3e-9 at z = -0.0012).
TOLERANCE = {"spread_z": 1e-7, "depth_z": 1e-7, "volume_z": 1e-7}
