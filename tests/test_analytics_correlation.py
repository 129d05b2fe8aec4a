"""Rolling correlation matrix against pandas' rolling corr, on the real closes and generated cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import capture_path
from genesis.analytics.bars import reference_bars
from genesis.analytics.correlation import (
    correlation_heatmap, correlation_matrix, log_returns, rolling_correlation,
)
from genesis.feeds.binance.capture import read_capture


def pandas_rolling(closes: pd.DataFrame, window: int) -> np.ndarray:
    returns = np.log(closes).diff().iloc[1:]
    k = closes.shape[1]
    out = np.full((len(returns), k, k), np.nan)
    for a in range(k):
        for b in range(k):
            out[:, a, b] = returns.iloc[:, a].rolling(window).corr(returns.iloc[:, b]).to_numpy()
    return out


@pytest.fixture(scope="module")
def real_closes() -> pd.DataFrame:
    series = {}
    for name in ("usdm_btcusdt_20240808.jsonl.gz", "spot_ethusdt_20240808.jsonl.gz"):
        events = read_capture(capture_path(name)).symbol_events()
        series[events.symbol] = reference_bars(events.trades, "1s").set_index("ts")["close"]
    grid = pd.date_range(max(s.index[0] for s in series.values()), min(s.index[-1] for s in series.values()), freq="1s")
    frame = pd.DataFrame({k: s.reindex(s.index.union(grid)).ffill().reindex(grid) for k, s in series.items()})
    rng = np.random.default_rng(11)  # a third, independent series
    frame["synthetic:NOISE"] = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, len(frame))))
    return frame


@pytest.mark.parametrize("window", [10, 60])
def test_rolling_correlation_equals_pandas_on_real_closes(real_closes, window):
    got = rolling_correlation(real_closes, window)
    want = pandas_rolling(real_closes, window)
    assert got.values.shape == (len(real_closes) - 1, 3, 3)
    finite = np.isfinite(want)
    assert finite.sum() > 0.8 * want.size
    np.testing.assert_allclose(got.values[finite], want[finite], rtol=1e-7, atol=1e-9)
    # Where pandas has no value (warm-up, a symbol that did not trade over the window) neither do we,
    # except the diagonal that pandas leaves at 1 for constant series on some versions.
    off_diagonal = ~np.eye(3, dtype=bool)[None].repeat(len(want), 0)
    assert np.isnan(got.values[~finite & off_diagonal]).all()
    btc_eth = got.pair(real_closes.columns[0], real_closes.columns[1]).dropna()
    assert btc_eth.mean() > 0.3  # BTC and ETH move together over seconds
    assert got.at(-1).shape == (3, 3)


def test_generated_cases_nan_and_constant_windows():
    rng = np.random.default_rng(5)
    closes = pd.DataFrame(np.exp(np.cumsum(rng.normal(0, 0.01, (200, 4)), axis=0)), columns=list("abcd"),
                          index=pd.date_range("2024-01-01", periods=200, freq="1min"))
    closes.iloc[50, 1] = np.nan
    closes.iloc[100:130, 2] = closes.iloc[99, 2]  # does not trade for 30 bars
    got = rolling_correlation(closes, 20)
    want = pandas_rolling(closes, 20)
    finite = np.isfinite(want)
    np.testing.assert_allclose(got.values[finite], want[finite], rtol=1e-9)
    assert np.isnan(got.values[49:70, 1, 0]).all()  # windows holding the NaN price's two returns
    assert np.isnan(got.values[125, 2, 0]) and np.isnan(got.values[125, 2, 2])
    assert (np.abs(got.values[np.isfinite(got.values)]) <= 1).all()


def test_whole_range_matrix_and_heatmap(real_closes):
    matrix = correlation_matrix(real_closes)
    want = np.log(real_closes).diff().corr().to_numpy()
    np.testing.assert_allclose(matrix.to_numpy(), want, rtol=1e-9)
    fig = correlation_heatmap(matrix, title="BTC / ETH / noise")
    assert fig.title.text == "BTC / ETH / noise"
    assert list(fig.x_range.factors) == list(real_closes.columns)
    source = fig.renderers[0].data_source
    assert len(source.data["rho"]) == 9 and source.data["label"][0] == "1.00"


def test_bad_input():
    closes = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="at least two symbols"):
        rolling_correlation(closes, 2)
    with pytest.raises(ValueError, match="positive"):
        log_returns(pd.DataFrame({"a": [1.0, -2.0], "b": [1.0, 2.0]}))
