"""genesis.backtest.vectorized: book tops on both clocks, the OFI and DeepLOB signals, the
one-order-in-flight executor by hand (latency moving a fill to a worse price, a response
holding the next order back, the replay's end), and the same fills, fees and equity as the full
replay (genesis.backtest.engine) on the real capture."""

from __future__ import annotations

import numpy as np
import pytest

from genesis.backtest.engine import Fees, Latency, run_backtest
from genesis.backtest.events import from_capture
from genesis.backtest.vectorized import (
    EVENT_DEPTH, EVENT_TRADE, book_tops, deeplob_signals, execute_targets, ofi_targets, run_vectorized, sweep,
)
from tests.conftest import capture_path
from tests.test_backtest_scenarios import Tape

SAMPLE = "usdm_btcusdt_20240808.jsonl.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def sample_tops():
    rows = from_capture(capture_path(SAMPLE))
    return rows, book_tops(rows)


def hand_tape() -> Tape:
    """Book 100/101 at t=1000 ns (local +5); the ask moves to 102 at 1020 (venue), seen at 1025."""
    tape = Tape().book(1000, 1005, {100.0: 1.0, 99.0: 2.0}, {101.0: 1.0, 103.0: 5.0})
    tape.trade(1010, 1015, 100.0, 0.5, -1)
    tape.level(1020, 1025, -1, 101.0, 0.0).level(1020, 1025, -1, 102.0, 0.7)
    return tape


def test_book_tops_on_both_clocks():
    tops = book_tops(hand_tape().rows(end=2000))
    # Local events: the snapshot, the trade, the ask message... and the closing deep bid.
    assert tops.local_ts.tolist() == [1005, 1015, 1025, 1025, 2000]
    assert tops.kind.tolist() == [EVENT_DEPTH, EVENT_TRADE, EVENT_DEPTH, EVENT_DEPTH, EVENT_DEPTH]
    assert tops.ask.tolist() == [101.0, 101.0, 103.0, 102.0, 102.0]  # level by level, one message each
    assert tops.ask_qty.tolist() == [1.0, 1.0, 5.0, 0.7, 0.7]
    assert tops.bid.tolist() == [100.0] * 5 and tops.bid_qty.tolist() == [1.0] * 5
    # Venue: depth messages only (trades do not change the book), at exchange time.
    assert tops.venue_ts.tolist() == [1000, 1020, 1020, 2000]
    assert tops.venue_ask.tolist() == [101.0, 103.0, 102.0, 102.0]
    assert (tops.first_ts, tops.last_ts) == (1000, 2000)


def test_latency_moves_a_buy_to_the_worse_ask():
    tops = book_tops(hand_tape().rows(end=2000))
    buy_at_first = np.array([0.001, 0.001, 0.001, 0.001, 0.001])  # target +0.001 from the first event on
    fills, info = execute_targets(tops, targets=buy_at_first, latency_ns=10, taker_bps=10.0)
    # Sent at 1005, arrives at 1015 (< 1020): the ask is still 101.
    assert fills["exch_ts"].tolist() == [1015] and fills["local_ts"].tolist() == [1025]
    assert fills["price"].tolist() == [101.0] and fills["fee"][0] == pytest.approx(101.0 * 0.001 * 1e-3)
    assert info == {"orders_sent": 1, "orders_unfilled": 0, "orders_beyond_best": 0, "orders_on_depleted_level": 0}
    # 15 ns later it arrives at 1020, after the venue's ask moved (market rows first at equal times).
    fills, _ = execute_targets(tops, targets=buy_at_first, latency_ns=15)
    assert fills["exch_ts"].tolist() == [1020] and fills["price"].tolist() == [102.0]
    # Arriving after the last row, it never fills.
    fills, info = execute_targets(tops, targets=buy_at_first, latency_ns=5000)
    assert len(fills) == 0 and info["orders_sent"] == 1


def test_one_order_in_flight_and_the_response_trades_again():
    tops = book_tops(hand_tape().rows(end=2000))
    # Target +1 at the snapshot, -0.5 at the trade event (1015) while the buy is in flight.
    targets = np.array([1.0, -0.5, -0.5, -0.5, -0.5])
    fills, info = execute_targets(tops, targets=targets, latency_ns=10, response_latency_ns=20)
    # Buy 1 sent at 1005 arrives 1015 (ask 101, qty 1: within the level); its response at 1035
    # lets the strategy sell 1.5, arriving at 1045 at the bid 100.
    assert fills["side"].tolist() == [1, -1]
    assert fills["exch_ts"].tolist() == [1015, 1045] and fills["local_ts"].tolist() == [1035, 1065]
    assert fills["qty"].tolist() == [1.0, 1.5] and fills["price"].tolist() == [101.0, 100.0]
    assert fills["position"].tolist() == [1.0, -0.5] and fills["realized_pnl"].tolist() == [0.0, -1.0]
    assert info["orders_beyond_best"] == 1  # 1.5 against a best bid of 1.0: the full replay walks


def test_ofi_targets_by_hand():
    tape = Tape().book(1000, 1000, {100.0: 1.0}, {101.0: 1.0})
    tape.level(1010, 1010, 1, 100.0, 3.0)  # e = +3 - 1 = ... bid same: +qb - qb0 = 3 - 1 = 2
    tape.level(1020, 1020, -1, 101.0, 0.5)  # ask same: -qa + qa0 = -0.5 + 1 = 0.5
    tape.trade(1030, 1030, 101.0, 0.1, 1)
    tape.level(1040, 1040, 1, 100.5, 1.0)  # bid up: +qb = +1 (b > b0: no -qb0 term)
    tops = book_tops(tape.rows(end=None))
    targets, acts = ofi_targets(tops, window=2, entry=2.0, exit=1.0, qty=0.1)
    # OFI over 2: after the 2nd contribution 2 + 0.5 = 2.5 > entry -> +0.1; then 0.5 + 1 = 1.5, kept.
    assert targets.tolist() == [0.0, 0.0, 0.1, 0.1, 0.1]
    assert acts.tolist() == [True, True, True, True, True]
    targets, _ = ofi_targets(tops, window=1, entry=1.5, exit=0.6, qty=0.1)
    assert targets.tolist() == [0.0, 0.1, 0.0, 0.0, 0.0]  # 2 > 1.5; 0.5 <= 0.6 -> flat; 1 kept flat
    with pytest.raises(ValueError, match="exit"):
        ofi_targets(tops, window=2, entry=1.0, exit=2.0, qty=0.1)


def test_deeplob_signals():
    preds = {"p_down": np.array([0.1, 0.6, 0.3, 0.45]), "p_up": np.array([0.7, 0.2, 0.3, 0.45])}
    assert deeplob_signals(preds, 0.5).tolist() == [1.0, -1.0, 0.0, 0.0]
    assert deeplob_signals(preds, 0.4).tolist() == [1.0, -1.0, 0.0, 1.0]  # tie: up wins, as the strategy
    with pytest.raises(ValueError, match="threshold"):
        deeplob_signals(preds, 1.5)


def _same(full, fast):
    """Fills equal (times exactly; prices, fees, PnL to 1e-9) and equity curves equal."""
    assert len(full.fills) == len(fast.fills) > 0
    for name in ("exch_ts", "local_ts", "order_id", "side", "maker"):
        np.testing.assert_array_equal(full.fills[name], fast.fills[name], err_msg=name)
    for name in ("price", "qty", "fee", "position", "realized_pnl"):
        np.testing.assert_allclose(full.fills[name], fast.fills[name], rtol=0, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(full.equity["ts"], fast.equity["ts"])
    for name in ("mid", "position", "realized_pnl", "unrealized_pnl", "fees", "equity", "turnover"):
        np.testing.assert_allclose(full.equity[name], fast.equity[name], rtol=0, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("params, latency_ms", [
    ({"window": 50, "entry": 5.0, "exit": 1.0, "qty": 0.001}, 0.0),
    ({"window": 50, "entry": 5.0, "exit": 1.0, "qty": 0.001}, 5.0),
    ({"window": 20, "entry": 3.0, "exit": 0.5, "qty": 0.001}, 50.0),
])
def test_ofi_equals_the_full_replay_on_the_real_capture(sample_tops, params, latency_ms):
    rows, tops = sample_tops
    lat = latency_ms * MS
    full = run_backtest("ofi_signal", params, rows, latency=Latency.constant(lat), fees=Fees(-0.5, 4.5))
    fast = run_vectorized("ofi_signal", params, tops, latency_ns=lat, taker_bps=4.5, maker_bps=-0.5)
    assert fast.meta["orders_beyond_best"] == 0  # the comparison's assumption holds here
    _same(full, fast)


@pytest.mark.parametrize("params", [
    {"threshold": 0.5, "qty": 0.001},
    {"threshold": 0.4, "qty": 0.002, "exit_on_neutral": 0.0, "delay_ns": 3e6},
])
def test_deeplob_threshold_equals_the_full_replay_on_the_real_capture(sample_tops, params):
    rows, tops = sample_tops
    rng = np.random.default_rng(1)
    n = 400  # predictions at random times over the capture (what matters is the timing logic)
    probs = rng.dirichlet([1, 1, 1], n)
    preds = {"ts": np.sort(rng.integers(int(tops.local_ts[0]), tops.last_ts, n)), "p_down": probs[:, 0],
             "p_stationary": probs[:, 1], "p_up": probs[:, 2]}
    full = run_backtest("deeplob_threshold", params, rows, inputs=preds, latency=Latency.constant(2 * MS),
                        fees=Fees(0.0, 4.0))
    fast = run_vectorized("deeplob_threshold", params, tops, predictions=preds, latency_ns=2 * MS, taker_bps=4.0)
    _same(full, fast)


def test_sweep_ranks_combinations_and_lists_impossible_ones(sample_tops):
    _, tops = sample_tops
    table = sweep("ofi_signal", {"window": [20, 50], "entry": [3.0, 5.0], "exit": [1.0, 4.0]}, tops,
                  latency_ns=5 * MS, taker_bps=4.5)
    assert len(table) == 8
    bad = table[table["error"] != ""]
    assert len(bad) == 2 and set(bad["exit"]) == {4.0} and set(bad["entry"]) == {3.0}  # exit > entry
    good = table[table["error"] == ""]
    assert good["pnl_net"].is_monotonic_decreasing and (good["fills"] > 0).all()
    best = good.iloc[0]
    again = run_vectorized("ofi_signal", {"window": best["window"], "entry": best["entry"], "exit": best["exit"]},
                           tops, latency_ns=5 * MS, taker_bps=4.5)
    assert again.equity["equity"][-1] == pytest.approx(best["pnl_net"])


def test_unsupported_inputs_are_named(sample_tops):
    _, tops = sample_tops
    with pytest.raises(ValueError, match="not supported"):
        run_vectorized("market_maker", {}, tops)
    with pytest.raises(ValueError, match="unknown parameter"):
        run_vectorized("ofi_signal", {"windw": 3}, tops)
    with pytest.raises(ValueError, match="stop-loss"):
        run_vectorized("deeplob_threshold", {"stop_loss_bps": 5}, tops, predictions={"ts": [], "p_up": [],
                                                                                      "p_down": []})
    with pytest.raises(ValueError, match="predictions"):
        run_vectorized("deeplob_threshold", {}, tops)
