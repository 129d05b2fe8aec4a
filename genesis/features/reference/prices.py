"""Reference price features (vectorised NumPy)."""

from __future__ import annotations

import numpy as np

from genesis.features.reference.common import RefData


def _vwap(px: np.ndarray, sz: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    px, sz = px[:, :levels], sz[:, :levels]
    ok = ~(np.isnan(px) | np.isnan(sz))
    size = np.where(ok, sz, 0.0).sum(axis=1)
    value = np.where(ok, px * sz, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, value / size, np.nan), size


def _fill(px: np.ndarray, sz: np.ndarray, notional: float) -> np.ndarray:
    """Average fill price of `notional` walking the levels; NaN if the levels run out."""
    level = np.nan_to_num(px * sz, nan=0.0)
    # Levels after the first empty one do not count (the book ends there).
    level = np.where(np.cumprod(level > 0, axis=1) > 0, level, 0.0)
    before = np.cumsum(level, axis=1) - level
    take = np.clip(notional - before, 0.0, level)  # notional taken at each level
    with np.errstate(invalid="ignore", divide="ignore"):
        base = np.nansum(np.where(take > 0, take / px, 0.0), axis=1)
        return np.where(level.sum(axis=1) >= notional, notional / base, np.nan)


def mid(d: RefData) -> np.ndarray:
    return d.mid


def weighted_mid(d: RefData) -> np.ndarray:
    s = d.snaps
    return (s.bid_px[:, 0] * s.bid_sz[:, 0] + s.ask_px[:, 0] * s.ask_sz[:, 0]) / (s.bid_sz[:, 0] + s.ask_sz[:, 0])


def microprice(d: RefData, levels: float) -> np.ndarray:
    bid, qb = _vwap(d.snaps.bid_px, d.snaps.bid_sz, int(levels))
    ask, qa = _vwap(d.snaps.ask_px, d.snaps.ask_sz, int(levels))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (bid * qa + ask * qb) / (qa + qb)


def spread(d: RefData) -> np.ndarray:
    return d.snaps.ask_px[:, 0] - d.snaps.bid_px[:, 0]


def spread_bps(d: RefData) -> np.ndarray:
    return spread(d) / d.mid * 1e4


def vwap_bid(d: RefData, notional: float) -> np.ndarray:
    return _fill(d.snaps.bid_px, d.snaps.bid_sz, notional)


def vwap_ask(d: RefData, notional: float) -> np.ndarray:
    return _fill(d.snaps.ask_px, d.snaps.ask_sz, notional)


def impact_buy_bps(d: RefData, notional: float) -> np.ndarray:
    return (vwap_ask(d, notional) - d.mid) / d.mid * 1e4


def impact_sell_bps(d: RefData, notional: float) -> np.ndarray:
    return (d.mid - vwap_bid(d, notional)) / d.mid * 1e4


REFERENCE = {f.__name__: f for f in (mid, weighted_mid, microprice, spread, spread_bps, vwap_bid, vwap_ask,
                                     impact_buy_bps, impact_sell_bps)}
# (VWAP - mid) / mid cancels ~8 digits at these prices: summation order shows at 1e-9.
TOLERANCE = {"impact_buy_bps": 1e-6, "impact_sell_bps": 1e-6}
