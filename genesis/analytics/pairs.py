"""Pair spreads: hedge ratio by rolling OLS or by a Kalman filter, spread, z-score, and a
mean-reversion signal with entry / exit thresholds.

The pair is ``y ≈ alpha + beta · x`` (by default on log prices relative to the first one, so beta
is an elasticity and the spread a log-price difference). Two estimators of ``(beta, alpha)``:

* **rolling OLS** over the last ``window`` points, current one included (no look-ahead beyond
  it); the spread is ``y - alpha - beta · x`` with that fit and its z-score is over the last
  ``z_window`` spreads;
* **Kalman filter** with ``(beta, alpha)`` as a random walk: state noise covariance
  ``delta / (1 - delta) · I`` and observation noise variance ``obs_var``. The spread is the
  one-step forecast error ``y_t - (beta_{t|t-1} x_t + alpha_{t|t-1})`` and the z-score that error
  over its forecast standard deviation ``sqrt(Q_t)``, which the filter knows.

Kernels are Numba over float64 arrays; :class:`KalmanHedge` steps the same kernel one
observation at a time (live), giving the batch numbers. Each kernel has a plain NumPy
reference in ``tests/test_analytics_pairs.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pandas as pd


@numba.njit(cache=True)
def _rolling_ols(y, x, window, beta, alpha):
    """Least squares of y on (x, 1) over each window of ``window`` points ending at i (two-pass
    per window: means first, so large price levels lose no precision). NaN where the window
    holds a NaN, or x is constant over it."""
    n = len(y)
    for i in range(n):
        beta[i] = np.nan
        alpha[i] = np.nan
        if i + 1 < window:
            continue
        sx = 0.0
        sy = 0.0
        finite = True
        for j in range(i + 1 - window, i + 1):
            if not (np.isfinite(x[j]) and np.isfinite(y[j])):
                finite = False
                break
            sx += x[j]
            sy += y[j]
        if not finite:
            continue
        mx = sx / window
        my = sy / window
        sxx = 0.0
        sxy = 0.0
        for j in range(i + 1 - window, i + 1):
            dx = x[j] - mx
            sxx += dx * dx
            sxy += dx * (y[j] - my)
        if sxx <= 0.0:
            continue
        b = sxy / sxx
        beta[i] = b
        alpha[i] = my - b * mx


def rolling_ols(y: np.ndarray, x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Hedge ratio and intercept ``(beta, alpha)``, each shape ``(n,)``, of ``y`` on ``x`` by OLS
    over the last ``window`` points (current included); NaN for the first ``window - 1``."""
    y, x = _pair_arrays(y, x)
    if int(window) < 2:
        raise ValueError(f"window={window}: need at least 2 points per regression")
    beta, alpha = np.empty(len(y)), np.empty(len(y))
    _rolling_ols(y, x, int(window), beta, alpha)
    return beta, alpha


@numba.njit(cache=True)
def _kalman_step(y, x, theta, P, vw, ve, out):
    """One observation: predict (random walk: R = P + vw·I), then update with (y, x) if both are
    finite. ``theta = [beta, alpha]`` and the 2x2 ``P`` are updated in place. ``out`` gets
    (beta, alpha) after the update, the forecast error e and its standard deviation sqrt(Q)."""
    r00 = P[0, 0] + vw
    r01 = P[0, 1]
    r10 = P[1, 0]
    r11 = P[1, 1] + vw
    if not (np.isfinite(y) and np.isfinite(x)):
        P[0, 0] = r00
        P[1, 1] = r11
        out[0] = theta[0]
        out[1] = theta[1]
        out[2] = np.nan
        out[3] = np.nan
        return
    # F = [x, 1]: forecast, its variance Q = F R F' + ve, gain K = R F' / Q.
    e = y - (theta[0] * x + theta[1])
    rf0 = r00 * x + r01
    rf1 = r10 * x + r11
    q = x * rf0 + rf1 + ve
    k0 = rf0 / q
    k1 = rf1 / q
    theta[0] += k0 * e
    theta[1] += k1 * e
    # P = R - K F R  (F R = [x r00 + r10, x r01 + r11])
    fr0 = x * r00 + r10
    fr1 = x * r01 + r11
    P[0, 0] = r00 - k0 * fr0
    P[0, 1] = r01 - k0 * fr1
    P[1, 0] = r10 - k1 * fr0
    P[1, 1] = r11 - k1 * fr1
    out[0] = theta[0]
    out[1] = theta[1]
    out[2] = e
    out[3] = np.sqrt(q)


@numba.njit(cache=True)
def _kalman(y, x, theta, P, vw, ve, out):
    step = np.empty(4)
    for i in range(len(y)):
        _kalman_step(y[i], x[i], theta, P, vw, ve, step)
        out[i, 0] = step[0]
        out[i, 1] = step[1]
        out[i, 2] = step[2]
        out[i, 3] = step[3]


class KalmanOutput(NamedTuple):
    beta: np.ndarray  # (n,) hedge ratio after each observation
    alpha: np.ndarray  # (n,) intercept after each observation
    error: np.ndarray  # (n,) one-step forecast error of y (the spread); NaN where y or x is NaN
    error_std: np.ndarray  # (n,) its forecast standard deviation sqrt(Q)


class KalmanHedge:
    """Kalman filter of a random-walk ``(beta, alpha)`` in ``y = alpha + beta · x + noise``.

    ``delta``: state noise, as the share ``delta / (1 - delta)`` of an identity covariance per
    step (larger: beta moves faster); ``obs_var``: observation noise variance (in units of y²);
    ``beta0``, ``alpha0``, ``p0``: the prior state and its variance (``p0 · I``).
    :meth:`run` filters a batch; :meth:`step` one observation (the same kernel), so a live
    stream gives the batch numbers.
    """

    def __init__(self, delta: float = 1e-4, obs_var: float = 1e-3, *, beta0: float = 0.0, alpha0: float = 0.0,
                 p0: float = 1.0) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta={delta}: must be in (0, 1)")
        if not obs_var > 0.0:
            raise ValueError(f"obs_var={obs_var}: must be positive")
        if not p0 >= 0.0:
            raise ValueError(f"p0={p0}: must be >= 0")
        self.delta, self.obs_var = float(delta), float(obs_var)
        self.theta = np.array([beta0, alpha0], np.float64)
        self.P = np.eye(2) * float(p0)
        self._vw = self.delta / (1.0 - self.delta)
        self._out = np.empty(4)

    def step(self, y: float, x: float) -> tuple[float, float, float, float]:
        """Filter one observation; returns (beta, alpha, error, error_std)."""
        _kalman_step(float(y), float(x), self.theta, self.P, self._vw, self.obs_var, self._out)
        return tuple(float(v) for v in self._out)

    def run(self, y: np.ndarray, x: np.ndarray) -> KalmanOutput:
        """Filter a batch (continuing from the current state); arrays of shape ``(n,)``."""
        y, x = _pair_arrays(y, x)
        out = np.empty((len(y), 4))
        _kalman(y, x, self.theta, self.P, self._vw, self.obs_var, out)
        return KalmanOutput(out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy(), out[:, 3].copy())


def kalman_hedge(y: np.ndarray, x: np.ndarray, delta: float = 1e-4, obs_var: float = 1e-3, **prior) -> KalmanOutput:
    """Hedge ratio by a Kalman filter over a batch; see :class:`KalmanHedge`."""
    return KalmanHedge(delta, obs_var, **prior).run(y, x)


@numba.njit(cache=True)
def _rolling_zscore(values, window, out):
    """(v_i - mean) / std (population) over the last ``window`` values, current included; NaN
    where the window holds a NaN or has no spread."""
    n = len(values)
    for i in range(n):
        out[i] = np.nan
        if i + 1 < window:
            continue
        s = 0.0
        finite = True
        for j in range(i + 1 - window, i + 1):
            if not np.isfinite(values[j]):
                finite = False
                break
            s += values[j]
        if not finite:
            continue
        mean = s / window
        ss = 0.0
        for j in range(i + 1 - window, i + 1):
            d = values[j] - mean
            ss += d * d
        std = np.sqrt(ss / window)
        if std > 0.0:
            out[i] = (values[i] - mean) / std


def rolling_zscore(values: np.ndarray, window: int) -> np.ndarray:
    """Z-score of each value against the last ``window`` values (itself included), shape ``(n,)``."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if int(window) < 2:
        raise ValueError(f"z_window={window}: need at least 2 values")
    out = np.empty(len(values))
    _rolling_zscore(values, int(window), out)
    return out


@numba.njit(cache=True)
def _mean_reversion(z, entry, exit, out):
    position = 0
    for i in range(len(z)):
        zi = z[i]
        if np.isfinite(zi):
            if position == 0:
                if zi >= entry:
                    position = -1  # spread rich: sell y, buy beta·x
                elif zi <= -entry:
                    position = 1
            elif position == 1 and zi >= -exit:
                position = 0
            elif position == -1 and zi <= exit:
                position = 0
        out[i] = position


def mean_reversion_signal(z: np.ndarray, entry: float = 2.0, exit: float = 0.5) -> np.ndarray:
    """Position in the spread, ``int8`` shape ``(n,)``: -1 (short y, long beta·x) from a z-score
    at or above ``entry`` until it falls to ``exit`` or below; +1 from ``-entry`` or below until
    ``-exit`` or above; 0 otherwise. A NaN z-score holds the position."""
    if not (entry > 0 and 0 <= exit < entry):
        raise ValueError(f"entry={entry}, exit={exit}: need entry > 0 and 0 <= exit < entry")
    out = np.empty(len(z), np.int8)
    _mean_reversion(np.ascontiguousarray(z, dtype=np.float64), float(entry), float(exit), out)
    return out


def pair_spread(closes: pd.DataFrame, y: str, x: str, *, method: str = "kalman", window: int = 60,
                z_window: int = 60, entry: float = 2.0, exit: float = 0.5, log_prices: bool = True,
                delta: float = 1e-9, obs_var: float = 1e-8) -> pd.DataFrame:
    """The pair ``y`` ~ ``x`` over a frame of closes on one grid (e.g.
    :func:`genesis.analytics.bars.close_matrix`): index ts, columns y, x (as given), beta,
    alpha, spread, z, position and pnl, the per-bar return of holding ``position`` units of the
    spread from the bar before (``Δy - beta · Δx`` in the units of y, log returns by default).

    ``method``: ``'kalman'`` (``delta``, ``obs_var``) or ``'ols'`` (``window``, ``z_window``). The
    Kalman defaults suit 1s bars of liquid crypto pairs (on BTCUSDT / ETHUSDT the z-score then has
    a standard deviation near 1); coarser bars move more per bar: raise ``obs_var`` with the
    variance of a bar's log return.
    """
    for name in (y, x):
        if name not in closes.columns:
            raise ValueError(f"pair symbol {name!r}: not a column of the closes ({', '.join(closes.columns)})")
    if y == x:
        raise ValueError(f"pair {y!r} ~ {x!r}: give two different symbols")
    py, px = closes[y].to_numpy(np.float64), closes[x].to_numpy(np.float64)
    if log_prices:
        # Log prices relative to the first one: the same beta, and x near 0, so that the filter's
        # forecast variance is not dominated by beta's uncertainty times log(price)² (~100 for BTC).
        with np.errstate(divide="ignore", invalid="ignore"):
            py, px = np.log(py / _first_finite(py, y)), np.log(px / _first_finite(px, x))
    if method == "kalman":
        fit = kalman_hedge(py, px, delta, obs_var, beta0=0.0, alpha0=0.0)
        beta, alpha, spread = fit.beta, fit.alpha, fit.error
        with np.errstate(invalid="ignore", divide="ignore"):
            z = fit.error / fit.error_std
    elif method == "ols":
        beta, alpha = rolling_ols(py, px, window)
        spread = py - alpha - beta * px
        z = rolling_zscore(spread, z_window)
    else:
        raise ValueError(f"method={method!r}: choose 'kalman' or 'ols'")
    position = mean_reversion_signal(z, entry, exit)
    pnl = np.zeros(len(py))
    if len(py) > 1:
        held = position[:-1].astype(np.float64)
        with np.errstate(invalid="ignore"):
            pnl[1:] = np.where(held != 0, held * (np.diff(py) - beta[:-1] * np.diff(px)), 0.0)
    return pd.DataFrame({y: closes[y].to_numpy(), x: closes[x].to_numpy(), "beta": beta, "alpha": alpha,
                         "spread": spread, "z": z, "position": position, "pnl": np.nan_to_num(pnl)},
                        index=closes.index)


def _first_finite(values: np.ndarray, name: str) -> float:
    finite = values[np.isfinite(values)]
    if not len(finite) or finite[0] <= 0:
        raise ValueError(f"{name}: needs a positive price for log prices")
    return float(finite[0])


def _pair_arrays(y, x) -> tuple[np.ndarray, np.ndarray]:
    y = np.ascontiguousarray(y, dtype=np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if y.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"y and x: need two 1-D arrays of one length, got shapes {y.shape} and {x.shape}")
    return y, x


__all__ = ["rolling_ols", "KalmanHedge", "KalmanOutput", "kalman_hedge", "rolling_zscore", "mean_reversion_signal",
           "pair_spread"]
