"""What a backtest or a paper-trading session produces: fills, an equity curve, the run's config.

The engine (:mod:`genesis.backtest.engine`) writes these arrays; metrics, reports, the store
and the dashboards read them. Money is in the quote currency (USDT for BTCUSDT), quantities in
the base currency, time in int64 ns since the epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# One execution of one of our orders (a partial fill is a row of its own).
FILL_DTYPE = np.dtype(
    [
        ("exch_ts", "i8"),  # when the venue matched it (exchange clock)
        ("local_ts", "i8"),  # when the strategy learned of it (exch_ts + response latency)
        ("order_id", "i8"),
        ("side", "i1"),  # 1 buy, -1 sell
        ("price", "f8"),
        ("qty", "f8"),  # > 0
        ("fee", "f8"),  # paid, quote currency; negative is a rebate
        ("maker", "?"),  # True: our resting order was hit; False: we took liquidity
        ("position", "f8"),  # position after this fill
        ("realized_pnl", "f8"),  # cumulative realized PnL after this fill, before fees (average-cost method)
    ]
)

# The account sampled on a fixed interval of the local clock (and once at the end).
EQUITY_DTYPE = np.dtype(
    [
        ("ts", "i8"),  # local clock
        ("mid", "f8"),  # mark price: the local book's mid (NaN while there is no two-sided book)
        ("position", "f8"),
        ("realized_pnl", "f8"),  # cumulative, before fees
        ("unrealized_pnl", "f8"),  # position * (mid - average entry price)
        ("fees", "f8"),  # cumulative fees paid (negative: net rebates)
        ("equity", "f8"),  # net PnL: realized + unrealized - fees
        ("turnover", "f8"),  # cumulative traded notional, sum of price * qty
    ]
)


@dataclass
class BacktestResult:
    """Fills and equity of one run, with the configuration that produced them.

    ``config`` holds everything needed to reproduce the run (strategy name and parameters,
    symbol, time range, latency, queue and fee models, equity interval, seed); ``meta`` holds
    what was measured (events replayed, seconds, run id once stored).
    """

    fills: np.ndarray  # FILL_DTYPE
    equity: np.ndarray  # EQUITY_DTYPE
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in (("fills", FILL_DTYPE), ("equity", EQUITY_DTYPE)):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype != dtype:
                raise TypeError(f"BacktestResult.{name}: expected a {name.upper()} array "
                                f"(genesis.backtest.result), got {getattr(value, 'dtype', type(value))}")
