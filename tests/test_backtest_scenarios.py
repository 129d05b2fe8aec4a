"""Hand-computed replay scenarios: a few events each, exact fills, fees and PnL.

Times are small integers (ns); prices and sizes are chosen so that every expected number can
be checked by hand. The ``scripted`` strategy sends the orders at given local times.
"""

from __future__ import annotations

import numpy as np
import pytest

from genesis.backtest import engine as bt
from genesis.backtest.engine import Backtester, Fees, Latency, QueueModel, run_backtest
from genesis.backtest.events import replay_rows, row_time
from genesis.feeds.events import DELTA_DTYPE, TRADE_DTYPE

BUY, SELL = 1, -1


class Tape:
    """Builds deltas and trades by hand: ``book`` (a snapshot), ``level`` (one delta message), ``trade``."""

    def __init__(self) -> None:
        self.deltas: list[tuple] = []
        self.trades: list[tuple] = []
        self.seq = 0

    def book(self, exch: int, local: int, bids: dict[float, float], asks: dict[float, float]) -> "Tape":
        self.seq += 1
        for px, q in bids.items():
            self.deltas.append((exch, local, self.seq, 1, px, q, True))
        for px, q in asks.items():
            self.deltas.append((exch, local, self.seq, -1, px, q, True))
        return self

    def level(self, exch: int, local: int, side: int, price: float, qty: float) -> "Tape":
        self.seq += 1
        self.deltas.append((exch, local, self.seq, side, price, qty, False))
        return self

    def trade(self, exch: int, local: int, price: float, qty: float, aggressor: int) -> "Tape":
        self.trades.append((exch, local, len(self.trades), price, qty, aggressor))
        return self

    def rows(self, end: int | None = 10_000) -> np.ndarray:
        """The replay rows; ``end`` adds a deep bid (price 1) at that time so that everything due
        before it (timers, order arrivals, responses) is replayed."""
        if end is not None:
            self.level(end, end, 1, 1.0, 1.0)
        return replay_rows(np.array(self.deltas, DELTA_DTYPE), np.array(self.trades, TRADE_DTYPE))


def upto(rows: np.ndarray, t: int) -> np.ndarray:
    """The rows that happen at or before ``t``."""
    return rows[row_time(rows) <= t]


def script(*actions: tuple) -> dict[str, np.ndarray]:
    """Inputs of the ``scripted`` strategy from (ts, side, price, qty, order_type, tif[, cancel_id]) tuples."""
    cols = {k: [] for k in ("ts", "side", "price", "qty", "order_type", "tif", "cancel_id")}
    for a in actions:
        a = tuple(a) + (-1,) * (7 - len(a))
        for k, v in zip(cols, a):
            cols[k].append(v)
    return {k: np.array(v, np.int64 if k == "ts" else np.float64) for k, v in cols.items()}


def cancel_action(ts: int, order_id: int) -> tuple:
    return (ts, 0, 0.0, 0.0, 0, 0, order_id)


TICK = 0.1  # the tapes' price grid (too few prices to infer it from)


def run(tape: Tape, actions: list[tuple], **kw):
    return run_backtest("scripted", {}, tape.rows(), inputs=script(*actions), equity_interval_ns=0, tick_size=TICK,
                        **kw)


def fills_list(result) -> list[tuple]:
    f = result.fills
    return [(int(a), int(s), float(p), float(q), bool(m)) for a, s, p, q, m in
            zip(f["exch_ts"], f["side"], f["price"], f["qty"], f["maker"])]


# -- taker path ---------------------------------------------------------------------------------------

def test_latency_moves_a_taker_fill_to_a_worse_price():
    tape = (Tape().book(1000, 1000, {100.0: 1.0}, {101.0: 1.0, 102.0: 5.0})
            .level(2000, 2600, -1, 101.0, 0.0))  # the 101 ask goes at the venue at 2000
    buy = (1500, BUY, 0.0, 1.0, bt.MARKET, bt.IOC)
    fast = run(tape, [buy], latency=Latency.constant(0), fees=Fees(0.0, 5.0))
    slow = run(tape, [buy], latency=Latency.constant(1000, 300), fees=Fees(0.0, 5.0))
    assert fills_list(fast) == [(1500, BUY, 101.0, 1.0, False)]
    assert fills_list(slow) == [(2500, BUY, 102.0, 1.0, False)]  # arrives at 2500: only 102 is left
    assert slow.fills["local_ts"][0] == 2800  # the fill is known locally after the response latency
    assert slow.fills["fee"][0] == pytest.approx(102.0 * 5e-4)
    assert fast.fills["fee"][0] == pytest.approx(101.0 * 5e-4)


def test_market_order_walks_levels_and_depletes_the_book_for_the_next_order():
    tape = Tape().book(1000, 1000, {99.0: 1.0}, {101.0: 1.0, 102.0: 2.0, 103.0: 5.0})
    res = run(tape, [(1500, BUY, 0.0, 2.5, bt.MARKET, bt.IOC),
                     (1600, BUY, 102.0, 3.0, bt.LIMIT, bt.IOC)])  # only 0.5 is left at or below 102
    assert fills_list(res) == [(1500, BUY, 101.0, 1.0, False), (1500, BUY, 102.0, 1.5, False),
                               (1600, BUY, 102.0, 0.5, False)]
    assert res.fills["position"].tolist() == [1.0, 2.5, 3.0]
    eq = res.equity[-1]
    assert eq["position"] == 3.0
    # average entry (101 + 1.5*102 + 0.5*102) / 3 = 101.666..., marked to the local mid (99 + 101) / 2 = 100
    assert eq["unrealized_pnl"] == pytest.approx(3.0 * (100.0 - (101.0 + 2.0 * 102.0) / 3.0))


def test_ioc_remainder_is_cancelled_and_gtc_remainder_rests():
    tape = (Tape().book(1000, 1000, {99.0: 1.0}, {101.0: 1.0, 103.0: 5.0})
            .trade(3000, 3000, 101.5, 0.5, SELL))  # a seller at 101.5: reaches a bid at 101.5 or higher
    ioc = run(tape, [(1500, BUY, 101.5, 2.0, bt.LIMIT, bt.IOC)])
    gtc = run(tape, [(1500, BUY, 101.5, 2.0, bt.LIMIT, bt.GTC)])
    assert fills_list(ioc) == [(1500, BUY, 101.0, 1.0, False)]
    # The GTC remainder (1.0) rests at 101.5 with nobody ahead: the seller's 0.5 fills it as maker.
    assert fills_list(gtc) == [(1500, BUY, 101.0, 1.0, False), (3000, BUY, 101.5, 0.5, True)]


def test_post_only_that_would_take_is_rejected():
    tape = Tape().book(1000, 1000, {100.0: 1.0}, {101.0: 1.0}).trade(3000, 3000, 100.5, 1.0, SELL)
    bt_ = Backtester("scripted", inputs=script((1500, BUY, 101.0, 1.0, bt.LIMIT, bt.POST_ONLY),
                                              (1500, BUY, 100.5, 1.0, bt.LIMIT, bt.POST_ONLY)),
                     equity_interval_ns=0, tick_size=TICK)
    bt_.process(tape.rows())
    assert fills_list(bt_.result()) == [(3000, BUY, 100.5, 1.0, True)]  # only the one that did not cross


# -- maker path ---------------------------------------------------------------------------------------

def _queue_tape() -> Tape:
    return (Tape().book(1000, 1000, {100.0: 5.0}, {101.0: 5.0})
            .trade(2000, 2000, 100.0, 3.0, SELL).level(2000, 2000, 1, 100.0, 2.0)
            .trade(3000, 3000, 100.0, 3.0, SELL).level(3000, 3000, 1, 100.0, 0.0)
            .level(3500, 3500, 1, 100.0, 4.0)
            .trade(4000, 4000, 100.0, 4.0, SELL))


def test_maker_fills_only_after_the_queue_ahead_is_traded_away():
    res = run(_queue_tape(), [(1500, BUY, 100.0, 2.0, bt.LIMIT, bt.GTC)], fees=Fees(-1.0, 5.0))
    # queue ahead 5 on arrival; 3 traded (2 ahead); 3 more: 2 ahead then 1 for us; the next 4 fill our last 1.
    assert fills_list(res) == [(3000, BUY, 100.0, 1.0, True), (4000, BUY, 100.0, 1.0, True)]
    assert res.fills["fee"].tolist() == pytest.approx([-0.01, -0.01])  # 1 bp rebate on 100 each
    eq = res.equity[-1]
    assert eq["fees"] == pytest.approx(-0.02)
    assert eq["equity"] == pytest.approx(2.0 * (100.5 - 100.0) + 0.02)


def _cancel_tape() -> Tape:
    # Our bid joins 4 at 100; 6 join behind us (level 10); 5 leave without a trade (level 5); then a
    # seller trades 3 at our price.
    return (Tape().book(1000, 1000, {99.0: 1.0, 100.0: 4.0}, {101.0: 5.0})
            .level(2000, 2000, 1, 100.0, 10.0)   # 6 join behind us
            .level(3000, 3000, 1, 100.0, 5.0)    # 5 cancelled: unexplained by trades
            .trade(4000, 4000, 100.0, 3.0, SELL))


def test_conservative_queue_ignores_cancels():
    res = run(_cancel_tape(), [(1500, BUY, 100.0, 1.0, bt.LIMIT, bt.GTC)],
              queue=QueueModel.conservative())
    assert len(res.fills) == 0  # ahead: 4, min(4, level 5) = 4; a trade of 3 leaves 1 ahead


def test_probabilistic_queue_moves_us_forward_by_the_expected_share_of_cancels():
    res = run(_cancel_tape(), [(1500, BUY, 100.0, 1.0, bt.LIMIT, bt.GTC)],
              queue=QueueModel.probabilistic(power=2.0))
    front, back, cancelled = 4.0, 6.0, 5.0
    share = front**2 / (front**2 + back**2)  # 16/52 of the cancels were ahead of us
    ahead = front - share * cancelled  # 2.4615...
    assert fills_list(res) == [(4000, BUY, 100.0, pytest.approx(3.0 - ahead), True)]


def test_trade_through_our_price_and_crossing_best_fill_the_whole_order():
    tape = (Tape().book(1000, 1000, {99.0: 1.0, 100.0: 10.0}, {101.0: 5.0, 102.0: 5.0})
            .trade(2000, 2000, 99.0, 0.1, SELL)            # through our bid at 100: fills all of it
            .level(3000, 3000, -1, 101.0, 0.0).level(3000, 3000, 1, 101.5, 1.0)
            .level(4000, 4000, 1, 101.5, 0.0).level(4000, 4000, -1, 101.5, 1.0))  # ask at 101.5 crosses our 102 bid
    res = run(tape, [(1500, BUY, 100.0, 2.0, bt.LIMIT, bt.GTC), (1500, SELL, 102.0, 1.0, bt.LIMIT, bt.GTC),
                     (3500, BUY, 101.5, 1.0, bt.LIMIT, bt.GTC)])
    # bid 101.5 rests behind 1.0; at 4000 the bid level goes and an ask appears at 101.5 = our price.
    assert fills_list(res) == [(2000, BUY, 100.0, 2.0, True), (4000, BUY, 101.5, 1.0, True)]


def test_cancel_that_arrives_after_the_fill_fails_and_the_fill_stands():
    tape = Tape().book(500, 500, {99.0: 1.0}, {101.0: 5.0}).trade(2500, 2500, 100.0, 1.0, SELL)
    bt_ = Backtester("scripted", inputs=script((1000, BUY, 100.0, 1.0, bt.LIMIT, bt.GTC), cancel_action(2000, 0)),
                     latency=Latency.constant(1000, 100), equity_interval_ns=0, tick_size=TICK)
    bt_.process(tape.rows())
    res = bt_.result()
    # order at the venue 2000 (nobody ahead at 100); the seller at 2500 fills it; the cancel arrives at 3000.
    assert fills_list(res) == [(2500, BUY, 100.0, 1.0, True)]
    assert bt_.position == 1.0
    kind, order_id, *_ = bt.last_response(bt_.E)
    assert kind == bt.R_CANCEL_REJECTED and order_id == 0


def test_cancel_that_arrives_before_a_fill_cancels():
    tape = Tape().book(500, 500, {99.0: 1.0}, {101.0: 5.0}).trade(3500, 3500, 100.0, 1.0, SELL)
    bt_ = Backtester("scripted", inputs=script((1000, BUY, 100.0, 1.0, bt.LIMIT, bt.GTC), cancel_action(2000, 0)),
                     latency=Latency.constant(1000, 100), equity_interval_ns=0, tick_size=TICK)
    bt_.process(tape.rows())
    assert len(bt_.result().fills) == 0
    assert bt.last_response(bt_.E)[0] == bt.R_CANCELLED


# -- account, modes, reset ----------------------------------------------------------------------------

def test_realized_pnl_average_cost_and_fees():
    tape = (Tape().book(1000, 1000, {100.0: 10.0}, {101.0: 10.0})
            .level(2000, 2000, -1, 103.0, 10.0).level(2000, 2000, -1, 101.0, 0.0)
            .level(3000, 3000, -1, 105.0, 10.0).level(3000, 3000, -1, 103.0, 0.0).level(3000, 3000, 1, 104.0, 10.0))
    res = run(tape, [(1500, BUY, 0.0, 2.0, bt.MARKET, bt.IOC), (2500, BUY, 0.0, 2.0, bt.MARKET, bt.IOC),
                     (3500, SELL, 0.0, 3.0, bt.MARKET, bt.IOC)], fees=Fees(0.0, 10.0))
    # buys 2 @ 101 and 2 @ 103: average 102; sells 3 @ 104: realized 3 * 2 = 6; one left at average 102.
    assert res.fills["realized_pnl"].tolist() == [0.0, 0.0, pytest.approx(6.0)]
    fees = (2 * 101 + 2 * 103 + 3 * 104) * 1e-3
    assert res.fills["fee"].sum() == pytest.approx(fees)
    eq = res.equity[-1]
    assert eq["position"] == 1.0
    assert eq["turnover"] == pytest.approx(2 * 101 + 2 * 103 + 3 * 104)
    mid = (104.0 + 105.0) / 2
    assert eq["unrealized_pnl"] == pytest.approx(mid - 102.0)
    assert eq["equity"] == pytest.approx(6.0 + (mid - 102.0) - fees)


def test_exits_only_rejects_entries_and_reversals_but_allows_exits():
    tape = (Tape().book(1000, 1000, {100.0: 10.0}, {101.0: 10.0}).level(2000, 2000, -1, 105.0, 1.0)
            .level(5000, 5000, 1, 99.0, 1.0))
    rows = tape.rows()
    bt_ = Backtester("scripted", inputs=script(
        (1500, BUY, 0.0, 1.0, bt.MARKET, bt.IOC),
        (5500, BUY, 0.0, 1.0, bt.MARKET, bt.IOC),   # entry: rejected
        (5500, SELL, 0.0, 2.0, bt.MARKET, bt.IOC),  # would reverse to short: rejected
        (5500, SELL, 0.0, 1.0, bt.MARKET, bt.IOC),  # exit: accepted
    ), equity_interval_ns=0, tick_size=TICK)
    first = upto(rows, 2000)  # the buy at 1500 is filled in this chunk
    bt_.process(first)
    bt_.set_mode("exits_only", user="tester")
    bt_.process(rows[len(first):])
    res = bt_.result()
    assert fills_list(res) == [(1500, BUY, 101.0, 1.0, False), (5500, SELL, 100.0, 1.0, False)]
    assert res.meta["rejected_orders"] == 2
    assert res.meta["actions"][0]["mode"] == "exits_only" and res.meta["actions"][0]["user"] == "tester"


def test_exits_only_rejects_an_entry_when_flat():
    tape = Tape().book(1000, 1000, {100.0: 10.0}, {101.0: 10.0})
    bt_ = Backtester("scripted", inputs=script((1500, BUY, 0.0, 1.0, bt.MARKET, bt.IOC)), tick_size=TICK)
    bt_.set_mode(bt.EXITS_ONLY)
    bt_.process(tape.rows())
    assert len(bt_.result().fills) == 0 and bt_.result().meta["rejected_orders"] == 1


def test_reset_cancels_flattens_at_the_book_and_clears_the_account():
    tape = (Tape().book(1000, 1000, {100.0: 1.0, 99.0: 5.0}, {101.0: 10.0})
            .level(2000, 2000, -1, 105.0, 1.0).level(3000, 3000, 1, 98.0, 1.0))
    bt_ = Backtester("scripted", inputs=script((1500, BUY, 0.0, 2.0, bt.MARKET, bt.IOC),
                                              (1500, BUY, 98.0, 1.0, bt.LIMIT, bt.GTC)),
                     fees=Fees(0.0, 10.0), equity_interval_ns=0, tick_size=TICK)
    rows = tape.rows()
    first = upto(rows, 2000)  # orders sent and the market one filled at 1500 (zero latency)
    bt_.process(first)
    assert bt_.position == 2.0
    bt_.reset(user="tester")
    res = bt_.result()
    # flatten: sell 2 walking the bids: 1 @ 100, 1 @ 99 (taker fee 10 bp), order id -1
    assert fills_list(res)[1:] == [(2000, SELL, 100.0, 1.0, False), (2000, SELL, 99.0, 1.0, False)]
    assert res.fills["order_id"][1:].tolist() == [-1, -1]
    assert bt_.position == 0.0
    assert bt.position(bt_.E) == 0.0 and bt_.E.ist[bt.I_N_USED] == 0  # the resting bid is gone
    eq = res.equity[-1]
    assert (eq["realized_pnl"], eq["fees"], eq["turnover"], eq["equity"]) == (0.0, 0.0, 0.0, 0.0)
    assert res.meta["actions"][0]["action"] == "reset"


def test_equity_sampled_on_the_local_clock():
    tape = (Tape().book(1000, 1500, {100.0: 1.0}, {102.0: 1.0})
            .level(2500, 3200, 1, 101.0, 1.0))
    res = run_backtest("noop", {}, tape.rows(end=None), equity_interval_ns=1000, tick_size=TICK)
    # the local clock starts at 1500 (first local row): samples at 2000 and 3000 (mid 101), then the
    # final one at 3200 (mid 101.5); nothing at 1000, when the venue already had the book
    assert res.equity["ts"].tolist() == [2000, 3000, 3200]
    assert res.equity["mid"].tolist() == [101.0, 101.0, 101.5]
