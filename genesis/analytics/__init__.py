"""Cross-asset analytics over the store: OHLCV bars, pair spreads, correlations, price alerts.

* :mod:`genesis.analytics.bars` - bars kept by ClickHouse materialized views from trades,
  read, exported to CSV, uploaded from CSV / Parquet;
* :mod:`genesis.analytics.pairs` - hedge ratio by rolling OLS and by a Kalman filter, spread,
  z-score and a mean-reversion signal (Numba kernels);
* :mod:`genesis.analytics.correlation` - rolling correlation matrix of returns on a common bar
  grid, and its heatmap;
* :mod:`genesis.analytics.price_alerts` - above / below / cross rules over history and on a live
  trade stream, with the triggered history stored.
"""
