"""The detector engine: chunked streams equal one batch; the watermark; runs over the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis.feeds.events import TRADE_DTYPE
from genesis.surveillance.base import KIND_CODES, KINDS, Detector, next_source, score_from_ratio, severity
from genesis.surveillance.detectors import all_detectors, by_name
from genesis.surveillance.engine import Book, Inputs, SurveillanceStream, detect

S = 1_000_000_000


def crossed_book_rows():
    n = 12
    ts = np.arange(n, dtype=np.int64) * S
    bid = np.full((n, 2), [100.0, 99.0])
    ask = np.full((n, 2), [101.0, 102.0])
    size = np.ones((n, 2))
    bid[3:6, 0] = 101.5  # crossed for rows 3..5
    bid[8, 0] = 101.0  # locked at row 8
    return Book(ts, bid, size, ask, size)


def alert_key(frame: pd.DataFrame):
    return list(zip(frame["kind"], frame["start_ts"], frame["end_ts"], frame["at_ts"], frame["score"],
                    frame["order_ids"].map(tuple)))


def test_crossed_and_locked_episodes():
    alerts = detect(Inputs("sim:T", book=crossed_book_rows()), [by_name("crossed_book")])
    assert alerts["kind"].tolist() == ["crossed_book", "locked_book"]
    crossed, locked = alerts.iloc[0], alerts.iloc[1]
    assert (crossed.start_ts, crossed.end_ts, crossed.at_ts) == (3 * S, 5 * S, 6 * S)
    assert crossed.severity == "critical" and crossed.evidence["worst_bid_minus_ask"] == 0.5
    assert locked.severity == "low" and locked.n_events == 1


def test_an_episode_open_at_the_end_of_the_stream_is_reported():
    book = crossed_book_rows()
    book.bid_px[9:, 0] = 101.5  # crossed from row 9 to the end
    stream = SurveillanceStream("sim:T", [by_name("crossed_book")], sources=("book",))
    during = stream.process(book=book)
    assert during["kind"].tolist() == ["crossed_book", "locked_book"]  # the open one is not out yet
    (end,) = stream.finish().itertuples()
    assert (end.kind, end.start_ts, end.end_ts, end.at_ts) == ("crossed_book", 9 * S, 11 * S, 11 * S)
    assert len(detect(Inputs("sim:T", book=book), [by_name("crossed_book")])) == 3


def test_a_stale_quote_still_standing_at_the_end_is_reported():
    n = 3
    ts = np.array([0, 1, 2], dtype=np.int64) * S  # the top of book changes at 0, 1 and 2 s, then never again
    bid = np.array([[100.0], [100.0], [100.1]])
    ask = np.full((n, 1), 101.0)
    size = np.ones((n, 1))
    trades = np.zeros(12, TRADE_DTYPE)
    trades["exch_ts"] = (3 + np.arange(12)) * S  # twelve trades at the ask over the following 12 s
    trades["price"], trades["qty"], trades["aggressor"] = 101.0, 1.0, 1
    alerts = detect(Inputs("sim:T", trades=trades, book=Book(ts, bid, size, ask, size)), [by_name("stale_quotes")])
    (stale,) = alerts.itertuples()
    assert (stale.kind, stale.start_ts, stale.end_ts, stale.n_events) == ("stale_quotes", 2 * S, 14 * S, 12)


def test_a_near_miss_does_not_fire():
    book = crossed_book_rows()
    book.bid_px[:, 0] = 100.99  # a tick under the ask throughout
    assert detect(Inputs("sim:T", book=book), [by_name("crossed_book")]).empty


def test_every_detector_online_in_chunks_equals_batch():
    from genesis.feeds.simulator import SCENARIOS, simulate

    sim = simulate(seconds=240, seed=3, scenarios=list(SCENARIOS))
    inputs = Inputs.from_events(sim.events)
    batch = detect(inputs)
    stream = SurveillanceStream(inputs.symbol, sources=("orders", "trades", "book"))
    rng = np.random.default_rng(0)
    got = []
    o = t = b = 0
    # Feed each source in its own random chunks, interleaved: sources run ahead of each other.
    while o < len(inputs.orders) or t < len(inputs.trades) or b < len(inputs.book):
        which = rng.integers(3)
        step = int(rng.integers(1, 400))
        if which == 0 and o < len(inputs.orders):
            got.append(stream.process(orders=inputs.orders[o : o + step]))
            o += step
        elif which == 1 and t < len(inputs.trades):
            got.append(stream.process(trades=inputs.trades[t : t + step]))
            t += step
        elif which == 2 and b < len(inputs.book):
            got.append(stream.process(book=inputs.book.take(slice(b, b + step))))
            b += step
    got.append(stream.finish())
    online = pd.concat([g for g in got if len(g)], ignore_index=True) if any(len(g) for g in got) else batch.iloc[:0]
    assert sorted(alert_key(online)) == sorted(alert_key(batch))


def test_rows_are_held_until_every_source_has_passed_them():
    stream = SurveillanceStream("sim:T", [by_name("crossed_book")], sources=("trades", "book"))
    book = crossed_book_rows()
    assert stream.process(book=book).empty  # no trades yet: the trade source's watermark holds everything
    trade = np.zeros(1, TRADE_DTYPE)
    trade["exch_ts"], trade["price"], trade["qty"], trade["aggressor"] = 7 * S, 100.5, 1.0, 1
    released = stream.process(trades=trade)  # releases every row before 7 s: the crossed episode ended at 6 s
    assert released["kind"].tolist() == ["crossed_book"]
    assert stream.finish()["kind"].tolist() == ["locked_book"]


def test_stream_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="unknown source"):
        SurveillanceStream("sim:T", sources=("quotes",))
    needs_orders = [d for d in all_detectors() if "orders" in d.inputs]
    if needs_orders:
        with pytest.raises(ValueError, match="need inputs this stream is not fed"):
            SurveillanceStream("sim:T", needs_orders, sources=("trades", "book"))
    stream = SurveillanceStream("sim:T", [by_name("crossed_book")], sources=("book",))
    book = crossed_book_rows()
    stream.process(book=book.take(slice(5, 8)))
    with pytest.raises(ValueError, match="time order"):
        stream.process(book=book.take(slice(0, 3)))
    with pytest.raises(ValueError, match="not set up for trades"):
        stream.process(trades=np.zeros(1, TRADE_DTYPE))


def test_contract_helpers():
    assert severity(0) == "info" and severity(19.9) == "info" and severity(45) == "medium" and severity(100) == "critical"
    assert score_from_ratio(5.0, 5.0, 20.0) == 50.0 and score_from_ratio(20.0, 5.0, 20.0) == 100.0
    assert score_from_ratio(40.0, 5.0, 20.0) == 100.0 and score_from_ratio(0.0, 5.0, 20.0) == 0.0
    assert all(KINDS[KIND_CODES[k]] == k for k in KIND_CODES)
    for d in all_detectors():
        assert isinstance(d, Detector) and set(d.kinds) <= set(KIND_CODES) and set(d.inputs) <= {"orders", "trades", "book"}
        assert len(d.params_version) == 12 and d.metric and d.description
    assert by_name("crossed_book").with_params(min_duration_s=2.0).params_version != by_name("crossed_book").params_version
    with pytest.raises(ValueError, match="unknown detector"):
        by_name("nope")
    assert next_source is not None


@pytest.mark.slow
def test_surveil_run_files_alerts_once(store_url):
    from genesis.pipelines.ingest_events import ingest_simulation
    from genesis.store import connect
    from genesis.surveillance.store import run_surveillance

    ingest_simulation(seconds=180.0, seed=4, scenarios=("spoofing", "wash_trades"), bad_data=(),
                      symbol="sim:RUN", store_url=store_url)
    first = run_surveillance("sim:RUN", store_url=store_url)
    again = run_surveillance("sim:RUN", store_url=store_url)
    assert not first.already_run and first.events["order events"] > 10_000
    with connect(store_url) as store:
        stored = store.query_rows("SELECT count(), uniqExact(run_id) FROM alerts")[0]
        cited = store.query_rows("SELECT uniqExact(arrayJoin(order_ids)) FROM alerts")[0][0]
        # An order id is in the store as a resting order's id, or as an aggressor's (contra_id).
        found = store.query_rows(
            "SELECT uniqExact(id) FROM (SELECT arrayJoin([order_id, contra_id]) AS id FROM order_events"
            " WHERE symbol = 'sim:RUN') WHERE id IN (SELECT arrayJoin(order_ids) FROM alerts)")[0][0]
    assert stored == (len(first.alerts), 1 if len(first.alerts) else 0)
    assert cited == found  # every order id an alert cites exists in the store
    if len(first.alerts):
        assert again.already_run and len(again.alerts) == 0
    # The review table gives each alert its own evidence, as raised (no keys of other detectors).
    from genesis.surveillance.review import alerts_table

    table = alerts_table("sim:RUN", store_url=store_url)
    raised = {(int(r.start_ts), r.kind): r.evidence for r in first.alerts.itertuples()}
    for row in table.itertuples():
        assert row.evidence == raised[(row.start.value, row.kind)]


# -- what detectors need of the data: one declaration, checked alike for all -----------------------------------
def test_every_detector_declares_what_it_needs():
    from genesis.surveillance.base import CAPABILITIES

    for d in all_detectors():
        assert set(d.inputs) | set(d.needs) | set(d.optional) <= set(CAPABILITIES), d.name
        assert d.levels_needed >= (1 if "book" in d.inputs else 0), d.name
        if d.levels_param is not None:
            assert isinstance(getattr(d.params, d.levels_param), int), d.name
        assert d.requirements()
    assert by_name("liquidity_gap").levels_needed == 2  # a gap lies between two levels
    assert by_name("spoofing").levels_needed == 3 and by_name("layering").levels_needed == 7
    assert by_name("spoofing").with_params(max_level=4.0).levels_needed == 5  # follows the parameters
    assert by_name("wash_trades").needs == ("owners",)
    assert by_name("depth_shock").levels_read(1) == 1 and by_name("depth_shock").levels_read(50) == 20


def test_detectors_the_data_cannot_serve_are_skipped_with_the_reason():
    from genesis.surveillance.base import DataProfile
    from genesis.surveillance.engine import run_detectors
    from genesis.feeds.simulator import simulate

    one_level = DataProfile(frozenset({"orders", "trades", "book"}), levels=1)
    assert by_name("liquidity_gap").unmet(one_level) == "needs 2 book levels a side; the data has 1"
    assert by_name("spread_shock").unmet(one_level) is None
    assert "owner (participant) ids" in by_name("wash_trades").unmet(one_level)
    assert "order-level (L3) events" in by_name("iceberg").unmet(DataProfile(frozenset({"trades", "book"}), 20))

    # a simulated market read at one level, padded with NaN to 20 columns, as a 1-level source may be
    inputs = Inputs.from_events(simulate(seconds=150, seed=3, scenarios=["flash_crash"]).events)
    nan = np.full((len(inputs.book), 19), np.nan)
    padded = Book(inputs.book.ts, *(np.c_[getattr(inputs.book, n)[:, :1], nan]
                                    for n in ("bid_px", "bid_sz", "ask_px", "ask_sz")))
    data = Inputs(inputs.symbol, inputs.orders, inputs.trades, padded)
    assert data.profile().levels == 1 and "owners" in data.profile().capabilities
    run = run_detectors(data)
    assert run.profile.levels == 1
    assert set(run.skipped) == {"liquidity_gap", "spoofing", "layering", "spoofing_l2"}
    assert not set(run.alerts["detector"]) & set(run.skipped) and set(run.ran).isdisjoint(run.skipped)
    assert detect(data).attrs["skipped"] == run.skipped
    summed = [e["levels_summed"] for e in run.alerts["evidence"] if "levels_summed" in e]
    assert summed and set(summed) == {1}  # the levels that exist, not the configured 20 or 5

    stream = SurveillanceStream("sim:T", [by_name("liquidity_gap"), by_name("spread_shock")], sources=("book",),
                                levels=1)
    assert list(stream.skipped) == ["liquidity_gap"] and [d.name for d in stream.detectors] == ["spread_shock"]
    with pytest.raises(ValueError, match="need inputs this stream is not fed"):
        SurveillanceStream("sim:T", [by_name("iceberg")], sources=("trades", "book"))
