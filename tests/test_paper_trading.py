"""Paper trading (genesis.strategy.paper) on the live client against FakeBinance serving a real capture.

Acceptance: a paper session gives the fills of a backtest over the stream it received (batch by
batch, and as one replay); that stream is the capture's from the client's first sync on;
start / stop / reset semantics, recorded with user and time.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from genesis.backtest.engine import Fees, Latency, run_backtest
from genesis.backtest.events import capture_events, replay_rows
from genesis.book.l2 import L2Book
from genesis.feeds.binance.fake import FakeBinance
from genesis.feeds.binance.live import FeedListener
from genesis.feeds.events import DELTA_DTYPE, TRADE_DTYPE, delta_events
from genesis.strategy.paper import HeldRows, LivePredictor, PaperTrader, replay_recording, run_paper
from tests.conftest import capture_path

CAPTURE = "spot_ethusdt_20240808.jsonl.gz"  # bundled: 345 s of ETHUSDT spot, 3,433 depth messages, 6,106 trades
MODELS = dict(latency=Latency.constant(1_000_000), fees=Fees(-0.5, 4.5), equity_interval_ns=1_000_000_000,
              tick_size=0.01)
STRATEGIES = {
    "taker_only": {"interval_ns": 5e9, "qty": 0.01},
    "market_maker": {"qty": 0.01, "max_position": 0.03, "tick": 0.01},
}


class FanOut(FeedListener):
    """Several listeners on one client (each trader sees the same stream), plus the client's tops."""

    def __init__(self, *listeners):
        self.listeners = listeners

    def on_depth(self, symbol, deltas):
        for x in self.listeners:
            x.on_depth(symbol, deltas)

    def on_trade(self, symbol, trade):
        for x in self.listeners:
            x.on_trade(symbol, trade)

    def on_book(self, top):
        for x in self.listeners:
            x.on_book(top)

    def on_status(self, symbol, status, detail):
        for x in self.listeners:
            x.on_status(symbol, status, detail)


DEEPLOB_PARAMS = {"threshold": 0.45, "qty": 0.01}


def moving_deeplob(path):
    """A random DeepLOB (seeded) and a scaler fitted on the capture's books, whose output layer is
    centred on the capture's windows and amplified so that its probabilities move (an untrained
    network's are constant to ~1e-5): p_up from ~0.2 to ~0.5."""
    import torch

    from genesis.feeds.binance.capture import read_capture
    from genesis.models.data import Scaler, lob_features
    from genesis.models.deeplob import DeepLOB
    from genesis.models.inference import predict_windows

    (events,) = read_capture(path).symbols.values()
    d = events.depth
    books = L2Book(10, events.sequencing).apply_depth(d.is_snapshot, d.first_id, d.last_id, d.prev_id,
                                                      d.level_start, d.level_count, d.side, d.price, d.qty)
    rows = lob_features(books.bid_px, books.bid_sz, books.ask_px, books.ask_sz, 10, dtype=np.float64)
    scaler = Scaler().fit(rows)
    torch.manual_seed(0)
    model = DeepLOB().eval()
    hidden = []
    hook = model.fc1.register_forward_hook(lambda mod, inp, out: hidden.append(inp[0].detach().clone()))
    predict_windows(model, scaler.transform(rows[:300]))
    hook.remove()
    with torch.no_grad():
        model.fc1.weight.mul_(3e4)
        model.fc1.bias.copy_(-(model.fc1.weight @ torch.cat(hidden).mean(0)))
    return model, scaler, {"datamodule": {"levels": 10, "window": 100, "price_reference": "level"}}


@pytest.fixture(scope="module")
def session():
    """Both strategies paper-trading one client, served the whole capture as fast as possible."""
    import torch

    path = capture_path(CAPTURE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one step per book on the client's loop: oversubscribed threads stall it
    traders = {name: PaperTrader(name, params, clock="exchange", started=True, record=True, user="test", **MODELS)
               for name, params in STRATEGIES.items()}
    traders["deeplob_threshold"] = PaperTrader("deeplob_threshold", DEEPLOB_PARAMS, clock="exchange", started=True,
                                               record=True, predictor=LivePredictor(*moving_deeplob(path)), **MODELS)
    polled: list[dict] = []
    stop_polling = threading.Event()

    def poll():  # a dashboard reading from another thread while the client's loop feeds the traders
        while not stop_polling.is_set():
            polled.append(traders["market_maker"].status())
            time.sleep(0.01)

    with FakeBinance(path) as fake:
        idle = {"seen": -1, "still": 0}

        def finished(client) -> bool:
            seen = client.metrics.messages
            busy = any(f.syncing is not None for f in client._feeds.values())
            idle["still"] = idle["still"] + 1 if fake.finished and seen == idle["seen"] and not busy else 0
            idle["seen"] = seen
            return idle["still"] >= 5

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            fan = FanOut(*traders.values())
            # run_paper drives one trader; the second listens on the same client through the fan-out.
            client = run_paper(traders["taker_only"], "spot", ["ETHUSDT"], ws_url=fake.ws_url, rest_url=fake.rest_url,
                               until=finished, listener=fan)
        finally:
            stop_polling.set()
            poller.join()
            torch.set_num_threads(threads)
    traders["market_maker"].close()
    traders["deeplob_threshold"].close()
    return path, client, traders, polled


def test_on_depth_rows_rebuild_the_client_book(session):
    """The hook gives exactly what the client applied: replayed into a book, they give its book."""
    _, client, traders, _ = session
    events = traders["taker_only"].recorded_events()
    assert client.metrics.gaps == 0 and client.metrics.resyncs == 0
    book = L2Book(depth=20)
    starts, counts, snap = delta_events(events.deltas)
    assert snap[0] and snap.sum() == 1  # one REST snapshot, then deltas
    book.apply_groups(starts, counts, snap, events.deltas["side"], events.deltas["price"], events.deltas["qty"])
    for mine, theirs in zip(book.levels(), client.book("ETHUSDT").levels()):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_paper_session_gives_the_backtest_fills_of_its_stream(session, name):
    _, _, traders, _ = session
    trader = traders[name]
    params = STRATEGIES[name]
    res = trader.result()
    assert res.config["kind"] == "paper" and res.config["symbol"] == "binance-spot:ETHUSDT"
    assert len(res.fills) > 30
    s = trader.status()
    assert s["clamped"] == 0 and s["held_rows"] == 0 and s["pending_rows"] == 0
    assert s["batches"] > 5  # really fed in batches
    # 1. The recorded batches, through the same HeldRows rules, in a fresh backtester.
    again = replay_recording(trader.recording(), name, params, local_offset_ns=trader.local_offset_ns,
                             hold_ns=trader.hold_ns, mode_changes=[(0, "entries_allowed")], **MODELS)
    assert np.array_equal(res.fills, again.fills)
    # 2. One backtest of the whole stream the trader received (nothing was clamped: the same rows).
    events = trader.recorded_events()
    whole = run_backtest(name, params, replay_rows(events.deltas, events.trades), **MODELS)
    assert np.array_equal(res.fills, whole.fills)
    np.testing.assert_array_equal(res.equity["equity"], whole.equity["equity"])
    if name == "market_maker":
        assert res.fills["maker"].all()
    else:
        assert not res.fills["maker"].any()


def _exchange_clock(deltas: np.ndarray, trades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The capture's events on the trader's 'exchange' clock (seen at their venue time; a snapshot
    without one at the next depth message's)."""
    deltas, trades = deltas.copy(), trades.copy()
    starts, counts, _ = delta_events(deltas)
    exch = deltas["exch_ts"][starts]
    for i in np.flatnonzero(exch <= 0)[::-1]:
        exch[i] = exch[i + 1]
    deltas["exch_ts"] = deltas["local_ts"] = np.repeat(exch, counts)
    trades["local_ts"] = trades["exch_ts"]
    return deltas, trades


def test_paper_stream_is_the_capture_from_the_client_sync_on(session):
    """Against a backtest from the capture file: the stream differs only before the client's first
    sync (the capture starts with its own snapshot; the client buffers, fetches the fake's book at
    that moment as its REST snapshot and applies the deltas after it; trades before its first book
    are dropped). From there on the deltas and trades are the capture's, so a backtest of the
    capture cut there and started from the client's snapshot gives the paper fills exactly."""
    path, _, traders, _ = session
    paper = traders["taker_only"].recorded_events()
    capture = capture_events(path)
    p_starts, p_counts, _ = delta_events(paper.deltas)
    c_starts, c_counts, c_snap = delta_events(capture.deltas)
    # The first message the client applied after its snapshot, found in the capture by its rows.
    # Depth messages buffered while the client synchronised can reach the trader after trades of
    # a later venue time; the trader's clock never goes back, so those carry that later time.
    first = paper.deltas[p_starts[1]:p_starts[1] + p_counts[1]]
    c_first = next(i for i in range(1, len(c_starts))
                   if not c_snap[i] and c_counts[i] == p_counts[1]
                   and all(np.array_equal(capture.deltas[c_starts[i]:c_starts[i] + c_counts[i]][col], first[col])
                           for col in ("side", "price", "qty")))
    n = len(p_starts) - 1
    assert len(c_starts) - c_first == n  # every later capture message reached the paper trader
    c_rows = capture.deltas[c_starts[c_first]:]
    p_rows = paper.deltas[p_starts[1]:]
    for col in ("side", "price", "qty"):
        np.testing.assert_array_equal(p_rows[col], c_rows[col], err_msg=col)
    late = p_rows["exch_ts"] != c_rows["exch_ts"]
    assert (p_rows["exch_ts"] >= c_rows["exch_ts"]).all()
    assert not late.any() or not late[np.flatnonzero(~late)[0]:].any()  # only the first, buffered messages
    # Trades: the capture's from the first one the trader kept (those before the client's book are dropped).
    k = int(np.searchsorted(capture.trades["trade_id"], paper.trades["trade_id"][0]))
    assert k == traders["taker_only"].counts["trades_before_book"] > 0
    for col in ("exch_ts", "trade_id", "price", "qty", "aggressor"):
        np.testing.assert_array_equal(paper.trades[col], capture.trades[col][k:], err_msg=col)

    params = STRATEGIES["taker_only"]
    # The capture cut at the client's sync, from the client's REST snapshot: the paper fills.
    snapshot = paper.deltas[: p_counts[0]]
    cut = np.concatenate((snapshot, c_rows))
    cut["seq"] = np.repeat(np.arange(n + 1), np.concatenate(([p_counts[0]], c_counts[c_first:])))
    deltas, trades = _exchange_clock(cut, capture.trades[k:])
    deltas["exch_ts"][: p_counts[0]] = deltas["local_ts"][: p_counts[0]] = paper.deltas["exch_ts"][0]
    deltas["exch_ts"][p_counts[0]:] = deltas["local_ts"][p_counts[0]:] = p_rows["exch_ts"]  # as the trader saw them
    cut_res = run_backtest("taker_only", params, replay_rows(deltas, trades), **MODELS)
    assert np.array_equal(cut_res.fills, traders["taker_only"].result().fills)
    # The whole capture: orders also before the client's sync (when it came after the first timer), so
    # as many fills or more. From the sync on the book is the same and the orders go at the same local
    # times (multiples of interval_ns), so the capture run has a fill at every paper fill's time, and
    # its later fills are all at those times;
    # the sides are the paper's or all the opposite ones (the capture run may have sent an odd number
    # of orders before the sync: taker_only alternates), and where sides agree so do the prices.
    deltas, trades = _exchange_clock(capture.deltas, capture.trades)
    full = run_backtest("taker_only", params, replay_rows(deltas, trades), **MODELS).fills
    mine = traders["taker_only"].result().fills
    later = full[full["exch_ts"] >= mine["exch_ts"][0]]
    assert len(full) >= len(mine) and np.array_equal(later["exch_ts"], mine["exch_ts"])
    same = later["side"] == mine["side"]
    assert same.all() or not same.any()
    if same.all():
        np.testing.assert_array_equal(later["price"], mine["price"])


def test_status_is_readable_from_another_thread_while_trading(session):
    _, _, traders, polled = session
    assert len(polled) > 5
    replay = [p["replay_ts"] for p in polled]
    assert replay == sorted(replay)  # consistent snapshots: the replay never goes back
    for p in polled:
        assert p["equity"] == pytest.approx(p["realized_pnl"] + p["unrealized_pnl"] - p["fees"])
    final = traders["market_maker"].status()
    assert final["fills"] == len(traders["market_maker"].fills()) and final["mode"] == "entries_allowed"


# -- controls, on a hand-made stream ---------------------------------------------------------------

SYMBOL = "binance-usdm:TEST"


def book_rows(t: int, bids: dict[float, float], asks: dict[float, float], seq: int) -> np.ndarray:
    rows = [(t, t, seq, 1, p, q, True) for p, q in bids.items()]
    rows += [(t, t, seq, -1, p, q, True) for p, q in asks.items()]
    return np.array(rows, DELTA_DTYPE)


def tick(trader: PaperTrader, t: int) -> None:
    """A depth message at ``t`` (a far bid level) and a flush: everything before ``t`` is replayed."""
    trader.on_depth(SYMBOL, np.array([(t, t, t, 1, 1.0, float(t), False)], DELTA_DTYPE))
    trader.flush()


def test_start_stop_reset_semantics_and_recorded_actions():
    trader = PaperTrader("taker_only", {"interval_ns": 1000, "qty": 1.0}, symbol=SYMBOL, clock="exchange",
                         hold_ns=0, latency=Latency.constant(10), fees=Fees(0.0, 10.0), equity_interval_ns=0,
                         tick_size=0.1, user="system")
    began = time.time_ns()
    trader.on_depth(SYMBOL, book_rows(1000, {100.0: 50.0}, {101.0: 50.0}, seq=1))
    for t in range(2000, 5001, 500):
        tick(trader, t)
    s = trader.status()
    assert s["mode"] == "exits_only" and not s["started"]
    assert s["fills"] == 0 and s["rejected_orders"] >= 2  # the strategy tried; no entry before start

    # with hold_ns=0 a tick at t replays everything before the previous tick: controls act at that time
    trader.start("alice")  # replay time 4500: the timer at 5000 buys
    tick(trader, 5500)
    tick(trader, 6000)  # the buy sent at 5000 filled at 5010
    assert trader.status()["position"] == 1.0
    trader.stop("bob")  # replay time 5500, long 1
    rejected = trader.status()["rejected_orders"]
    for t in range(6500, 10001, 500):
        tick(trader, t)
    f = trader.fills()
    # the exit (sell at 6000) went; the buys tried at 7000, 8000, 9000 were refused
    assert f[["exch_ts", "side", "price", "qty"]].tolist() == [(5010, 1, 101.0, 1.0), (6010, -1, 100.0, 1.0)]
    s = trader.status()
    assert s["position"] == 0.0 and s["rejected_orders"] >= rejected + 3

    trader.start("alice")  # replay time 9500
    tick(trader, 10500)
    tick(trader, 11000)  # the buy sent at 10000 filled at 10010
    s = trader.status()
    assert s["position"] == 1.0 and s["fees"] > 0 and s["realized_pnl"] == -1.0
    trader.reset("carol")  # replay time 10500
    s = trader.status()
    assert (s["position"], s["realized_pnl"], s["unrealized_pnl"], s["fees"], s["equity"]) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert trader.fills()[-1][["order_id", "side", "price"]].tolist() == (-1, -1, 100.0)  # flattened at the bid
    for t in (11500, 12000, 12500, 13000):
        tick(trader, t)
    # trading goes on from a clean account and a restarted strategy: first a buy (at 12000)
    assert trader.status()["position"] == 1.0 and trader.fills()[-1]["exch_ts"] == 12010
    ended = time.time_ns()

    actions = trader.actions
    assert [(a["action"], a["user"]) for a in actions] == [
        ("stop", "system"), ("start", "alice"), ("stop", "bob"), ("start", "alice"), ("reset", "carol")]
    assert all(began <= a["wall_ts"] <= ended for a in actions[1:])
    assert [a["replay_ts"] for a in actions[1:]] == [4500, 5500, 9500, 10500]
    res = trader.result()
    assert res.config["kind"] == "paper"
    assert [a["action"] for a in res.meta["actions"]] == [a["action"] for a in actions]


def test_trades_before_the_first_book_are_dropped_and_other_symbols_ignored():
    trader = PaperTrader("noop", symbol=SYMBOL, clock="exchange", hold_ns=0, tick_size=0.1)
    trade = np.array([(500, 500, 1, 100.0, 1.0, 1)], TRADE_DTYPE)[0]
    trader.on_trade(SYMBOL, trade)
    trader.on_trade("binance-usdm:OTHER", trade)
    trader.on_depth(SYMBOL, book_rows(1000, {100.0: 5.0}, {101.0: 5.0}, seq=7))
    trader.close()
    s = trader.status()
    assert (s["trades_before_book"], s["other_symbols"], s["trades"], s["depth_messages"]) == (1, 1, 0, 1)
    assert s["last_mid"] == 100.5


def test_local_clock_follows_the_apply_order_and_keeps_the_feed_latency_floor():
    """clock='local': a spot REST snapshot (no venue time) fetched after deltas it is applied
    before; the deltas are seen with it, the snapshot takes the next delta's venue time, and the
    local clock is shifted so that nothing is seen sooner than min_feed_latency_ns after the venue."""
    trader = PaperTrader("noop", symbol=SYMBOL, clock="local", min_feed_latency_ns=1_000, hold_ns=0, tick_size=0.1,
                         record=True)
    snap = book_rows(0, {100.0: 5.0}, {101.0: 5.0}, seq=10)
    snap["local_ts"] = 5_000  # fetched at 5000
    buffered = np.array([(4_000, 4_300, 11, 1, 100.0, 6.0, False)], DELTA_DTYPE)  # received at 4300, before it
    live = np.array([(6_000, 6_200, 12, -1, 101.0, 4.0, False)], DELTA_DTYPE)
    for rows in (snap, buffered, live):
        trader.on_depth(SYMBOL, rows)
    trader.close()
    ((deltas, _),) = trader.recording()
    assert deltas["seq"].tolist() == [0, 0, 1, 2]  # renumbered per message
    assert deltas["exch_ts"].tolist() == [4_000, 4_000, 4_000, 6_000]
    assert deltas["local_ts"].tolist() == [5_000, 5_000, 5_000, 6_200]
    # the tightest message (the live one: 200 ns) is moved to the 1000 ns floor
    assert trader.local_offset_ns == 800
    s = trader.status()
    assert s["last_mid"] == 100.5 and s["replay_ts"] == 7_000


def test_held_rows_release_only_what_later_batches_cannot_precede():
    held = HeldRows(hold_ns=100)
    d1 = book_rows(1000, {100.0: 5.0}, {101.0: 5.0}, seq=1)
    out1 = held.add(d1, np.empty(0, TRADE_DTYPE))
    assert len(out1) == 0  # nothing released before the next batch says how far the stream has come
    late_trade = np.array([(1050, 1050, 1, 100.0, 1.0, -1)], TRADE_DTYPE)
    out2 = held.add(np.empty(0, DELTA_DTYPE), late_trade)
    assert len(out2) == 0  # 1050 - 100 is before the book's rows: still held
    d3 = np.array([(2000, 2000, 3, 1, 100.0, 4.0, False)], DELTA_DTYPE)
    out3 = held.add(d3, np.empty(0, TRADE_DTYPE))
    rest = held.drain()
    together = np.concatenate((out1, out2, out3, rest))
    whole = replay_rows(np.concatenate((d1, d3)), late_trade)
    assert together.tobytes() == whole.tobytes() and held.clamped == 0  # (CLEAR rows hold NaN prices)
    # a row older than what was released is moved to the released time, and counted
    out4 = held.add(np.empty(0, DELTA_DTYPE), np.array([(1500, 1500, 2, 100.0, 1.0, 1)], TRADE_DTYPE))
    assert held.clamped == 2 and len(out4) == 0 and len(held.drain()) == 2


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="clock"):
        PaperTrader("noop", clock="wall")
    with pytest.raises(ValueError, match="batch_rows"):
        PaperTrader("noop", batch_rows=0)
    with pytest.raises(ValueError, match="hold_ns"):
        PaperTrader("noop", hold_ns=-1)
    with pytest.raises(ValueError, match="symbols"):
        run_paper(PaperTrader("noop"), "spot")


def test_a_paper_session_is_stored_like_a_backtest_run(session, store_url):
    from genesis.backtest.store import list_runs, load_run, save_run
    from genesis.store import connect

    _, _, traders, _ = session
    result = traders["market_maker"].result()
    with connect(store_url) as store:
        run_id = save_run(store, result, kind="paper")
        loaded = load_run(store, run_id)
        runs = list_runs(store, kind="paper")
    assert run_id in set(runs["run_id"]) and loaded.meta["kind"] == "paper"
    np.testing.assert_array_equal(loaded.fills, result.fills)
    assert [a["user"] for a in loaded.meta["actions"]] == ["test", "test"]  # stopped at creation, then started


def test_deeplob_threshold_paper_trades_on_the_live_predictor(session):
    """Paper mode of deeplob_threshold: a prediction for every applied book once a window is full,
    stamped with the book's time; the fills are a backtest's over the same stream and predictions."""
    _, client, traders, _ = session
    trader = traders["deeplob_threshold"]
    predictor = trader.predictor
    # every applied depth message gives a book, but the snapshot's is reported only with the first delta's
    assert trader.counts["depth_messages"] - 1 <= predictor.books <= trader.counts["depth_messages"]
    assert predictor.skipped == 0 and predictor.n == predictor.books - predictor.window + 1
    inputs = predictor.inputs()
    assert np.all(np.diff(inputs["ts"]) >= 0)
    np.testing.assert_allclose(inputs["p_down"] + inputs["p_stationary"] + inputs["p_up"], 1.0, rtol=1e-5)
    res = trader.result()
    assert len(res.fills) >= 4  # the model's signal crossed the threshold both ways
    events = trader.recorded_events()
    whole = run_backtest("deeplob_threshold", DEEPLOB_PARAMS, replay_rows(events.deltas, events.trades),
                         inputs={k: v.copy() for k, v in inputs.items()}, **MODELS)
    assert np.array_equal(res.fills, whole.fills)
