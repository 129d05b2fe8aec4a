"""Backtest and paper-trading runs in the store (tables of ``clickhouse/007_backtest.sql``).

>>> from genesis.store import connect
>>> from genesis.backtest.store import save_run, load_run, list_runs
>>> with connect() as store:
...     run_id = save_run(store, result)          # runs + fills + equity rows
...     again = load_run(store, run_id)           # the same arrays, config and metrics
...     runs = list_runs(store)                   # newest first, headline metrics as columns

A run's row keeps what reproduces it (strategy, parameters, symbols, range, the whole config)
and its metrics as computed when saved; fills and equity are stored column for column, so
``load_run`` gives back arrays equal to those saved. Every value reaches ClickHouse through
parameter binding or Arrow inserts, never through SQL text.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from genesis.backtest.metrics import compute_metrics, from_json_safe, json_safe
from genesis.backtest.result import EQUITY_DTYPE, FILL_DTYPE, BacktestResult
from genesis.store.queries import arrow_to_structured

KINDS = ("backtest", "paper")
# Metrics shown as columns by :func:`list_runs` (all of them are in its ``metrics`` column).
HEADLINE_METRICS = ("pnl_net", "fees", "trades", "win_rate", "sharpe", "max_drawdown", "turnover")
_RUN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def save_run(store, result: BacktestResult, *, kind: str | None = None, run_id: str | None = None,
             replace: bool = False, metrics: dict[str, float] | None = None) -> str:
    """Store ``result`` (its run row, fills and equity) and return its run id.

    ``kind`` is 'backtest' or 'paper' (default: ``config["kind"]``, else 'backtest'). The run id
    is ``run_id``, else ``result.meta["run_id"]``, else a new one (UTC time + random suffix,
    so ids sort by creation); it is written into ``result.meta``. An id already stored raises
    unless ``replace=True``, which deletes the old rows first (a paper session saved again as it
    goes). ``metrics`` defaults to :func:`compute_metrics` of ``result``.
    """
    from genesis.store import migrate

    if not isinstance(result, BacktestResult):
        raise TypeError(f"result: expected a genesis.backtest.result.BacktestResult, got {type(result).__name__}")
    config = result.config
    kind = kind or config.get("kind") or "backtest"
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    run_id = run_id or result.meta.get("run_id") or new_run_id()
    _check_run_id(run_id)
    metrics = compute_metrics(result) if metrics is None else metrics
    start_ts, end_ts = _time_range(result)
    migrate(store)
    if _exists(store, run_id):
        if not replace:
            raise ValueError(f"run {run_id} is already stored; pass replace=True to overwrite it")
        delete_run(store, run_id)
    result.meta["run_id"] = run_id
    store.insert_columns("backtest_runs", {
        "run_id": [run_id],
        "created": np.array([datetime.now(timezone.utc).timestamp() * 1e9], dtype=np.int64),
        "kind": [kind],
        "strategy": [str(config.get("strategy", ""))],
        "params": [_dumps(config.get("params", {}))],
        "symbols": [_symbols(config)],
        "start_ts": np.array([start_ts], dtype=np.int64),
        "end_ts": np.array([end_ts], dtype=np.int64),
        "config": [_dumps(config)],
        "metrics": [_dumps(metrics)],
        "meta": [_dumps(result.meta)],
        "n_fills": np.array([len(result.fills)], dtype=np.uint64),
        "n_equity": np.array([len(result.equity)], dtype=np.uint64),
    })
    if len(result.fills):
        columns = {name: np.ascontiguousarray(result.fills[name]) for name in FILL_DTYPE.names}
        store.insert_columns("backtest_fills", {"run_id": run_id, "seq": np.arange(len(result.fills), dtype=np.uint32),
                                                **columns})
    if len(result.equity):
        columns = {name: np.ascontiguousarray(result.equity[name]) for name in EQUITY_DTYPE.names}
        store.insert_columns("backtest_equity", {"run_id": run_id,
                                                 "seq": np.arange(len(result.equity), dtype=np.uint32), **columns})
    return run_id


def load_run(store, run_id: str) -> BacktestResult:
    """The stored run ``run_id`` as a :class:`BacktestResult` (fills and equity in their saved
    order; ``meta`` gains ``run_id``, ``kind``, ``created`` and the stored ``metrics``)."""
    _check_run_id(run_id)
    rows = _query_runs(store, "WHERE run_id = {run_id:String}", {"run_id": run_id})
    if not len(rows):
        raise ValueError(f"run {run_id}: no such run in {store.url} (genesis backtest list shows the stored runs)")
    row = rows.iloc[0]
    where = {"run_id": run_id}
    fills = arrow_to_structured(store.query_arrow(
        f"SELECT {', '.join(FILL_DTYPE.names)} FROM backtest_fills WHERE run_id = {{run_id:String}} ORDER BY seq",
        where), FILL_DTYPE)
    equity = arrow_to_structured(store.query_arrow(
        f"SELECT {', '.join(EQUITY_DTYPE.names)} FROM backtest_equity WHERE run_id = {{run_id:String}} ORDER BY seq",
        where), EQUITY_DTYPE)
    if len(fills) != row["n_fills"] or len(equity) != row["n_equity"]:
        raise ValueError(f"run {run_id}: {len(fills)} fills and {len(equity)} equity rows stored, the run row says "
                         f"{row['n_fills']} and {row['n_equity']} "
                         "(an interrupted save? save it again with replace=True)")
    meta = from_json_safe(json.loads(row["meta"]))
    meta.update(run_id=run_id, kind=row["kind"], created=str(row["created"]),
                metrics=from_json_safe(json.loads(row["metrics"])))
    return BacktestResult(fills, equity, config=from_json_safe(json.loads(row["config"])), meta=meta)


def list_runs(store, *, kind: str | None = None, strategy: str | None = None, symbol: str | None = None
              ) -> pd.DataFrame:
    """Stored runs, newest first: run_id, created, kind, strategy, symbols, start, end, params,
    fills, then the :data:`HEADLINE_METRICS` as columns. Filters are exact matches."""
    from genesis.store import migrate

    migrate(store)
    clauses, parameters = [], {}
    for name, value, clause in (("kind", kind, "kind = {kind:String}"),
                                ("strategy", strategy, "strategy = {strategy:String}"),
                                ("symbol", symbol, "has(symbols, {symbol:String})")):
        if value is not None:
            clauses.append(clause)
            parameters[name] = value
    rows = _query_runs(store, ("WHERE " + " AND ".join(clauses)) if clauses else "", parameters)
    columns = ["run_id", "created", "kind", "strategy", "symbols", "start", "end", "params", "fills",
               *HEADLINE_METRICS]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    metrics = [from_json_safe(json.loads(m)) for m in rows["metrics"]]
    frame = pd.DataFrame({
        "run_id": rows["run_id"],
        "created": pd.to_datetime(rows["created"], utc=True),
        "kind": rows["kind"],
        "strategy": rows["strategy"],
        "symbols": [", ".join(s) for s in rows["symbols"]],
        "start": pd.to_datetime(rows["start_ns"], unit="ns", utc=True),
        "end": pd.to_datetime(rows["end_ns"], unit="ns", utc=True),
        "params": rows["params"],
        "fills": rows["n_fills"].astype(np.int64),
    })
    for name in HEADLINE_METRICS:
        frame[name] = [m.get(name, np.nan) for m in metrics]
    return frame.sort_values(["created", "run_id"], ascending=False).reset_index(drop=True)


def delete_run(store, run_id: str) -> None:
    """Delete run ``run_id``'s rows from the three tables (nothing happens if it is not stored)."""
    _check_run_id(run_id)
    for table in ("backtest_fills", "backtest_equity", "backtest_runs"):
        store.command(f"DELETE FROM {table} WHERE run_id = {{run_id:String}}", {"run_id": run_id})


def new_run_id() -> str:
    """A fresh run id: UTC creation time to the second and 8 random hex digits (sorts by time)."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _query_runs(store, where: str, parameters: dict[str, Any]) -> pd.DataFrame:
    columns = ["run_id", "created", "kind", "strategy", "params", "symbols", "start_ns", "end_ns", "config",
               "metrics", "meta", "n_fills", "n_equity"]
    sql = ("SELECT run_id, created, kind, strategy, params, symbols, toUnixTimestamp64Nano(start_ts) AS start_ns,"
           " toUnixTimestamp64Nano(end_ts) AS end_ns, config, metrics, meta, n_fills, n_equity"
           f" FROM backtest_runs {where}")
    try:
        rows = store.query_rows(sql, parameters or None)
    except Exception as exc:
        if "backtest_runs" in str(exc) and ("UNKNOWN_TABLE" in str(exc) or "doesn't exist" in str(exc)):
            raise ValueError(f"{store.url} has no backtest tables yet: run `genesis db migrate`") from exc
        raise
    return pd.DataFrame(rows, columns=columns)


def _exists(store, run_id: str) -> bool:
    return bool(store.query_rows("SELECT count() FROM backtest_runs WHERE run_id = {run_id:String}",
                                 {"run_id": run_id})[0][0])



def _time_range(result: BacktestResult) -> tuple[int, int]:
    """The replayed range: config start/end when given, else the span of the equity and fills."""
    from genesis.store.queries import to_ns

    config = result.config
    times = np.concatenate([result.equity["ts"], result.fills["local_ts"]])
    start = config.get("start_ts", config.get("start"))
    end = config.get("end_ts", config.get("end"))
    start_ns = to_ns(start) if start is not None else int(times.min()) if len(times) else 0
    end_ns = to_ns(end) if end is not None else int(times.max()) + 1 if len(times) else 0
    return start_ns, end_ns


def _symbols(config: dict[str, Any]) -> list[str]:
    symbols = config.get("symbols", config.get("symbol"))
    if symbols is None:
        return []
    return [symbols] if isinstance(symbols, str) else [str(s) for s in symbols]


def _dumps(value: Any) -> str:
    return json.dumps(json_safe(value), sort_keys=True, allow_nan=False)


def _check_run_id(run_id: Any) -> None:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r}: expected 1-128 characters of letters, digits, '_', '.', ':' or '-'")


# -- running over the store ----------------------------------------------------------------------

def stored_range(store, symbol: str) -> tuple[str, int, int]:
    """(stored symbol name, first, last exch_ts in ns) of ``symbol``'s depth deltas."""
    from genesis.features.store import stored_symbol

    stored = stored_symbol(store, symbol)
    first, last, n = store.query_rows(
        "SELECT toUnixTimestamp64Nano(min(exch_ts)), toUnixTimestamp64Nano(max(exch_ts)), count()"
        " FROM depth_deltas WHERE symbol = {symbol:String}", {"symbol": stored})[0]
    if not n:
        raise ValueError(f"{stored} has no depth deltas in {store.url}: ingest it first (genesis ingest ...)")
    return stored, int(first), int(last)


def load_predictions(store, symbol: str, start: int, end: int, model_id: str | None = None
                     ) -> tuple[str, dict[str, np.ndarray]]:
    """(model id, predictions) of ``symbol`` in ``[start, end)`` from the predictions table, as the
    ``deeplob_threshold`` strategy takes them (``ts`` int64 ns, ``p_down``, ``p_stationary``,
    ``p_up``). ``model_id`` None: the model with the most rows for the symbol."""
    if model_id is None:
        rows = store.query_rows("SELECT model_id, count() AS n FROM predictions WHERE symbol = {symbol:String}"
                                " GROUP BY model_id ORDER BY n DESC, model_id LIMIT 1", {"symbol": symbol})
        if not rows:
            raise ValueError(f"no predictions for {symbol} in {store.url}: run `genesis predict deeplob ...` first")
        model_id = rows[0][0]
    table = store.query_arrow(
        "SELECT toUnixTimestamp64Nano(ts) AS ts_ns, p_down, p_stationary, p_up FROM predictions"
        " WHERE symbol = {symbol:String} AND model_id = {model:String}"
        " AND ts >= fromUnixTimestamp64Nano({lo:Int64}) AND ts < fromUnixTimestamp64Nano({hi:Int64}) ORDER BY ts",
        {"symbol": symbol, "model": model_id, "lo": int(start), "hi": int(end)})
    if not table.num_rows:
        raise ValueError(f"no predictions of model {model_id} for {symbol} in the range")
    # (an alias named `ts` would shadow the column in WHERE: ClickHouse resolves aliases first)
    columns = {"ts": "ts_ns", "p_down": "p_down", "p_stationary": "p_stationary", "p_up": "p_up"}
    return model_id, {name: table.column(column).to_numpy() for name, column in columns.items()}


def run_stored(strategy: str, params: dict[str, Any] | None, symbol: str, start: Any = None, end: Any = None, *,
               latency_ms: float | tuple[float, float] = 0.0, fees_bps: tuple[float, float] = (0.0, 0.0),
               queue: str = "conservative", queue_power: float = 2.0, equity_interval: str = "1s", seed: int = 0,
               chunk: str = "1h", model_id: str | None = None, store_url: str | None = None,
               progress: bool | None = None, tick_size: float | None = None,
               lot_size: float | None = None) -> BacktestResult:
    """Backtest ``strategy`` over ``symbol``'s stored events in ``[start, end)`` (default: all of
    them), read in ``chunk``-long pieces (bounded memory), and return the result (not saved:
    see :func:`save_run`).

    ``latency_ms``: constant order latency, one value (entry = response) or (entry, response);
    ``fees_bps``: (maker, taker), negative is a rebate; ``queue``: 'conservative' or
    'probabilistic' (``queue_power``); ``equity_interval``: e.g. '1s', '100ms'. The
    ``deeplob_threshold`` strategy reads its predictions from the predictions table
    (``model_id``, default the symbol's most predicted model). ``progress``: a tqdm bar over the
    replayed time (None: when stderr is a terminal). The tick and lot come from the symbol's
    spec in the ``instruments`` table at ``start`` (:mod:`genesis.store.instruments`);
    ``tick_size`` / ``lot_size`` override it. The spec used is in the result's config.
    """
    from genesis.backtest.engine import Backtester, Fees, Latency, QueueModel
    from genesis.backtest.events import row_time, store_chunks
    from genesis.book.sampling import parse_duration
    from genesis.store import connect
    from genesis.store.instruments import resolve_instrument
    from genesis.store.queries import to_ns

    entry_ms, response_ms = (latency_ms, latency_ms) if np.isscalar(latency_ms) else tuple(latency_ms)
    maker_bps, taker_bps = fees_bps
    if queue not in ("conservative", "probabilistic"):
        raise ValueError(f"queue {queue!r}: expected 'conservative' or 'probabilistic'")
    with connect(store_url) as store:
        stored, first, last = stored_range(store, symbol)
        lo = first if start is None else to_ns(start)
        hi = last + 1 if end is None else to_ns(end)
        if hi <= lo:
            raise ValueError(f"range: end {end!r} is not after start {start!r}")
        inputs = {}
        if strategy == "deeplob_threshold":
            model_id, inputs = load_predictions(store, stored, lo, hi, model_id)
        spec = resolve_instrument(store, stored, lo, tick_size=tick_size, lot_size=lot_size)
    engine = Backtester(strategy, params, inputs=inputs, tick_size=spec.tick_size if spec else None,
                        lot_size=spec.lot_size if spec else None,
                        latency=Latency.constant(float(entry_ms) * 1e6, float(response_ms) * 1e6),
                        queue=QueueModel(queue, queue_power) if queue == "probabilistic" else QueueModel.conservative(),
                        fees=Fees(float(maker_bps), float(taker_bps)),
                        equity_interval_ns=parse_duration(equity_interval), seed=seed)
    from tqdm.auto import tqdm

    span_s = (hi - lo) / 1e9
    disable = None if progress is None else not progress  # None: tqdm shows it on a terminal only
    with tqdm(total=round(span_s, 3), unit="s", desc=f"{strategy} {stored}", disable=disable, leave=False) as bar:
        done = 0.0
        for rows in store_chunks(stored, lo, hi, chunk=chunk, store_url=store_url):
            engine.process(rows)
            reached = min(span_s, (int(row_time(rows[-1:])[0]) - lo) / 1e9)
            if reached > done:
                bar.update(round(reached - done, 3))
                done = reached
    config = {"symbol": stored, "start": pd.Timestamp(lo, tz="UTC").isoformat(),
              "end": pd.Timestamp(hi, tz="UTC").isoformat(), "start_ts": lo, "end_ts": hi,
              "latency_ms": [float(entry_ms), float(response_ms)], "fees_bps": [float(maker_bps), float(taker_bps)],
              "queue_model": queue, "chunk": chunk, "kind": "backtest",
              # Which terms the fills were computed with, and where they came from.
              "instrument": spec.describe() if spec else {"symbol": stored, "source": "inferred from the replay",
                                                          "tick_size": engine.tick_size}}
    if model_id is not None and strategy == "deeplob_threshold":
        config["model_id"] = model_id
    return engine.result(**config)
