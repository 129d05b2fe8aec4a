"""Order-flow manipulation detectors: spoofing (L3), layering, quote stuffing, momentum ignition,
wash trades, icebergs.

Each detector gets hand-made event sequences that must fire and near-misses that must not
(small ORDER_EVENT_DTYPE / TRADE_DTYPE arrays and book rows built here), a check that
chunked online processing gives exactly the batch alerts on a simulator run with every
scenario, and plain pandas references where the rule is simple enough to restate
(self-trade groups, iceberg refill chains, short-lived order counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis.feeds.events import (
    EV_ADD, EV_CANCEL, EV_DELETE, EV_EXECUTE, NO_ID, ORDER_EVENT_DTYPE, TRADE_DTYPE,
)
from genesis.feeds.simulator import SCENARIOS, simulate
from genesis.surveillance.detectors import by_name
from genesis.surveillance.engine import Book, Inputs, SurveillanceStream, detect

T0 = 1_723_075_200_000_000_000
S = 1_000_000_000
MINE = ("spoofing", "layering", "quote_stuffing", "momentum_ignition", "wash_trades", "wash_trades_pattern",
        "iceberg")


# -- builders ----------------------------------------------------------------------------------------------------
class Flow:
    """Collects order events (times in seconds after T0) and builds the arrays."""

    def __init__(self):
        self.rows = []

    def add(self, t, oid, side, price, qty, owner=NO_ID):
        self.rows.append((t, EV_ADD, oid, side, price, qty, owner, NO_ID, NO_ID))
        return self

    def delete(self, t, oid, side, price, qty, owner=NO_ID):
        self.rows.append((t, EV_DELETE, oid, side, price, qty, owner, NO_ID, NO_ID))
        return self

    def cancel(self, t, oid, side, price, qty, owner=NO_ID):
        self.rows.append((t, EV_CANCEL, oid, side, price, qty, owner, NO_ID, NO_ID))
        return self

    def execute(self, t, oid, side, price, qty, owner=NO_ID, contra_id=NO_ID, contra_owner=NO_ID):
        """A resting order ``oid`` on ``side`` executed by aggressor ``contra_id``."""
        self.rows.append((t, EV_EXECUTE, oid, side, price, qty, owner, contra_id, contra_owner))
        return self

    def background(self, t0, t1, rate=20.0, size=1.0, first_id=1_000_000, owner0=5000):
        """Small orders added and deleted 0.5 s later, alternating sides, away from the touch."""
        k = 0
        for t in np.arange(t0, t1, 1.0 / rate):
            side = 1 if k % 2 == 0 else -1
            price = 99.90 if side > 0 else 100.11
            self.add(t, first_id + k, side, price, size, owner0 + k % 50)
            self.delete(t + 0.5, first_id + k, side, price, size, owner0 + k % 50)
            k += 1
        return self

    def orders(self) -> np.ndarray:
        rows = sorted(self.rows, key=lambda r: r[0])  # stable: same-time rows keep their order
        out = np.zeros(len(rows), ORDER_EVENT_DTYPE)
        for i, (t, ev, oid, side, price, qty, owner, cid, cown) in enumerate(rows):
            ts = T0 + int(round(t * S))
            out[i] = (ts, ts, i + 1, ev, oid, side, price, qty, owner, cid, cown)
        return out


def flat_book(t0=0.0, t1=60.0, step=0.5, levels=5) -> Book:
    """A still book: bids 100.00, 99.99, ... and asks 100.01, 100.02, ..., one row every ``step`` s."""
    ts = T0 + np.round(np.arange(t0, t1, step) * S).astype(np.int64)
    n = len(ts)
    bid = np.tile(100.00 - 0.01 * np.arange(levels), (n, 1))
    ask = np.tile(100.01 + 0.01 * np.arange(levels), (n, 1))
    return Book(ts, bid, np.ones((n, levels)), ask, np.ones((n, levels)))


def run(name, orders=None, trades=None, book=None, **params) -> pd.DataFrame:
    detector = by_name(name).with_params(**params)
    inputs = Inputs("test:X", orders if orders is not None else np.empty(0, ORDER_EVENT_DTYPE),
                    trades if trades is not None else np.empty(0, TRADE_DTYPE),
                    book if book is not None else Book.empty(5))
    return detect(inputs, [detector])


# -- spoofing -----------------------------------------------------------------------------------------------------
SPOOF = dict(warmup_adds=10)


def spoof_flow(*, size=10.0, price=99.99, aggressor_owner=7, executed=False, life=1.5, stack=False, owner=7):
    f = Flow().background(0.0, 10.0)
    f.add(5.0, 1, 1, price, size, owner)
    if stack:
        f.add(5.2, 2, 1, 99.98, 5.0, owner)
    # the spoofer sells into the bids (resting side +1) while its spoof rests
    f.execute(5.5, 900, 1, 100.00, 0.5, 5001, contra_id=501, contra_owner=aggressor_owner)
    f.execute(5.8, 901, 1, 100.00, 0.5, 5003, contra_id=502, contra_owner=aggressor_owner)
    if executed:
        f.execute(5.9, 1, 1, price, 1.0, owner, contra_id=503, contra_owner=5009)
    f.delete(5.0 + life, 1, 1, price, size - (1.0 if executed else 0.0), owner)
    if stack:
        f.delete(5.0 + life, 2, 1, 99.98, 5.0, owner)
    return f.orders()


def test_spoofing_fires_with_evidence():
    alerts = run("spoofing", spoof_flow(), book=flat_book(), **SPOOF)
    assert len(alerts) == 1
    a = alerts.iloc[0]
    assert (a.kind, a.side, a.price, a["size"], a.level) == ("spoofing", 1, 99.99, 10.0, 1)
    assert a.order_ids == [1, 501, 502]
    assert a.start_ts == T0 + 5 * S and a.end_ts == T0 + int(6.5 * S)
    assert a.metric == pytest.approx(10.0)  # typical added size is 1
    assert a.n_events == 4 and 50 <= a.score <= 100


def test_spoofing_owner_unknown_counts_any_aggressor():
    alerts = run("spoofing", spoof_flow(owner=NO_ID, aggressor_owner=NO_ID), book=flat_book(), **SPOOF)
    assert len(alerts) == 1


def test_spoofing_aggressions_after_the_pull_count_within_the_post_window():
    # pulled after 0.2 s, the selling comes 0.3 and 0.6 s later
    alerts = run("spoofing", spoof_flow(life=0.2), book=flat_book(), **SPOOF)
    assert len(alerts) == 1
    assert run("spoofing", spoof_flow(life=0.2), book=flat_book(), post_window_s=0.2, **SPOOF).empty


@pytest.mark.parametrize("case", [
    dict(size=5.0),  # not large enough (7.5x typical)
    dict(price=100.00),  # at the touch: level 0
    dict(price=99.97),  # three levels behind
    dict(aggressor_owner=8),  # someone else trades on the other side
    dict(executed=True),  # it traded: a genuine order
    dict(life=6.0),  # rested longer than max_lifetime_s
    dict(stack=True),  # one of several large orders of its owner: layering, not spoofing
])
def test_spoofing_near_misses(case):
    assert run("spoofing", spoof_flow(**case), book=flat_book(), **SPOOF).empty


# -- layering -----------------------------------------------------------------------------------------------------
LAYER = dict(warmup_adds=10)
LAYER_LEVELS = 8  # layering declares it needs max_level + 1 = 7 book levels (to count 6 levels ahead)


def layer_flow(*, prices=(99.99, 99.98, 99.97), owners=(8, 8, 8), gap=0.05, executed=False, pull=2.0):
    f = Flow().background(0.0, 10.0)
    for k, (px, own) in enumerate(zip(prices, owners)):
        f.add(5.0 + k * gap, 10 + k, 1, px, 5.0, own)
    if executed:
        f.execute(6.0, 10, 1, prices[0], 5.0, owners[0], contra_id=600, contra_owner=5011)
    for k, (px, own) in enumerate(zip(prices, owners)):
        if not (executed and k == 0):
            f.delete(5.0 + pull + 0.01 * k, 10 + k, 1, px, 5.0, own)
    return f.orders()


def test_layering_fires_with_evidence():
    alerts = run("layering", layer_flow(), book=flat_book(levels=LAYER_LEVELS), **LAYER)
    assert len(alerts) == 1
    a = alerts.iloc[0]
    assert (a.kind, a.side, a.price, a["size"], a.level, a.metric) == ("layering", 1, 99.99, 15.0, 1, 3.0)
    assert sorted(a.order_ids) == [10, 11, 12]
    assert a.start_ts == T0 + 5 * S and a.end_ts == T0 + int(7.02 * S)


def test_layering_pulls_need_not_be_simultaneous():
    f = Flow().background(0.0, 10.0)
    for k, px in enumerate((99.99, 99.98, 99.97)):
        f.add(5.0 + 0.05 * k, 10 + k, 1, px, 5.0, 8)
    f.delete(5.5, 10, 1, 99.99, 5.0, 8).delete(6.5, 11, 1, 99.98, 5.0, 8).delete(7.5, 12, 1, 99.97, 5.0, 8)
    assert len(run("layering", f.orders(), book=flat_book(levels=LAYER_LEVELS), **LAYER)) == 1


def test_layering_without_owners_needs_one_pull():
    anonymous = (NO_ID, NO_ID, NO_ID)
    assert len(run("layering", layer_flow(owners=anonymous), book=flat_book(levels=LAYER_LEVELS), **LAYER)) == 1  # pulled within 20 ms
    f = Flow().background(0.0, 10.0)
    for k, px in enumerate((99.99, 99.98, 99.97)):
        f.add(5.0 + 0.05 * k, 10 + k, 1, px, 5.0)
    f.delete(5.5, 10, 1, 99.99, 5.0).delete(6.5, 11, 1, 99.98, 5.0).delete(7.5, 12, 1, 99.97, 5.0)
    assert run("layering", f.orders(), book=flat_book(levels=LAYER_LEVELS), **LAYER).empty


@pytest.mark.parametrize("case", [
    dict(prices=(99.99, 99.98)),  # two layers only
    dict(owners=(8, 9, 8)),  # not one owner
    dict(gap=0.6),  # added too far apart for one stack (third joins 1.2 s after the first)
    dict(executed=True),  # a layer traded
    dict(prices=(99.99, 99.99, 99.99)),  # one price: not layered
    dict(pull=11.0),  # rested longer than max_lifetime_s
])
def test_layering_near_misses(case):
    assert run("layering", layer_flow(**case), book=flat_book(levels=LAYER_LEVELS), **LAYER).empty


# -- quote stuffing ---------------------------------------------------------------------------------------------
def stuffing_flow(*, pairs=200, life=0.002, over=1.0, side=-1):
    f = Flow().background(0.0, 30.0, rate=50.0)
    for k in range(pairs):
        t = 20.0 + over * k / pairs
        f.add(t, 10_000 + k, side, 100.02, 0.3, 3)
        f.delete(t + life, 10_000 + k, side, 100.02, 0.3, 3)
    return f.orders()


def test_quote_stuffing_fires_with_evidence():
    alerts = run("quote_stuffing", stuffing_flow())
    assert len(alerts) == 1
    a = alerts.iloc[0]
    assert a.kind == "quote_stuffing" and a.side == -1
    assert a["size"] == pytest.approx(2.0)  # mean lifetime, ms
    # the first 64 short-lived orders after the burst was recognised (40 short-lived deletes in the window)
    assert len(a.order_ids) == 64 and all(10_000 <= i < 10_200 for i in a.order_ids)
    assert a.order_ids == sorted(a.order_ids) and a.order_ids[0] >= 10_040
    assert T0 + 20 * S <= a.start_ts < T0 + int(20.3 * S) and T0 + 21 * S - S // 100 <= a.end_ts <= T0 + 21 * S
    assert a.metric > 1.5


def test_quote_stuffing_open_at_the_end_is_reported():
    f = Flow().background(0.0, 20.0, rate=50.0)
    for k in range(200):
        f.add(19.0 + k / 200, 10_000 + k, 1, 99.99, 0.3, 3).delete(19.0 + k / 200 + 0.002, 10_000 + k, 1, 99.99, 0.3, 3)
    orders = f.orders()
    orders = orders[orders["exch_ts"] < T0 + int(19.99 * S)]
    alerts = run("quote_stuffing", orders)
    assert len(alerts) == 1 and alerts.iloc[0].side == 1


@pytest.mark.parametrize("case", [
    dict(life=0.05),  # the same burst of messages, but orders live 50 ms
    dict(pairs=15),  # too few short-lived orders
])
def test_quote_stuffing_near_misses(case):
    assert run("quote_stuffing", stuffing_flow(**case)).empty


def test_quote_stuffing_short_lived_counts_match_a_pandas_reference():
    """Every short-lived delete (lifetime from a pandas merge of adds and deletes) is in the evidence."""
    orders = stuffing_flow(pairs=50)
    frame = pd.DataFrame(orders)
    adds = frame[frame.event == EV_ADD][["order_id", "exch_ts"]]
    dels = frame[frame.event == EV_DELETE][["order_id", "exch_ts"]]
    life = dels.merge(adds, on="order_id", suffixes=("_del", "_add"))
    short = life[life.exch_ts_del - life.exch_ts_add <= 0.02 * S]
    alerts = run("quote_stuffing", orders)
    assert len(alerts) == 1
    assert alerts.iloc[0].n_events == 2 * len(short)  # the burst holds them all (40 counted at the entry)


# -- momentum ignition ------------------------------------------------------------------------------------------
def momentum_trades(*, burst=10, burst_qty=4.0, rev_n=3, rev_qty=14.0, move=True, side=1):
    rows = []
    price = 100.00
    sizes = np.exp(0.8 * np.random.default_rng(7).standard_normal(180))  # median 1, sd of log 0.8
    for k in range(180):  # background until 18 s: alternating sides, prices alternating on two ticks
        rows.append((k * 0.1, 100.00 + 0.01 * (k % 2), float(sizes[k]), 1 if k % 2 else -1))
    for k in range(burst):
        price += 0.01 * side if move else 0.0
        rows.append((20.0 + 0.1 * k, price, burst_qty, side))
    for k in range(rev_n):
        price -= 0.03 * side if move else 0.0
        rows.append((23.0 + 0.3 * k, price, rev_qty, -side))
    for k in range(20):
        rows.append((26.0 + 0.5 * k, price, 1.0, 1 if k % 2 else -1))
    rows.sort(key=lambda r: r[0])
    trades = np.zeros(len(rows), TRADE_DTYPE)
    for i, (t, px, q, agg) in enumerate(rows):
        ts = T0 + int(round(t * S))
        trades[i] = (ts, ts, i + 1, px, q, agg)
    return trades


def test_momentum_ignition_fires_with_evidence():
    alerts = run("momentum_ignition", trades=momentum_trades())
    assert len(alerts) == 1
    a = alerts.iloc[0]
    assert (a.kind, a.side) == ("momentum_ignition", 1)
    # complete at the second reversal order: 28 >= 0.6 x 40
    assert a.start_ts == T0 + 20 * S and a.end_ts == a.at_ts == T0 + int(23.3 * S)
    assert a.price == pytest.approx(100.01) and a["size"] == pytest.approx(40.0)  # busiest 1.5 s: all 10
    assert a.metric == pytest.approx(28.0 / 40.0) and a.n_events == 12
    mirrored = run("momentum_ignition", trades=momentum_trades(side=-1))
    assert len(mirrored) == 1 and mirrored.iloc[0].side == -1


@pytest.mark.parametrize("case", [
    dict(rev_n=0),  # no reversal
    dict(rev_qty=5.0),  # reversal orders too small to count (6x typical)
    dict(rev_n=1),  # reversal of 14 < 0.6 x 40
    dict(move=False),  # the burst did not move the price
    dict(burst=6),  # too few orders for a burst
    dict(burst_qty=2.0),  # burst orders not large
])
def test_momentum_ignition_near_misses(case):
    assert run("momentum_ignition", trades=momentum_trades(**case)).empty


def test_momentum_ignition_is_at_most_medium_and_reports_a_burst_once():
    # a burst of 10 large buys in half a second, reversed, then 2 more large buys and a second
    # reversal within the burst window: one burst, one alert (it used to be reported twice)
    base = momentum_trades(burst=0, rev_n=0)[:180]
    rows = [(20.0 + 0.05 * k, 100.01 + 0.01 * k, 4.0, 1) for k in range(10)]
    rows += [(20.55, 100.07, 14.0, -1), (20.65, 100.04, 14.0, -1), (20.75, 100.10, 4.0, 1),
             (20.85, 100.12, 4.0, 1), (20.95, 100.06, 14.0, -1), (21.05, 100.0, 14.0, -1)]
    extra = np.zeros(len(rows), TRADE_DTYPE)
    for i, (t, px, q, agg) in enumerate(rows):
        ts = T0 + int(round(t * S))
        extra[i] = (ts, ts, 1000 + i, px, q, agg)
    alerts = run("momentum_ignition", trades=np.concatenate([base, extra]))
    assert len(alerts) == 1 and alerts.iloc[0].start_ts == T0 + 20 * S
    strong = run("momentum_ignition", trades=momentum_trades(burst=15, rev_n=5, rev_qty=30.0))
    assert len(strong) == 1 and strong.iloc[0].score == pytest.approx(59.0)  # anonymous trades: a lead, medium
    assert strong.iloc[0].severity == "medium"


# -- wash trades --------------------------------------------------------------------------------------------------
def wash_flow(gaps=(1.0,), owners=((6, 6), (6, 6))):
    f = Flow().background(0.0, 5.0)
    t = 2.0
    for k, (resting, aggressor) in enumerate(owners):
        f.add(t, 100 + k, 1, 100.00, 2.0, resting)
        f.execute(t, 100 + k, 1, 100.00, 2.0, resting, contra_id=200 + k, contra_owner=aggressor)
        t += gaps[min(k, len(gaps) - 1)]
    return f.orders()


def test_wash_trades_fire_with_evidence():
    alerts = run("wash_trades", wash_flow(owners=((6, 6), (6, 6), (6, 6))))
    assert len(alerts) == 1  # raised at the second self-trade, the third joins silently
    a = alerts.iloc[0]
    assert (a.kind, a.side, a.price, a["size"], a.metric, a.n_events) == ("wash_trades", 0, 100.0, 2.0, 4.0, 2)
    assert a.order_ids == [100, 200, 101, 201]
    assert (a.start_ts, a.end_ts) == (T0 + 2 * S, T0 + 3 * S)


@pytest.mark.parametrize("case", [
    dict(owners=((6, 6),)),  # a single self-trade
    dict(owners=((6, 6), (6, 7))),  # the second is not a self-trade
    dict(gaps=(11.0,)),  # too far apart
    dict(owners=((NO_ID, NO_ID), (NO_ID, NO_ID))),  # owners unknown
])
def test_wash_trades_near_misses(case):
    assert run("wash_trades", wash_flow(**case)).empty


def test_wash_trades_match_a_pandas_reference():
    """On a simulated day with wash trades: one alert per group of >= 2 self-trades <= 10 s apart."""
    sim = simulate(seconds=900, seed=3, scenarios=["wash_trades"])
    o = pd.DataFrame(sim.events.orders)
    self_trades = o[(o.event == EV_EXECUTE) & (o.owner == o.contra_owner) & (o.owner != NO_ID)].sort_values("exch_ts")
    groups = (self_trades.groupby("owner").exch_ts.diff().fillna(np.inf) > 10 * S).cumsum()
    sizes = self_trades.groupby(groups).size()
    alerts = run("wash_trades", sim.events.orders)
    assert len(alerts) == int((sizes >= 2).sum()) == len(sim.episodes)
    firsts = self_trades.groupby(groups).exch_ts.first()[sizes >= 2].to_numpy()
    np.testing.assert_array_equal(np.sort(alerts.start_ts.to_numpy(np.int64)), np.sort(firsts.astype(np.int64)))


def echo_trades(*, n=5, gap=0.5, sizes=None, sides=None, prices=None):
    """Background prints of varied sizes (0.1-3), and ``n`` prints of 3.777 at 100.00 alternating sides
    from 12.05 s (a large size: small ones everybody trades are not considered)."""
    rng = np.random.default_rng(1)
    rows = [(k * 0.1, 100.00 + 0.01 * (k % 3), round(float(rng.uniform(0.1, 3.0)), 3), 1 if k % 2 else -1)
            for k in range(150)]
    for k in range(n):
        rows.append((12.05 + gap * k, 100.00 if prices is None else prices[k],
                     3.777 if sizes is None else sizes[k], (1 if k % 2 else -1) if sides is None else sides[k]))
    rows.sort(key=lambda r: r[0])
    trades = np.zeros(len(rows), TRADE_DTYPE)
    for i, (t, px, q, agg) in enumerate(rows):
        ts = T0 + int(round(t * S))
        trades[i] = (ts, ts, i + 1, px, q, agg)
    return trades


def test_wash_pattern_fires_on_a_size_traded_back_and_forth():
    alerts = run("wash_trades_pattern", trades=echo_trades())
    assert len(alerts) == 1
    a = alerts.iloc[0]
    assert (a.kind, a.side, a.price, a["size"], a.n_events) == ("wash_trades", 0, 100.0, 3.777, 5)
    assert (a.start_ts, a.end_ts) == (T0 + int(12.05 * S), T0 + int(14.05 * S))
    assert a.metric == pytest.approx(5 * 3.777)


@pytest.mark.parametrize("case", [
    dict(n=4),  # too few prints
    dict(gap=2.5),  # too slow
    dict(sides=[1, -1, -1, 1, -1]),  # two in a row on one side break the chain
    dict(sizes=[3.777, 3.777, 3.778, 3.777, 3.777]),  # one size differs
    dict(sizes=[0.377] * 5),  # a small size
    dict(prices=[100.00, 100.00, 100.05, 100.00, 100.00]),  # one price differs
])
def test_wash_pattern_near_misses(case):
    assert run("wash_trades_pattern", trades=echo_trades(**case)).empty


def test_wash_pattern_skips_round_sizes():
    assert len(run("wash_trades_pattern", trades=echo_trades(sizes=[5.0] * 5))) == 1
    assert run("wash_trades_pattern", trades=echo_trades(sizes=[5.0] * 5), round_size=0.5).empty


# -- iceberg ---------------------------------------------------------------------------------------------------
def iceberg_flow(refills=3, delay=0.0, owner=9, refill_owner=None, move=0.0):
    f = Flow().background(0.0, 5.0)
    price = 100.01
    f.add(1.0, 300, -1, price, 0.5, owner)
    for k in range(refills):
        t = 2.0 + k
        f.execute(t, 300 + k, -1, price, 0.5, owner, contra_id=400 + k, contra_owner=5002)
        f.add(t + delay, 301 + k, -1, price + (move if k == refills - 1 else 0.0), 0.5,
              owner if refill_owner is None else refill_owner)
    return f.orders()


def test_iceberg_fires_with_evidence():
    alerts = run("iceberg", iceberg_flow(refills=4))
    assert len(alerts) == 1
    a = alerts.iloc[0]
    assert (a.kind, a.side, a.price, a["size"], a.metric) == ("iceberg", -1, 100.01, 1.5, 3.0)
    assert a.order_ids == [301, 302, 303]
    assert (a.start_ts, a.end_ts) == (T0 + 2 * S, T0 + 4 * S)


@pytest.mark.parametrize("case", [
    dict(refills=2),  # two refills only
    dict(delay=0.01),  # re-posted 10 ms later: not a venue's refill
    dict(refill_owner=10),  # someone else joins the level
    dict(move=0.01),  # the third add is at another price
])
def test_iceberg_near_misses(case):
    assert run("iceberg", iceberg_flow(**case)).empty


def test_iceberg_chains_match_a_pandas_reference():
    """Refill chains rebuilt with pandas (add at the same time, side, price and owner as the
    execution just before it on that side) give the alerts' starts."""
    sim = simulate(seconds=900, seed=1, scenarios=["iceberg"])
    o = pd.DataFrame(sim.events.orders)
    o = o[o.event.isin([EV_ADD, EV_EXECUTE])]
    refills = []
    for side, g in o.groupby("side"):
        prev = g.shift(1)
        prev["exch_ts"] = g.exch_ts.shift(1, fill_value=0)  # exact nanoseconds (no float NaN)
        hit = (g.event == EV_ADD) & (prev.event == EV_EXECUTE) & (g.exch_ts == prev.exch_ts) \
            & (g.price == prev.price) & (g.owner == prev.owner)
        refills.append(pd.DataFrame({"ts": g.exch_ts[hit], "exec_ts": prev.exch_ts[hit].astype(np.int64), "side": side,
                                     "price": g.price[hit], "owner": g.owner[hit]}))
    r = pd.concat(refills).sort_values("ts")
    key = ["side", "price", "owner"]
    r["chain"] = (r.groupby(key).ts.diff().fillna(np.inf) > 30 * S).astype(int).groupby([r[k] for k in key]).cumsum()
    chains = r.groupby(key + ["chain"]).agg(n=("ts", "size"), first=("exec_ts", "first"))
    expected = np.sort(chains[chains.n >= 3]["first"].to_numpy(np.int64))
    alerts = run("iceberg", sim.events.orders)
    np.testing.assert_array_equal(np.sort(alerts.start_ts.to_numpy(np.int64)), expected)
    assert len(expected) >= len(sim.episodes)


# -- online == batch -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def market():
    sim = simulate(seconds=900, seed=2, scenarios=[s for s in SCENARIOS if s != "flash_crash"])
    return Inputs.from_events(sim.events)


def test_chunked_online_equals_batch(market):
    detectors = [by_name(n) for n in MINE]
    batch = detect(market, detectors)
    assert set(batch.kind) >= {"spoofing", "layering", "quote_stuffing", "wash_trades", "iceberg"}
    rng = np.random.default_rng(0)
    t_first = min(market.orders["exch_ts"][0], market.trades["exch_ts"][0], market.book.ts[0])
    t_last = max(market.orders["exch_ts"][-1], market.trades["exch_ts"][-1], market.book.ts[-1]) + 1
    cuts = np.unique(np.concatenate([[t_first], rng.integers(t_first, t_last, 300), [t_last]]))
    # some chunks are tiny: a few milliseconds
    cuts = np.unique(np.concatenate([cuts, cuts[:50] + rng.integers(1, 5_000_000, 50)]))
    stream = SurveillanceStream(market.symbol, detectors, sources=("orders", "trades", "book"))
    parts = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        o = market.orders[(market.orders["exch_ts"] >= lo) & (market.orders["exch_ts"] < hi)]
        t = market.trades[(market.trades["exch_ts"] >= lo) & (market.trades["exch_ts"] < hi)]
        rows = np.flatnonzero((market.book.ts >= lo) & (market.book.ts < hi))
        parts.append(stream.process(o, t, market.book.take(rows) if len(rows) else None))
    parts.append(stream.finish())
    online = pd.concat([p for p in parts if len(p)], ignore_index=True)
    columns = ["kind", "side", "start_ts", "end_ts", "at_ts", "score", "price", "size", "level", "metric", "n_events"]
    key = ["at_ts", "kind", "start_ts"]
    a = batch.sort_values(key, kind="stable").reset_index(drop=True)
    b = online.sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(a[columns], b[columns], check_dtype=False)
    assert a.order_ids.tolist() == b.order_ids.tolist()


def test_detectors_handle_empty_and_missing_owner_inputs(market):
    for name in MINE:
        assert run(name, market.orders[:0], market.trades[:0], market.book.take(slice(0, 0))).empty
    orders = market.orders.copy()
    orders["owner"] = NO_ID
    orders["contra_owner"] = NO_ID
    alerts = detect(Inputs(market.symbol, orders, market.trades, market.book), [by_name("wash_trades")])
    assert alerts.empty  # without owners there is no self-trade evidence
