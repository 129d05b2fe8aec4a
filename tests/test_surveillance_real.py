"""Surveillance over the real captures: every alert's evidence points at stored events."""

from __future__ import annotations

import pytest

from genesis.pipelines.ingest import ingest_binance_capture
from genesis.store import connect
from genesis.surveillance.store import alert_rates, run_surveillance
from tests.conftest import ALL_CAPTURES, capture_path

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_alert_evidence_points_at_stored_events(name, store_url):
    report = ingest_binance_capture(capture_path(name), store_url=store_url, progress=False)
    (symbol,) = report.files[0].symbols
    run = run_surveillance(symbol, store_url=store_url)
    assert not run.already_run
    with connect(store_url) as store:
        stored = store.query_rows("SELECT count() FROM alerts WHERE symbol = {s:String}", {"s": symbol})[0][0]
        # Each alert's first and last event is a stored book row or trade of the symbol.
        orphans = store.query_rows(
            "SELECT count() FROM alerts AS a WHERE a.symbol = {s:String} AND ("
            " a.start_ts NOT IN (SELECT exch_ts FROM book_snapshots WHERE symbol = {s:String} AND sampling = 'event'"
            "                    UNION ALL SELECT exch_ts FROM trades WHERE symbol = {s:String})"
            " OR a.end_ts NOT IN (SELECT exch_ts FROM book_snapshots WHERE symbol = {s:String} AND sampling = 'event'"
            "                    UNION ALL SELECT exch_ts FROM trades WHERE symbol = {s:String}))", {"s": symbol})[0][0]
        # Prices an alert cites lie within the range the book showed during its episode.
        outside = store.query_rows(
            "SELECT count() FROM alerts AS a WHERE a.symbol = {s:String}"
            " AND JSONHas(a.evidence, 'price') AND JSONExtractFloat(a.evidence, 'price') NOT BETWEEN"
            " (SELECT min(arrayMin(arrayFilter(x -> isFinite(x), bid_px))) FROM book_snapshots"
            "  WHERE symbol = {s:String}) AND"
            " (SELECT max(arrayMax(arrayFilter(x -> isFinite(x), ask_px))) FROM book_snapshots"
            "  WHERE symbol = {s:String})", {"s": symbol})[0][0]
    assert stored == len(run.alerts)
    assert orphans == 0
    assert outside == 0
    rates = alert_rates(store_url, [symbol])
    assert rates.loc[symbol, "hours"] > 0.09  # six minutes of data
    assert (rates.drop(columns="hours").sum(axis=1) * rates["hours"]).loc[symbol] == pytest.approx(stored)
