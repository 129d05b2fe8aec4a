"""Performance metrics of a backtest or paper-trading run, from its fills and equity curve.

>>> from genesis.backtest.metrics import compute_metrics, round_trips, daily_breakdown
>>> m = compute_metrics(result)              # dict: pnl_net, sharpe, max_drawdown, ...
>>> trades = round_trips(result.fills)       # one row per round-trip trade
>>> days = daily_breakdown(result)           # one row per UTC day

Conventions (every figure below follows them):

- Money is in the quote currency, quantities in the base currency.
- **Clock.** Every time-based figure uses the *local* clock, the strategy's: the equity curve
  is sampled on it, and fills are placed on it by their ``local_ts``. A round trip keeps the
  exchange times of its first and last fills too.
- **Round trips.** A trade runs from flat to flat: it opens with the fill that takes the
  position away from zero and closes with the fill that brings it back. A fill that flips the
  position (long 1, sell 3: short 2) closes the trade at that fill and opens the next one with
  the remainder; its quantity and fee are split pro rata between the two. A position still open
  at the end is an *open* trade: listed by :func:`round_trips` with ``closed=False``, left out
  of the trade statistics (win rate, averages, profit factor, holding time). A position is
  flat when ``|position| <= 1e-9 * (largest fill qty)``, so float residue (0.1 + 0.2 - 0.3)
  does not keep a trade open.
- **Trade PnL** is the trade's cash flow (sells minus buys, ``sum(-side * price * qty)``),
  which for a flat-to-flat trade is its realized PnL under any cost method; ``pnl_net`` is
  that minus the trade's fees. Wins and losses are judged on ``pnl_net``; a trade netting
  exactly zero is neither.
- **Sharpe and Sortino** are computed on the equity curve's PnL increments (the run has no
  capital of its own, and both ratios are unchanged by dividing by a constant capital):
  ``mean / std`` and ``mean / downside deviation`` (root mean square of the negative
  increments, over all periods), times ``sqrt(periods per year)``. Crypto trades around the
  clock, so a year is 365 days x 24 h: periods per year = ``365 * 86400 s / interval``, where
  the interval is the median spacing of the equity samples. The last sample (taken at the end
  of the run, off the grid) is left out when its spacing is shorter than the interval. Flat
  equity gives NaN (no variation to scale by), not infinity.
- **Drawdown** is measured on net PnL, with the start (PnL 0) as the first peak. The relative
  drawdown needs a capital (``capital=`` or ``config["capital"]``): it is the largest drop as a
  share of the peak account value ``capital + peak PnL``; without a capital it is NaN, since a
  share of a PnL peak near zero means nothing.
- **Exposure** is measured on the equity samples: the share of samples with a non-zero
  position, and the mean of ``|position| * mid`` over the samples (samples without a mid are
  left out of the latter).
- **Turnover** is the traded notional ``sum(price * qty)`` of all fills; with a capital it is
  also given as a multiple of the capital.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import pandas as pd

from genesis.backtest.result import EQUITY_DTYPE, FILL_DTYPE, BacktestResult

NS_PER_S = 1_000_000_000
SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto: every day of the year, around the clock
FLAT_TOLERANCE = 1e-9  # relative to the largest fill quantity

# Trade columns :func:`round_trips` returns, in order.
TRADE_COLUMNS = (
    "trade", "side", "entry_ts", "exit_ts", "entry_exch_ts", "exit_exch_ts", "holding_s", "qty", "max_position",
    "entry_price", "exit_price", "fills", "pnl_gross", "fees", "pnl_net", "closed",
)

# Order and meaning of the figures :func:`compute_metrics` returns (the report's table uses these).
METRIC_DESCRIPTIONS = {
    "pnl_net": "net PnL: realized + unrealized - fees (quote)",
    "pnl_gross": "gross PnL: realized + unrealized, before fees (quote)",
    "fees": "fees paid, negative for net rebates (quote)",
    "realized_pnl": "realized PnL before fees (quote)",
    "unrealized_pnl": "unrealized PnL of the open position, marked to mid (quote)",
    "fills": "number of fills (a partial fill counts once)",
    "maker_fills": "fills of resting orders",
    "taker_fills": "fills of orders that took liquidity",
    "trades": "closed round trips (flat to flat, or to a sign flip)",
    "open_trades": "1 if a position is open at the end",
    "win_rate": "share of closed trades with positive net PnL",
    "avg_win": "mean net PnL of winning trades (quote)",
    "avg_loss": "mean net PnL of losing trades (quote, negative)",
    "profit_factor": "sum of wins / |sum of losses| (inf: no losses)",
    "avg_trade_pnl": "mean net PnL per closed trade (quote)",
    "avg_holding_s": "mean holding time of closed trades (s, local clock)",
    "sharpe": "annualised Sharpe of equity increments (365 x 24 h year)",
    "sortino": "annualised Sortino of equity increments (365 x 24 h year)",
    "max_drawdown": "largest drop of net PnL from its running peak (quote)",
    "max_drawdown_rel": "max drawdown / peak account value (needs a capital)",
    "max_drawdown_s": "longest time below a previous peak (s)",
    "turnover": "traded notional, sum of price x qty (quote)",
    "turnover_rel": "turnover / capital (needs a capital)",
    "exposure": "share of equity samples with a position",
    "avg_abs_notional": "mean |position| x mid over equity samples (quote)",
    "max_abs_position": "largest |position| after a fill (base)",
    "sampling_s": "equity sampling interval (s, median spacing)",
    "duration_s": "span of the equity curve (s)",
}


def round_trips(fills: np.ndarray) -> pd.DataFrame:
    """Round-trip trades reconstructed from ``fills`` (FILL_DTYPE, in execution order).

    Returns one row per trade (see the module docstring for the rule), columns
    :data:`TRADE_COLUMNS`: ``side`` 1 long / -1 short; ``entry_ts``/``exit_ts`` local clock
    (ns) of the first and last fill, ``exit_ts`` and ``holding_s`` NaN-free only for closed
    trades (an open trade's exit is its last fill so far); ``qty`` total base quantity
    opened; ``entry_price``/``exit_price`` volume-weighted prices of the opening and closing
    quantities (``exit_price`` NaN while nothing was closed); ``fills`` fills touching the
    trade; ``pnl_gross`` cash flow for closed trades (NaN for the open one, whose value is in
    the run's unrealized PnL); ``fees``; ``pnl_net``.
    """
    _check(fills, FILL_DTYPE, "fills")
    n = len(fills)
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=_TRADE_KINDS[c]) for c in TRADE_COLUMNS})
    signed = fills["side"].astype(np.float64) * fills["qty"]
    tolerance = FLAT_TOLERANCE * float(np.max(fills["qty"]))
    (first, last, side, qty_open, qty_close, notional_open, notional_close, max_pos, count, cash, fees,
     closed) = _round_trips(signed, fills["price"].astype(np.float64), fills["fee"].astype(np.float64),
                            fills["position"].astype(np.float64), tolerance)
    local, exch = fills["local_ts"], fills["exch_ts"]
    frame = pd.DataFrame({
        "trade": np.arange(len(first)),
        "side": side.astype(np.int8),
        "entry_ts": local[first],
        "exit_ts": local[last],
        "entry_exch_ts": exch[first],
        "exit_exch_ts": exch[last],
        "holding_s": np.where(closed, (local[last] - local[first]) / NS_PER_S, np.nan),
        "qty": qty_open,
        "max_position": max_pos,
        "entry_price": notional_open / qty_open,
        "exit_price": np.where(qty_close > 0, notional_close / np.where(qty_close > 0, qty_close, 1.0), np.nan),
        "fills": count,
        "pnl_gross": np.where(closed, cash, np.nan),
        "fees": fees,
        "pnl_net": np.where(closed, cash - fees, np.nan),
        "closed": closed,
    })
    return frame


_TRADE_KINDS = {c: "float64" for c in TRADE_COLUMNS} | {
    "trade": "int64", "side": "int8", "entry_ts": "int64", "exit_ts": "int64", "entry_exch_ts": "int64",
    "exit_exch_ts": "int64", "fills": "int64", "closed": "bool"}


@numba.njit(cache=True)
def _round_trips(signed, price, fee, position, tolerance):
    """Kernel of :func:`round_trips`: walks the fills once, splitting a flipping fill.

    ``signed`` (n,) signed quantities (+ buy, - sell); ``position`` (n,) the engine's position
    after each fill, which decides flat / flip (with ``tolerance``). Returns per-trade arrays.
    """
    n = signed.shape[0]
    first = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    side = np.empty(n, np.int64)
    qty_open = np.zeros(n)
    qty_close = np.zeros(n)
    notional_open = np.zeros(n)
    notional_close = np.zeros(n)
    max_pos = np.zeros(n)
    count = np.zeros(n, np.int64)
    cash = np.zeros(n)
    fees = np.zeros(n)
    closed = np.zeros(n, np.bool_)
    k = -1  # current trade, -1 while flat
    before = 0.0  # position before the fill
    for i in range(n):
        after = position[i]
        q = abs(signed[i])
        if k < 0 or abs(before) <= tolerance:
            # Flat before this fill: it opens a trade (fills leaving us flat open nothing).
            if abs(after) <= tolerance:
                before = after
                continue
            k += 1
            first[k] = i
            side[k] = 1 if after > 0 else -1
            part_open = q
            part_close = 0.0
        elif abs(after) > tolerance and (after > 0) != (before > 0):
            # Flip: the part up to flat closes trade k, the remainder opens trade k + 1.
            part_close = abs(before)
            part_open = q - part_close
            share = part_close / q
            _add(k, i, part_close, share, signed, price, fee, qty_close, notional_close, cash, fees, count, last)
            closed[k] = True
            k += 1
            first[k] = i
            side[k] = 1 if after > 0 else -1
            part_close = 0.0
        else:
            increase = abs(after) > abs(before)
            part_open = q if increase else 0.0
            part_close = 0.0 if increase else q
        if part_open > 0.0:
            share = part_open / q
            qty_open[k] += part_open
            notional_open[k] += part_open * price[i]
            cash[k] -= np.sign(signed[i]) * part_open * price[i]
            fees[k] += share * fee[i]
            count[k] += 1
            last[k] = i
        elif part_close > 0.0:
            _add(k, i, part_close, 1.0, signed, price, fee, qty_close, notional_close, cash, fees, count, last)
        max_pos[k] = max(max_pos[k], abs(after))
        if abs(after) <= tolerance:
            closed[k] = True
        before = after
    m = k + 1
    return (first[:m], last[:m], side[:m], qty_open[:m], qty_close[:m], notional_open[:m], notional_close[:m],
            max_pos[:m], count[:m], cash[:m], fees[:m], closed[:m])


@numba.njit(cache=True)
def _add(k, i, part, share, signed, price, fee, qty_close, notional_close, cash, fees, count, last):
    """Books ``part`` of fill ``i`` (a reducing one) and ``share`` of its fee to trade ``k``."""
    qty_close[k] += part
    notional_close[k] += part * price[i]
    cash[k] -= np.sign(signed[i]) * part * price[i]
    fees[k] += share * fee[i]
    count[k] += 1
    last[k] = i


def sampling_interval_ns(ts: np.ndarray) -> float:
    """Median spacing of the equity samples ``ts`` (int64 ns), NaN with fewer than 2 samples."""
    if len(ts) < 2:
        return math.nan
    return float(np.median(np.diff(ts)))


def periods_per_year(interval_ns: float) -> float:
    """Sampling periods in a 365 x 24 h year for samples ``interval_ns`` apart."""
    if not interval_ns > 0:
        return math.nan
    return SECONDS_PER_YEAR * NS_PER_S / interval_ns


def equity_increments(equity: np.ndarray) -> tuple[np.ndarray, float]:
    """PnL increments of the equity curve on its regular grid, and the grid interval (ns).

    The final increment is dropped when it is shorter than the interval (the end-of-run
    sample); see the module docstring.
    """
    _check(equity, EQUITY_DTYPE, "equity")
    ts = equity["ts"]
    interval = sampling_interval_ns(ts)
    values = equity["equity"].astype(np.float64)
    increments = np.diff(values)
    if len(increments) >= 2 and ts[-1] - ts[-2] < interval:
        increments = increments[:-1]
    return increments, interval


def sharpe_sortino(equity: np.ndarray) -> tuple[float, float]:
    """Annualised (Sharpe, Sortino) of the equity curve's increments (see the module docstring)."""
    increments, interval = equity_increments(equity)
    scale = math.sqrt(periods_per_year(interval)) if interval > 0 else math.nan
    if len(increments) < 2:
        return math.nan, math.nan
    mean = float(np.mean(increments))
    std = float(np.std(increments, ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(increments, 0.0) ** 2)))
    # Relative tolerance: a flat curve's increments are exact zeros, but a constant drift of
    # floats may leave ~1e-16 of noise that must not make a giant Sharpe.
    tiny = 1e-12 * max(1.0, float(np.max(np.abs(increments))))
    sharpe = mean / std * scale if std > tiny else math.nan
    sortino = mean / downside * scale if downside > tiny else (math.inf if mean > tiny else math.nan)
    return sharpe, sortino


def drawdown(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(drawdown, peak) per equity sample: ``peak - equity`` >= 0 and the running peak of net
    PnL, the start (0) counting as a peak."""
    _check(equity, EQUITY_DTYPE, "equity")
    values = equity["equity"].astype(np.float64)
    peak = np.maximum.accumulate(np.maximum(values, 0.0)) if len(values) else values
    return peak - values, peak


def max_drawdown_duration_s(equity: np.ndarray) -> float:
    """Longest stretch (s) from a peak to recovering it (or to the end, if never recovered)."""
    dd, _ = drawdown(equity)
    ts = equity["ts"]
    longest, start = 0, None
    for i in range(len(dd)):  # pure Python: equity curves are short (one row per interval)
        if dd[i] > 0 and start is None:
            start = ts[i - 1] if i > 0 else ts[0]
        elif dd[i] <= 0 and start is not None:
            longest, start = max(longest, int(ts[i] - start)), None
    if start is not None:
        longest = max(longest, int(ts[-1] - start))
    return longest / NS_PER_S


def compute_metrics(result: BacktestResult, *, capital: float | None = None) -> dict[str, float]:
    """The run's figures, keyed and ordered as :data:`METRIC_DESCRIPTIONS` (floats and ints;
    NaN where a figure is undefined, e.g. the win rate of a run without closed trades).

    ``capital`` (quote currency; default ``result.config.get("capital")``) enables the
    relative drawdown and turnover; nothing else depends on it.
    """
    fills, equity = result.fills, result.equity
    _check(fills, FILL_DTYPE, "fills")
    _check(equity, EQUITY_DTYPE, "equity")
    if capital is None:
        capital = result.config.get("capital")
    if capital is not None and not capital > 0:
        raise ValueError(f"capital: expected a positive amount of quote currency, got {capital!r}")

    fees = float(fills["fee"].sum())
    turnover = float((fills["price"] * fills["qty"]).sum())
    if len(equity):
        last = equity[-1]
        realized, unrealized = float(last["realized_pnl"]), float(last["unrealized_pnl"])
        pnl_net = float(last["equity"])
        fees_curve = float(last["fees"])
        # The curve's last sample is at the end of the run, after the last fill: its fees agree.
        if not math.isclose(fees_curve, fees, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"result: the equity curve's fees ({fees_curve}) differ from the fills' ({fees}); "
                             "was the last equity sample taken before the last fill?")
    else:
        realized = float(fills["realized_pnl"][-1]) if len(fills) else 0.0
        unrealized = 0.0 if not len(fills) or abs(fills["position"][-1]) == 0 else math.nan
        pnl_net = realized + unrealized - fees

    trades = round_trips(fills)
    done = trades[trades["closed"]]
    net = done["pnl_net"].to_numpy()
    wins, losses = net[net > 0], net[net < 0]
    if len(wins) and not len(losses):
        profit_factor = math.inf
    elif len(losses):
        profit_factor = float(wins.sum() / -losses.sum())
    else:
        profit_factor = math.nan

    sharpe, sortino = sharpe_sortino(equity)
    dd, peak = drawdown(equity)
    max_dd = float(dd.max()) if len(dd) else 0.0
    if capital is not None and len(dd):
        max_dd_rel = float(np.max(dd / (capital + peak)))
    else:
        max_dd_rel = math.nan
    interval = sampling_interval_ns(equity["ts"])
    position = equity["position"]
    notional = np.abs(position * equity["mid"])
    notional = notional[~np.isnan(notional)]

    figures = {
        "pnl_net": pnl_net,
        "pnl_gross": pnl_net + fees,
        "fees": fees,
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "fills": int(len(fills)),
        "maker_fills": int(fills["maker"].sum()),
        "taker_fills": int(len(fills) - fills["maker"].sum()),
        "trades": int(len(done)),
        "open_trades": int(len(trades) - len(done)),
        "win_rate": len(wins) / len(done) if len(done) else math.nan,
        "avg_win": float(wins.mean()) if len(wins) else math.nan,
        "avg_loss": float(losses.mean()) if len(losses) else math.nan,
        "profit_factor": profit_factor,
        "avg_trade_pnl": float(net.mean()) if len(net) else math.nan,
        "avg_holding_s": float(done["holding_s"].mean()) if len(done) else math.nan,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_dd,
        "max_drawdown_rel": max_dd_rel,
        "max_drawdown_s": max_drawdown_duration_s(equity) if len(equity) else 0.0,
        "turnover": turnover,
        "turnover_rel": turnover / capital if capital is not None else math.nan,
        "exposure": float(np.mean(position != 0)) if len(position) else math.nan,
        "avg_abs_notional": float(notional.mean()) if len(notional) else math.nan,
        "max_abs_position": float(np.abs(fills["position"]).max()) if len(fills) else 0.0,
        "sampling_s": interval / NS_PER_S,
        "duration_s": float(equity["ts"][-1] - equity["ts"][0]) / NS_PER_S if len(equity) else 0.0,
    }
    assert list(figures) == list(METRIC_DESCRIPTIONS)
    return figures


def daily_breakdown(result: BacktestResult) -> pd.DataFrame:
    """One row per UTC day (local clock) that has equity samples or fills.

    Columns: ``pnl_net``, ``pnl_gross``, ``fees``, ``turnover`` (changes of the equity curve's
    cumulative columns from the previous day's last sample, the first day from zero), ``fills``,
    ``trades`` (closed round trips whose last fill falls on the day), ``wins``, ``max_drawdown``
    (within the day, from the day's own running peak starting at the previous close),
    ``exposure`` (share of the day's samples with a position), ``end_position``,
    ``end_equity``. Index: ``day`` (datetime64, midnight UTC).
    """
    fills, equity = result.fills, result.equity
    _check(fills, FILL_DTYPE, "fills")
    _check(equity, EQUITY_DTYPE, "equity")
    columns = ["pnl_net", "pnl_gross", "fees", "turnover", "fills", "trades", "wins", "max_drawdown", "exposure",
               "end_position", "end_equity"]
    eq_day = _day(equity["ts"])
    fill_day = _day(fills["local_ts"])
    trades = round_trips(fills)
    done = trades[trades["closed"]]
    trade_day = _day(done["exit_ts"].to_numpy())
    days = np.unique(np.concatenate([eq_day, fill_day]))
    if not len(days):
        frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        frame.index = pd.DatetimeIndex([], name="day")
        return frame
    rows = []
    prev = {"equity": 0.0, "gross": 0.0, "fees": 0.0, "turnover": 0.0}
    for day in days:
        in_day = equity[eq_day == day]
        if len(in_day):
            last = in_day[-1]
            now = {"equity": float(last["equity"]), "gross": float(last["equity"] + last["fees"]),
                   "fees": float(last["fees"]), "turnover": float(last["turnover"])}
            values = in_day["equity"].astype(np.float64)
            peak = np.maximum.accumulate(np.maximum(values, prev["equity"]))
            day_dd = float(np.max(peak - values))
            exposure = float(np.mean(in_day["position"] != 0))
            end_position = float(last["position"])
        else:  # fills on a day without samples (an equity interval longer than a day)
            now, day_dd, exposure, end_position = dict(prev), math.nan, math.nan, math.nan
        day_trades = done["pnl_net"].to_numpy()[trade_day == day]
        rows.append({
            "pnl_net": now["equity"] - prev["equity"],
            "pnl_gross": now["gross"] - prev["gross"],
            "fees": now["fees"] - prev["fees"],
            "turnover": now["turnover"] - prev["turnover"],
            "fills": int(np.sum(fill_day == day)),
            "trades": int(len(day_trades)),
            "wins": int(np.sum(day_trades > 0)),
            "max_drawdown": day_dd,
            "exposure": exposure,
            "end_position": end_position,
            "end_equity": now["equity"],
        })
        prev = now
    return pd.DataFrame(rows, index=pd.DatetimeIndex(days, name="day"), columns=columns)


def metrics_table(metrics: dict[str, float]) -> pd.DataFrame:
    """``metrics`` as a two-column table (value, meaning), in :data:`METRIC_DESCRIPTIONS` order."""
    return pd.DataFrame({"value": pd.Series(metrics, dtype="float64"),
                         "meaning": pd.Series({k: METRIC_DESCRIPTIONS.get(k, "") for k in metrics})})


def json_safe(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays made plain and non-finite floats as strings
    ('nan', 'inf', '-inf'), so that JSON stays strict; :func:`from_json_safe` reverses it."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def from_json_safe(value: Any) -> Any:
    """Reverse of :func:`json_safe` for the non-finite floats."""
    if isinstance(value, dict):
        return {k: from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_safe(v) for v in value]
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def _day(ts: np.ndarray) -> np.ndarray:
    return np.asarray(ts, dtype=np.int64).astype("datetime64[ns]").astype("datetime64[D]").astype("datetime64[ns]")


def _check(array: Any, dtype: np.dtype, name: str) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype:
        kind = "FILL_DTYPE" if dtype == FILL_DTYPE else "EQUITY_DTYPE"
        raise TypeError(f"{name}: expected a {kind} array (genesis.backtest.result), "
                        f"got {getattr(array, 'dtype', type(array))}")
