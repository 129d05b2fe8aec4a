"""genesis.backtest.metrics: round trips, PnL, ratios, drawdown, exposure and the daily
breakdown, each against hand-computed small cases and the edge cases (no fills, one fill,
all losses, flat equity). ``make_fills`` / ``make_equity`` build results by hand and are
shared with the report and store tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from genesis.backtest.metrics import (
    METRIC_DESCRIPTIONS,
    compute_metrics,
    daily_breakdown,
    from_json_safe,
    json_safe,
    periods_per_year,
    round_trips,
    sharpe_sortino,
)
from genesis.backtest.result import EQUITY_DTYPE, FILL_DTYPE, BacktestResult

S = 1_000_000_000
DAY0 = 1_723_075_200 * S  # 2024-08-08 00:00 UTC


def make_fills(rows, t0: int = DAY0, latency_ns: int = 1_000_000) -> np.ndarray:
    """FILL_DTYPE from ``(t_seconds, side, price, qty, fee[, maker])`` rows, with position and
    average-cost realized PnL computed here (what an engine writes)."""
    fills = np.zeros(len(rows), FILL_DTYPE)
    position = avg = realized = 0.0
    for i, row in enumerate(rows):
        t, side, price, qty, fee = row[:5]
        maker = row[5] if len(row) > 5 else False
        signed = side * qty
        if position == 0 or np.sign(position) == side:  # open or add
            avg = (avg * abs(position) + price * qty) / (abs(position) + qty)
        else:  # reduce, close or flip
            closing = min(qty, abs(position))
            realized += closing * (price - avg) * np.sign(position)
            if qty > abs(position):
                avg = price
        position += signed
        if position == 0:
            avg = 0.0
        ts = t0 + int(round(t * S))
        fills[i] = (ts - latency_ns, ts, i, side, price, qty, fee, maker, position, realized)
    return fills


def make_equity(t_seconds, equity, position=None, mid=None, fees=None, turnover=None, t0: int = DAY0) -> np.ndarray:
    n = len(t_seconds)
    out = np.zeros(n, EQUITY_DTYPE)
    out["ts"] = t0 + (np.asarray(t_seconds, dtype=np.float64) * S).astype(np.int64)
    out["equity"] = equity
    out["fees"] = 0.0 if fees is None else fees
    out["realized_pnl"] = out["equity"] + out["fees"]  # all realized unless a test says otherwise
    out["position"] = 0.0 if position is None else position
    out["mid"] = 100.0 if mid is None else mid
    out["turnover"] = 0.0 if turnover is None else turnover
    return out


# Long 2, partly closed, flipped to short 2, closed, then long 1 left open.
HAND_FILLS = [
    (10, 1, 100.0, 2.0, 0.10),
    (20, -1, 110.0, 1.0, 0.05),
    (30, -1, 105.0, 3.0, 0.15),
    (50, 1, 100.0, 2.0, 0.10, True),
    (60, 1, 100.0, 1.0, 0.05),
]


def hand_result(**config) -> BacktestResult:
    fills = make_fills(HAND_FILLS)
    # Samples every 10 s on the local clock; the last one at the end of the run (65 s).
    t = [0, 10, 20, 30, 40, 50, 60, 65]
    position = [0, 2, 1, -2, -2, 0, 1, 1]
    mid = [100, 100, 110, 105, 104, 100, 100, 102]
    fees = [0, 0.10, 0.15, 0.30, 0.30, 0.40, 0.45, 0.45]
    realized = [0, 0, 10, 15, 15, 25, 25, 25]
    unrealized = [0, 0, 10, 0, 2, 0, 0, 2]
    equity = make_equity(t, np.subtract(np.add(realized, unrealized), fees), position, mid, fees,
                         turnover=[0, 200, 310, 625, 625, 825, 925, 925])
    equity["realized_pnl"], equity["unrealized_pnl"] = realized, unrealized
    return BacktestResult(fills, equity, config=dict(config))


def test_round_trips_split_a_flip_and_keep_the_open_trade_apart():
    trades = round_trips(make_fills(HAND_FILLS))
    assert list(trades["side"]) == [1, -1, 1]
    assert list(trades["closed"]) == [True, True, False]
    assert list(trades["fills"]) == [3, 2, 1]
    assert trades["qty"].tolist() == [2.0, 2.0, 1.0]
    assert trades["entry_price"].tolist() == [100.0, 105.0, 100.0]
    assert trades["exit_price"].iloc[0] == pytest.approx(107.5)  # 1 @ 110 and 1 @ 105
    assert trades["exit_price"].iloc[1] == 100.0 and math.isnan(trades["exit_price"].iloc[2])
    # Cash flows: -200 + 110 + 105 = 15; +210 - 200 = 10. The flip's fee 0.15 splits 1/3 : 2/3.
    np.testing.assert_allclose(trades["pnl_gross"].iloc[:2], [15.0, 10.0])
    np.testing.assert_allclose(trades["fees"], [0.10 + 0.05 + 0.05, 0.10 + 0.10, 0.05])
    np.testing.assert_allclose(trades["pnl_net"].iloc[:2], [14.8, 9.8])
    assert math.isnan(trades["pnl_gross"].iloc[2])
    np.testing.assert_allclose(trades["holding_s"].iloc[:2], [20.0, 20.0])
    assert trades["entry_ts"].iloc[1] == trades["exit_ts"].iloc[0]  # the flip fill ends one and starts the next
    assert trades["max_position"].tolist() == [2.0, 2.0, 1.0]
    # Each closed trade's cash flow is the realized PnL the engine booked over it.
    fills = make_fills(HAND_FILLS)
    assert fills["realized_pnl"][3] - 0.0 == pytest.approx(15.0 + 10.0)


def test_round_trips_of_no_fills_and_of_float_residue():
    empty = round_trips(np.zeros(0, FILL_DTYPE))
    assert len(empty) == 0 and list(empty.columns)[:3] == ["trade", "side", "entry_ts"]
    # 0.1 + 0.2 - 0.3 is 5.5e-17, not 0: still flat.
    fills = make_fills([(1, 1, 10.0, 0.1, 0.0), (2, 1, 10.0, 0.2, 0.0), (3, -1, 11.0, 0.3, 0.0)])
    assert fills["position"][-1] != 0.0
    trades = round_trips(fills)
    assert len(trades) == 1 and bool(trades["closed"].iloc[0])
    assert trades["pnl_gross"].iloc[0] == pytest.approx(0.3)


def _reference_round_trips(fills) -> list[tuple[int, float, float, bool]]:
    """Plain Python: (side, cash flow, fees, closed) per trade, splitting flips pro rata."""
    trades, position = [], 0.0
    for f in fills:
        signed = f["side"] * f["qty"]
        after = position + signed
        if position != 0 and np.sign(after) == -np.sign(position):  # flip
            share = abs(position) / f["qty"]
            trades[-1][1] -= signed * share * f["price"]
            trades[-1][2] += f["fee"] * share
            trades[-1][3] = True
            trades.append([int(np.sign(after)), -signed * (1 - share) * f["price"], f["fee"] * (1 - share), False])
        else:
            if position == 0:
                trades.append([int(np.sign(after)), 0.0, 0.0, False])
            trades[-1][1] -= signed * f["price"]
            trades[-1][2] += f["fee"]
            trades[-1][3] = after == 0
        position = after
    return [tuple(t) for t in trades]


def test_round_trips_match_a_plain_reference_on_random_integer_fills():
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        rows = [(i, int(rng.choice([-1, 1])), float(rng.integers(90, 110)), float(rng.integers(1, 4)),
                 float(rng.integers(0, 3)) / 10) for i in range(n)]
        fills = make_fills(rows)
        expected = _reference_round_trips(fills)
        trades = round_trips(fills)
        assert len(trades) == len(expected)
        for (side, cash, fee, closed), (_, row) in zip(expected, trades.iterrows()):
            assert row["side"] == side and bool(row["closed"]) == closed
            assert row["fees"] == pytest.approx(fee)
            if closed:
                assert row["pnl_gross"] == pytest.approx(cash)
        # The closed trades' cash flows add up to the engine's realized PnL at the last flat point.
        flat = np.flatnonzero(fills["position"] == 0)
        if len(flat):
            done = trades["closed"] & (trades["exit_ts"] <= fills["local_ts"][flat[-1]])
            assert trades.loc[done, "pnl_gross"].sum() == pytest.approx(fills["realized_pnl"][flat[-1]])


def test_metrics_of_the_hand_case():
    m = compute_metrics(hand_result())
    assert list(m) == list(METRIC_DESCRIPTIONS)
    assert m["fees"] == pytest.approx(0.45)
    assert m["pnl_net"] == pytest.approx(25 + 2 - 0.45)
    assert m["pnl_gross"] == pytest.approx(27.0)
    assert m["realized_pnl"] == 25 and m["unrealized_pnl"] == 2
    assert (m["fills"], m["maker_fills"], m["taker_fills"]) == (5, 1, 4)
    assert (m["trades"], m["open_trades"]) == (2, 1)
    assert m["win_rate"] == 1.0
    assert m["avg_win"] == pytest.approx((14.8 + 9.8) / 2)
    assert math.isnan(m["avg_loss"]) and m["profit_factor"] == math.inf
    assert m["avg_holding_s"] == pytest.approx(20.0)
    assert m["turnover"] == pytest.approx(200 + 110 + 315 + 200 + 100)
    assert math.isnan(m["turnover_rel"]) and math.isnan(m["max_drawdown_rel"])
    assert m["exposure"] == pytest.approx(6 / 8)
    assert m["avg_abs_notional"] == pytest.approx((0 + 200 + 110 + 210 + 208 + 0 + 100 + 102) / 8)
    assert m["max_abs_position"] == 2.0
    assert m["sampling_s"] == 10.0 and m["duration_s"] == 65.0
    with_capital = compute_metrics(hand_result(capital=1000.0))
    assert with_capital["turnover_rel"] == pytest.approx(m["turnover"] / 1000)


def test_sharpe_sortino_and_drawdown_by_hand():
    # 60 s grid and a final sample 10 s after the last grid point (left out of the ratios).
    result = BacktestResult(np.zeros(0, FILL_DTYPE), make_equity([0, 60, 120, 180, 240, 250], [0, 2, 1, 4, 2, 2.5]))
    increments = np.array([2.0, -1.0, 3.0, -2.0])
    scale = math.sqrt(365 * 24 * 3600 / 60)
    assert periods_per_year(60 * S) == 525_600
    sharpe, sortino = sharpe_sortino(result.equity)
    assert sharpe == pytest.approx(0.5 / np.std(increments, ddof=1) * scale)
    assert sortino == pytest.approx(0.5 / math.sqrt((1 + 4) / 4) * scale)
    m = compute_metrics(result, capital=100.0)
    assert m["max_drawdown"] == 2.0  # peak 4 at 180 s, 2 at 240 s
    assert m["max_drawdown_rel"] == pytest.approx(2 / 104)
    assert m["max_drawdown_s"] == 120.0  # below the peak of 60 s until 180 s; the last dip lasts 70 s
    # The start counts as a peak: a run that only loses has drawdown = its loss.
    losing = BacktestResult(np.zeros(0, FILL_DTYPE), make_equity([0, 1, 2], [-1, -3, -2]))
    assert compute_metrics(losing)["max_drawdown"] == 3.0


def test_no_fills_and_flat_equity():
    result = BacktestResult(np.zeros(0, FILL_DTYPE), make_equity([0, 1, 2, 3], [0, 0, 0, 0]))
    m = compute_metrics(result)
    assert m["pnl_net"] == m["pnl_gross"] == m["fees"] == m["turnover"] == 0
    assert m["fills"] == m["trades"] == m["open_trades"] == 0
    for undefined in ("win_rate", "avg_win", "avg_loss", "profit_factor", "avg_holding_s", "sharpe", "sortino"):
        assert math.isnan(m[undefined]), undefined
    assert m["max_drawdown"] == 0 and m["max_drawdown_s"] == 0 and m["exposure"] == 0
    nothing = compute_metrics(BacktestResult(np.zeros(0, FILL_DTYPE), np.zeros(0, EQUITY_DTYPE)))
    assert nothing["pnl_net"] == 0 and math.isnan(nothing["sampling_s"]) and math.isnan(nothing["sharpe"])
    assert len(daily_breakdown(BacktestResult(np.zeros(0, FILL_DTYPE), np.zeros(0, EQUITY_DTYPE)))) == 0


def test_one_fill_is_an_open_trade():
    fills = make_fills([(5, -1, 100.0, 1.0, 0.02)])
    equity = make_equity([0, 10], [0.0, -1.02], position=[0, -1], mid=[100, 101], fees=[0, 0.02], turnover=[0, 100])
    equity["realized_pnl"], equity["unrealized_pnl"] = 0.0, [0.0, -1.0]
    m = compute_metrics(BacktestResult(fills, equity))
    assert (m["fills"], m["trades"], m["open_trades"]) == (1, 0, 1)
    assert m["pnl_net"] == pytest.approx(-1.02) and m["pnl_gross"] == pytest.approx(-1.0)
    assert math.isnan(m["win_rate"]) and math.isnan(m["avg_holding_s"])
    assert m["max_drawdown"] == pytest.approx(1.02)


def test_all_losses():
    fills = make_fills([(1, 1, 100.0, 1.0, 0.0), (2, -1, 99.0, 1.0, 0.0),
                        (3, -1, 100.0, 2.0, 0.0), (5, 1, 101.0, 2.0, 0.0)])
    equity = make_equity([0, 2, 5], [0, -1, -3])
    m = compute_metrics(BacktestResult(fills, equity))
    assert m["trades"] == 2 and m["win_rate"] == 0.0
    assert m["avg_loss"] == pytest.approx(-1.5) and math.isnan(m["avg_win"])
    assert m["profit_factor"] == 0.0
    assert m["avg_holding_s"] == pytest.approx(1.5)


def test_fee_mismatch_between_fills_and_curve_is_named():
    result = hand_result()
    result.equity["fees"][-1] = 0.0
    with pytest.raises(ValueError, match="fees"):
        compute_metrics(result)
    with pytest.raises(ValueError, match="capital"):
        compute_metrics(hand_result(), capital=-5)
    with pytest.raises(TypeError, match="FILL_DTYPE"):
        round_trips(np.zeros(3))


def test_daily_breakdown_across_midnight():
    # Day 1: buy 1 @ 100 at 23:59:00, equity samples every 30 s; day 2: sell @ 103 at 00:00:30.
    t0 = DAY0 + 86_340 * S  # 23:59:00
    fills = make_fills([(0, 1, 100.0, 1.0, 0.1), (90, -1, 103.0, 1.0, 0.1)], t0=t0)
    equity = make_equity([0, 30, 60, 90, 120], [-0.1, 0.9, -1.1, 2.8, 2.8], position=[1, 1, 1, 0, 0],
                         fees=[0.1, 0.1, 0.1, 0.2, 0.2], turnover=[100, 100, 100, 203, 203], t0=t0)
    days = daily_breakdown(BacktestResult(fills, equity))
    assert list(days.index) == [pd.Timestamp("2024-08-08"), pd.Timestamp("2024-08-09")]
    np.testing.assert_allclose(days["pnl_net"], [0.9, 1.9])  # day 2 closes at 2.8 from 0.9
    np.testing.assert_allclose(days["fees"], [0.1, 0.1])
    np.testing.assert_allclose(days["pnl_gross"], [1.0, 2.0])
    np.testing.assert_allclose(days["turnover"], [100, 103])
    assert days["fills"].tolist() == [1, 1] and days["trades"].tolist() == [0, 1] and days["wins"].tolist() == [0, 1]
    np.testing.assert_allclose(days["max_drawdown"], [0.1, 2.0])  # day 2: from 0.9 down to -1.1
    np.testing.assert_allclose(days["exposure"], [1.0, 1 / 3])
    assert days["pnl_net"].sum() == pytest.approx(compute_metrics(BacktestResult(fills, equity))["pnl_net"])


def test_json_safe_round_trip():
    m = compute_metrics(hand_result())
    safe = json_safe(m | {"array": np.arange(3), "i": np.int64(3)})
    assert safe["profit_factor"] == "inf" and safe["avg_loss"] == "nan" and safe["array"] == [0, 1, 2]
    back = from_json_safe(safe)
    assert back["profit_factor"] == math.inf and math.isnan(back["avg_loss"])
