"""Pair kernels against plain NumPy references: the Kalman hedge ratio against a textbook matrix
filter, the rolling OLS against np.linalg.lstsq per window, on the real BTCUSDT / ETHUSDT closes
and on generated edge cases; the signal on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import capture_path
from genesis.analytics.bars import reference_bars
from genesis.analytics.pairs import (
    KalmanHedge, kalman_hedge, mean_reversion_signal, pair_spread, rolling_ols, rolling_zscore,
)
from genesis.feeds.binance.capture import read_capture


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    """1s closes of the two bundled captures on one grid (last close carried forward)."""
    series = {}
    for name in ("usdm_btcusdt_20240808.jsonl.gz", "spot_ethusdt_20240808.jsonl.gz"):
        events = read_capture(capture_path(name)).symbol_events()
        series[events.symbol] = reference_bars(events.trades, "1s").set_index("ts")["close"]
    grid = pd.date_range(max(s.index[0] for s in series.values()), min(s.index[-1] for s in series.values()), freq="1s")
    return pd.DataFrame({k: s.reindex(s.index.union(grid)).ffill().reindex(grid) for k, s in series.items()})


def kalman_reference(y, x, delta, ve, p0=1.0):
    """The filter written out with 2x2 matrices, one observation at a time."""
    theta, P, Vw = np.zeros(2), np.eye(2) * p0, np.eye(2) * delta / (1 - delta)
    out = np.full((len(y), 4), np.nan)
    for t in range(len(y)):
        R = P + Vw
        if not (np.isfinite(y[t]) and np.isfinite(x[t])):
            P = R
            out[t, :2] = theta
            continue
        F = np.array([x[t], 1.0])
        e = y[t] - F @ theta
        Q = F @ R @ F + ve
        K = R @ F / Q
        theta = theta + K * e
        P = R - np.outer(K, F @ R)
        out[t] = theta[0], theta[1], e, np.sqrt(Q)
    return out


def ols_reference(y, x, window):
    beta, alpha = np.full(len(y), np.nan), np.full(len(y), np.nan)
    for i in range(window - 1, len(y)):
        yw, xw = y[i + 1 - window:i + 1], x[i + 1 - window:i + 1]
        if np.isfinite(yw).all() and np.isfinite(xw).all() and np.ptp(xw) > 0:
            (beta[i], alpha[i]), *_ = np.linalg.lstsq(np.c_[xw, np.ones(window)], yw, rcond=None)
    return beta, alpha


@pytest.mark.parametrize("delta, ve", [(1e-4, 1e-3), (1e-6, 1e-7), (0.1, 1.0)])
def test_kalman_equals_the_numpy_filter_on_real_closes(closes, delta, ve):
    y, x = np.log(closes.iloc[:, 1].to_numpy()), np.log(closes.iloc[:, 0].to_numpy())
    assert len(y) > 300
    got = kalman_hedge(y, x, delta, ve)
    want = kalman_reference(y, x, delta, ve)
    for k, name in enumerate(("beta", "alpha", "error", "error_std")):
        np.testing.assert_allclose(getattr(got, name), want[:, k], rtol=1e-9, atol=1e-12, err_msg=name)


def test_kalman_tracks_a_known_beta_and_skips_missing_observations():
    rng = np.random.default_rng(7)
    x = 100 + np.cumsum(rng.normal(0, 1, 3000))
    y = 5.0 + 1.7 * x + rng.normal(0, 0.1, 3000)
    y[[100, 101, 2000]] = np.nan
    x[500] = np.nan
    got = kalman_hedge(y, x, delta=1e-6, obs_var=0.01)
    want = kalman_reference(y, x, 1e-6, 0.01)
    np.testing.assert_allclose(np.c_[got.beta, got.alpha], want[:, :2], rtol=1e-9, atol=1e-12)
    assert np.isnan(got.error[[100, 101, 500, 2000]]).all()
    assert got.beta[101] == got.beta[99]  # a missing observation leaves the state as it was
    assert abs(got.beta[-1] - 1.7) < 0.01


def test_kalman_stepped_online_equals_the_batch(closes):
    y, x = np.log(closes.iloc[:, 1].to_numpy()), np.log(closes.iloc[:, 0].to_numpy())
    batch = kalman_hedge(y, x, 1e-5, 1e-4)
    live = KalmanHedge(1e-5, 1e-4)
    stepped = np.array([live.step(a, b) for a, b in zip(y, x)])
    np.testing.assert_array_equal(stepped, np.c_[batch])
    half = KalmanHedge(1e-5, 1e-4)
    half.run(y[:100], x[:100])
    np.testing.assert_array_equal(half.run(y[100:], x[100:]).beta, batch.beta[100:])


@pytest.mark.parametrize("window", [2, 30, 120])
def test_rolling_ols_equals_lstsq_per_window_on_real_closes(closes, window):
    y, x = closes.iloc[:, 1].to_numpy(), closes.iloc[:, 0].to_numpy()  # raw prices: 2.7e3 on 6e4
    beta, alpha = rolling_ols(y, x, window)
    ref_beta, ref_alpha = ols_reference(y, x, window)
    assert np.isfinite(ref_beta).sum() > 100
    np.testing.assert_allclose(beta, ref_beta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(alpha, ref_alpha, rtol=1e-7, atol=1e-6)


def test_rolling_ols_edge_cases():
    x = np.array([1.0, 2.0, 3.0, 3.0, 3.0, np.nan, 5.0, 6.0, 7.0])
    y = 2.0 * x + 1.0
    beta, alpha = rolling_ols(y, x, 3)
    np.testing.assert_allclose(beta, [np.nan, np.nan, 2, 2, np.nan, np.nan, np.nan, np.nan, 2])
    np.testing.assert_allclose(alpha, [np.nan, np.nan, 1, 1, np.nan, np.nan, np.nan, np.nan, 1])
    assert np.isnan(rolling_ols(y[:2], x[:2], 5)[0]).all()
    with pytest.raises(ValueError, match="window=1"):
        rolling_ols(y, x, 1)
    with pytest.raises(ValueError, match="one length"):
        rolling_ols(y, x[:-1], 3)


def test_rolling_zscore_equals_pandas():
    rng = np.random.default_rng(3)
    values = rng.normal(size=500)
    values[200] = np.nan
    rolling = pd.Series(values).rolling(20)
    want = ((pd.Series(values) - rolling.mean()) / rolling.std(ddof=0)).to_numpy()
    np.testing.assert_allclose(rolling_zscore(values, 20), want, rtol=1e-9)
    assert np.isnan(rolling_zscore(np.ones(5), 3)).all()  # no spread: no z-score


def test_mean_reversion_signal_hand_computed():
    z = np.array([0.0, 2.1, 1.0, 0.6, 0.4, np.nan, -2.0, -1.0, -0.5, -3.0, 2.5, 0.0])
    np.testing.assert_array_equal(mean_reversion_signal(z, entry=2.0, exit=0.5),
                                  [0, -1, -1, -1, 0, 0, 1, 1, 0, 1, 0, 0])
    # (2.5 while long: exits at -exit or above, and does not flip short on the same bar)
    with pytest.raises(ValueError, match="entry"):
        mean_reversion_signal(z, entry=1.0, exit=1.0)


@pytest.mark.parametrize("method", ["kalman", "ols"])
def test_pair_spread_frame(closes, method):
    eth, btc = closes.columns[1], closes.columns[0]
    frame = pair_spread(closes, eth, btc, method=method, window=60, z_window=60, entry=1.5, exit=0.25,
                        delta=1e-5, obs_var=1e-6)
    assert list(frame.columns) == [eth, btc, "beta", "alpha", "spread", "z", "position", "pnl"]
    assert frame.index.equals(closes.index)
    np.testing.assert_array_equal(frame["position"].to_numpy(), mean_reversion_signal(frame["z"].to_numpy(), 1.5, 0.25))
    ly, lx = np.log(closes[eth].to_numpy()), np.log(closes[btc].to_numpy())
    if method == "ols":
        beta, alpha = ols_reference(ly, lx, 60)
        np.testing.assert_allclose(frame["spread"], ly - alpha - beta * lx, rtol=1e-6, atol=1e-9)
    pos = frame["position"].to_numpy()[:-1]
    want_pnl = np.where(pos != 0, pos * (np.diff(ly) - frame["beta"].to_numpy()[:-1] * np.diff(lx)), 0.0)
    np.testing.assert_allclose(frame["pnl"].to_numpy()[1:], np.nan_to_num(want_pnl), atol=1e-15)
    with pytest.raises(ValueError, match="method="):
        pair_spread(closes, eth, btc, method="bogus")
    with pytest.raises(ValueError, match="not a column"):
        pair_spread(closes, eth, "binance-usdm:NOPE")
