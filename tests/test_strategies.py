"""The provided strategies: hand-computed behaviour on small tapes, invariants on the real capture,
and the paper-trading path (tiny batches) giving the backtest's fills."""

from __future__ import annotations

import numpy as np
import pytest

from genesis.backtest import engine as bt
from genesis.backtest.engine import Backtester, Fees, Latency, run_backtest
from genesis.backtest.events import from_capture
from genesis.strategy import get_strategy, strategies
from tests.conftest import capture_path
from tests.test_backtest_scenarios import Tape, fills_list

BUY, SELL = 1, -1
SAMPLE = "usdm_btcusdt_20240808.jsonl.gz"


@pytest.fixture(scope="module")
def sample_rows() -> np.ndarray:
    return from_capture(capture_path(SAMPLE))


def working_orders(b: Backtester) -> list[tuple[int, float]]:
    """(side, price) of the orders the strategy has working, by price."""
    oi, of = b.E.oi, b.E.of
    live = (oi[:, bt.OI_LSTATUS] == bt.S_PENDING) | (oi[:, bt.OI_LSTATUS] == bt.S_OPEN)
    return sorted((int(s), round(float(p), 6)) for s, p in zip(oi[live, bt.OI_SIDE], of[live, bt.OF_PRICE]))


def test_registry_and_parameter_checks():
    assert {"noop", "taker_only", "market_maker", "ofi_signal", "deeplob_threshold", "scripted"} <= set(strategies())
    mm = get_strategy("market_maker")
    assert mm.param_dict(mm.params_array({"qty": 2})) == {"qty": 2.0, "max_position": 0.005, "tick": 0.1,
                                                          "skew_ticks": 1.0}
    with pytest.raises(ValueError, match="max_position"):
        mm.params_array({"max_position": 0})
    with pytest.raises(ValueError, match="threshold"):
        get_strategy("deeplob_threshold").params_array({"threshold": 1.5})
    with pytest.raises(ValueError, match="exit"):
        get_strategy("ofi_signal").params_array({"entry": 1, "exit": 2})
    with pytest.raises(ValueError, match="unknown input"):
        Backtester("deeplob_threshold", inputs={"p_flat": np.zeros(3)})
    with pytest.raises(ValueError, match="one length"):
        Backtester("deeplob_threshold", inputs={"ts": np.zeros(3), "p_up": np.zeros(2)})


def test_taker_only_alternates_on_the_local_clock():
    tape = Tape().book(1000, 1000, {100.0: 50.0}, {101.0: 50.0})
    res = run_backtest("taker_only", {"interval_ns": 1000, "qty": 0.5}, tape.rows(), latency=Latency.constant(10),
                       equity_interval_ns=0, tick_size=0.1)
    # orders at local 2000, 3000, ..., 9000 (the timer due at 10000 waits for rows after it), arriving 10 ns later
    assert fills_list(res) == [(t + 10, BUY if k % 2 == 0 else SELL, 101.0 if k % 2 == 0 else 100.0, 0.5, False)
                               for k, t in enumerate(range(2000, 10000, 1000))]
    assert res.fills["position"].tolist() == [0.5, 0.0] * 4


def test_market_maker_quotes_the_touch_skews_with_inventory_and_respects_max_position():
    params = {"qty": 1.0, "max_position": 2.0, "tick": 0.1, "skew_ticks": 1.0}
    tape = (Tape().book(1000, 1000, {100.0: 5.0}, {101.0: 5.0})
            .trade(2000, 2000, 100.0, 6.0, SELL))  # 5 ahead of our bid, then 1 for us
    b = Backtester("market_maker", params, equity_interval_ns=0, tick_size=0.1)
    b.process(tape.rows(end=2500))
    assert fills_list(b.result()) == [(2000, BUY, 100.0, 1.0, True)]
    # long 1: both quotes one tick lower; the old ask was cancelled and replaced
    assert working_orders(b) == [(SELL, 100.9), (BUY, 99.9)]

    tape2 = Tape().trade(3000, 3000, 99.9, 100.0, SELL)
    b.process(tape2.rows(end=4000))
    assert fills_list(b.result())[1:] == [(3000, BUY, 99.9, 1.0, True)]
    # long 2 = max_position: no bid; the ask two ticks below the touch
    assert working_orders(b) == [(SELL, 100.8)]


def test_market_maker_waits_after_a_rejected_quote_even_with_zero_latency():
    """The venue moves up (exch 2000) before we see it (local 3000): our ask is crossed and
    filled, and its replacement, priced from our stale book, is a post-only that would take.
    It is rejected, and the maker waits for the next depth message instead of re-sending it at
    the same instant for ever."""
    params = {"qty": 1.0, "max_position": 5.0, "tick": 1.0, "skew_ticks": 0.0}
    tape = Tape().book(1000, 1000, {100.0: 5.0}, {101.0: 5.0}).book(2000, 3000, {101.0: 5.0}, {102.0: 5.0})
    b = Backtester("market_maker", params, latency=Latency.constant(0), equity_interval_ns=0, tick_size=1.0)
    b.process(tape.rows(end=2500))
    assert fills_list(b.result()) == [(2000, SELL, 101.0, 1.0, True)]  # crossed by the venue's new bid
    assert b.result().meta["orders_sent"] <= 6  # (without the wait: an endless loop at t = 2000)
    assert {side for side, _ in working_orders(b)} == {BUY, SELL}  # quoting both sides again


def test_ofi_signal_by_hand():
    tape = (Tape().book(1000, 1000, {100.0: 5.0}, {101.0: 5.0})
            .level(2000, 2000, 1, 100.0, 7.0)    # e = +2
            .level(3000, 3000, 1, 100.0, 9.0)    # e = +2: OFI over 2 = 4 > 3: long 1
            .level(4000, 4000, -1, 101.0, 8.0)   # e = -3: OFI -1, within (-3, 3) and beyond 0.5: hold
            .level(5000, 5000, -1, 101.0, 11.0))  # e = -3: OFI -6 < -3: short 1 (sell 2)
    res = run_backtest("ofi_signal", {"window": 2, "entry": 3, "exit": 0.5, "qty": 1}, tape.rows(),
                       equity_interval_ns=0, tick_size=0.1)
    assert fills_list(res) == [(3000, BUY, 101.0, 1.0, False), (5000, SELL, 100.0, 2.0, False)]


def _predictions(*rows: tuple) -> dict[str, np.ndarray]:
    ts, down, flat, up = zip(*rows)
    return {"ts": np.array(ts, np.int64), "p_down": np.array(down), "p_stationary": np.array(flat),
            "p_up": np.array(up)}


def _ticking_tape() -> Tape:
    tape = Tape().book(1000, 1000, {100.0: 5.0}, {101.0: 5.0})
    for t in range(2000, 10000, 1000):  # a deep level changing every 1000 ns wakes the strategy
        tape.level(t, t, 1, 90.0, t / 1000)
    return tape


def test_deeplob_threshold_enters_exits_and_reverses():
    preds = _predictions((1500, 0.1, 0.2, 0.7),   # up: long at the next event (2000)
                         (3500, 0.3, 0.4, 0.3),   # neutral: flat at 4000
                         (5500, 0.8, 0.1, 0.1),   # down: short at 6000
                         (7500, 0.05, 0.05, 0.9))  # up: reverse at 8000 (buy 2)
    res = run_backtest("deeplob_threshold", {"threshold": 0.6, "qty": 1}, _ticking_tape().rows(), inputs=preds,
                       fees=Fees(0.0, 2.0), equity_interval_ns=0, tick_size=0.1)
    assert fills_list(res) == [(2000, BUY, 101.0, 1.0, False), (4000, SELL, 100.0, 1.0, False),
                               (6000, SELL, 100.0, 1.0, False), (8000, BUY, 101.0, 2.0, False)]
    assert res.fills["fee"].sum() == pytest.approx((101 + 100 + 100 + 202) * 2e-4)


def test_deeplob_threshold_stop_loss_then_waits_for_a_new_signal():
    tape = Tape().book(1000, 1000, {100.0: 5.0}, {101.0: 5.0})
    tape.level(2000, 2000, 1, 90.0, 1.0)
    tape.level(3000, 3000, -1, 101.0, 0.0).level(3000, 3000, -1, 100.0, 5.0)
    tape.level(3000, 3000, 1, 100.0, 0.0).level(3000, 3000, 1, 99.0, 5.0)  # mid 99.5: -148 bp from 101
    for t in range(4000, 10000, 1000):
        tape.level(t, t, 1, 90.0, t / 1000)
    preds = _predictions((1500, 0.1, 0.2, 0.7), (5500, 0.1, 0.2, 0.7),  # same signal again: still blocked
                         (6500, 0.3, 0.4, 0.3), (7500, 0.1, 0.1, 0.8))   # neutral lifts the block; up: long
    res = run_backtest("deeplob_threshold", {"threshold": 0.6, "qty": 1, "stop_loss_bps": 100}, tape.rows(),
                       inputs=preds, equity_interval_ns=0, tick_size=0.1)
    assert fills_list(res) == [(2000, BUY, 101.0, 1.0, False), (3000, SELL, 99.0, 1.0, False),
                               (8000, BUY, 100.0, 1.0, False)]


def test_deeplob_threshold_delay_defers_predictions():
    preds = _predictions((1500, 0.1, 0.2, 0.7))
    res = run_backtest("deeplob_threshold", {"threshold": 0.6, "qty": 1, "delay_ns": 2000}, _ticking_tape().rows(),
                       inputs=preds, equity_interval_ns=0, tick_size=0.1)
    assert fills_list(res) == [(4000, BUY, 101.0, 1.0, False)]  # usable at 3500, acted on at 4000


@pytest.mark.parametrize("name, params", [
    ("market_maker", {"qty": 0.002, "max_position": 0.006}),
    ("ofi_signal", {"window": 50, "entry": 20, "exit": 5, "qty": 0.002}),
])
def test_strategies_on_the_real_capture_keep_their_limits(sample_rows, name, params):
    res = run_backtest(name, params, sample_rows, latency=Latency.constant(2_000_000), fees=Fees(-0.5, 4.5))
    f = res.fills
    assert len(f) > 20
    assert np.all(np.abs(f["position"]) <= (params.get("max_position", params["qty"])) + 1e-12)
    assert np.all(f["local_ts"] - f["exch_ts"] == 2_000_000)
    if name == "market_maker":
        assert f["maker"].all() and np.all(f["fee"] < 0)  # post-only quotes: rebates only
    else:
        assert not f["maker"].any()
    eq = res.equity
    assert np.all(np.diff(eq["ts"]) > 0)
    np.testing.assert_allclose(eq["equity"], eq["realized_pnl"] + eq["unrealized_pnl"] - eq["fees"])


def test_paper_trading_batches_give_the_backtest_fills(sample_rows):
    """Live paper trading feeds the same kernel a few rows at a time: same fills as one backtest."""
    rows = sample_rows[:30_000]
    kw = dict(latency=Latency.constant(1_000_000), fees=Fees(-0.5, 4.5), equity_interval_ns=500_000_000)
    params = {"qty": 0.002, "max_position": 0.006}
    whole = run_backtest("market_maker", params, rows, **kw)
    live = Backtester("market_maker", params, **kw)
    rng = np.random.default_rng(5)
    i = 0
    while i < len(rows):
        n = int(rng.integers(1, 40))
        live.process(rows[i:i + n])
        i += n
    assert len(whole.fills) > 0
    assert np.array_equal(whole.fills, live.result().fills)
    assert np.array_equal(whole.equity["equity"], live.result().equity["equity"])


def test_stop_cancels_entry_quotes_and_keeps_exits():
    """Paper trading's stop: EXITS_ONLY with cancel_entries; the market maker may only sell its long."""
    params = {"qty": 1.0, "max_position": 2.0, "tick": 0.1, "skew_ticks": 1.0}
    b = Backtester("market_maker", params, equity_interval_ns=0, tick_size=0.1)
    b.process((Tape().book(1000, 1000, {100.0: 5.0}, {101.0: 5.0}).trade(2000, 2000, 100.0, 6.0, SELL))
              .rows(end=2500))
    assert working_orders(b) == [(SELL, 100.9), (BUY, 99.9)]
    b.set_mode("exits_only", cancel_entries=True, user="alice")
    b.process(Tape().level(3000, 3000, 1, 99.0, 1.0).rows(end=3500))
    # everything was cancelled; the ask (an exit: sell 1 of a long 1) is quoted again, the bid is not
    assert working_orders(b) == [(SELL, 100.9)]
    assert b.result().meta["rejected_orders"] >= 1
    b.set_mode("entries_allowed", user="alice")
    b.process(Tape().level(4000, 4000, 1, 99.0, 2.0).rows(end=4500))
    assert working_orders(b) == [(SELL, 100.9), (BUY, 99.9)]
    assert [a["mode"] for a in b.actions] == ["exits_only", "entries_allowed"]
