"""Reference imbalance features (vectorised NumPy/pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis.features.reference.common import RefData


def _sizes(px: np.ndarray, sz: np.ndarray) -> np.ndarray:
    """Sizes with missing levels (price or size NaN) as 0."""
    return np.where(np.isnan(px) | np.isnan(sz), 0.0, sz)


def obi(d: RefData) -> np.ndarray:
    s = d.snaps
    qb, qa = s.bid_sz[:, 0], s.ask_sz[:, 0]
    either_empty = np.isnan(s.bid_px[:, 0]) | np.isnan(s.ask_px[:, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(either_empty, np.nan, (qb - qa) / (qb + qa))


def obi_weighted(d: RefData, levels: float, decay: float) -> np.ndarray:
    s, L = d.snaps, int(levels)
    qb = _sizes(s.bid_px[:, :L], s.bid_sz[:, :L])
    qa = _sizes(s.ask_px[:, :L], s.ask_sz[:, :L])
    w = decay ** np.arange(L)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (qb - qa) @ w / ((qb + qa) @ w)


def _flow(d: RefData, m: int) -> np.ndarray:
    """Per-row OFI term of level m (0 = best); NaN at row 0 and when this or the previous row is empty."""
    s = d.snaps
    bid_ok = ~(np.isnan(s.bid_px[:, m]) | np.isnan(s.bid_sz[:, m]))
    ask_ok = ~(np.isnan(s.ask_px[:, m]) | np.isnan(s.ask_sz[:, m]))
    pb = np.where(bid_ok, s.bid_px[:, m], -np.inf)
    qb = np.where(bid_ok, s.bid_sz[:, m], 0.0)
    pa = np.where(ask_ok, s.ask_px[:, m], np.inf)
    qa = np.where(ask_ok, s.ask_sz[:, m], 0.0)

    def before(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:1], x[:-1]])  # row 0's "previous" is masked below

    pb0, qb0, pa0, qa0 = before(pb), before(qb), before(pa), before(qa)
    e = (pb >= pb0) * qb - (pb <= pb0) * qb0 - (pa <= pa0) * qa + (pa >= pa0) * qa0
    empty = np.isnan(s.bid_px[:, 0]) & np.isnan(s.ask_px[:, 0])
    invalid = empty | np.concatenate([[True], empty[:-1]])
    return np.where(invalid, np.nan, e)


def _window(e: np.ndarray, window: float) -> np.ndarray:
    """Sum of the non-NaN values among the last `window` rows; NaN when all are NaN."""
    return pd.Series(e).rolling(int(window), min_periods=1).sum().to_numpy()


def ofi(d: RefData, level: float, window: float) -> np.ndarray:
    return _window(_flow(d, int(level) - 1), window)


def ofi_multi(d: RefData, levels: float, window: float) -> np.ndarray:
    return _window(sum(_flow(d, m) for m in range(int(levels))), window)


REFERENCE = {f.__name__: f for f in (obi, obi_weighted, ofi, ofi_multi)}
