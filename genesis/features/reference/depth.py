"""Reference depth features (vectorised NumPy/pandas)."""

from __future__ import annotations

import numpy as np

from genesis.features.reference.common import RefData


def _present(px: np.ndarray, sz: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``levels`` columns, and where a level is present (price and size both set)."""
    px, sz = px[:, :levels], sz[:, :levels]
    return px, sz, ~(np.isnan(px) | np.isnan(sz))


def _empty(d: RefData) -> np.ndarray:
    return np.isnan(d.snaps.bid_px[:, 0]) & np.isnan(d.snaps.ask_px[:, 0])


def _depth(d: RefData, px: np.ndarray, sz: np.ndarray, levels: float) -> np.ndarray:
    px, sz, ok = _present(px, sz, int(levels))
    return np.where(_empty(d), np.nan, np.where(ok, sz, 0.0).sum(axis=1))


def _notional(d: RefData, px: np.ndarray, sz: np.ndarray, levels: float) -> np.ndarray:
    px, sz, ok = _present(px, sz, int(levels))
    return np.where(_empty(d), np.nan, np.where(ok, px * sz, 0.0).sum(axis=1))


def _slope(d: RefData, px: np.ndarray, sz: np.ndarray, levels: float) -> np.ndarray:
    """Least-squares slope of cumulative size on distance (bps) from the mid, per row."""
    px, sz, ok = _present(px, sz, int(levels))
    mid = d.mid[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(ok, np.abs(px - mid) / mid * 1e4, np.nan)
        y = np.where(ok, np.cumsum(np.where(ok, sz, 0.0), axis=1), np.nan)
        n = ok.sum(axis=1)
        dx = x - (np.nansum(x, axis=1) / n)[:, None]
        dy = y - (np.nansum(y, axis=1) / n)[:, None]
        slope = np.nansum(dx * dy, axis=1) / np.nansum(dx * dx, axis=1)
        # All present levels at one distance: no slope (the division above is only rounding noise).
        flat = np.max(np.where(ok, x, -np.inf), axis=1) == np.min(np.where(ok, x, np.inf), axis=1)
    return np.where((n >= 2) & ~flat & np.isfinite(d.mid), slope, np.nan)


def bid_depth(d: RefData, levels: float) -> np.ndarray:
    return _depth(d, d.snaps.bid_px, d.snaps.bid_sz, levels)


def ask_depth(d: RefData, levels: float) -> np.ndarray:
    return _depth(d, d.snaps.ask_px, d.snaps.ask_sz, levels)


def depth_imbalance(d: RefData, levels: float) -> np.ndarray:
    qb, qa = bid_depth(d, levels), ask_depth(d, levels)
    with np.errstate(invalid="ignore"):
        return (qb - qa) / (qb + qa)


def bid_notional(d: RefData, levels: float) -> np.ndarray:
    return _notional(d, d.snaps.bid_px, d.snaps.bid_sz, levels)


def ask_notional(d: RefData, levels: float) -> np.ndarray:
    return _notional(d, d.snaps.ask_px, d.snaps.ask_sz, levels)


def book_slope_bid(d: RefData, levels: float) -> np.ndarray:
    return _slope(d, d.snaps.bid_px, d.snaps.bid_sz, levels)


def book_slope_ask(d: RefData, levels: float) -> np.ndarray:
    return _slope(d, d.snaps.ask_px, d.snaps.ask_sz, levels)


REFERENCE = {f.__name__: f for f in (bid_depth, ask_depth, depth_imbalance, bid_notional, ask_notional,
                                     book_slope_bid, book_slope_ask)}
