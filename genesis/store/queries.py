"""Named read queries over the core tables (``clickhouse/*.sql``).

Notebooks and dashboards read through these instead of writing SQL of their own, so a
schema change is fixed in one place. Values always travel as bound ``{name:Type}``
parameters; only fixed SQL fragments are ever joined into query text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DATA_TABLES = ("depth_deltas", "book_snapshots", "trades", "quotes", "sequence_gaps")
TOP_OF_BOOK_COLUMNS = ("exch_ts", "local_ts", "seq", "bid_px", "bid_sz", "ask_px", "ask_sz", "mid", "spread")

_TOP_OF_BOOK = """
SELECT exch_ts, local_ts, seq, bid_px, bid_sz, ask_px, ask_sz,
       (bid_px + ask_px) / 2 AS mid, ask_px - bid_px AS spread
FROM (
    SELECT exch_ts, local_ts, seq,
           s.best_bid_px AS bid_px, s.best_bid_sz AS bid_sz, s.best_ask_px AS ask_px, s.best_ask_sz AS ask_sz
    FROM book_snapshots AS s
    WHERE {where}
)
ORDER BY exch_ts, seq
"""


def top_of_book(
    store, symbol: str, start: Any = None, end: Any = None, sampling: str = "event"
) -> pd.DataFrame:
    """Best bid and ask of ``symbol`` over time, from the stored book snapshots.

    ``start`` (inclusive) and ``end`` (exclusive) bound ``exch_ts``; anything
    :class:`pandas.Timestamp` reads (naive means UTC). ``sampling`` is ``'event'`` (a row after
    every applied depth event) or a grid stored at ingest, such as ``'100ms'``.
    Returns columns exch_ts, local_ts, seq, bid_px, bid_sz, ask_px, ask_sz, mid, spread;
    prices are NaN where a side of the book was empty.
    """
    where = ["symbol = {symbol:String}", "sampling = {sampling:String}"]
    parameters: dict[str, Any] = {"symbol": symbol, "sampling": sampling}
    add_time_range(where, parameters, "exch_ts", start, end)
    sql = _TOP_OF_BOOK.replace("{where}", " AND ".join(where))
    return _query(store, sql, TOP_OF_BOOK_COLUMNS, parameters)


def symbols(store) -> list[str]:
    """Every symbol with rows in any data table, sorted."""
    union = " UNION DISTINCT ".join(f"SELECT DISTINCT symbol FROM {table}" for table in DATA_TABLES)
    return _query(store, f"SELECT symbol FROM ({union}) ORDER BY symbol", ["symbol"])["symbol"].tolist()


def table_counts(store) -> pd.DataFrame:
    """Rows per data table (columns) per symbol (index); 0 where a table has none."""
    union = " UNION ALL ".join(
        f"SELECT '{table}' AS table, symbol, count() AS rows FROM {table} GROUP BY symbol" for table in DATA_TABLES
    )
    long = _query(store, union, ["table", "symbol", "rows"])
    wide = long.pivot_table(index="symbol", columns="table", values="rows", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=list(DATA_TABLES), fill_value=0).astype("int64")
    wide.columns.name = None
    return wide.sort_index()


def ingested_symbols(store, source_ids: list[str]) -> list[str]:
    """Symbols of the given ingested files (``source_id``, the sha256 of a file), sorted.

    From the ingest log, so that a file skipped as already ingested still names its symbols.
    """
    sql = (
        "SELECT DISTINCT arrayJoin(symbols) AS symbol FROM ingest_log FINAL"
        " WHERE status = 'done' AND has({source_ids:Array(String)}, source_id) ORDER BY symbol"
    )
    return _query(store, sql, ["symbol"], {"source_ids": list(source_ids)})["symbol"].tolist()


def quarantine_counts(store, source_ids: list[str] | None = None) -> pd.DataFrame:
    """Quarantined lines per file, stream and reason, most frequent first; of the given
    files (``source_id``) or, by default, of all."""
    where, parameters = "", None
    if source_ids is not None:
        where, parameters = "WHERE has({source_ids:Array(String)}, source_id)", {"source_ids": list(source_ids)}
    sql = (
        f"SELECT path, stream, reason, count() AS rows FROM quarantine {where}"
        " GROUP BY path, stream, reason ORDER BY rows DESC, path, stream, reason"
    )
    return _query(store, sql, ["path", "stream", "reason", "rows"], parameters)


def ingest_history(store) -> pd.DataFrame:
    """One row per ingest run (its latest state), newest first."""
    columns = ["started_at", "updated_at", "status", "kind", "path", "messages", "symbols", "counts", "message",
               "source_id", "run_id"]
    sql = f"SELECT {', '.join(columns)} FROM ingest_log FINAL ORDER BY started_at DESC, updated_at DESC"
    return _query(store, sql, columns)


def _query(store, sql: str, columns, parameters: dict[str, Any] | None = None) -> pd.DataFrame:
    """``store.query_df``, keeping ``columns`` when no row matches (for an empty result, the
    chDB backend returns a frame without columns)."""
    df = store.query_df(sql, parameters=parameters)
    return df if len(df.columns) else pd.DataFrame(columns=list(columns))


def to_ns(value: Any) -> int:
    """Nanoseconds since the epoch of anything :class:`pandas.Timestamp` reads; naive means UTC."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"time {value!r}: not a time pandas can read (e.g. 2024-08-08 23:55:00)") from None
    if ts is pd.NaT:
        raise ValueError(f"time {value!r}: not a time")
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).value


def add_time_range(where: list[str], parameters: dict[str, Any], column: str, start: Any = None,
                   end: Any = None) -> None:
    """Append ``column >= start`` and ``column < end`` (None: open on that side) to the clauses
    of a WHERE list, their values bound as ``{start:Int64}`` / ``{end:Int64}`` ns (:func:`to_ns`)."""
    if start is not None:
        where.append(f"{column} >= fromUnixTimestamp64Nano({{start:Int64}}, 'UTC')")
        parameters["start"] = to_ns(start)
    if end is not None:
        where.append(f"{column} < fromUnixTimestamp64Nano({{end:Int64}}, 'UTC')")
        parameters["end"] = to_ns(end)


def arrow_to_structured(table, dtype: np.dtype) -> np.ndarray:
    """A pyarrow table (e.g. ``store.query_arrow(...)``) as a NumPy structured array of ``dtype``,
    columns by name; timestamps become int64 ns."""
    out = np.empty(table.num_rows, dtype)
    for name in dtype.names:
        column = table.column(name)
        if str(column.type).startswith("timestamp"):
            column = column.cast("int64")
        out[name] = column.to_numpy(zero_copy_only=False)
    return out
