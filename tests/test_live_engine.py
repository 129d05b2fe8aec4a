"""The live engine behind the dashboards (genesis.live), without a browser.

Replay at max speed raises exactly the batch surveillance's alerts (simulated market and a real
capture from the store); pause stops the clock; seek moves it (back and forth, alerts filed once);
a session that never drains its buffer neither blocks nor slows the engine (bounded, drops
counted); state changes are authorised by the server's address and recorded with the user;
LIVE mode runs on the Binance client against FakeBinance.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from genesis.feeds.events import MarketEvents
from genesis.live import (Cursor, EngineConfig, LiveEngine, NotAuthorized, SessionBuffer, authorize,
                          is_loopback_address, simulated_market)
from genesis.surveillance.engine import Inputs, detect
from tests.conftest import capture_path

KEY = ["kind", "detector", "side", "start_ts", "end_ts", "at_ts"]


@pytest.fixture(scope="module")
def spoofing_market():
    return simulated_market("spoofing", seconds=120, seed=1)


def engine_for(events, **config):
    config.setdefault("speed", 0)
    return LiveEngine(EngineConfig(mode="simulation", **config), events={events.symbol: events})


def filed_alerts(engine: LiveEngine) -> pd.DataFrame:
    rows = sorted(engine._filed)
    return pd.DataFrame([r[1:] for r in rows], columns=KEY).sort_values(KEY).reset_index(drop=True)


def batch_alerts(events) -> pd.DataFrame:
    alerts = detect(Inputs.from_events(events))
    return alerts[KEY].sort_values(KEY).reset_index(drop=True)


def test_replay_at_max_speed_gives_the_batch_alerts(spoofing_market):
    engine = engine_for(spoofing_market, max_events_per_tick=1500)  # many small steps
    engine.run_until_done()
    assert engine.ended and engine.events_processed == (
        len(np.unique(spoofing_market.deltas["seq"])) + len(spoofing_market.trades) + len(spoofing_market.orders))
    batch = batch_alerts(spoofing_market)
    assert "spoofing" in set(batch["kind"])  # the scenario is detected at all
    pd.testing.assert_frame_equal(filed_alerts(engine), batch, check_dtype=False)
    cases = engine.cases()
    assert len(cases) >= 1 and set(cases["state"]) == {"open"}


def test_replay_from_the_store_gives_the_batch_alerts_of_the_stored_rows(store_url):
    from genesis.pipelines.ingest import ingest_binance_capture
    from genesis.store import connect
    from genesis.surveillance.store import load_inputs

    report = ingest_binance_capture(capture_path("spot_ethusdt_20240808.jsonl.gz"), store_url=store_url,
                                    progress=False)
    (symbol,) = report.files[0].symbols
    engine = LiveEngine(EngineConfig(mode="replay", symbols=[symbol.split(":")[1]], store_url=store_url, speed=0))
    assert engine.symbols == [symbol]
    assert engine.range[0] > 1.7e18  # the spot snapshot (no venue time, stored at 0) starts with the next message
    engine.run_until_done()
    with connect(store_url) as store:
        inputs = load_inputs(store, symbol)  # the stored book rows (ingest's), not the engine's rebuild
    batch = detect(inputs)[KEY].sort_values(KEY).reset_index(drop=True)
    assert len(batch) > 0
    pd.testing.assert_frame_equal(filed_alerts(engine), batch, check_dtype=False)


def test_pause_stops_the_clock_and_play_resumes_it(spoofing_market):
    engine = engine_for(spoofing_market, speed=10.0, tick_s=0.01, publish_hz=20).start()
    try:
        time.sleep(0.5)
        engine.pause()
        paused_at = engine.clock
        assert paused_at > engine.range[0]  # it was moving
        time.sleep(0.4)
        assert engine.clock == paused_at
        engine.play()
        time.sleep(0.4)
        assert engine.clock > paused_at
        # 10x real time: 0.4 s of wall time is about 4 s of market time (bounded well away from max speed).
        assert engine.clock - paused_at < 20e9
    finally:
        engine.stop()
    assert not engine.running


def test_seek_moves_the_clock_and_files_alerts_once(spoofing_market):
    engine = engine_for(spoofing_market)
    lo, hi = engine.range
    middle = lo + (hi - lo) // 2
    assert engine.seek(middle) == middle
    assert engine.clock == middle
    first_half = len(engine._filed)
    early = lo + (hi - lo) // 5
    assert engine.seek(early) == early  # back: the pipelines restart and run to it
    assert engine.clock == early
    engine.run_until_done()
    pd.testing.assert_frame_equal(filed_alerts(engine), batch_alerts(spoofing_market), check_dtype=False)
    assert len(engine.cases()) == len(engine.manager.cases) and first_half <= len(engine._filed)
    # Seeking is clipped to the range, and refused in live mode.
    assert engine.seek(hi + 10**12) == hi


def test_a_session_that_never_drains_does_not_block_or_grow(spoofing_market):
    ran = {}
    for with_session in (False, True):
        engine = engine_for(spoofing_market, max_events_per_tick=2000)
        stuck = engine.subscribe(maxlen=3) if with_session else None
        reader = engine.subscribe(maxlen=10_000)  # a session that reads everything
        while not engine.ended:
            engine.tick(0.0)
            engine.publish()
        ran[with_session] = (engine.events_processed, engine.hub.published, reader.drain())
        if with_session:
            assert len(stuck) == 3  # bounded
            # Everything published after the first 3 (the subscription's first picture included) was dropped.
            assert stuck.dropped == engine.hub.published + 1 - 3
            assert engine.health()["session_drops"] == stuck.dropped
            engine.unsubscribe(stuck)
            assert engine.hub.sessions == 1 and engine.hub.dropped == stuck.dropped
    assert ran[True][0] == ran[False][0] and ran[True][1] == ran[False][1]
    # The reading session got the same updates either way (same clocks, same alerts).
    clocks = [[u["clock_ts"] for u in ran[k][2]] for k in (False, True)]
    assert clocks[0] == clocks[1]
    assert sum(len(u["alerts"]) for u in ran[True][2]) == sum(len(u["alerts"]) for u in ran[False][2]) > 0


def test_updates_are_batched_and_decimated(spoofing_market):
    engine = engine_for(spoofing_market, max_events_per_tick=50_000, points_per_update=50, trades_per_update=20)
    session = engine.subscribe()
    engine.tick(0.0)
    update = engine.publish()
    s = update["symbols"][spoofing_market.symbol]
    assert len(s["ts"]) <= 50 and len(s["mid"]) == len(s["ts"]) and np.all(np.diff(s["ts"]) >= 0)
    assert len(s["trades"]["ts"]) == 20
    assert set(s["last"]) >= {"mid", "microprice", "ofi", "obi", "spread_z", "vpin"}
    assert s["top"]["bid_px"].shape == (20,) and s["top"]["bid_px"][0] < s["top"]["ask_px"][0]
    assert [u["seq"] for u in session.drain()] == [0, 1]  # the first picture, then one update


def test_cursor_takes_whole_messages_in_bounded_pieces(spoofing_market):
    cursor = Cursor(spoofing_market)
    pieces = []
    while not cursor.done:
        deltas, trades, orders = cursor.take(cursor.last_ts, 1000)
        assert len(np.unique(deltas["seq"])) + len(trades) + len(orders) <= 1000 + 64
        pieces.append(deltas)
    assert np.array_equal(np.concatenate(pieces), spoofing_market.deltas)
    with pytest.raises(ValueError, match="scenario"):
        simulated_market("no_such_thing")


def test_authorisation_depends_on_the_address_and_auth():
    assert is_loopback_address("127.0.0.1") and is_loopback_address("::1") and is_loopback_address("localhost")
    assert not is_loopback_address("0.0.0.0") and not is_loopback_address("192.168.1.5")
    assert not is_loopback_address("example.org")
    assert authorize("127.0.0.1", None) == "local"
    assert authorize("0.0.0.0", "alice") == "alice"
    with pytest.raises(NotAuthorized, match="beyond loopback"):
        authorize("0.0.0.0", None, "starting the strategy")
    with pytest.raises(NotAuthorized, match="authentication on"):
        authorize("127.0.0.1", "guest", auth=True)


def test_controls_are_recorded_with_the_user_and_refused_without_one(spoofing_market):
    engine = engine_for(spoofing_market, address="0.0.0.0", strategy_params={"entry": 1.0, "exit": 0.5, "qty": 1})
    with pytest.raises(NotAuthorized):
        engine.strategy_start(None)
    assert engine.strategy_start("alice") == "alice"
    engine.seek(engine.range[0] + 60 * 10**9)
    status = engine.strategy.update()
    assert status["started"] and status["fills"] > 0 and len(status["new_fills"]) > 0
    assert engine.strategy_stop("alice") == "alice"
    assert not engine.strategy.update()["started"]
    engine.strategy_reset("bob")
    after = engine.strategy.update()
    assert after["position"] == 0 and after["realized_pnl"] == 0
    assert [(a["action"], a["user"]) for a in engine.strategy.trader.actions] == [
        ("stop", "system"), ("start", "alice"), ("stop", "alice"), ("reset", "bob")]
    with pytest.raises(ValueError, match="no parameter"):
        engine.set_strategy_params({"bogus": 1}, "alice")
    engine.strategy_start("alice")
    engine.seek(engine.range[0] + 10 * 10**9, user="alice")  # back: a new trader from the start, still running
    restarted = engine.strategy.trader
    assert restarted.started and [(a["action"], a["user"]) for a in restarted.actions] == [
        ("stop", "alice"), ("start", "alice")]
    assert restarted.status()["replay_ts"] <= engine.clock
    engine.set_strategy_params({"entry": 5.0}, "alice")
    assert engine.strategy.params["entry"] == 5.0 and engine.strategy.trader.status()["replay_ts"] > 0

    # Alert workflow: the user and the note go to the case's audit trail.
    engine.run_until_done()
    case_id = engine.cases()["case_id"].iloc[0]
    with pytest.raises(NotAuthorized):
        engine.change_alert(case_id, "investigating", "looking", None)
    engine.change_alert(case_id, "investigating", "looking at the book", "carol")
    trail = engine.manager.history(case_id)
    assert trail.iloc[-1]["actor"] == "carol" and trail.iloc[-1]["why"] == "looking at the book"
    assert engine.publish()["cases"][0]["state"] == "investigating"


def test_live_mode_against_fake_binance(tmp_path, store_url):
    from genesis.feeds.binance.fake import FakeBinance
    from genesis.store import connect

    path = capture_path("spot_ethusdt_20240808.jsonl.gz")
    with FakeBinance(path, speed=None) as fake:
        # Recorded to files, and (as with a ClickHouse server; forced here on the embedded store) inserted in batches.
        engine = LiveEngine(EngineConfig(mode="live", venue="spot", symbols=["ETHUSDT"], ws_url=fake.ws_url,
                                         rest_url=fake.rest_url, record_dir=str(tmp_path / "rec"), tick_s=0.02,
                                         store_url=store_url, insert_live=True, insert_every_s=0.5))
        session = engine.subscribe()
        engine.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and engine.events_processed < 3000:
                time.sleep(0.1)
        finally:
            engine.stop()
    assert engine.events_processed >= 3000
    health = engine.health()
    assert health["lag_p50_ms"] >= 0 and health["reconnects"] == 0
    updates = session.drain()
    symbol = "binance-spot:ETHUSDT"
    assert any("top" in u["symbols"].get(symbol, {}) for u in updates)
    assert list((tmp_path / "rec").glob("spot_ethusdt_*.jsonl.gz"))  # recorded, not stored
    with pytest.raises(ValueError, match="live feed"):
        engine.seek(0)
    inserted = engine.writer.inserted
    assert engine.writer.batches >= 2 and inserted["depth_deltas"] > 0 and inserted["trades"] > 0
    with connect(store_url) as store:
        for table, n in inserted.items():
            assert store.query_rows(f"SELECT count() FROM {table} WHERE symbol = {{s:String}}",
                                    {"s": symbol})[0][0] == n
        # The stored rows are those the client applied: the venue's update ids, one book row per timed message.
        first_id = store.query_rows("SELECT min(seq) FROM depth_deltas")[0][0]
        timed = store.query_rows("SELECT count(DISTINCT seq) FROM depth_deltas WHERE toUnixTimestamp64Nano(exch_ts) > 0"
                                 )[0][0]
        rows = store.query_rows("SELECT count() FROM book_snapshots WHERE sampling = 'event'")[0][0]
    assert first_id > 10**9 and rows == timed  # every message but the spot snapshot (no venue time)


def test_session_buffer_rejects_a_zero_size():
    with pytest.raises(ValueError, match="maxlen"):
        SessionBuffer(0)


def test_a_message_without_a_venue_time_is_replayed_with_the_next_one():
    from genesis.live.sources import _message_times

    assert _message_times(np.array([0, 0, 5, 7, 0, 9])).tolist() == [5, 5, 5, 7, 9, 9]
    assert _message_times(np.array([3, 0])).tolist() == [3, 3]
    assert _message_times(np.array([0, 0])).tolist() == [0, 0]


@pytest.mark.slow
def test_the_model_stage_feeds_probabilities_to_the_strategy():
    from genesis.backtest.events import capture_events
    from genesis.strategy.paper import LivePredictor
    from tests.test_paper_trading import moving_deeplob

    path = capture_path("spot_ethusdt_20240808.jsonl.gz")
    events = capture_events(path)
    model = moving_deeplob(path)
    engine = LiveEngine(EngineConfig(mode="replay", symbols=[events.symbol], speed=0, strategy="deeplob_threshold"),
                        events={events.symbol: events}, predictor_factory=lambda: LivePredictor(*model, num_threads=1))
    engine.seek(engine.range[0] + 20 * 10**9)  # ~200 books: past the model's 100-book window
    first = engine.strategy.update()["probabilities"]
    engine.seek(engine.range[0] + 40 * 10**9)
    second = engine.strategy.update()["probabilities"]
    assert first is not None and len(first) == 3 and abs(sum(first) - 1) < 1e-6
    assert first != second  # the model's output moves with the book
    engine.seek(engine.range[0] + 10 * 10**9)  # back: a fresh predictor from the factory
    assert engine.strategy.trader.predictor.n < 100


def test_serve_options_take_secrets_from_the_environment_only(monkeypatch, tmp_path):
    from genesis.live.cli import _speed
    from genesis.live.serve import auth_options, dashboards_dir

    assert auth_options(None) == {}
    monkeypatch.delenv("GENESIS_SERVE_PASSWORD", raising=False)
    monkeypatch.delenv("GENESIS_SERVE_USERS", raising=False)
    with pytest.raises(ValueError, match="GENESIS_SERVE_PASSWORD"):
        auth_options("basic")
    monkeypatch.setenv("GENESIS_SERVE_PASSWORD", "pw")
    options = auth_options("basic")
    assert options["basic_auth"] == "pw" and options["oauth_optional"] is True and len(options["cookie_secret"]) >= 32
    with pytest.raises(ValueError, match="oauth-provider"):
        auth_options("oauth")
    with pytest.raises(ValueError, match="GENESIS_OAUTH_KEY"):
        auth_options("oauth", oauth_provider="github")
    monkeypatch.setenv("GENESIS_OAUTH_KEY", "k")
    monkeypatch.setenv("GENESIS_OAUTH_SECRET", "s")
    assert auth_options("oauth", oauth_provider="github")["oauth_provider"] == "github"
    with pytest.raises(ValueError, match="choose from"):
        auth_options("kerberos")
    assert [_speed(t) for t in ("1x", "2", "10X", "max")] == [1.0, 2.0, 10.0, 0.0]
    assert (dashboards_dir() / "surveillance.py").exists()
    monkeypatch.setenv("GENESIS_DASHBOARDS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="GENESIS_DASHBOARDS"):
        dashboards_dir()


def test_engine_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mode"):
        EngineConfig(mode="paper")
    with pytest.raises(ValueError, match="needs symbols"):
        EngineConfig(mode="replay")
    with pytest.raises(ValueError, match="speed"):
        EngineConfig(mode="simulation", speed=-1)
    engine = engine_for(simulated_market(None, seconds=5, seed=2))
    with pytest.raises(ValueError, match="speed"):
        engine.set_speed(3)
    with pytest.raises(ValueError, match="only in simulation"):
        LiveEngine(EngineConfig(mode="replay", symbols=["x"]), events={"x": simulated_market(None, seconds=5)}
                   ).set_scenario("spoofing")


def test_quiet_stretches_are_jumped_over_at_replay_speed():
    early = simulated_market(None, seconds=20, seed=3)
    late = simulated_market("spoofing", seconds=20, seed=4)
    hour = 3600 * 10**9
    for name in ("deltas", "trades", "orders"):
        for array in (getattr(late, name),):
            array["exch_ts"] += hour
            array["local_ts"] += hour
    late.symbol = "sim:LATE"
    engine = LiveEngine(EngineConfig(mode="simulation", speed=10.0), events={early.symbol: early, late.symbol: late})
    ticks = 0
    while not engine.ended and ticks < 200:
        engine.tick(0.5)  # 5 s of market a tick: 40 s of events, plus one jump over the hour
        ticks += 1
    assert engine.ended and ticks < 20


def test_a_new_scenario_replaces_the_simulated_market():
    engine = engine_for(simulated_market(None, seconds=10, seed=5))
    session = engine.subscribe()
    engine.run_until_done()
    engine.set_scenario("layering", seconds=30, seed=2)
    assert engine.symbols == ["sim:LAYERING-2"] and engine.playing and not engine.ended
    engine.run_until_done()
    update = engine.publish()
    assert update["scenario"] == "layering" and list(update["symbols"]) == ["sim:LAYERING-2"]
    assert "layering" in set(engine.cases()["kind"])
    assert session.drain()[-1]["reset"]


def test_the_paper_session_of_a_replay_is_a_backtest_of_its_rows(spoofing_market):
    from genesis.backtest.engine import Backtester
    from genesis.backtest.events import replay_rows

    params = {"entry": 1.0, "exit": 0.5, "qty": 1.0}
    engine = engine_for(spoofing_market, strategy_params=params, max_events_per_tick=3000)
    engine.strategy_start("alice")  # before the first row
    engine.run_until_done()
    paper = engine.strategy.trader.fills()
    # The same rows seen at their venue time (the replay's clock), replayed at once.
    deltas, trades = spoofing_market.deltas.copy(), spoofing_market.trades.copy()
    deltas["local_ts"], trades["local_ts"] = deltas["exch_ts"], trades["exch_ts"]
    bt = Backtester("ofi_signal", params)
    bt.set_mode("entries_allowed")
    bt.process(replay_rows(deltas, trades))
    batch = bt.fills()
    assert len(paper) > 10
    np.testing.assert_array_equal(paper, batch)


def test_warm_up_leaves_the_engine_untouched(spoofing_market):
    engine = engine_for(spoofing_market, strategy="taker_only")
    before = (engine.clock, engine.events_processed, len(engine._filed), engine.publish_seq)
    assert engine.warm_up(events=3000) > 0
    assert (engine.clock, engine.events_processed, len(engine._filed), engine.publish_seq) == before
    engine.run_until_done()  # and it replays exactly as without the warm-up
    pd.testing.assert_frame_equal(filed_alerts(engine), batch_alerts(spoofing_market), check_dtype=False)
    assert LiveEngine(EngineConfig(mode="live", symbols=["BTCUSDT"])).warm_up() == 0.0


def test_a_new_view_starts_on_the_symbol_being_replayed(spoofing_market):
    # Two markets of different times: the later one listed first, as the store may list them.
    later = simulated_market("spoofing", seconds=30, seed=2)
    shift = int(3600e9)
    moved = MarketEvents("sim:LATER", *(a.copy() for a in (later.deltas, later.trades, later.orders)))
    for a in (moved.deltas, moved.trades, moved.orders):
        a["exch_ts"] += shift
        a["local_ts"] += shift
    engine = LiveEngine(EngineConfig(mode="simulation", speed=0),
                        events={"sim:LATER": moved, spoofing_market.symbol: spoofing_market})
    assert engine.symbols[0] == "sim:LATER" and engine.active_symbol() == spoofing_market.symbol
    engine.run_until_done()
    assert engine.active_symbol() == "sim:LATER"  # the clock is past the first market
