"""Bars kept by the materialized views of clickhouse/009_bars.sql (on chDB) against bars computed in
pandas from the same real trades; backfill, delete / rebuild, CSV export, upload and its quarantine."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ALL_CAPTURES, capture_path
from genesis.analytics.bars import (
    INTERVALS, close_matrix, delete_source, export_csv, read_bars, rebuild, reference_bars, upload_bars,
)
from genesis.feeds.binance.capture import read_capture
from genesis.pipelines.ingest import ingest_binance_capture
from genesis.store import connect, migrate
from genesis.store.migrations import MIGRATIONS_DIR

BTC, ETH = "binance-usdm:BTCUSDT", "binance-spot:ETHUSDT"
BUNDLED_NAMES = ("usdm_btcusdt_20240808.jsonl.gz", "spot_ethusdt_20240808.jsonl.gz")


def assert_bars_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want) > 0
    pd.testing.assert_series_equal(got["ts"], want["ts"], check_names=False)
    for column in ("open", "high", "low", "close", "trades"):  # exact: picked, not summed
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), err_msg=column)
    for column in ("volume", "buy_volume", "notional", "vwap"):  # sums: order of addition differs
        np.testing.assert_allclose(got[column].to_numpy(), want[column].to_numpy(), rtol=1e-11, err_msg=column)


def capture_trades(name: str) -> tuple[str, np.ndarray]:
    events = read_capture(capture_path(name)).symbol_events()
    return events.symbol, events.trades


@pytest.fixture(scope="module")
def bundled_store(tmp_path_factory) -> str:
    url = f"chdb://{tmp_path_factory.mktemp('bars') / 'store'}"
    ingest_binance_capture([capture_path(n) for n in BUNDLED_NAMES], store_url=url, progress=False)
    return url


@pytest.mark.parametrize("name", BUNDLED_NAMES)
@pytest.mark.parametrize("interval", list(INTERVALS))
def test_view_bars_equal_pandas_bars_of_the_same_trades(bundled_store, name, interval):
    symbol, trades = capture_trades(name)
    with connect(bundled_store) as store:
        got = read_bars(store, symbol, interval)
    want = reference_bars(trades, interval)
    assert_bars_equal(got, want)
    assert got["trades"].sum() == len(trades)
    if interval == "1s":
        assert len(got) > 300  # about six minutes of trading, nearly every second


def test_time_range_is_start_inclusive_end_exclusive(bundled_store):
    with connect(bundled_store) as store:
        bars = read_bars(store, BTC, "1s", "2024-08-08 23:56:00", "2024-08-08 23:56:10")
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-08-08 23:56:00")
    assert bars["ts"].iloc[-1] == pd.Timestamp("2024-08-08 23:56:09")


@pytest.mark.parametrize("name", [n for n in ALL_CAPTURES if n not in BUNDLED_NAMES])
def test_view_bars_on_the_other_shared_captures(tmp_path, name):
    """The other captures: bundled, or from ../shared/data when beside the clone (skipped otherwise)."""
    symbol, trades = capture_trades(name)
    url = f"chdb://{tmp_path / 'store'}"
    ingest_binance_capture(capture_path(name), store_url=url, progress=False)
    with connect(url) as store:
        for interval in INTERVALS:
            assert_bars_equal(read_bars(store, symbol, interval), reference_bars(trades, interval))


def test_migration_backfills_trades_stored_before_it(tmp_path):
    """A store with trades from before 009: applying 009 computes their bars."""
    older = tmp_path / "older"
    older.mkdir()
    for sql in MIGRATIONS_DIR.glob("*.sql"):
        if int(sql.name[:3]) < 9:
            shutil.copy(sql, older / sql.name)
    symbol, trades = capture_trades(BUNDLED_NAMES[1])
    with connect(f"chdb://{tmp_path / 'store'}") as store:
        migrate(store, older)
        assert not store.command("EXISTS TABLE trade_bars")
        store.insert_columns("trades", {"symbol": symbol, "source_id": "before-009",
                                        **{c: trades[c] for c in trades.dtype.names}})
        applied = migrate(store)
        assert 9 in [m.version for m in applied]
        for interval in INTERVALS:
            assert_bars_equal(read_bars(store, symbol, interval), reference_bars(trades, interval))
        # Later inserts go through the views and merge with the backfilled bars.
        store.insert_columns("trades", {"symbol": symbol, "source_id": "after-009",
                                        **{c: trades[c][-5:] for c in trades.dtype.names}})
        both = np.concatenate([trades, trades[-5:]])
        assert_bars_equal(read_bars(store, symbol, "1m"), reference_bars(both, "1m"))
        # ... and after ClickHouse merges the partial bars (the aggregate states combine).
        store.command("OPTIMIZE TABLE trade_bars FINAL")
        # one row per bar and source: 7 bars of the first source, the last one of the second
        assert store.query_rows("SELECT count() FROM trade_bars WHERE interval = '1m'")[0][0] == 7 + 1
        assert_bars_equal(read_bars(store, symbol, "1m"), reference_bars(both, "1m"))


def test_delete_source_and_rebuild(tmp_path):
    url = f"chdb://{tmp_path / 'store'}"
    report = ingest_binance_capture(capture_path(BUNDLED_NAMES[1]), store_url=url, progress=False)
    symbol, trades = capture_trades(BUNDLED_NAMES[1])
    with connect(url) as store:
        # A view sees inserts only: trades deleted by source need their bars deleted too.
        store.command("DELETE FROM trades WHERE source_id = {s:String}", {"s": report.files[0].source_id})
        assert len(read_bars(store, symbol, "1m")) > 0
        delete_source(store, report.files[0].source_id)
        assert len(read_bars(store, symbol, "1m")) == 0
        # rebuild recomputes from whatever trades the store holds.
        store.insert_columns("trades", {"symbol": symbol, "source_id": "x",
                                        **{c: trades[c] for c in trades.dtype.names}})
        store.command("DELETE FROM trade_bars WHERE 1")
        assert rebuild(store, symbol) == sum(len(reference_bars(trades, i)) for i in INTERVALS)
        assert_bars_equal(read_bars(store, symbol, "5m"), reference_bars(trades, "5m"))


def test_close_matrix_is_on_one_grid_with_the_last_close_carried(bundled_store):
    with connect(bundled_store) as store:
        wide = close_matrix(store, [BTC, ETH], "1s")
        btc = read_bars(store, BTC, "1s").set_index("ts")["close"]
    assert list(wide.columns) == [BTC, ETH] and wide.notna().all().all()
    steps = np.diff(wide.index.to_numpy()).astype(np.int64)
    assert (steps == 1_000_000_000).all()
    held = wide.index.intersection(btc.index)
    np.testing.assert_array_equal(wide.loc[held, BTC].to_numpy(), btc.loc[held].to_numpy())
    gaps = wide.index.difference(btc.index)
    for ts in gaps[:20]:
        assert wide.loc[ts, BTC] == btc.loc[:ts].iloc[-1]


def test_csv_export_uploads_back(bundled_store, tmp_path):
    with connect(bundled_store) as store:
        bars = read_bars(store, ETH, "1m")
    path = export_csv(bars, tmp_path / "eth_1m.csv", symbol="binance-spot:ETHUSDT-hist", interval="1m")
    text = path.read_text().splitlines()
    assert text[0].startswith("ts,symbol,interval,open,high,low,close,volume")
    assert text[1].startswith("2024-08-08T23:54:00.000000Z,binance-spot:ETHUSDT-hist,1m,")
    report = upload_bars(path, store_url=bundled_store)
    assert (report.status, report.rows, report.quarantined) == ("uploaded", len(bars), 0)
    with connect(bundled_store) as store:
        back = read_bars(store, "binance-spot:ETHUSDT-hist", "1m", source="upload")
    pd.testing.assert_frame_equal(back[["ts", "open", "high", "low", "close", "volume", "trades"]],
                                  bars[["ts", "open", "high", "low", "close", "volume", "trades"]], rtol=1e-12)
    assert upload_bars(path, store_url=bundled_store).status == "skipped"


GOOD = "2024-01-01 00:0{m}:00,100,101,99,100.5,2.5,7"


def test_upload_quarantines_bad_rows_with_the_reason(tmp_path, store_url):
    rows = [
        GOOD.format(m=0),
        GOOD.format(m=1).replace(",101,", ",100.2,"),         # high below close
        GOOD.format(m=2).replace(",2.5,", ",-1,"),             # negative volume
        "yesterday-ish,100,101,99,100.5,2.5,7",                # unreadable time
        GOOD.format(m=3).replace(",100,", ",abc,", 1),          # open not a number
        GOOD.format(m=4).replace(",99,", ",100.7,"),            # low above min(open, close)
        GOOD.format(m=0),                                      # duplicate of the first
        "2024-01-01 00:05:30,100,101,99,100.5,2.5,7",          # not the start of a 1m bar
        GOOD.format(m=6).replace(",100,", ",0,", 1).replace(",99,", ",0,"),  # open not positive
        GOOD.format(m=7),
    ]
    path = tmp_path / "hist.csv"
    path.write_text("timestamp,Open,High,Low,Close,Volume,trades\n" + "\n".join(rows) + "\n")
    report = upload_bars(path, symbol="binance-spot:ETHUSDT", interval="1m", store_url=store_url)
    assert report.rows == 2 and report.quarantined == 8
    with connect(store_url) as store:
        quarantined = store.query_df("SELECT line_no, stream, reason, raw FROM quarantine ORDER BY line_no")
        stored = read_bars(store, "binance-spot:ETHUSDT", "1m", source="upload")
        log = store.query_rows("SELECT kind, status, counts FROM ingest_log FINAL")
    assert stored["ts"].tolist() == [pd.Timestamp("2024-01-01 00:00"), pd.Timestamp("2024-01-01 00:07")]
    assert stored["trades"].tolist() == [7, 7]
    assert quarantined["line_no"].tolist() == [3, 4, 5, 6, 7, 8, 9, 10]  # file lines (the header is line 1)
    assert set(quarantined["stream"]) == {"bars_upload"}
    reasons = quarantined["reason"].tolist()
    assert reasons[0] == "high 100.2 is below max(open, close, low) 100.5"
    assert reasons[1] == "volume -1 is negative"
    assert reasons[2] == "unreadable time 'yesterday-ish'"
    assert reasons[3] == "open 'abc' is not a finite number"
    assert reasons[4] == "low 100.7 is above min(open, close) 100"
    assert reasons[5].startswith("duplicate bar (binance-spot:ETHUSDT, 1m, 2024-01-01 00:00:00")
    assert reasons[6] == "time 2024-01-01 00:05:30+00:00 is not the start of a 1m bar"
    assert reasons[7] == "open 0 is not positive"
    assert '"Open": "abc"' in quarantined["raw"].iloc[3]  # the raw row, as read
    assert log == [("bars-upload", "done", {"uploaded_bars": 2, "quarantine": 8})]


def test_upload_parquet_with_symbol_column_and_epoch_ms(tmp_path, store_url):
    ts = pd.date_range("2024-01-01", periods=4, freq="1h").as_unit("ns").asi8 // 1_000_000
    frame = pd.DataFrame({"open_time": ts, "symbol": ["binance-spot:BTCUSDT"] * 3 + ["BTCUSDT"],
                          "interval": "1h", "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0})
    path = tmp_path / "h.parquet"
    frame.to_parquet(path)
    report = upload_bars(path, store_url=store_url)
    assert (report.rows, report.quarantined) == (3, 1)
    assert report.reasons == {"symbol 'BTCUSDT' is not namespaced as 'venue:SYMBOL'": 1}
    with connect(store_url) as store:
        bars = read_bars(store, "binance-spot:BTCUSDT", "1h", source="upload")
        line = store.query_rows("SELECT line_no FROM quarantine")[0][0]
    assert bars["ts"].tolist() == list(pd.date_range("2024-01-01", periods=3, freq="1h"))
    assert line == 4  # Parquet rows counted from 1
    # The same bars again from another file replace the earlier ones (one bar per ts).
    frame["close"] = 1.75
    frame.iloc[:3].to_parquet(tmp_path / "h2.parquet")
    assert upload_bars(tmp_path / "h2.parquet", store_url=store_url).rows == 3
    with connect(store_url) as store:
        assert read_bars(store, "binance-spot:BTCUSDT", "1h", source="upload")["close"].tolist() == [1.75] * 3


def test_upload_refuses_a_file_without_the_required_columns(tmp_path, store_url):
    path = tmp_path / "bad.csv"
    path.write_text("ts,open,high,close\n2024-01-01,1,2,1\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) low, volume, symbol \(or give symbol=\)"):
        upload_bars(path, interval="1m", store_url=store_url)
    with pytest.raises(ValueError, match="expected a .csv"):
        (tmp_path / "bars.xlsx").write_bytes(b"x")
        upload_bars(tmp_path / "bars.xlsx", store_url=store_url)


def test_read_bars_refuses_bad_arguments(bundled_store):
    with connect(bundled_store) as store:
        with pytest.raises(ValueError, match="kept at 1s, 1m, 5m"):
            read_bars(store, BTC, "1h")
        with pytest.raises(ValueError, match="source="):
            read_bars(store, BTC, "1m", source="bogus")
        with pytest.raises(LookupError, match="no 1s bars of binance-usdm:NOPE"):
            close_matrix(store, [BTC, "binance-usdm:NOPE"], "1s")


def test_replace_ingest_keeps_the_bars_of_one_copy(tmp_path):
    url = f"chdb://{tmp_path / 'store'}"
    path = capture_path(BUNDLED_NAMES[1])
    ingest_binance_capture(path, store_url=url, progress=False)
    ingest_binance_capture(path, store_url=url, replace=True, progress=False)
    symbol, trades = capture_trades(BUNDLED_NAMES[1])
    with connect(url) as store:
        assert_bars_equal(read_bars(store, symbol, "1m"), reference_bars(trades, "1m"))
