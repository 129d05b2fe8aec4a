"""Ingest into the embedded store: exact counts, idempotency, quarantine, rollback, checkpoints."""

from __future__ import annotations

import gzip

import pytest

from tests.conftest import capture_lines, capture_path
from genesis.cli import main
from genesis.pipelines import ingest as ingest_module
from genesis.pipelines.ingest import SOURCE_TABLES, ingest_binance_capture
from genesis.store import connect

BTC = "binance-usdm:BTCUSDT"
SAMPLE = "usdm_btcusdt_20240808.jsonl.gz"


def table_counts(url: str) -> dict[str, int]:
    with connect(url) as store:
        return {t: store.query_rows(f"SELECT count() FROM {t}")[0][0] for t in SOURCE_TABLES}


def book_ticker_agreement(url: str, symbol: str) -> tuple[int, int]:
    """(checked, agreeing) over stored rows: bookTickers whose u is an applied event's final id."""
    with connect(url) as store:
        return store.query_rows(
            "SELECT count(), countIf(s.bid_px[1] = q.bid_px AND s.bid_sz[1] = q.bid_sz"
            "   AND s.ask_px[1] = q.ask_px AND s.ask_sz[1] = q.ask_sz)"
            " FROM book_snapshots AS s INNER JOIN quotes AS q ON s.symbol = q.symbol AND s.seq = q.update_id"
            " WHERE s.symbol = {symbol:String} AND s.sampling = 'event'",
            {"symbol": symbol},
        )[0]


def test_trades_exactly_once_and_second_ingest_changes_nothing(store_url):
    path = capture_path(SAMPLE)
    n_trade_lines = sum(b"@trade" in line[:60] for line in capture_lines(SAMPLE))
    assert n_trade_lines == 21_313
    first = ingest_binance_capture(path, store_url=store_url, progress=False)
    assert first.files[0].status == "ingested" and first.total("trades") == 21_313
    counts = table_counts(store_url)
    assert counts["trades"] == 21_313 and counts["quarantine"] == 0 and counts["sequence_gaps"] == 0
    assert counts["depth_deltas"] > 0 and counts["book_snapshots"] > 0 and counts["quotes"] == 66_089

    second = ingest_binance_capture(path, store_url=store_url, progress=False)
    assert second.files[0].status == "skipped"
    assert second.total("trades") == 0  # nothing written by this run...
    assert second.to_frame().loc[0, "trades"] == 21_313  # ...and the report shows what the store holds
    assert table_counts(store_url) == counts

    replaced = ingest_binance_capture(path, store_url=store_url, replace=True, progress=False)
    assert replaced.files[0].status == "replaced"
    assert table_counts(store_url) == counts

    checked, agreeing = book_ticker_agreement(store_url, BTC)
    assert checked >= 600 and agreeing == checked


def test_grid_snapshots_on_request(store_url):
    ingest_binance_capture(capture_path(SAMPLE), store_url=store_url, grid="1s", progress=False)
    with connect(store_url) as store:
        rows = store.query_rows(
            "SELECT count(), countIf(toUnixTimestamp64Nano(exch_ts) % 1000000000 = 0),"
            " countIf(bid_px[1] < ask_px[1]) FROM book_snapshots WHERE sampling = '1s'")[0]
    assert 300 <= rows[0] <= 400  # about six minutes at one row a second
    assert rows[0] == rows[1] == rows[2]


def test_rotated_files_ingested_on_different_days_continue_through_the_checkpoint(store_url, tmp_path):
    lines = capture_lines(SAMPLE)
    depth_lines = [i for i, line in enumerate(lines) if b"@depth" in line[:60]]
    cut = depth_lines[len(depth_lines) // 2]
    day1, day2 = tmp_path / "usdm_btcusdt_day1.jsonl.gz", tmp_path / "usdm_btcusdt_day2.jsonl.gz"
    day1.write_bytes(gzip.compress(b"\n".join(lines[:cut]) + b"\n"))
    day2.write_bytes(gzip.compress(b"\n".join(lines[cut:]) + b"\n"))

    ingest_binance_capture(day1, store_url=store_url, progress=False)
    report = ingest_binance_capture(day2, store_url=store_url, progress=False)  # a new run: no book in memory
    assert report.total("gaps") == 0 and report.total("book_snapshots") > 1000

    whole_url = f"chdb://{tmp_path / 'whole'}"
    ingest_binance_capture(capture_path(SAMPLE), store_url=whole_url, progress=False)
    split_counts, whole_counts = table_counts(store_url), table_counts(whole_url)
    for table in ("depth_deltas", "book_snapshots", "trades", "quotes"):
        assert split_counts[table] == whole_counts[table], table
    checked, agreeing = book_ticker_agreement(store_url, BTC)
    assert checked >= 600 and agreeing == checked


def test_second_file_without_snapshot_or_checkpoint_is_reported_not_applied(store_url, tmp_path):
    lines = capture_lines(SAMPLE)
    tail = [line for line in lines[len(lines) // 2:]]
    orphan = tmp_path / "usdm_btcusdt_orphan.jsonl"
    orphan.write_bytes(b"\n".join(tail) + b"\n")
    report = ingest_binance_capture(orphan, store_url=store_url, progress=False)
    n_depth = sum(b"@depth" in line[:60] for line in tail)
    assert report.total("book_snapshots") == 0 and report.total("depth_deltas") == 0
    assert report.total("quarantine") == n_depth  # every depth event kept, with its reason
    with connect(store_url) as store:
        reasons = store.query_rows("SELECT DISTINCT reason FROM quarantine")
    assert reasons == [("not applied: book invalid after a sequence gap and no snapshot followed",)]


def _inject(lines: list[bytes]) -> tuple[list[bytes], dict[str, int]]:
    """Real lines with one malformed line of each kind inserted after the book is live."""
    first_trade = next(i for i, line in enumerate(lines) if b"@trade" in line[:60] and i > 200)
    trade = lines[first_trade]
    depth_at = next(i for i, line in enumerate(lines) if b"@depth" in line[:60] and i > 300)
    depth = lines[depth_at]
    ts = depth.split(b" ", 1)[0]
    # A bid far above every ask, chained correctly after the depth event before it.
    crossing = depth.replace(b'"b":[', b'"b":[["99999.90","1.000"],', 1)
    bad = {
        "truncated message": trade[: len(trade) // 2],
        "invalid JSON": trade.replace(b'"p":', b'"p"', 1),
        "trade price is 'NaN'": trade.replace(trade[trade.index(b'"p":"') + 5: trade.index(b'","q"')], b"NaN", 1),
        "trade size '-0.5' is negative": trade.replace(trade[trade.index(b'"q":"') + 5: trade.index(b'","X"')], b"-0.5", 1),
        "unknown stream 'btcusdt@kline_1m'": ts + b' {"stream":"btcusdt@kline_1m","data":{"e":"kline"}}',
        "line does not start with '<receive time ns> '": b'{"stream":"btcusdt@trade","data":{}}',
    }
    out = lines[:depth_at] + list(bad.values()) + [crossing] + lines[depth_at + 1:]
    expected = {reason: 1 for reason in bad}
    expected["crossed book after update"] = 1
    return out, expected


def test_malformed_lines_go_to_quarantine_with_reason_and_valid_rows_around_them_are_kept(store_url, tmp_path):
    lines = capture_lines(SAMPLE)[:3000]
    injected, expected = _inject(lines)
    path = tmp_path / "usdm_btcusdt_faulty.jsonl"
    path.write_bytes(b"\n".join(injected) + b"\n")
    report = ingest_binance_capture(path, store_url=store_url, progress=False)

    with connect(store_url) as store:
        rows = store.query_rows("SELECT line_no, reason, raw FROM quarantine ORDER BY line_no")
        trades = store.query_rows("SELECT count() FROM trades")[0][0]
    by_reason = {reason: [r for r in rows if r[1].startswith(reason)] for reason in expected}
    for reason, n in expected.items():
        assert len(by_reason[reason]) == n, (reason, [r[1] for r in rows])
    for line_no, _reason, raw in rows:
        assert raw.encode() == injected[line_no - 1]  # the raw text, exactly, at its line
    assert trades == sum(b"@trade" in line[:60] for line in lines)  # every valid trade kept
    # After the crossing update the book waits for a snapshot that never comes: those events are kept too.
    unapplied = [r for r in rows if r[1].startswith("not applied")]
    assert report.total("quarantine") == len(rows) == len(expected) + len(unapplied)
    assert report.total("gaps") == 1


def test_a_failed_ingest_rolls_back_and_the_next_run_completes(store_url, monkeypatch):
    path = capture_path(SAMPLE)
    original = ingest_module.insert_book_rows

    def failing(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(ingest_module, "insert_book_rows", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_binance_capture(path, store_url=store_url, progress=False)
    assert sum(table_counts(store_url).values()) == 0  # the deltas written before the failure are gone
    with connect(store_url) as store:
        assert store.query_rows("SELECT status FROM ingest_log FINAL") == [("failed",)]

    monkeypatch.setattr(ingest_module, "insert_book_rows", original)
    report = ingest_binance_capture(path, store_url=store_url, progress=False)
    assert report.files[0].status == "ingested" and table_counts(store_url)["trades"] == 21_313


def test_cli_ingest_prints_where_rows_went(store_url, capsys):
    assert main(["ingest", "binance-capture", str(capture_path(SAMPLE)), "--store", store_url, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ingested 1 file(s), 93,954 messages" in out and "21,313" in out


def test_cli_ingest_missing_file_is_a_clear_error(store_url, capsys, tmp_path):
    missing = tmp_path / "nope.jsonl.gz"
    assert main(["ingest", "binance-capture", str(missing), "--store", store_url]) == 2
    assert f"capture file not found: {missing}" in capsys.readouterr().err
