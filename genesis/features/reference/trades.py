"""Reference trades features (vectorised NumPy/pandas)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from genesis.features.reference.common import RefData, rolling_sum


def _ratio(num: np.ndarray, den: np.ndarray, rows_with_data: np.ndarray) -> np.ndarray:
    """num / den where the window has a contributing row, else NaN. The row count decides
    (it is exact) rather than den == 0, which a rolling float sum may miss by 1e-17."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows_with_data > 0, num / den, np.nan)


def _count(flags: np.ndarray, window: int) -> np.ndarray:
    return rolling_sum(flags.astype(np.float64), window)


def _dm(d: RefData) -> np.ndarray:
    """Mid change from the previous row (NaN when either mid is missing or at row 0)."""
    return d.mid - d.mid_before


def trade_volume(d: RefData, window: float) -> np.ndarray:
    return rolling_sum(d.volume, int(window))


def buy_volume(d: RefData, window: float) -> np.ndarray:
    return rolling_sum(d.buy_volume, int(window))


def sell_volume(d: RefData, window: float) -> np.ndarray:
    return rolling_sum(d.sell_volume, int(window))


def trade_count(d: RefData, window: float) -> np.ndarray:
    return rolling_sum(d.n_trades, int(window))


def signed_volume(d: RefData, window: float) -> np.ndarray:
    return rolling_sum(d.buy_volume - d.sell_volume, int(window))


def trade_imbalance(d: RefData, window: float) -> np.ndarray:
    w = int(window)
    signed = d.buy_volume + d.sell_volume
    return _ratio(rolling_sum(d.buy_volume - d.sell_volume, w), rolling_sum(signed, w), _count(signed > 0, w))


def trade_intensity(d: RefData, window: float) -> np.ndarray:
    w = int(window)
    ts = d.snaps.ts
    start = ts[np.maximum(np.arange(d.n) - w, 0)]  # ts[i-w], or ts[0] while the window is not full
    seconds = (ts - start).astype(np.float64) / 1e9
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seconds > 0, rolling_sum(d.n_trades, w) / seconds, np.nan)


def trade_vwap(d: RefData, window: float) -> np.ndarray:
    w = int(window)
    return _ratio(rolling_sum(d.notional, w), rolling_sum(d.volume, w), _count(d.volume > 0, w))


def _usable(d: RefData) -> tuple[np.ndarray, np.ndarray]:
    """Trades that count for the spreads (signed, inside a row, with a quote in force) and their row."""
    row = d.trade_row
    quote = d.mid_before[np.maximum(row, 0)]
    return (row >= 0) & (d.trade_sign != 0) & ~np.isnan(quote), row


def effective_spread_bps(d: RefData) -> np.ndarray:
    ok, row = _usable(d)
    t = d.trades
    quote = d.mid_before[row[ok]]
    value = 2 * d.trade_sign[ok] * (t.price[ok] - quote) / quote * 1e4
    num = np.bincount(row[ok], weights=t.qty[ok] * value, minlength=d.n)
    den = np.bincount(row[ok], weights=t.qty[ok], minlength=d.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def realized_spread_bps(d: RefData, delay: float) -> np.ndarray:
    k = int(delay)
    ok, row = _usable(d)
    ok &= row + k < d.n  # trades whose row + delay exists
    t = d.trades
    quote = d.mid_before[row[ok]]
    later = d.mid[row[ok] + k]
    value = 2 * d.trade_sign[ok] * (t.price[ok] - later) / quote * 1e4
    num = np.bincount(row[ok] + k, weights=t.qty[ok] * value, minlength=d.n)
    den = np.bincount(row[ok] + k, weights=t.qty[ok], minlength=d.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def lee_ready_share(d: RefData, window: float) -> np.ndarray:
    w = int(window)
    inferred = d.per_row((d.trades.side == 0).astype(np.float64))
    trades = rolling_sum(d.n_trades, w)
    return _ratio(rolling_sum(inferred, w), trades, trades)


def vpin(d: RefData, bucket_notional: float, buckets: float, sigma_halflife: float) -> np.ndarray:
    size, n_b = float(bucket_notional), int(buckets)
    if d.n == 0:
        return np.empty(0)
    dm = _dm(d)
    dm = np.where(np.isnan(dm), 0.0, dm)
    alpha = 1 - 0.5 ** (1 / sigma_halflife)
    # var_i = (1 - alpha) var_{i-1} + alpha dm_i^2 from var_{-1} = 0; row i uses var_{i-1}.
    var = pd.Series(np.concatenate([[0.0], dm**2])).ewm(alpha=alpha, adjust=False).mean().to_numpy()[:-1]
    sigma = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = dm / sigma / math.sqrt(2)
    phi = 0.5 * (1 + np.vectorize(math.erf, otypes=[float])(np.where(sigma > 0, z, 0.0)))
    buy_share = np.where(sigma > 0, phi, 0.5)
    # Bucket k spans cumulative notional [k*size, (k+1)*size]; a bar's buy share is constant
    # inside it, so cumulative buy notional is piecewise linear in cumulative notional and a
    # bucket's buy notional is its increase between the bucket's edges. (Extended precision:
    # the edges sit at cumulative totals far larger than one bucket.)
    notional = d.notional.astype(np.longdouble)
    cum = np.cumsum(notional)
    cum_buy = np.cumsum(buy_share * notional)
    edges = size * np.arange(1, int(cum[-1] // size) + 2, dtype=np.longdouble)
    edges = edges[edges <= cum[-1]]  # the ends of the completed buckets
    bar = np.searchsorted(cum, edges, side="left")  # the row whose bar reaches each edge
    buy_to_edge = np.concatenate([[0.0], cum_buy[bar] - (cum[bar] - edges) * buy_share[bar]])
    imbalance = np.abs(2 * np.diff(buy_to_edge) - size)  # |B - S| with S = size - B
    done = np.searchsorted(edges, cum, side="right")  # buckets completed at each row
    total = np.concatenate([[0.0], np.cumsum(imbalance)])
    last = (total[done] - total[np.maximum(done - n_b, 0)]).astype(np.float64)
    return np.where(done >= n_b, last / (n_b * size), np.nan)


def kyle_lambda(d: RefData, window: float) -> np.ndarray:
    w = int(window)
    y = _dm(d)
    ok = ~np.isnan(y)
    x = np.where(ok, d.buy_volume - d.sell_volume, 0.0)
    y = np.where(ok, y, 0.0)
    n, sx, sy = _count(ok, w), rolling_sum(x, w), rolling_sum(y, w)
    sxx, sxy = rolling_sum(x * x, w), rolling_sum(x * y, w)
    nonzero = _count(x != 0, w)
    den = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (n * sxy - sx * sy) / den
    return np.where((n >= 2) & (nonzero > 0) & (den > 1e-12 * n * sxx), slope, np.nan)


def amihud(d: RefData, window: float) -> np.ndarray:
    w = int(window)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(np.log(d.mid / d.mid_before))
        r = np.where(np.isnan(r), 0.0, r)
        return _ratio(rolling_sum(r, w), rolling_sum(d.notional, w), _count(d.notional > 0, w)) * 1e6


REFERENCE = {f.__name__: f for f in (trade_volume, buy_volume, sell_volume, trade_count, signed_volume,
                                     trade_imbalance, trade_intensity, trade_vwap, effective_spread_bps,
                                     realized_spread_bps, lee_ready_share, vpin, kyle_lambda, amihud)}
# pandas' rolling sums (Kahan) keep a residue of eps * |value| after a large value leaves the
# window; Kyle's lambda divides by the variance of the window's signed volume, which magnifies
# that residue ~1e4x on a window of small trades after a burst. (The kernel's compensated sums
# do not keep it: against an extended-precision computation it is exact to ~1e-15.)
TOLERANCE = {"kyle_lambda": 1e-7}
