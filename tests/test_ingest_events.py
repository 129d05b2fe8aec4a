"""Ingest of normalised events (LOBSTER files, simulated markets): validation, quarantine,
the book rebuilt with crossed events rejected, idempotence."""

from __future__ import annotations

import numpy as np
import pytest

from genesis.book.l2 import L2Book
from genesis.feeds.events import DELTA_DTYPE, ORDER_EVENT_DTYPE, TRADE_DTYPE, MarketEvents
from genesis.feeds.validate import validate
from genesis.pipelines.ingest_events import ingest_lobster, write_market_events
from genesis.store import connect, migrate
from tests.conftest import REPO

LOBSTER = REPO / "tests" / "data" / "lobster" / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
T0 = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z


def deltas(rows):
    """rows: (seq, side, price, qty, is_snapshot); time = seq ms after T0."""
    out = np.zeros(len(rows), DELTA_DTYPE)
    for k, (seq, side, price, qty, snap) in enumerate(rows):
        out[k] = (T0 + seq * 1_000_000, T0 + seq * 1_000_000 + 5, seq, side, price, qty, snap)
    return out


def trades(rows):
    out = np.zeros(len(rows), TRADE_DTYPE)
    for k, (trade_id, t_ms, price, qty, aggressor) in enumerate(rows):
        out[k] = (T0 + t_ms * 1_000_000, T0 + t_ms * 1_000_000, trade_id, price, qty, aggressor)
    return out


BOOK = [(1, 1, 100.0, 5.0, True), (1, 1, 99.0, 3.0, True), (1, -1, 101.0, 4.0, True), (1, -1, 102.0, 2.0, True)]


def test_validate_sends_each_bad_row_away_with_its_reason():
    d = deltas(BOOK + [(2, 1, float("nan"), 1.0, False), (3, -1, 101.0, -2.0, False), (4, 1, 100.0, 6.0, False),
                       (4, 1, 100.0, 6.0, False), (5, 3, 100.0, 1.0, False)])
    d["exch_ts"][-2] = T0  # row 7: back in time
    t = trades([(10, 1, 100.0, 1.0, 1), (10, 2, 100.0, 1.0, 1), (11, 3, 100.0, 0.0, -1), (12, 4, 100.0, 1.0, 2)])
    o = np.zeros(2, ORDER_EVENT_DTYPE)
    o["seq"] = (1, 1)
    o["event"], o["price"], o["qty"], o["side"] = 1, 100.0, 1.0, 1
    clean, rejects = validate(MarketEvents("sim:TEST", deltas=d, trades=t, orders=o))
    by_row = {(r.table, r.index): r.reason for r in rejects.itertuples()}
    assert by_row == {
        ("depth_deltas", 4): "price is not a finite number",
        ("depth_deltas", 5): "quantity is negative",
        ("depth_deltas", 7): "level repeated within one event",
        ("depth_deltas", 8): "side is neither 1 (bid) nor -1 (ask)",
        ("trades", 1): "duplicate trade id",
        ("trades", 2): "quantity is not positive",
        ("trades", 3): "aggressor is not -1, 0 or 1",
        ("order_events", 1): "duplicate event (sequence number seen before)",
    }
    assert len(clean.deltas) == 5 and len(clean.trades) == 1 and len(clean.orders) == 1
    assert "price=nan" in rejects.loc[rejects["index"] == 4, "raw"].iloc[0]


def test_out_of_order_rows_are_rejected():
    d = deltas(BOOK + [(2, 1, 100.0, 7.0, False), (3, 1, 100.0, 8.0, False), (4, 1, 100.0, 9.0, False)])
    d["exch_ts"][5] = T0 - 1  # seq 3 stamped before everything else
    _, rejects = validate(MarketEvents("sim:TEST", deltas=d))
    assert rejects[["table", "index", "reason"]].values.tolist() == [
        ["depth_deltas", 5, "exchange time goes backwards (out of order)"]]


def test_apply_groups_undoes_an_event_that_crosses_the_book():
    d = deltas(BOOK + [(2, 1, 101.0, 1.0, False), (2, 1, 100.0, 0.0, False),  # bid at the ask: crossed
                       (3, -1, 101.0, 0.0, False)])                            # then the ask level goes
    starts, counts = np.array([0, 4, 6]), np.array([4, 2, 1])
    bid_px, bid_sz, ask_px, ask_sz, crossed = L2Book(3).apply_groups(
        starts, counts, np.array([True, False, False]), d["side"], d["price"], d["qty"])
    assert crossed.tolist() == [False, True, False]
    np.testing.assert_array_equal(bid_px[1], [100.0, 99.0, np.nan])  # unchanged by the bad event
    np.testing.assert_array_equal(bid_sz[1], [5.0, 3.0, np.nan])
    np.testing.assert_array_equal(bid_px[2], [100.0, 99.0, np.nan])
    np.testing.assert_array_equal(ask_px[2], [102.0, np.nan, np.nan])


def test_write_market_events_stores_book_rows_and_quarantines(store_url):
    d = deltas(BOOK + [(2, 1, 100.5, 1.0, False), (3, 1, 101.5, 1.0, False), (4, -1, 101.0, 0.0, False),
                       (5, 1, float("nan"), 1.0, False)])
    t = trades([(1, 2, 101.0, 4.0, 1)])
    with connect(store_url) as store:
        migrate(store)
        counts = write_market_events(store, MarketEvents("sim:TEST", deltas=d, trades=t), "src", depth_levels=5)
        rows = store.query_rows("SELECT seq, bid_px[1], ask_px[1] FROM book_snapshots ORDER BY seq")
        quarantined = store.query_rows("SELECT stream, reason FROM quarantine ORDER BY line_no")
    assert counts["crossed"] == 1 and counts["quarantine"] == 2 and counts["trades"] == 1
    assert rows == [(1, 100.0, 101.0), (2, 100.5, 101.0), (4, 100.5, 102.0)]
    assert sorted(q[1].split(" (")[0].split(":")[0] for q in quarantined) == [
        "event would cross the book", "price is not a finite number"]


def test_lobster_ingest_is_idempotent_and_consistent(store_url):
    first = ingest_lobster(LOBSTER, store_url=store_url)
    again = ingest_lobster(LOBSTER, store_url=store_url)
    assert first.status == "ingested" and again.status == "skipped"
    assert first.counts["inconsistent"] == 0 and first.counts["quarantine"] == 0
    with connect(store_url) as store:
        n_orders, n_trades, n_book = (store.query_rows(f"SELECT count() FROM {t} WHERE symbol = 'nasdaq:AAPL'")[0][0]
                                      for t in ("order_events", "trades", "book_snapshots"))
        first_time = store.query_rows("SELECT toString(min(exch_ts)) FROM order_events")[0][0]
        levels = store.query_rows("SELECT length(bid_px) FROM book_snapshots LIMIT 1")[0][0]
    assert (n_orders, n_book) == (999, 999) and 0 < n_trades < 999 and levels == 10
    assert first_time.startswith("2012-06-21 13:30:00")  # 09:30 in New York (EDT)


def test_lobster_ingest_quarantines_rows_that_disagree_with_the_book(tmp_path, store_url):
    message = tmp_path / LOBSTER.name
    message.write_bytes(LOBSTER.read_bytes())
    book_lines = LOBSTER.with_name(LOBSTER.name.replace("message", "orderbook")).read_text().splitlines()
    cells = book_lines[499].split(",")
    cells[1] = str(int(cells[1]) + 7)  # best ask size after message 500 is off by 7
    book_lines[499] = ",".join(cells)
    (tmp_path / LOBSTER.name.replace("message", "orderbook")).write_text("\n".join(book_lines) + "\n")
    report = ingest_lobster(message, store_url=store_url)
    assert report.counts["inconsistent"] >= 1
    with connect(store_url) as store:
        lines = [r[0] for r in store.query_rows(
            "SELECT line_no FROM quarantine WHERE stream = 'lobster-consistency' ORDER BY line_no")]
    assert 500 in lines and set(lines) <= {500, 501}


def test_missing_lobster_file_is_a_clear_error(tmp_path, store_url):
    with pytest.raises((FileNotFoundError, ValueError), match="nothing_message_10.csv"):
        ingest_lobster(tmp_path / "AAPL_2012-06-21_0_1_nothing_message_10.csv", store_url=store_url)


TABLE_OF = {"deltas": "depth_deltas", "trades": "trades", "orders": "order_events"}


@pytest.mark.slow
def test_simulated_market_is_stored_with_episodes_and_every_bad_row_quarantined(store_url):
    from genesis.feeds.simulator import simulate
    from genesis.pipelines.ingest_events import episodes, ingest_simulation

    kwargs = dict(seconds=120.0, seed=5, scenarios=("spoofing", "wash_trades"),
                  bad_data=("crossed_book", "nan_negative", "duplicates", "out_of_order"))
    report = ingest_simulation(symbol="sim:TEST", store_url=store_url, **kwargs)
    assert report.status == "ingested" and report.symbols == ["sim:TEST"]
    assert ingest_simulation(symbol="sim:TEST", store_url=store_url, **kwargs).status == "skipped"

    expected = simulate(seconds=120.0, seed=5, scenarios=kwargs["scenarios"], bad_data=kwargs["bad_data"]).events
    with connect(store_url) as store:
        stored = episodes(store, "sim:TEST")
        quarantined = store.query_df("SELECT stream, line_no, reason FROM quarantine")
        n_orders = store.query_rows("SELECT count() FROM order_events")[0][0]
    assert stored["kind"].tolist() == expected.episodes["kind"].tolist()
    assert [list(ids) for ids in stored["order_ids"]] == [list(ids) for ids in expected.episodes["order_ids"]]
    # Every injected bad row is in quarantine (the table and the row it was injected at)...
    bad = simulate(seconds=120.0, seed=5, scenarios=kwargs["scenarios"], bad_data=kwargs["bad_data"]).bad_rows
    held = set(zip(quarantined["stream"], quarantined["line_no"] - 1))
    for row in bad.itertuples():
        assert (TABLE_OF[row.table], row.index) in held, f"{row.kind} at {row.table}[{row.index}] not quarantined"
    # ...and nothing else is: a clean simulation has no bad rows.
    assert len(quarantined) == len(bad)
    assert n_orders == len(expected.orders) - (bad["table"] == "orders").sum()


def test_ingest_commands(store_url, capsys):
    from genesis.cli import main

    assert main(["ingest", "lobster", str(LOBSTER), "--store", store_url]) == 0
    assert "as nasdaq:AAPL: 999 events" in capsys.readouterr().out
    assert main(["ingest", "simulate", "--scenario", "iceberg", "--seconds", "90", "--seed", "2",
                 "--store", store_url]) == 0
    assert "as sim:ICEBERG-2" in capsys.readouterr().out
    assert main(["ingest", "simulate", "--scenario", "iceberg", "--seconds", "90", "--seed", "2",
                 "--store", store_url]) == 0
    assert "already ingested" in capsys.readouterr().out
    with connect(store_url) as store:
        assert store.query_rows("SELECT groupUniqArray(kind) FROM episodes WHERE symbol = 'sim:ICEBERG-2'")[0][0] \
            == ["iceberg"]


def test_simulate_help_names_every_scenario_and_bad_data_kind(capsys):
    from genesis.cli import main
    from genesis.feeds.simulator import BAD_DATA, SCENARIOS

    with pytest.raises(SystemExit):
        main(["ingest", "simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in (*SCENARIOS, *BAD_DATA))
