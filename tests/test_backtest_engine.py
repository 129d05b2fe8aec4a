"""The replay engine on real data: replay rows, chunked == whole, and a plain-Python reference
matching engine for the taker path compared with the Numba one on a real capture."""

from __future__ import annotations

import numpy as np
import pytest

from genesis.backtest import engine as bt
from genesis.backtest.engine import Backtester, Fees, Latency, QueueModel, run_backtest
from genesis.backtest.events import (
    CLEAR, DEPTH, FLAG_EXCH, FLAG_LAST, FLAG_LOCAL, KIND_MASK, REPLAY_DTYPE, TRADE, capture_events, check_replay,
    chunked_rows, feed_latency_offset, from_capture, replay_rows, row_time,
)
from genesis.feeds.events import DELTA_DTYPE, TRADE_DTYPE
from tests.conftest import capture_path
from tests.test_backtest_scenarios import Tape, script

SAMPLE = "usdm_btcusdt_20240808.jsonl.gz"


@pytest.fixture(scope="module")
def sample_rows() -> np.ndarray:
    return from_capture(capture_path(SAMPLE))


# -- replay rows ----------------------------------------------------------------------------------

def test_replay_rows_by_hand():
    deltas = np.array([(10, 15, 1, 1, 100.0, 1.0, True), (10, 15, 1, -1, 101.0, 2.0, True),
                       (20, 40, 2, 1, 100.0, 3.0, False)], DELTA_DTYPE)
    trades = np.array([(20, 25, 7, 100.5, 0.1, 1)], TRADE_DTYPE)
    rows = replay_rows(deltas, trades)
    got = [(int(r["exch_ts"]), int(r["local_ts"]), int(r["kind"]), int(r["side"]), float(r["price"]), float(r["qty"]))
           for r in rows]
    assert got[0][:3] == (10, 15, CLEAR | FLAG_EXCH) and np.isnan(got[0][4])
    assert got[1:] == [
        (10, 15, DEPTH | FLAG_EXCH, 1, 100.0, 1.0),
        (10, 15, DEPTH | FLAG_EXCH | FLAG_LAST, -1, 101.0, 2.0),
        (10, 15, CLEAR | FLAG_LOCAL, 0, pytest.approx(np.nan, nan_ok=True), 0.0),
        (10, 15, DEPTH | FLAG_LOCAL, 1, 100.0, 1.0),
        (10, 15, DEPTH | FLAG_LOCAL | FLAG_LAST, -1, 101.0, 2.0),
        # at one venue time the trade comes before the depth message
        (20, 25, TRADE | FLAG_EXCH | FLAG_LAST, 1, 100.5, 0.1),
        (20, 40, DEPTH | FLAG_EXCH | FLAG_LAST, 1, 100.0, 3.0),
        (20, 25, TRADE | FLAG_LOCAL | FLAG_LAST, 1, 100.5, 0.1),
        (20, 40, DEPTH | FLAG_LOCAL | FLAG_LAST, 1, 100.0, 3.0),
    ]
    check_replay(rows)


def test_replay_rows_of_a_capture_are_time_ordered_and_complete(sample_rows):
    check_replay(sample_rows)
    events = capture_events(capture_path(SAMPLE))
    # The capture's local clock is ~1.27 s behind the venue's: shifted so that no event is seen early.
    offset = feed_latency_offset(events.deltas, events.trades)
    assert 1_100_000_000 < offset < 1_400_000_000
    assert np.min(sample_rows["local_ts"] - sample_rows["exch_ts"]) == 0
    raw = from_capture(capture_path(SAMPLE), min_feed_latency_ns=None)
    assert np.min(raw["local_ts"] - raw["exch_ts"]) == -offset
    n_snap = len(np.unique(events.deltas["seq"][events.deltas["is_snapshot"]]))
    assert len(sample_rows) == 2 * (len(events.deltas) + len(events.trades) + n_snap)
    for flag in (FLAG_EXCH, FLAG_LOCAL):
        mine = sample_rows[(sample_rows["kind"] & flag) != 0]
        assert np.count_nonzero((mine["kind"] & KIND_MASK) == TRADE) == len(events.trades)
        # each clock's rows are in that clock's order
        clock = mine["exch_ts"] if flag == FLAG_EXCH else mine["local_ts"]
        assert np.all(np.diff(clock) >= 0)



@pytest.mark.parametrize("unknown_exch", [False, True])
def test_replay_rows_merge_the_clocks_like_a_stable_sort(unknown_exch):
    # replay_rows merges the two copies in one pass; the definition is the stable sort of the venue
    # copy (exch_ts order) laid before the local copy (local_ts order). Coarse clocks make many ties
    # within and across the copies; some messages have no venue time (taken from local_ts).
    rng = np.random.default_rng(3)
    n_msg = 400
    exch = np.sort(rng.integers(1, 60, n_msg)) * 10
    if unknown_exch:
        exch[rng.choice(n_msg, 30, replace=False)] = 0
    local = np.maximum.accumulate(exch + rng.integers(0, 4, n_msg) * 10)
    levels = rng.integers(1, 4, n_msg)
    deltas = np.zeros(int(levels.sum()), DELTA_DTYPE)
    deltas["seq"] = np.repeat(np.arange(n_msg), levels)
    deltas["exch_ts"], deltas["local_ts"] = np.repeat(exch, levels), np.repeat(local, levels)
    deltas["side"] = rng.choice([1, -1], len(deltas))
    deltas["price"] = 100.0 + rng.integers(0, 20, len(deltas)) * 0.1
    deltas["qty"] = rng.integers(0, 5, len(deltas)).astype(float)
    deltas["is_snapshot"] = np.repeat(np.arange(n_msg) % 97 == 0, levels)
    trades = np.zeros(150, TRADE_DTYPE)
    trades["exch_ts"] = np.sort(rng.integers(1, 60, 150)) * 10
    trades["local_ts"] = trades["exch_ts"] + rng.integers(0, 4, 150) * 10
    trades["trade_id"] = np.arange(150)
    trades["price"], trades["qty"], trades["aggressor"] = 100.5, 0.1, rng.choice([1, -1], 150)
    rows = replay_rows(deltas, trades, local_offset_ns=10)

    # One copy in the venue's message order, by hand: by exch_ts, a trade before a depth message
    # at one time, else input order; a snapshot is a CLEAR row then its levels.
    msgs = []
    for m in range(n_msg):
        lv = deltas[deltas["seq"] == m]
        rows_m = [(exch[m], local[m], DEPTH, int(d["side"]), float(d["price"]), float(d["qty"])) for d in lv]
        if lv["is_snapshot"][0]:
            rows_m.insert(0, (exch[m], local[m], CLEAR, 0, np.nan, 0.0))
        msgs.append(((exch[m], 1, m), rows_m))
    for m, t in enumerate(trades):
        msgs.append(((t["exch_ts"], 0, m), [(t["exch_ts"], t["local_ts"], TRADE, int(t["aggressor"]), 100.5, 0.1)]))
    base = []
    for _, rows_m in sorted(msgs, key=lambda x: x[0]):
        rows_m[-1] = rows_m[-1][:2] + (rows_m[-1][2] | FLAG_LAST,) + rows_m[-1][3:]
        base.extend(rows_m)
    base = np.array(base, REPLAY_DTYPE)
    base["exch_ts"] = np.where(base["exch_ts"] <= 0, base["local_ts"], base["exch_ts"])
    base["local_ts"] += 10
    venue = base[np.argsort(base["exch_ts"], kind="stable")]
    mine = base[np.argsort(base["local_ts"], kind="stable")]
    venue["kind"] |= FLAG_EXCH
    mine["kind"] |= FLAG_LOCAL
    both = np.concatenate((venue, mine))
    expected = both[np.argsort(np.concatenate((venue["exch_ts"], mine["local_ts"])), kind="stable")]
    assert rows.dtype == REPLAY_DTYPE and len(rows) == len(expected)
    for name in REPLAY_DTYPE.names:
        np.testing.assert_array_equal(rows[name], expected[name])
    check_replay(rows)

def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="deltas"):
        replay_rows(np.zeros(3), np.empty(0, TRADE_DTYPE))
    rows = Tape().book(1000, 1000, {1.0: 1.0}, {2.0: 1.0}).rows()
    with pytest.raises(ValueError, match="not in time order"):
        check_replay(rows[::-1].copy())
    with pytest.raises(ValueError, match="unknown parameter"):
        Backtester("market_maker", {"size": 1})
    with pytest.raises(ValueError, match="unknown strategy"):
        Backtester("nope")
    with pytest.raises(ValueError, match="Latency"):
        Latency.constant(-1)
    b = Backtester("noop")
    b.process(rows[5:])
    with pytest.raises(ValueError, match="continue"):
        b.process(rows[:5])


def test_chunked_rows_from_pieces_equal_one_build(sample_rows):
    events = capture_events(capture_path(SAMPLE))
    d, t = events.deltas, events.trades
    cuts = np.quantile(d["exch_ts"], [0.2, 0.5, 0.8]).astype(np.int64)
    edges = np.concatenate(([np.iinfo(np.int64).min], cuts, [np.iinfo(np.int64).max]))
    pieces = [(d[(d["exch_ts"] >= a) & (d["exch_ts"] < b)], t[(t["exch_ts"] >= a) & (t["exch_ts"] < b)])
              for a, b in zip(edges[:-1], edges[1:])]
    chunks = list(chunked_rows(pieces, local_offset_ns=feed_latency_offset(d, t)))
    assert len(chunks) >= 3
    joined = np.concatenate(chunks)
    # The same rows in the same time order (message numbering differs only within equal times).
    assert np.array_equal(row_time(joined), row_time(sample_rows))
    key = ["exch_ts", "local_ts", "kind", "side", "qty"]
    assert np.array_equal(np.sort(joined[key], order=key), np.sort(sample_rows[key], order=key))


# -- chunked == whole -----------------------------------------------------------------------------

def same_records(a: np.ndarray, b: np.ndarray) -> bool:
    """Structured arrays equal field by field (NaN equal to NaN)."""
    return a.dtype == b.dtype and len(a) == len(b) and all(
        np.array_equal(a[f], b[f], equal_nan=a.dtype[f].kind == "f") for f in a.dtype.names)


def _run(strategy, params, rows, chunks, **kw):
    b = Backtester(strategy, params, **kw)
    for piece in np.array_split(rows, chunks) if isinstance(chunks, int) else chunks:
        b.process(piece)
    return b.result()


@pytest.mark.parametrize("strategy, params, kw", [
    ("market_maker", {"qty": 0.002, "max_position": 0.01},
     dict(latency=Latency.lognormal(2_000_000, 0.5), queue=QueueModel.probabilistic(3.0), fees=Fees(-0.5, 4.5),
          equity_interval_ns=10_000_000, seed=7)),  # 10 ms samples: the equity buffer grows
    ("taker_only", {"interval_ns": 50_000_000, "qty": 0.001},
     dict(latency=Latency.empirical([500_000, 1_000_000, 9_000_000]), fees=Fees(0.0, 4.5), seed=3,
          ladder_ticks=16)),  # ~12k fills and tiny ladders: fills and price ladders grow
])
def test_chunked_replay_equals_whole(sample_rows, strategy, params, kw):
    whole = _run(strategy, params, sample_rows, 1, **kw)
    rng = np.random.default_rng(11)
    cuts = np.sort(rng.choice(len(sample_rows), 12, replace=False))
    pieces = np.split(sample_rows, cuts)
    chunked = _run(strategy, params, sample_rows, pieces, **kw)
    assert len(whole.fills) > 50
    assert np.array_equal(whole.fills, chunked.fills)
    assert same_records(whole.equity, chunked.equity)


def test_same_seed_same_run_other_seed_other_latencies(sample_rows):
    kw = dict(latency=Latency.lognormal(5_000_000, 1.0), equity_interval_ns=0)
    rows = sample_rows[: len(sample_rows) // 4]
    a = run_backtest("taker_only", {"interval_ns": 100_000_000}, rows, seed=1, **kw)
    b = run_backtest("taker_only", {"interval_ns": 100_000_000}, rows, seed=1, **kw)
    c = run_backtest("taker_only", {"interval_ns": 100_000_000}, rows, seed=2, **kw)
    assert np.array_equal(a.fills, b.fills)
    assert not np.array_equal(a.fills["exch_ts"], c.fills["exch_ts"])


# -- a plain-Python reference for the taker path --------------------------------------------------

def reference_taker(rows: np.ndarray, orders: list[tuple], latency_ns: int, taker_bps: float) -> list[tuple]:
    """Market and IOC orders (submit_ts, side, qty, limit or None) filled against a dict book
    rebuilt from the venue rows, at arrival = submit + latency (after market rows of the same
    time), walking levels and depleting them; the engine's documented rules in plain Python."""
    book = {1: {}, -1: {}}
    arrivals = sorted(((ts + latency_ns, i) for i, (ts, *_rest) in enumerate(orders)))
    fills = []
    nxt = 0

    def execute(t: int, side: int, qty: float, limit: float | None) -> None:
        levels = book[-side]
        while qty > 0 and levels:
            px = min(levels) if side > 0 else max(levels)
            if limit is not None and (px > limit if side > 0 else px < limit):
                break
            avail = levels[px]
            q = min(avail, qty)
            rest = avail - q
            if rest <= 1e-12 * max(1.0, avail):
                del levels[px]
            else:
                levels[px] = rest
            qty -= q
            fills.append((t, side, px, q, px * q * taker_bps * 1e-4))

    for r in rows:
        t = int(r["exch_ts"] if r["kind"] & FLAG_EXCH else r["local_ts"])
        while nxt < len(arrivals) and arrivals[nxt][0] < t:
            at, i = arrivals[nxt]
            _, side, qty, limit = orders[i]
            execute(at, side, qty, limit)
            nxt += 1
        if not r["kind"] & FLAG_EXCH:
            continue
        kind = r["kind"] & KIND_MASK
        if kind == CLEAR:
            book = {1: {}, -1: {}}
        elif kind == DEPTH:
            if r["qty"] > 0:
                book[int(r["side"])][float(r["price"])] = float(r["qty"])
            else:
                book[int(r["side"])].pop(float(r["price"]), None)
    return fills


def test_taker_path_matches_the_python_reference_on_a_real_capture(sample_rows):
    rng = np.random.default_rng(2024)
    local = sample_rows[(sample_rows["kind"] & FLAG_LOCAL) != 0]
    t0, t1 = int(local["local_ts"][0]) + 1, int(local["local_ts"][-1]) - 50_000_000
    trades = sample_rows[(sample_rows["kind"] & KIND_MASK) == TRADE]
    center = float(np.median(trades["price"]))
    n = 400
    ts = np.sort(rng.integers(t0, t1, n))
    side = rng.choice([1, -1], n)
    qty = np.round(rng.uniform(0.001, 3.0, n), 3)  # up to several levels
    is_limit = rng.random(n) < 0.5
    limit = np.round(center + rng.uniform(-40, 40, n), 1)
    orders = [(int(ts[i]), int(side[i]), float(qty[i]), float(limit[i]) if is_limit[i] else None) for i in range(n)]
    latency = 3_000_000
    expected = reference_taker(sample_rows, orders, latency, 4.5)

    inputs = script(*[(o[0], o[1], o[3] or 0.0, o[2], bt.LIMIT if o[3] else bt.MARKET, bt.IOC) for o in orders])
    res = run_backtest("scripted", {}, sample_rows, inputs=inputs, latency=Latency.constant(latency),
                       fees=Fees(0.0, 4.5), equity_interval_ns=0)
    got = res.fills
    assert len(expected) > n  # many orders walk more than one level
    assert len(got) == len(expected)
    exp = np.array(expected, dtype=[("t", "i8"), ("side", "i1"), ("price", "f8"), ("qty", "f8"), ("fee", "f8")])
    assert np.array_equal(got["exch_ts"], exp["t"])
    assert np.array_equal(got["side"], exp["side"])
    assert np.array_equal(got["price"], exp["price"])
    np.testing.assert_allclose(got["qty"], exp["qty"], rtol=1e-12)
    np.testing.assert_allclose(got["fee"], exp["fee"], rtol=1e-12)
    assert not got["maker"].any()
    np.testing.assert_allclose(got["position"][-1], np.sum(exp["qty"] * exp["side"]), atol=1e-9)


# -- from the store -------------------------------------------------------------------------------

def test_store_chunks_replay_like_one_piece(store_url):
    from genesis.backtest.events import store_chunks
    from genesis.pipelines.ingest import ingest_binance_capture

    ingest_binance_capture(capture_path(SAMPLE), store_url=store_url, progress=False)
    events = capture_events(capture_path(SAMPLE))
    t0 = int(events.deltas["exch_ts"][0])
    start, end = t0 + 60_000_000_000, t0 + 240_000_000_000  # minutes 1 to 4: the book at start is rebuilt
    small = list(store_chunks("BTCUSDT", start, end, chunk="20s", store_url=store_url))
    whole = np.concatenate(list(store_chunks("BTCUSDT", start, end, chunk="1h", store_url=store_url)))
    assert len(small) > 5
    joined = np.concatenate(small)
    check_replay(joined)
    assert np.array_equal(row_time(joined), row_time(whole))
    assert row_time(joined)[0] == start  # the rebuilt book, stamped start (venue clock) first
    assert row_time(joined)[-1] < end + 1_000_000_000
    kw = dict(latency=Latency.constant(1_000_000), fees=Fees(-0.5, 4.5), equity_interval_ns=100_000_000)
    a = run_backtest("market_maker", {}, small, **kw)
    b = run_backtest("market_maker", {}, whole, **kw)
    assert len(a.fills) > 0
    assert np.array_equal(a.fills, b.fills)
    assert same_records(a.equity, b.equity)
    # The venue's book the store gives at ``start`` is the one the capture gives there.
    ref = Backtester("noop")
    cap_rows = from_capture(capture_path(SAMPLE))
    ref.process(cap_rows[row_time(cap_rows) <= start])
    mine = Backtester("noop")
    mine.process(small[0][row_time(small[0]) <= start])
    for E in (mine.E, ref.E):
        assert E.ist[bt.I_XB_N] > 100 and E.ist[bt.I_XA_N] > 100
    for side, best in ((1, bt._venue_best_bid), (-1, bt._venue_best_ask)):
        assert best(mine.E) == best(ref.E)
        for k in range(-50, 51):
            px = round(best(ref.E) + 0.1 * k, 1)
            assert bt._venue_level(mine.E, side, px) == bt._venue_level(ref.E, side, px)


def test_far_stale_levels_do_not_push_the_touch_out_of_the_ladder():
    # A stale bid at 1.0 comes first; the real book is 600,000 ticks away (beyond MAX_LADDER).
    tape = (Tape().book(1000, 1000, {1.0: 1.0, 60000.0: 5.0, 59999.9: 2.0}, {60000.1: 5.0, 999999.0: 1.0})
            .level(2000, 2000, 1, 60000.0, 4.0))
    res = run_backtest("scripted", {}, tape.rows(end=None), inputs=script((1500, 1, 0.0, 1.0, bt.MARKET, bt.IOC)),
                       tick_size=0.1, ladder_ticks=16, equity_interval_ns=0)
    assert res.fills["price"].tolist() == [60000.1] and res.fills["qty"].tolist() == [1.0]
    assert res.meta["levels_ignored"] >= 2  # the bid at 1.0 and the ask at 999999.0, on both clocks
    b = Backtester("noop", tick_size=0.1, ladder_ticks=16)
    b.process(tape.rows(end=None))
    assert (bt.best_bid(b.E), bt.best_ask(b.E), bt.best_bid_qty(b.E)) == (60000.0, 60000.1, 4.0)
    assert bt.bid_level(b.E, 1) == (59999.9, 2.0)
    assert b.E.bk.shape[1] == bt.MAX_LADDER



def _full_ladders(rng, spans):
    """A noop Backtester whose four ladders (MAX_LADDER ticks) hold random levels: ``spans[b]`` is
    (first element, last element) of ladder b's levels, or None for an empty ladder."""
    b = Backtester("noop", tick_size=0.1, ladder_ticks=bt.MAX_LADDER)
    E = b.E
    for lad, span in enumerate(spans):
        E.ist[bt.I_XB_BASE + 3 * lad] = 600_000 + 1000 * lad
        if span is None:
            continue
        lo, hi = span
        idx = np.unique(np.concatenate(([lo, hi], rng.integers(lo, hi + 1, 300))))
        E.bk[lad, idx] = rng.uniform(0.001, 3.0, len(idx))
        E.bk[lad, rng.choice(idx[1:-1], min(20, len(idx) - 2), replace=False)] = 0.0  # levels removed again
        held = np.flatnonzero(E.bk[lad] > 0)
        E.ist[bt.I_XB_N + 3 * lad] = len(held)
        E.ist[bt.I_XB_BEST + 3 * lad] = held[-1] if lad % 2 == 0 else held[0]
    return E


@pytest.mark.parametrize("which", range(4))
def test_full_ladders_follow_the_best_in_place_like_the_python_relayout(which):
    # _recentre_full (in the kernel, in place) against _grown_ladders (a new array) on ladders at
    # MAX_LADDER: the same bases, levels, counts, bests and dropped levels, for levels that fit once
    # re-centred, spans wider than the window (the window follows the best), and empty ladders.
    rng = np.random.default_rng(7 + which)
    size = bt.MAX_LADDER
    cases = [[(1000, 4000), (5000, 9000), (2000, 3000), (7000, 7500)],  # compact: re-centred
             [(10, size - 10), (20, size - 5), (5, size - 50), (100, size - 1)],  # wide: some dropped
             [None, (size // 2, size // 2 + 10), None, (0, size - 1)]]
    dropped = 0
    for spans in cases:
        if spans[which] is None:
            continue
        ref, mine = _full_ladders(rng, spans), _full_ladders(np.random.default_rng(0), [None] * 4)
        mine = mine._replace(bk=ref.bk.copy(), ist=ref.ist.copy())
        base, best = int(ref.ist[bt.I_XB_BASE + 3 * which]), int(ref.ist[bt.I_XB_BEST + 3 * which])
        # A better price just beyond the window (what makes the kernel move it).
        ti = base + size + 37 if which % 2 == 0 else base - 37
        out = bt._grown_ladders(ref, which, ti)["bk"]
        bt._recentre_full(mine.bk, mine.ist, which, ti)
        assert out.shape == mine.bk.shape
        np.testing.assert_array_equal(mine.ist, ref.ist)
        np.testing.assert_array_equal(mine.bk, out)
        assert bt._locate(mine.bk, which, mine.ist, ti) >= 0
        dropped += int(ref.ist[bt.I_N_IGNORED])
    assert dropped > 0  # the wide case drops levels beyond the window

def test_live_rows_continue_one_another():
    from genesis.backtest.events import LiveRows

    events = capture_events(capture_path(SAMPLE))
    d, t = events.deltas, events.trades
    offset = feed_latency_offset(d, t)
    # Batches as received: by local_ts, every ~200 ms; venue times of a batch may precede the previous one's.
    first = min(int(d["local_ts"].min()), int(t["local_ts"].min()))
    last = max(int(d["local_ts"].max()), int(t["local_ts"].max()))
    edges = np.arange(first, last + 200_000_000, 200_000_000)
    live = LiveRows(offset)
    b = Backtester("market_maker", {"qty": 0.002}, latency=Latency.constant(1_000_000))
    for lo, hi in zip(edges[:-1], edges[1:]):
        dm = (d["local_ts"] >= lo) & (d["local_ts"] < hi)
        tm = (t["local_ts"] >= lo) & (t["local_ts"] < hi)
        b.process(live.add(d[dm], t[tm]))  # raises if a batch went back in time
    assert b.events == 2 * (len(d) + len(t) + 1)  # every message replayed once on each clock (one snapshot)
    assert len(b.result().fills) > 0
    assert live.clamped > 0  # venue rows received after rows already replayed were moved, and counted
    # One batch holding everything moves nothing: the backtest's rows.
    whole = LiveRows(offset)
    rows = whole.add(d, t)
    assert whole.clamped == 0 and same_records(rows, replay_rows(d, t, local_offset_ns=offset))
