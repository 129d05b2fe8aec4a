"""Price alerts: hand-computed cases of each rule, history over real trades equal to the live
monitor fed the same trades in batches, the triggered history stored and read back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import capture_path
from genesis.analytics.price_alerts import (
    PriceAlertMonitor, PriceRule, evaluate, evaluate_store, evaluate_trades, load_triggers, save_triggers,
)
from genesis.feeds.binance.capture import read_capture
from genesis.pipelines.ingest import ingest_binance_capture
from genesis.store import connect

S = "test:X"


def fired(rule: PriceRule, prices) -> list[tuple[int, int]]:
    """(index, direction) of the alerts over prices at ts = index."""
    out = evaluate([rule], S, np.arange(len(prices)), np.asarray(prices, float))
    return list(zip(out["at_ts"].tolist(), out["direction"].tolist()))


def test_rules_hand_computed():
    prices = [99, 100, 101, 99, 100, np.nan, 98, 102, 100, 100]
    assert fired(PriceRule(S, "above", 100), prices) == [(1, 1), (4, 1), (7, 1)]
    assert fired(PriceRule(S, "below", 100), prices) == [(0, -1), (3, -1), (8, -1)]
    assert fired(PriceRule(S, "cross", 100), prices) == [(1, 1), (3, -1), (4, 1), (6, -1), (7, 1)]
    # A first price already past the level fires above / below, but only sets the side for cross.
    assert fired(PriceRule(S, "above", 100), [105, 106]) == [(0, 1)]
    assert fired(PriceRule(S, "cross", 100), [105, 106]) == []
    out = evaluate([PriceRule(S, "cross", 100)], S, np.arange(10), np.asarray(prices, float))
    assert out["prev_price"].tolist() == [99, 101, 99, 100, 98]  # the NaN is skipped
    assert evaluate([PriceRule("other:Y", "above", 1)], S, np.arange(3), np.ones(3)).empty


def test_rule_validation_and_parse():
    rule = PriceRule.parse("binance-usdm:BTCUSDT above 61900 breakout")
    assert (rule.symbol, rule.kind, rule.level, rule.name) == ("binance-usdm:BTCUSDT", "above", 61900.0, "breakout")
    assert rule.rule_id == PriceRule("binance-usdm:BTCUSDT", "above", 61900, "breakout").rule_id
    with pytest.raises(ValueError, match="kind 'over'"):
        PriceRule(S, "over", 1)
    with pytest.raises(ValueError, match="venue:SYMBOL"):
        PriceRule("BTCUSDT", "above", 1)
    with pytest.raises(ValueError, match="positive"):
        PriceRule(S, "above", float("nan"))
    with pytest.raises(ValueError, match="not a number"):
        PriceRule.parse("a:B above lots")
    with pytest.raises(ValueError, match="time order"):
        evaluate([PriceRule(S, "above", 1)], S, np.array([2, 1]), np.ones(2))


@pytest.fixture(scope="module")
def btc():
    events = read_capture(capture_path("usdm_btcusdt_20240808.jsonl.gz")).symbol_events()
    return events.symbol, events.trades


def btc_rules(symbol, trades):
    lo, hi = np.quantile(trades["price"], [0.1, 0.9])
    mid = np.median(trades["price"])
    return [PriceRule(symbol, "above", hi, "high"), PriceRule(symbol, "below", lo, "low"),
            PriceRule(symbol, "cross", mid, "mid"), PriceRule(symbol, "cross", float(trades["price"][0])),
            PriceRule("binance-spot:ETHUSDT", "above", 1.0)]


@pytest.mark.parametrize("seed", [0, 1])
def test_history_equals_the_live_monitor_fed_in_batches(btc, seed):
    symbol, trades = btc
    rules = btc_rules(symbol, trades)
    history = evaluate_trades(rules, trades, symbol)
    assert len(history) > 20 and set(history["kind"]) == {"above", "below", "cross"}
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(trades)), size=300, replace=False))
    monitor = PriceAlertMonitor(rules)
    pieces = [monitor.on_trades(symbol, batch) for batch in np.split(trades, cuts)]
    live = monitor.history
    pd.testing.assert_frame_equal(live, history)
    assert sum(len(p) for p in pieces) == len(history)
    one_by_one = PriceAlertMonitor(rules)
    for i in range(0, 2000):
        one_by_one.on_trades(symbol, trades[i:i + 1])
    pd.testing.assert_frame_equal(one_by_one.history, evaluate_trades(rules, trades[:2000], symbol))


def test_monitor_refuses_out_of_order_batches(btc):
    symbol, trades = btc
    monitor = PriceAlertMonitor(btc_rules(symbol, trades))
    monitor.on_trades(symbol, trades[100:200])
    with pytest.raises(ValueError, match="time order"):
        monitor.on_trades(symbol, trades[:50])
    with pytest.raises(ValueError, match="twice"):
        PriceAlertMonitor([PriceRule(S, "above", 1), PriceRule(S, "above", 1)])


def test_store_history_saved_and_read_back(btc, store_url):
    symbol, trades = btc
    ingest_binance_capture(capture_path("usdm_btcusdt_20240808.jsonl.gz"), store_url=store_url, progress=False)
    rules = btc_rules(symbol, trades)
    with connect(store_url) as store:
        from_store = evaluate_store(store, rules)
        run_id = save_triggers(store, from_store, mode="history")
        back = load_triggers(store, symbol=symbol, run_id=run_id)
        on_bars = evaluate_store(store, rules, source="bars", interval="1s")
        ranged = evaluate_store(store, rules, "2024-08-08 23:56:00", "2024-08-08 23:57:00")
    pd.testing.assert_frame_equal(from_store, evaluate_trades(rules, trades, symbol))
    pd.testing.assert_frame_equal(back[from_store.columns].astype(from_store.dtypes.to_dict()), from_store)
    assert set(back["mode"]) == {"history"}
    assert 0 < len(on_bars) <= len(from_store)  # closes skip what happens inside a bar
    lo, hi = pd.Timestamp("2024-08-08 23:56:00", tz="UTC").value, pd.Timestamp("2024-08-08 23:57:00", tz="UTC").value
    assert ranged["at_ts"].between(lo, hi - 1).all()
    with pytest.raises(ValueError, match="mode="):
        save_triggers(None, from_store, mode="sometimes")
