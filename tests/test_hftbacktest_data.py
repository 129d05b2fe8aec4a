"""Genesis events -> hftbacktest event arrays (benchmarks/hftbacktest_data.py); no hftbacktest needed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from genesis.book.l2 import L2Book
from genesis.feeds.events import DELTA_DTYPE, TRADE_DTYPE, MarketEvents, delta_events

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


hd = _load("hftbacktest_data")
EXCH, LOCAL = hd.EXCH_EVENT, hd.LOCAL_EVENT
KIND = 0xFF


def deltas(rows) -> np.ndarray:
    """rows: (exch_ts, local_ts, seq, side, price, qty, is_snapshot)."""
    return np.array(rows, DELTA_DTYPE)


def trades(rows) -> np.ndarray:
    """rows: (exch_ts, local_ts, trade_id, price, qty, aggressor)."""
    return np.array(rows, TRADE_DTYPE)


def hand_events() -> MarketEvents:
    """A snapshot and a trade at the same venue time, then a diff that reaches us first."""
    return MarketEvents(
        symbol="test:X",
        deltas=deltas([
            (1000, 1500, 1, 1, 99.0, 2.0, True), (1000, 1500, 1, 1, 98.0, 1.0, True),
            (1000, 1500, 1, -1, 101.0, 3.0, True), (1000, 1500, 1, -1, 102.0, 4.0, True),
            (1200, 1300, 2, 1, 99.0, 5.0, False),
        ]),
        trades=trades([(1000, 1400, 7, 101.0, 0.5, 1)]),
    )


def test_venue_order_puts_a_trade_before_the_depth_message_of_the_same_time_and_clears_before_a_snapshot():
    rows, first, is_depth = hd.venue_order_rows(hand_events())
    kinds = rows["ev"] & KIND
    assert kinds.tolist() == [hd.TRADE_EVENT, hd.DEPTH_CLEAR_EVENT] + [hd.DEPTH_SNAPSHOT_EVENT] * 4 + [hd.DEPTH_EVENT]
    assert first.tolist() == [0, 1, 6] and is_depth.tolist() == [False, True, True]
    assert rows["ev"][0] & hd.BUY_EVENT  # buyer-initiated trade
    sides = rows["ev"][2:6] & (hd.BUY_EVENT | hd.SELL_EVENT)
    assert sides.tolist() == [hd.BUY_EVENT] * 2 + [hd.SELL_EVENT] * 2
    assert np.isnan(rows["px"][1]) and rows["px"][2:].tolist() == [99.0, 98.0, 101.0, 102.0, 99.0]


def test_rows_the_two_clocks_order_differently_are_written_once_per_clock():
    out = hd.to_hbt_events(hand_events())
    hd.check_hbt_order(out)
    flags = ((out["ev"] & EXCH) != 0).astype(int) + 2 * ((out["ev"] & LOCAL) != 0).astype(int)
    kinds = (out["ev"] & KIND).tolist()
    # Venue: trade, clear, 4 snapshot levels, diff. Local: diff (1300), trade (1400), clear + snapshot (1500).
    # The diff is next on both clocks at one point, so it is the only row carrying both flags.
    T, C, S, D = hd.TRADE_EVENT, hd.DEPTH_CLEAR_EVENT, hd.DEPTH_SNAPSHOT_EVENT, hd.DEPTH_EVENT
    assert kinds == [T, C, S, S, S, S, D, T, C, S, S, S, S]
    assert flags.tolist() == [1, 1, 1, 1, 1, 1, 3, 2, 2, 2, 2, 2, 2]
    exch = out[(out["ev"] & EXCH) != 0]
    local = out[(out["ev"] & LOCAL) != 0]
    assert exch["exch_ts"].tolist() == [1000] * 6 + [1200]
    assert local["local_ts"].tolist() == [1300, 1400] + [1500] * 5


def test_consistent_clocks_give_one_row_per_event_with_both_flags():
    ev = MarketEvents(symbol="test:X",
                      deltas=deltas([(10, 15, 1, 1, 99.0, 1.0, True), (10, 15, 1, -1, 100.0, 1.0, True),
                                     (30, 35, 2, -1, 100.0, 0.0, False), (30, 35, 2, -1, 101.0, 2.0, False)]),
                      trades=trades([(20, 25, 1, 100.0, 1.0, 1), (40, 45, 2, 99.0, 0.2, -1)]))
    out = hd.to_hbt_events(ev)
    assert len(out) == 4 + 2 + 1  # events + one clear row
    assert np.all(out["ev"] & EXCH) and np.all(out["ev"] & LOCAL)
    assert (out["ev"][-1] & hd.SELL_EVENT) and (out["ev"][-1] & KIND) == hd.TRADE_EVENT


def test_a_trade_without_aggressor_has_no_side_flag():
    ev = MarketEvents(symbol="test:X", deltas=deltas([(1, 1, 1, 1, 9.0, 1.0, True)]),
                      trades=trades([(2, 2, 1, 9.0, 1.0, 0)]))
    out = hd.to_hbt_events(ev)
    assert out["ev"][-1] & (hd.BUY_EVENT | hd.SELL_EVENT) == 0


def test_non_finite_depth_is_refused_with_the_symbol_named():
    ev = MarketEvents(symbol="test:X", deltas=deltas([(1, 1, 1, 1, np.nan, 1.0, True)]))
    with pytest.raises(ValueError, match="test:X"):
        hd.to_hbt_events(ev)


def test_check_hbt_order_names_the_clock_that_goes_back():
    out = hd.to_hbt_events(hand_events())
    out = out[::-1].copy()
    with pytest.raises(ValueError, match="exch_ts"):
        hd.check_hbt_order(out)


def test_feed_latency_offset_and_shift():
    ev = hand_events()
    ev.trades["local_ts"] = 900  # 100 ns before its venue time: the smallest latency, -100
    assert hd.feed_latency_offset(ev, 0) == 100
    assert hd.feed_latency_offset(ev, 5) == 105
    shifted = hd.shift_local_clock(ev, 100)
    assert shifted.trades["local_ts"][0] == 1000 and shifted.deltas["local_ts"][0] == 1600
    assert ev.deltas["local_ts"][0] == 1500  # the input is left alone


def test_repeat_events_shifts_both_clocks_and_keeps_ids_increasing():
    ev = hand_events()
    rep = hd.repeat_events(ev, 3, gap_ns=50)
    span = (1500 - 1000) + 50
    assert len(rep.deltas) == 3 * len(ev.deltas) and len(rep.trades) == 3 * len(ev.trades)
    assert rep.deltas["exch_ts"][5] == 1000 + span and rep.deltas["local_ts"][10] == 1500 + 2 * span
    assert np.all(np.diff(rep.deltas["seq"]) >= 0) and np.all(np.diff(rep.trades["trade_id"]) > 0)
    _, _, snap = delta_events(rep.deltas)
    assert snap.tolist() == [True, False] * 3  # each copy starts from the snapshot
    with pytest.raises(ValueError, match="copies"):
        hd.repeat_events(ev, 0)


def _replay_top(rows: np.ndarray, clock_flag: int) -> tuple[float, float]:
    """Plain-Python book over the rows one clock sees; its best bid and ask at the end."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for ev, px, qty in zip(rows["ev"].tolist(), rows["px"].tolist(), rows["qty"].tolist()):
        if not ev & clock_flag:
            continue
        kind = ev & KIND
        if kind == hd.DEPTH_CLEAR_EVENT:
            bids.clear()
            asks.clear()
        elif kind in (hd.DEPTH_EVENT, hd.DEPTH_SNAPSHOT_EVENT):
            book = bids if ev & hd.BUY_EVENT else asks
            if qty > 0:
                book[px] = qty
            else:
                book.pop(px, None)
    return max(bids), min(asks)


@pytest.mark.slow
def test_converted_real_capture_rebuilds_the_same_book_on_both_clocks():
    raw = hd.capture_market_events(SAMPLE)
    ev = hd.shift_local_clock(raw, hd.feed_latency_offset(raw, 0))
    d = ev.deltas
    assert np.all(np.diff(d["exch_ts"]) >= 0) and np.all(np.diff(d["local_ts"]) >= 0)
    out = hd.to_hbt_events(ev)
    hd.check_hbt_order(out)
    n_exch = int(np.count_nonzero(out["ev"] & EXCH))
    starts, counts, snap = delta_events(d)
    assert n_exch == len(d) + len(ev.trades) + int(snap.sum())
    assert int(np.count_nonzero(out["ev"] & LOCAL)) == n_exch
    book = L2Book(depth=1)
    bid_px, _, ask_px, _, crossed = book.apply_groups(starts, counts, snap, d["side"], d["price"], d["qty"])
    assert not crossed.any()
    expected = (bid_px[-1, 0], ask_px[-1, 0])
    assert _replay_top(out, EXCH) == expected
    assert _replay_top(out, LOCAL) == expected


def test_the_two_clocks_see_what_genesis_replay_rows_give_each_clock():
    from genesis.backtest import events as events_mod
    ev = hand_events()
    ours = hd.to_hbt_events(ev)
    theirs = events_mod.from_market_events(ev)
    kind_map = {events_mod.DEPTH: hd.DEPTH_EVENT, events_mod.CLEAR: hd.DEPTH_CLEAR_EVENT,
                events_mod.TRADE: hd.TRADE_EVENT}
    for ours_flag, their_flag in ((EXCH, events_mod.FLAG_EXCH), (LOCAL, events_mod.FLAG_LOCAL)):
        a = ours[(ours["ev"] & ours_flag) != 0]
        b = theirs[(theirs["kind"] & their_flag) != 0]
        assert len(a) == len(b)
        kinds_a = [hd.DEPTH_EVENT if k == hd.DEPTH_SNAPSHOT_EVENT else k for k in (a["ev"] & KIND).tolist()]
        assert kinds_a == [kind_map[k] for k in (b["kind"] & events_mod.KIND_MASK).tolist()]
        np.testing.assert_array_equal(a["exch_ts"], b["exch_ts"])
        np.testing.assert_array_equal(a["local_ts"], b["local_ts"])
        np.testing.assert_array_equal(np.nan_to_num(a["px"]), np.nan_to_num(b["price"]))
        np.testing.assert_array_equal(a["qty"], b["qty"])
        side_a = np.where(a["ev"] & hd.BUY_EVENT, 1, np.where(a["ev"] & hd.SELL_EVENT, -1, 0))
        np.testing.assert_array_equal(side_a, b["side"])
