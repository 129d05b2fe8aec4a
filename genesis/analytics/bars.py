"""OHLCV bars: read from the store, computed in pandas (the reference), exported, uploaded.

The store keeps bars of every traded symbol at 1s, 1m and 5m, maintained by ClickHouse
materialized views from ``trades`` (``clickhouse/009_bars.sql``): nothing to run after an
ingest. Bars are on the venue clock (``exch_ts``); ``ts`` is the bar's start, UTC. A bar exists
only where the symbol traded. Historical bars of any interval can be uploaded from CSV or
Parquet files (:func:`upload_bars`); rows that fail validation go to ``quarantine`` with the reason.

>>> with connect() as store:
...     bars = read_bars(store, "binance-usdm:BTCUSDT", "1m")
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from genesis.store.queries import add_time_range

INTERVALS = {"1s": 1_000_000_000, "1m": 60_000_000_000, "5m": 300_000_000_000}  # stored by the views, in ns
BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume", "buy_volume", "notional", "vwap", "trades")
UPLOAD_KIND = "bars-upload"
UPLOAD_STREAM = "bars_upload"
# Columns of an uploaded file: required, then optional, with the names accepted for each.
_UPLOAD_ALIASES = {
    "ts": ("ts", "timestamp", "time", "open_time", "date", "datetime"),
    "open": ("open", "o"), "high": ("high", "h"), "low": ("low", "l"), "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
    "symbol": ("symbol",), "interval": ("interval",), "trades": ("trades", "count", "n_trades"),
}
_UPLOAD_REQUIRED = ("ts", "open", "high", "low", "close", "volume")

_READ_TRADE_BARS = """
SELECT ts, open, high, low, close, volume, buy_volume, notional, vwap, trades
FROM bars
WHERE symbol = {symbol:String} AND interval = {interval:String} AND {where}
ORDER BY ts
"""
_READ_UPLOADED_BARS = """
SELECT ts, open, high, low, close, volume, nan AS buy_volume, nan AS notional, nan AS vwap, trades
FROM uploaded_bars FINAL
WHERE symbol = {symbol:String} AND interval = {interval:String} AND {where}
ORDER BY ts
"""


def interval_ns(interval: str) -> int:
    """Length of a bar interval such as ``'1s'``, ``'1m'``, ``'5m'``, ``'1h'``, ``'1d'``, in ns."""
    try:
        delta = pd.Timedelta(interval.replace("m", "min") if interval.endswith("m") else interval)
    except (ValueError, AttributeError):
        raise ValueError(f"bar interval {interval!r}: expected e.g. '1s', '1m', '5m', '1h', '1d'") from None
    if delta.value <= 0:
        raise ValueError(f"bar interval {interval!r}: must be positive")
    return int(delta.value)


def read_bars(store, symbol: str, interval: str = "1m", start: Any = None, end: Any = None,
              source: str = "trades") -> pd.DataFrame:
    """Bars of ``symbol`` with ``start <= ts < end`` (anything :class:`pandas.Timestamp` reads;
    naive means UTC), oldest first.

    ``source``: ``'trades'`` (the bars the views keep; interval '1s', '1m' or '5m'),
    ``'upload'`` (uploaded historical bars, any interval) or ``'all'`` (both; where both have a
    bar, the one from trades). Returns columns ts (naive UTC ``datetime64[ns]``), open, high, low,
    close, volume, buy_volume, notional, vwap (NaN for uploaded bars), trades.
    """
    if source not in ("trades", "upload", "all"):
        raise ValueError(f"source={source!r}: choose 'trades', 'upload' or 'all'")
    if source == "trades" and interval not in INTERVALS:
        raise ValueError(f"interval={interval!r}: bars from trades are kept at {', '.join(INTERVALS)}")
    interval_ns(interval)
    where, parameters = ["1"], {"symbol": symbol, "interval": interval}
    add_time_range(where, parameters, "ts", start, end)
    frames = []
    if source in ("trades", "all") and interval in INTERVALS:
        frames.append(_query(store, _READ_TRADE_BARS.replace("{where}", " AND ".join(where)), parameters))
    if source in ("upload", "all"):
        frames.append(_query(store, _READ_UPLOADED_BARS.replace("{where}", " AND ".join(where)), parameters))
    bars = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frames) > 1:  # the first of each ts wins: the bars from trades
        bars = bars.drop_duplicates("ts", keep="first").sort_values("ts", kind="stable").reset_index(drop=True)
    return bars


def _query(store, sql: str, parameters: dict) -> pd.DataFrame:
    frame = store.query_df(sql, parameters=parameters)
    if not len(frame.columns):  # chDB returns no columns for an empty result
        frame = pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "ts" else "float64") for c in BAR_COLUMNS})
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[ns]")
    frame["trades"] = frame["trades"].astype("int64")
    return frame[list(BAR_COLUMNS)]


def bar_symbols(store, interval: str = "1m") -> list[str]:
    """Symbols with bars from trades at ``interval`` or uploaded ones, sorted."""
    sql = ("SELECT DISTINCT symbol FROM trade_bars WHERE interval = {interval:String}"
           " UNION DISTINCT SELECT DISTINCT symbol FROM uploaded_bars WHERE interval = {interval:String}")
    return sorted(store.query_df(sql, parameters={"interval": interval}).get("symbol", pd.Series(dtype=str)).tolist())


def close_matrix(store, symbols: list[str], interval: str = "1s", start: Any = None, end: Any = None,
                 source: str = "trades") -> pd.DataFrame:
    """Closes of several symbols on one bar grid: index ts (every bar start from the first bar
    all symbols have to the last bar of any), one column per symbol; a bar without trades
    carries the previous close forward (the last traded price). Shape ``(n_bars, n_symbols)``."""
    if len(symbols) < 1:
        raise ValueError("symbols: give at least one")
    step = interval_ns(interval)
    closes = {}
    for symbol in symbols:
        bars = read_bars(store, symbol, interval, start, end, source)
        if not len(bars):
            raise LookupError(f"no {interval} bars of {symbol} in the store for that range "
                              f"(it holds bars of {', '.join(bar_symbols(store, interval)) or 'no symbol'})")
        closes[symbol] = bars.set_index("ts")["close"]
    first = max(s.index[0] for s in closes.values())
    last = max(s.index[-1] for s in closes.values())
    grid = pd.DatetimeIndex(pd.date_range(first, last, freq=pd.Timedelta(step, "ns")), name="ts")
    wide = pd.DataFrame({symbol: s.reindex(s.index.union(grid)).ffill().reindex(grid)
                         for symbol, s in closes.items()})
    return wide


def reference_bars(trades: np.ndarray | pd.DataFrame, interval: str) -> pd.DataFrame:
    """Bars of one symbol's trades computed in pandas: the reference the store's views are
    tested against. ``trades``: TRADE_DTYPE rows or a frame with exch_ts (int64 ns), trade_id,
    price, qty, aggressor. Same columns as :func:`read_bars`."""
    frame = pd.DataFrame(trades) if not isinstance(trades, pd.DataFrame) else trades.copy()
    step = interval_ns(interval)
    frame = frame.sort_values(["exch_ts", "trade_id"], kind="stable")
    frame["ts"] = (frame["exch_ts"].astype("int64") // step) * step
    frame["notional"] = frame["price"] * frame["qty"]
    frame["buy_qty"] = frame["qty"].where(frame["aggressor"] == 1, 0.0)
    grouped = frame.groupby("ts", sort=True)
    bars = pd.DataFrame({
        "open": grouped["price"].first(), "high": grouped["price"].max(), "low": grouped["price"].min(),
        "close": grouped["price"].last(), "volume": grouped["qty"].sum(), "buy_volume": grouped["buy_qty"].sum(),
        "notional": grouped["notional"].sum(), "trades": grouped["price"].size().astype("int64"),
    })
    bars["vwap"] = bars["notional"] / bars["volume"]
    bars = bars.reset_index()
    bars["ts"] = pd.to_datetime(bars["ts"], unit="ns")
    return bars[list(BAR_COLUMNS)]


def csv_frame(bars: pd.DataFrame, symbol: str | None = None, interval: str | None = None) -> pd.DataFrame:
    """Bars as written to CSV: ts as ISO 8601 UTC text, then symbol / interval when given."""
    out = bars.copy()
    out["ts"] = pd.to_datetime(out["ts"]).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if interval is not None:
        out.insert(1, "interval", interval)
    if symbol is not None:
        out.insert(1, "symbol", symbol)
    return out


def export_csv(bars: pd.DataFrame, path: str | Path, symbol: str | None = None, interval: str | None = None) -> Path:
    """Write bars as CSV (ts as ISO 8601 UTC, one row per bar); ``symbol`` / ``interval`` add
    those columns, so the file uploads back with :func:`upload_bars`. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_frame(bars, symbol, interval).to_csv(path, index=False)
    return path


def delete_source(store, source_id: str) -> None:
    """Delete the bars made from the trades of one ingested source (``source_id``): to call
    wherever those trades are deleted (a re-ingest with replace, a rollback), since a
    materialized view only sees inserts."""
    store.command("DELETE FROM trade_bars WHERE source_id = {source_id:String}", {"source_id": source_id})


def rebuild(store, symbol: str | None = None) -> int:
    """Recompute the bars of ``symbol`` (default: every symbol) from the stored trades; returns
    the number of (symbol, interval, bar) rows written. Use after trades were changed other
    than by inserts."""
    where, parameters = ("symbol = {symbol:String}", {"symbol": symbol}) if symbol else ("1", None)
    store.command(f"DELETE FROM trade_bars WHERE {where}", parameters)
    units = {"1s": "1 SECOND", "1m": "1 MINUTE", "5m": "5 MINUTE"}
    for interval, unit in units.items():
        store.command(
            "INSERT INTO trade_bars SELECT symbol, {interval:String} AS interval,"
            f" toStartOfInterval(exch_ts, INTERVAL {unit}) AS ts, source_id,"
            " argMinState(price, (exch_ts, trade_id)), argMaxState(price, (exch_ts, trade_id)),"
            " max(price), min(price), sum(qty), sumIf(qty, aggressor = 1), sum(price * qty), toUInt64(count()),"
            f" min(exch_ts), max(exch_ts) FROM trades WHERE {where} GROUP BY symbol, ts, source_id",
            {"interval": interval, **(parameters or {})})
    sql = "SELECT count() FROM bars" + (" WHERE symbol = {symbol:String}" if symbol else "")
    return int(store.query_rows(sql, parameters)[0][0])


# ----------------------------------------------------------------------------------------------
# Upload of historical bars


@dataclass
class UploadReport:
    path: Path
    source_id: str
    status: str  # 'uploaded', 'replaced' or 'skipped' (already uploaded)
    rows: int = 0  # bars written
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # quarantined rows per reason

    def summary(self) -> str:
        text = f"{self.path.name}: {self.status}, {self.rows:,} bars, {self.quarantined:,} quarantined"
        return text + "".join(f"\n  {n:,} × {reason}" for reason, n in self.reasons.items())


def upload_bars(path: str | Path, *, symbol: str | None = None, interval: str | None = None,
                ts_unit: str | None = None, store_url: str | None = None, replace: bool = False) -> UploadReport:
    """Upload historical bars from a CSV or Parquet file into ``uploaded_bars``.

    Columns (case-insensitive; common aliases such as ``timestamp``/``open_time`` accepted):
    ts, open, high, low, close, volume, and optionally symbol, interval, trades. ``symbol`` /
    ``interval`` fill the columns the file lacks (``'venue:SYMBOL'``, e.g. ``'binance-spot:ETHUSDT'``;
    ``'1m'``, ``'1h'``, ``'1d'`` ...). ``ts`` is the bar's start: a date-time (naive means UTC) or an
    integer count since the epoch in ``ts_unit`` ('s', 'ms', 'us', 'ns'; default: read from the
    magnitude). A file missing a required column is refused whole; a row that fails validation
    (unreadable numbers or time, a price not positive, negative volume, high below open/close/low,
    low above open/close, a symbol not namespaced, a duplicate bar) goes to ``quarantine`` (stream
    'bars_upload') with the reason and the raw row. The same file uploaded twice is skipped
    unless ``replace``; a bar uploaded again replaces the earlier one.
    """
    from genesis.store import connect, migrate

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bars file {path}: no such file")
    data = path.read_bytes()
    source_id = hashlib.sha256(data).hexdigest()
    raw, header_lines = _read_table(path)
    columns = _upload_columns(path, raw, symbol, interval)
    if symbol is not None and "symbol" not in columns:
        raw["__symbol"], columns["symbol"] = symbol, "__symbol"
    if interval is not None and "interval" not in columns:
        raw["__interval"], columns["interval"] = interval, "__interval"
    good, reasons = _validate(raw, columns, ts_unit)
    with connect(store_url) as store:
        migrate(store)
        done = store.query_rows(
            "SELECT count() FROM ingest_log FINAL WHERE source_id = {source_id:String} AND status = 'done'",
            {"source_id": source_id})[0][0]
        if done and not replace:
            return UploadReport(path, source_id, "skipped")
        store.command("DELETE FROM uploaded_bars WHERE source_id = {source_id:String}", {"source_id": source_id})
        store.command("DELETE FROM quarantine WHERE source_id = {source_id:String}", {"source_id": source_id})
        run = {"run_id": str(uuid.uuid4()), "started_at": datetime.now(timezone.utc)}
        n_good = int(good.sum())
        if n_good:
            rows = raw.loc[good]
            store.insert_columns("uploaded_bars", {
                "symbol": rows[columns["symbol"]].astype(str).to_numpy(),
                "interval": rows[columns["interval"]].astype(str).to_numpy(),
                "ts": _parse_ts(rows[columns["ts"]], ts_unit)[0],
                **{name: pd.to_numeric(rows[columns[name]]).to_numpy(np.float64)
                   for name in ("open", "high", "low", "close", "volume")},
                "trades": (pd.to_numeric(rows[columns["trades"]]).to_numpy(np.float64).astype(np.uint64)
                           if "trades" in columns else np.zeros(n_good, np.uint64)),
                "source_id": source_id, "path": str(path),
                "uploaded_at": np.full(n_good, time_ns_now(), np.int64),
            })
        bad = np.flatnonzero(~good)
        if len(bad):
            original = raw[[c for c in raw.columns if not c.startswith("__")]]
            store.insert_columns("quarantine", {
                "source_id": source_id, "path": str(path),
                "line_no": (bad + header_lines + 1).astype(np.uint64),
                "local_ts": np.zeros(len(bad), np.int64), "stream": UPLOAD_STREAM,
                "reason": [reasons[i] for i in bad],
                "raw": [json.dumps({k: _plain(v) for k, v in original.iloc[i].items()}) for i in bad],
            })
        counts = {"uploaded_bars": n_good, "quarantine": len(bad)}
        store.insert_columns("ingest_log", {
            "source_id": [source_id], "run_id": [run["run_id"]], "path": [str(path)], "kind": [UPLOAD_KIND],
            "status": ["done"], "started_at": [run["started_at"]], "updated_at": [datetime.now(timezone.utc)],
            "messages": [len(raw)], "counts": [list(counts.items())],
            "symbols": [sorted(set(raw.loc[good, columns["symbol"]].astype(str)))] if n_good else [[]],
            "message": [""],
        }, types={"counts": pa.map_(pa.string(), pa.uint64())})
    by_reason = pd.Series([reasons[i] for i in bad], dtype=object).value_counts().to_dict() if len(bad) else {}
    return UploadReport(path, source_id, "replaced" if done else "uploaded", n_good, len(bad), by_reason)


def time_ns_now() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1e6) * 1000


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not np.isfinite(value) else float(value)
    return value if isinstance(value, (str, int, float, type(None))) else str(value)


def _read_table(path: Path) -> tuple[pd.DataFrame, int]:
    """The file as a frame of raw values (strings for CSV, so nothing is coerced silently) and
    the number of lines before the first row (1 for a CSV header, 0 for Parquet)."""
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return pd.read_parquet(path).reset_index(drop=True), 0
    if name.endswith((".csv", ".csv.gz", ".txt")):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False), 1
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ValueError(f"bars file {path}: not a readable CSV ({exc})") from None
    raise ValueError(f"bars file {path}: expected a .csv, .csv.gz or .parquet file")


def _upload_columns(path: Path, raw: pd.DataFrame, symbol: str | None, interval: str | None) -> dict[str, str]:
    """Our column name -> the file's, for the columns the file has; refuses a file missing any."""
    lower = {str(c).strip().lower(): c for c in raw.columns}
    found = {}
    for name, aliases in _UPLOAD_ALIASES.items():
        match = next((lower[a] for a in aliases if a in lower), None)
        if match is not None:
            found[name] = match
    missing = [c for c in _UPLOAD_REQUIRED if c not in found]
    if symbol is None and "symbol" not in found:
        missing.append("symbol (or give symbol=)")
    if interval is None and "interval" not in found:
        missing.append("interval (or give interval=)")
    if missing:
        raise ValueError(f"bars file {path}: missing column(s) {', '.join(missing)}; it has "
                         f"{', '.join(map(str, raw.columns)) or 'no columns'}")
    return found


def _parse_ts(values: pd.Series, ts_unit: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ns since the epoch, readable mask) of a column of times."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and len(values):
        as_int = numeric.to_numpy(np.float64)
        unit = ts_unit or _unit_from_magnitude(np.nanmax(np.abs(as_int)))
        scale = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[unit]
        ns = (numeric.astype("int64") * scale).to_numpy(np.int64)
        return ns, np.ones(len(values), bool)
    parsed = pd.to_datetime(values.astype(str), errors="coerce", utc=True, format="mixed")
    ok = parsed.notna().to_numpy()
    ns = np.where(ok, parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64), 0)
    return ns.astype(np.int64), ok


def _unit_from_magnitude(biggest: float) -> str:
    # Times after 2001: seconds are ~1e9, ms ~1e12, us ~1e15, ns ~1e18.
    return "s" if biggest < 1e11 else "ms" if biggest < 1e14 else "us" if biggest < 1e17 else "ns"


def _validate(raw: pd.DataFrame, columns: dict[str, str], ts_unit: str | None) -> tuple[np.ndarray, list[str]]:
    """(row is good, reason per row ('' when good)): the first failed rule of each row."""
    n = len(raw)
    reasons = np.full(n, "", dtype=object)

    def fail(mask: np.ndarray, reason) -> None:
        mask = np.asarray(mask, bool) & (reasons == "")
        if isinstance(reason, str):
            reasons[mask] = reason
        else:
            for i in np.flatnonzero(mask):
                reasons[i] = reason(i)

    ts, ts_ok = _parse_ts(raw[columns["ts"]], ts_unit)
    fail(~ts_ok, lambda i: f"unreadable time {raw[columns['ts']].iloc[i]!r}")
    values = {}
    for name in ("open", "high", "low", "close", "volume") + (("trades",) if "trades" in columns else ()):
        column = raw[columns[name]]
        number = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
        fail(~np.isfinite(number),
             lambda i, name=name, column=column: f"{name} {column.iloc[i]!r} is not a finite number")
        values[name] = number
    with np.errstate(invalid="ignore"):
        for name in ("open", "high", "low", "close"):
            fail(values[name] <= 0, lambda i, name=name: f"{name} {values[name][i]:g} is not positive")
        fail(values["volume"] < 0, lambda i: f"volume {values['volume'][i]:g} is negative")
        if "trades" in values:
            bad_count = (values["trades"] < 0) | (values["trades"] != np.round(values["trades"]))
            fail(bad_count, lambda i: f"trades {values['trades'][i]:g} is not a count")
        top = np.maximum.reduce([values["open"], values["close"], values["low"]])
        fail(values["high"] < top, lambda i: f"high {values['high'][i]:g} is below max(open, close, low) {top[i]:g}")
        bottom = np.minimum(values["open"], values["close"])
        fail(values["low"] > bottom, lambda i: f"low {values['low'][i]:g} is above min(open, close) {bottom[i]:g}")
    symbols = raw[columns["symbol"]].astype(str).to_numpy()
    fail(np.array([":" not in s or s.startswith(":") or s.endswith(":") for s in symbols], bool),
         lambda i: f"symbol {symbols[i]!r} is not namespaced as 'venue:SYMBOL'")
    intervals = raw[columns["interval"]].astype(str).to_numpy()
    steps = {}
    for value in set(intervals):
        try:
            steps[value] = interval_ns(value)
        except ValueError:
            steps[value] = 0
    step = np.array([steps[v] for v in intervals], np.int64)
    fail(step == 0, lambda i: f"interval {intervals[i]!r} is not a duration such as '1m', '1h', '1d'")
    day = 86_400_000_000_000
    aligned = (step == 0) | (step > day) | (day % np.maximum(step, 1) != 0) | (ts % np.maximum(step, 1) == 0)
    fail(~aligned, lambda i: f"time {pd.Timestamp(ts[i], tz='UTC')} is not the start of a {intervals[i]} bar")
    ok_so_far = np.flatnonzero(reasons == "")  # a bar repeats only another valid row
    keys = pd.DataFrame({"s": symbols[ok_so_far], "i": intervals[ok_so_far], "t": ts[ok_so_far]})
    duplicate = np.zeros(n, bool)
    duplicate[ok_so_far[keys.duplicated(keep="first").to_numpy()]] = True
    fail(duplicate, lambda i: f"duplicate bar ({symbols[i]}, {intervals[i]}, {pd.Timestamp(ts[i], tz='UTC')})")
    return reasons == "", list(reasons)
