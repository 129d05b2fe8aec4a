"""The store: connection leases, migrations, the Arrow write path, binding, and the CLI."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from genesis.cli import main
from genesis.store import MigrationError, Store, StoreLockedError, connect, migrate
from genesis.store import migrations
from genesis.store.client import server_params
from genesis.store.migrations import split_statements

BTC = "binance-usdm:BTCUSDT"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'store'}"


@pytest.fixture
def migrated(url: str) -> str:
    with connect(url, lock_timeout=10) as store:
        migrate(store)
    return url


def _snapshot_columns(n: int, levels: int, source_id: str) -> dict:
    rng = np.random.default_rng(7)
    # Nanosecond timestamps whose last digits matter: a float64 or microsecond detour would lose them.
    exch_ts = 1_718_000_000_000_000_000 + np.cumsum(rng.integers(1, 1_000_000, n)).astype(np.int64) + 123
    bid_px = 100.0 - np.cumsum(rng.random((n, levels)), axis=1)
    bid_px[0, levels - 2 :] = np.nan  # a thin book: missing levels are NaN
    return {
        "symbol": BTC,
        "sampling": "event",
        "exch_ts": exch_ts,
        "local_ts": exch_ts + 987_654_321,
        "seq": np.arange(n, dtype=np.uint64),
        "bid_px": bid_px,
        "bid_sz": rng.random((n, levels)),
        "ask_px": 100.0 + np.cumsum(rng.random((n, levels)), axis=1),
        "ask_sz": rng.random((n, levels)),
        "source_id": source_id,
    }


# --- migrations ---------------------------------------------------------------------------


def test_migrate_applies_every_file_once(url):
    files = migrations.discover()
    with connect(url, lock_timeout=10) as store:
        assert [m.version for m in migrate(store)] == [m.version for m in files]
        assert migrate(store) == []
        tables = {row[0] for row in store.query_rows("SELECT name FROM system.tables WHERE database = currentDatabase()")}
        recorded = store.query_rows("SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert {"depth_deltas", "book_snapshots", "trades", "quotes", "quarantine", "ingest_log"} <= tables
    assert recorded == [(m.version, m.checksum) for m in files]


def test_status_lists_pending_then_applied(url):
    with connect(url, lock_timeout=10) as store:
        before = migrations.status(store)
        migrate(store)
        after = migrations.status(store)
    assert [(s.version, s.name, s.applied, s.applied_at) for s in before][0] == (1, "core", False, None)
    assert all(not s.applied for s in before)
    assert all(s.applied and s.applied_at is not None for s in after)
    assert [s.name for s in after] == [m.name for m in migrations.discover()]


def test_an_applied_file_that_changed_is_refused(url, tmp_path):
    directory = tmp_path / "clickhouse"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory)
    (directory / "900_extra.sql").write_text("CREATE TABLE IF NOT EXISTS extra (x UInt8) ENGINE = MergeTree ORDER BY x;\n")
    with connect(url, lock_timeout=10) as store:
        assert [m.name for m in migrate(store, directory)][-1] == "extra"
        with (directory / "900_extra.sql").open("a") as sql:
            sql.write("-- edited after it was applied\n")
        with pytest.raises(MigrationError, match="900_extra.sql changed after it was applied"):
            migrate(store, directory)
        with pytest.raises(MigrationError, match="900_extra.sql"):
            migrations.status(store, directory)


def test_misnamed_migration_file_is_an_error(tmp_path):
    (tmp_path / "core.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNN_name.sql"):
        migrations.discover(tmp_path)


def test_split_statements_ignores_semicolons_in_comments_and_quotes():
    script = textwrap.dedent(
        """
        -- header; not a statement
        CREATE TABLE a (s String DEFAULT 'x;y', `odd;name` UInt8) ENGINE = Memory;  /* trailing; */
        INSERT INTO a VALUES ('it''s; \\'quoted\\'', 1);
        -- a comment-only tail;
        """
    )
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[0].endswith("ENGINE = Memory")
    assert statements[1].startswith("/* trailing; */") and statements[1].endswith("1)")


def test_core_schema_splits_into_one_statement_per_table():
    text = (migrations.MIGRATIONS_DIR / "001_core.sql").read_text()
    statements = split_statements(text)
    assert len(statements) == text.count("CREATE TABLE")
    assert all("CREATE TABLE IF NOT EXISTS" in s for s in statements)


# --- writing and reading ------------------------------------------------------------------


def test_insert_columns_round_trips_nanoseconds_and_level_arrays(migrated):
    columns = _snapshot_columns(n=500, levels=10, source_id="snap-1")
    with connect(migrated, lock_timeout=10) as store:
        assert store.insert_columns("book_snapshots", columns) == 500
        table = store.query_arrow("SELECT exch_ts, local_ts, bid_px, ask_sz FROM book_snapshots ORDER BY exch_ts")
        # ClickHouse's own reading of the stored value: nanoseconds, not seconds.
        first_ns = store.query_rows("SELECT toUnixTimestamp64Nano(min(exch_ts)) FROM book_snapshots")[0][0]
    assert first_ns == columns["exch_ts"][0]
    np.testing.assert_array_equal(table["exch_ts"].cast(pa.int64()).to_numpy(), columns["exch_ts"])
    np.testing.assert_array_equal(table["local_ts"].cast(pa.int64()).to_numpy(), columns["local_ts"])
    bid_px = np.stack(table["bid_px"].to_pylist())
    np.testing.assert_array_equal(bid_px, columns["bid_px"])  # NaN where NaN went in
    assert np.isnan(bid_px[0, -2:]).all() and not np.isnan(bid_px[1:]).any()
    np.testing.assert_array_equal(np.stack(table["ask_sz"].to_pylist()), columns["ask_sz"])


def test_insert_columns_datetime64_arrays_and_explicit_types(migrated):
    received = np.array(["2024-06-10T12:00:00.000000001", "2024-06-10T12:00:00.999999999"], dtype="datetime64[ns]")
    started_ms = np.array([1_718_020_800_123, 1_718_020_800_456], dtype=np.int64)
    with connect(migrated, lock_timeout=10) as store:
        store.insert_columns(
            "quarantine",
            {"source_id": "q", "path": ["a.gz", "b.gz"], "line_no": np.array([1, 2], dtype=np.uint64),
             "local_ts": received, "stream": "depth", "reason": ["bad json", "bad json"], "raw": ["{", "}"],
             "ingested_at": started_ms},
            types={"ingested_at": pa.timestamp("ms", tz="UTC")},  # these ticks are milliseconds
        )
        rows = store.query_rows(
            "SELECT toUnixTimestamp64Nano(local_ts), toUnixTimestamp64Milli(ingested_at), path"
            " FROM quarantine ORDER BY line_no"
        )
    assert rows == [
        (received[0].astype(np.int64), started_ms[0], "a.gz"),
        (received[1].astype(np.int64), started_ms[1], "b.gz"),
    ]


def test_insert_columns_rejects_columns_of_different_lengths(migrated):
    with connect(migrated, lock_timeout=10) as store:
        with pytest.raises(ValueError, match="differ in length"):
            store.insert_columns("trades", {"exch_ts": np.arange(3), "price": np.ones(2)})
        assert store.query_rows("SELECT count() FROM trades") == [(0,)]


def test_values_with_quotes_are_bound_not_formatted(migrated):
    tricky = "it's'; DROP TABLE trades; --"
    n = 4
    with connect(migrated, lock_timeout=10) as store:
        for source_id in (tricky, "other"):
            store.insert_columns("trades", {
                "symbol": BTC, "exch_ts": np.arange(n, dtype=np.int64), "local_ts": np.arange(n, dtype=np.int64),
                "trade_id": np.arange(n, dtype=np.uint64), "price": np.full(n, 1.5), "qty": np.ones(n),
                "aggressor": np.ones(n, dtype=np.int8), "source_id": source_id,
            })
        found = store.query_rows("SELECT source_id, count() FROM trades WHERE source_id = {s:String} GROUP BY source_id",
                                 {"s": tricky})
        # Lightweight DELETE by source works on the embedded engine too (re-ingest relies on it).
        store.command("DELETE FROM trades WHERE source_id = {s:String}", {"s": tricky})
        left = store.query_rows("SELECT source_id, count() FROM trades GROUP BY source_id")
    assert found == [(tricky, n)]
    assert left == [("other", n)]


def test_parameters_without_a_placeholder_are_refused(migrated):
    with connect(migrated, lock_timeout=10) as store:
        with pytest.raises(ValueError, match="symbol"):
            store.query_rows("SELECT count() FROM trades WHERE symbol = %(symbol)s", {"symbol": BTC})


# --- leases -------------------------------------------------------------------------------


def test_nested_connect_in_one_process_shares_the_engine(migrated, tmp_path):
    with connect(migrated, lock_timeout=10) as outer:
        with connect(migrated, lock_timeout=10) as inner:
            inner.command("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
        assert outer.query_rows("SELECT count() FROM t") == [(0,)]  # outer survives inner's close
        with pytest.raises(RuntimeError, match="one store directory per process"):
            connect(f"chdb://{tmp_path / 'elsewhere'}", lock_timeout=1)
    with pytest.raises(RuntimeError, match="closed"):
        outer.query_rows("SELECT 1")
    with connect(f"chdb://{tmp_path / 'elsewhere'}", lock_timeout=1) as other:  # all leases returned
        assert other.is_embedded


def test_threads_open_and_close_stores_concurrently(migrated, tmp_path):
    def work(worker: int) -> None:
        for batch in range(5):
            with connect(migrated, lock_timeout=10) as store:
                store.command("INSERT INTO t SELECT {x:UInt16}", {"x": worker * 100 + batch})

    with connect(migrated, lock_timeout=10) as store:
        store.command("CREATE TABLE t (x UInt16) ENGINE = MergeTree ORDER BY x")
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(4)))
    with connect(migrated, lock_timeout=10) as store:
        assert store.query_rows("SELECT count(), uniqExact(x) FROM t") == [(20, 20)]
    with connect(f"chdb://{tmp_path / 'elsewhere'}", lock_timeout=1):  # every lease was returned
        pass


def test_a_store_dropped_without_close_returns_its_lease(migrated, tmp_path):
    forgotten = connect(migrated, lock_timeout=10)
    assert forgotten.query_rows("SELECT 1") == [(1,)]
    del forgotten
    gc.collect()
    with connect(f"chdb://{tmp_path / 'elsewhere'}", lock_timeout=1) as other:
        assert other.query_rows("SELECT 2") == [(2,)]


_HOLDER = """
import sys, time
from genesis.store import connect
with connect(sys.argv[1], lock_timeout=10) as store:
    store.command("CREATE TABLE IF NOT EXISTS held (x UInt8) ENGINE = MergeTree ORDER BY x")
    store.command("INSERT INTO held VALUES (42)")
    print("open", flush=True)
    if sys.argv[2] == "stdin":
        sys.stdin.readline()
    else:
        time.sleep(float(sys.argv[2]))
print("closed", flush=True)
"""


@contextmanager
def _held_by_another_process(url: str, hold: str):
    """A second process that holds the embedded store for ``hold`` seconds, or until told ("stdin")."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, hold],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "open"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.slow
def test_connect_waits_for_another_process_to_finish(url):
    with _held_by_another_process(url, "2") as holder:
        with connect(url, lock_timeout=10) as store:
            assert store.query_rows("SELECT x FROM held") == [(42,)]
        assert holder.wait(timeout=10) == 0
        assert holder.stdout.read().strip() == "closed"


@pytest.mark.slow
def test_connect_gives_up_with_a_message_naming_the_path(url, tmp_path):
    with _held_by_another_process(url, "stdin") as holder:
        with pytest.raises(StoreLockedError) as caught:
            connect(url, lock_timeout=0.3)
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(timeout=10) == 0
    message = str(caught.value)
    assert str(tmp_path / "store") in message
    assert "another process" in message and "GENESIS_CLICKHOUSE_URL" in message
    assert isinstance(caught.value, TimeoutError)  # the CLI reports it as one line


# --- URLs ---------------------------------------------------------------------------------


def test_server_url_parameters():
    assert server_params("https://ana%40desk:p%3Ass@ch.example.com/research") == {
        "host": "ch.example.com", "port": 8443, "username": "ana@desk", "password": "p:ss",
        "secure": True, "database": "research",
    }
    assert server_params("http://localhost") == {
        "host": "localhost", "port": 8123, "username": "default", "password": "",
        "secure": False, "database": "default",
    }


def test_store_url_masks_the_password():
    store = Store(object(), "http://ana:secret@ch:8123/genesis", release=lambda client: None)
    assert store.url == "http://ana:***@ch:8123/genesis"
    assert not store.is_embedded


def test_unsupported_or_relative_urls_are_refused():
    with pytest.raises(ValueError, match="expected"):
        connect("postgres://x/y", lock_timeout=0)
    with pytest.raises(ValueError, match="absolute"):
        connect("chdb://relative/store", lock_timeout=0)


# --- command line -------------------------------------------------------------------------


@pytest.fixture
def cli_store(migrated, monkeypatch) -> str:
    monkeypatch.setenv("GENESIS_CLICKHOUSE_URL", migrated)
    with connect(migrated, lock_timeout=10) as store:
        store.insert_columns("quotes", {
            "symbol": BTC, "exch_ts": np.array([1_718_000_000_000_000_001, 1_718_000_000_500_000_000]),
            "local_ts": np.array([1_718_000_000_000_000_002, 1_718_000_000_500_000_003]),
            "update_id": np.array([7, 8], dtype=np.uint64), "bid_px": np.array([100.5, np.nan]),
            "bid_sz": np.ones(2), "ask_px": np.array([101.0, 101.5]), "ask_sz": np.ones(2), "source_id": "it's",
        })
    return migrated


_QUOTES_QUERY = "SELECT update_id, exch_ts, bid_px, source_id FROM quotes WHERE source_id = {s:String} ORDER BY update_id"


def test_sql_table_format(cli_store, capsys):
    assert main(["sql", _QUOTES_QUERY, "--param", "s=it's"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["update_id", "exch_ts", "bid_px", "source_id"]
    assert lines[2].split() == ["7", "2024-06-10T06:13:20.000000001Z", "100.5", "it's"]
    assert lines[3].split() == ["8", "2024-06-10T06:13:20.500000000Z", "nan", "it's"]
    assert lines[-1] == "(2 rows)"
    assert lines[0].index("exch_ts") == lines[2].index("2024") == lines[3].index("2024")  # aligned


def test_sql_csv_format(cli_store, capsys):
    assert main(["sql", _QUOTES_QUERY, "--param", "s=it's", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "update_id,exch_ts,bid_px,source_id",
        "7,2024-06-10T06:13:20.000000001Z,100.5,it's",
        "8,2024-06-10T06:13:20.500000000Z,nan,it's",
    ]


def test_sql_json_format(cli_store, capsys):
    assert main(["sql", _QUOTES_QUERY, "--param", "s=it's", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"update_id": 7, "exch_ts": "2024-06-10T06:13:20.000000001Z", "bid_px": 100.5, "source_id": "it's"},
        {"update_id": 8, "exch_ts": "2024-06-10T06:13:20.500000000Z", "bid_px": None, "source_id": "it's"},
    ]


def test_sql_errors_are_one_line(cli_store, capsys):
    assert main(["sql", "SELECT * FROM no_such_table"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genesis: error: ") and "no_such_table" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["sql", "SELECT 1", "--param", "unused=1"]) == 2
    assert "placeholder" in capsys.readouterr().err


def test_db_migrate_and_status_commands(url, monkeypatch, capsys):
    monkeypatch.setenv("GENESIS_CLICKHOUSE_URL", url)
    assert main(["db", "status"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["001", "core", "pending"]
    assert main(["db", "migrate"]) == 0
    assert "applied 001_core" in capsys.readouterr().out
    assert main(["db", "migrate"]) == 0
    assert "0 applied now" in capsys.readouterr().out
    assert main(["db", "status"]) == 0
    header, _, first = capsys.readouterr().out.splitlines()[:3]
    assert header.split() == ["version", "name", "status", "applied_at"]
    assert first.split()[:3] == ["001", "core", "applied"] and first.endswith("UTC")


# --- a real server (opt-in) ---------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("GENESIS_TEST_CLICKHOUSE_URL"),
    reason="set GENESIS_TEST_CLICKHOUSE_URL=http://user:pass@host:8123/db to run against a ClickHouse server",
)
def test_round_trip_on_a_clickhouse_server():
    source_id = f"test-{uuid.uuid4()}"
    columns = _snapshot_columns(n=100, levels=5, source_id=source_id)
    with connect(os.environ["GENESIS_TEST_CLICKHOUSE_URL"]) as store:
        assert not store.is_embedded
        migrate(store)
        assert migrate(store) == []
        store.insert_columns("book_snapshots", columns)
        try:
            table = store.query_arrow(
                "SELECT exch_ts, bid_px FROM book_snapshots WHERE source_id = {s:String} ORDER BY exch_ts",
                {"s": source_id},
            )
        finally:
            store.command("DELETE FROM book_snapshots WHERE source_id = {s:String}", {"s": source_id})
    np.testing.assert_array_equal(table["exch_ts"].cast(pa.int64()).to_numpy(), columns["exch_ts"])
    np.testing.assert_array_equal(np.stack(table["bid_px"].to_pylist()), columns["bid_px"])
