"""Trading strategies written once (as cached Numba kernels) and run by both the replay
backtester (:mod:`genesis.backtest.engine`) and live paper trading.

Provided: ``noop`` (benchmarks), ``taker_only`` (fixed-size market orders on a fixed local
clock; the hftbacktest comparison), ``market_maker`` (quotes at the touch with inventory
skew), ``ofi_signal`` (order-flow imbalance of the best levels), ``deeplob_threshold``
(the DeepLOB predictions table). See :mod:`genesis.strategy.base` for the contract.
"""

from genesis.strategy.base import Strategy, get_strategy, register, strategies

__all__ = ["Strategy", "get_strategy", "register", "strategies"]
