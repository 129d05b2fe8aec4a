"""Time-range queries on stored book snapshots; prints one JSON document.

    python benchmarks/bench_query.py [--hours 24] [--repeat 20]

Builds a fresh embedded store holding ``--hours`` of 20-level ``book_snapshots`` rows for one
symbol at real density: the bundled Binance sample (about 6 minutes, ~6.5k event rows) is
ingested, then its rows are doubled by ``INSERT INTO book_snapshots SELECT ...`` shifted in
time until they cover the requested span. Then, ``--repeat`` times each after one warm-up:

- ``top_of_book_as_built``: the issue's one-hour range query, best level only, via
  ``store.query_arrow``, on the table as the inserts left it (several parts);
- then, with the table merged into one part (``OPTIMIZE ... FINAL``), the state a long-lived
  store settles into: ``top_of_book`` (the same query; target: under 20 ms), ``full_arrays``
  (all four 20-level arrays), ``queries_top_of_book`` (the library call
  :func:`genesis.store.queries.top_of_book`: pandas result, ordered, with mid and spread) and
  ``top_of_book_with_connect`` (opening and closing the store around each query, as a
  notebook cell does with ``with connect() as store: ...``);
- ``diagnostics``: the time range reading only ``exch_ts``, and the top-of-book query over
  best-level ``Float64`` columns ``MATERIALIZED`` from the arrays: a candidate schema change,
  tried on this throwaway store only.

Baselines in the same run, over the same rows held in memory: pandas boolean-mask filtering
of a DataFrame (categorical symbol/sampling, datetime64 time), and the same mask over the
four ``(n, 20)`` NumPy arrays for the full-array variant; plus ``numpy_searchsorted`` on the
sorted time column, the best an in-memory index can do.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"
SYMBOL = "binance-usdm:BTCUSDT"
TARGET_MS = 20.0
HOUR_NS = 3600 * 10**9

TOP_SQL = (
    "SELECT exch_ts, best_bid_px, best_ask_px, best_bid_sz, best_ask_sz FROM book_snapshots"
    " WHERE symbol = {s:String} AND sampling = 'event'"
    " AND exch_ts >= {a:DateTime64(9, 'UTC')} AND exch_ts < {b:DateTime64(9, 'UTC')}"
)
FULL_SQL = (
    "SELECT exch_ts, bid_px, bid_sz, ask_px, ask_sz FROM book_snapshots"
    " WHERE symbol = {s:String} AND sampling = 'event'"
    " AND exch_ts >= {a:DateTime64(9, 'UTC')} AND exch_ts < {b:DateTime64(9, 'UTC')}"
)
# Diagnostic: the same best level read out of the 20-level arrays (what migration 002 avoids).
ARRAY_INDEX_TOP_SQL = TOP_SQL.replace("best_bid_px, best_ask_px, best_bid_sz, best_ask_sz",
                                      "bid_px[1], ask_px[1], bid_sz[1], ask_sz[1]")
SHIFT_SQL = (
    "INSERT INTO book_snapshots (symbol, sampling, exch_ts, local_ts, seq, bid_px, bid_sz, ask_px, ask_sz, source_id)"
    " SELECT symbol, sampling, exch_ts + toIntervalNanosecond({shift:Int64}),"
    " local_ts + toIntervalNanosecond({shift:Int64}), seq, bid_px, bid_sz, ask_px, ask_sz, source_id"
    " FROM book_snapshots WHERE symbol = {s:String} AND sampling = 'event'"
)


def ns_text(ns: int) -> str:
    """``YYYY-MM-DD hh:mm:ss.nnnnnnnnn`` (UTC), the text a DateTime64(9) parameter takes."""
    seconds, frac = divmod(ns, 10**9)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(seconds))}.{frac:09d}"


def latency(fn: Callable[[], int], repeat: int) -> dict:
    """One untimed warm-up, then ``repeat`` timed calls; ``fn`` returns the rows it produced."""
    rows = fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        n = fn()
        times.append((time.perf_counter() - start) * 1e3)
        assert n == rows, f"row count changed between repetitions: {rows} then {n}"
    times.sort()
    return {
        "rows": rows,
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "min_ms": round(times[0], 3),
        "max_ms": round(times[-1], 3),
    }


def machine_info() -> dict:
    import chdb
    import numba
    import pandas

    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "chdb": getattr(chdb, "__version__", None),
        "platform": platform.platform(),
    }


def active_parts(store) -> int:
    return int(store.query_rows(
        "SELECT count() FROM system.parts WHERE active AND database = currentDatabase() AND table = 'book_snapshots'"
    )[0][0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="span of data to build (default 24)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--capture", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)

    import pandas as pd

    from genesis.pipelines.ingest import ingest_binance_capture
    from genesis.store import connect, migrate, queries

    tmp_root = Path(tempfile.mkdtemp(prefix="genesis-bench-query-"))
    url = f"chdb://{tmp_root / 'store'}"
    try:
        # -- build -------------------------------------------------------------------------
        t0 = time.perf_counter()
        with connect(url) as store:
            migrate(store)
        ingest_binance_capture(args.capture, store_url=url, progress=False)
        ingest_s = time.perf_counter() - t0
        with connect(url) as store:
            seed_rows, t_min, t_max = store.query_rows(
                "SELECT count(), toUnixTimestamp64Nano(min(exch_ts)), toUnixTimestamp64Nano(max(exch_ts))"
                " FROM book_snapshots WHERE symbol = {s:String} AND sampling = 'event'", {"s": SYMBOL})[0]
            if not seed_rows:
                raise SystemExit(f"{args.capture}: no event rows for {SYMBOL}")
            # Each copy follows the previous one after one median inter-event gap.
            period = (t_max - t_min) + (t_max - t_min) // max(seed_rows - 1, 1)
            doublings = max(0, math.ceil(math.log2(args.hours * HOUR_NS / period)))
            t0 = time.perf_counter()
            for k in range(doublings):
                store.command(SHIFT_SQL, {"shift": period * 2**k, "s": SYMBOL})
            replicate_s = time.perf_counter() - t0
            n_rows, lo, hi = store.query_rows(
                "SELECT count(), toUnixTimestamp64Nano(min(exch_ts)), toUnixTimestamp64Nano(max(exch_ts))"
                " FROM book_snapshots WHERE symbol = {s:String} AND sampling = 'event'", {"s": SYMBOL})[0]
            parts = active_parts(store)
            disk = store.query_rows(
                "SELECT sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts"
                " WHERE active AND database = currentDatabase() AND table = 'book_snapshots'")[0]
            # The same rows in memory, for the baselines.
            mem_t0 = time.perf_counter()
            table = store.query_arrow(
                "SELECT symbol, sampling, exch_ts, bid_px, bid_sz, ask_px, ask_sz FROM book_snapshots"
                " ORDER BY symbol, sampling, exch_ts")
            load_s = time.perf_counter() - mem_t0
        span_h = (hi - lo) / HOUR_NS
        built = {
            "seed_capture": str(args.capture),
            "seed_rows": int(seed_rows),
            "seed_span_s": round((t_max - t_min) / 1e9, 1),
            "doublings": doublings,
            "rows": int(n_rows),
            "span_hours": round(span_h, 2),
            "rows_per_s": round(n_rows / ((hi - lo) / 1e9), 1),
            "levels": 20,
            "active_parts": parts,
            "compressed_mb": round(int(disk[0]) / 2**20, 1),
            "uncompressed_mb": round(int(disk[1]) / 2**20, 1),
            "ingest_seconds": round(ingest_s, 2),
            "replicate_seconds": round(replicate_s, 2),
            "load_into_memory_seconds": round(load_s, 2),
        }

        # One hour in the middle of the data.
        a_ns = lo + int((hi - lo) / 2) - HOUR_NS // 2
        b_ns = a_ns + HOUR_NS
        params = {"s": SYMBOL, "a": ns_text(a_ns), "b": ns_text(b_ns)}

        # -- baselines: the same rows in memory --------------------------------------------
        exch = table.column("exch_ts").to_numpy()  # datetime64[ns] (UTC)
        levels = {name: np.asarray(table.column(name).combine_chunks().flatten(), dtype=np.float64)
                  .reshape(len(table), -1) for name in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
        df = pd.DataFrame({
            "symbol": pd.Categorical(table.column("symbol").to_pylist()),
            "sampling": pd.Categorical(table.column("sampling").to_pylist()),
            "exch_ts": exch,
            "bid_px": levels["bid_px"][:, 0], "ask_px": levels["ask_px"][:, 0],
            "bid_sz": levels["bid_sz"][:, 0], "ask_sz": levels["ask_sz"][:, 0],
        })
        del table
        a64, b64 = np.datetime64(a_ns, "ns"), np.datetime64(b_ns, "ns")

        def pandas_top() -> int:
            mask = (df["symbol"] == SYMBOL) & (df["sampling"] == "event") & (df["exch_ts"] >= a64) & (df["exch_ts"] < b64)
            return len(df.loc[mask, ["exch_ts", "bid_px", "ask_px", "bid_sz", "ask_sz"]])

        sym_np, samp_np = df["symbol"].to_numpy(), df["sampling"].to_numpy()

        def numpy_full() -> int:
            mask = (sym_np == SYMBOL) & (samp_np == "event") & (exch >= a64) & (exch < b64)
            out = [exch[mask]] + [levels[name][mask] for name in ("bid_px", "bid_sz", "ask_px", "ask_sz")]
            return len(out[0])

        def numpy_searchsorted() -> int:  # rows are sorted by time and all of one symbol/sampling
            i, j = np.searchsorted(exch, [a64, b64])
            out = [exch[i:j]] + [levels[name][i:j, 0] for name in ("bid_px", "ask_px", "bid_sz", "ask_sz")]
            return len(out[0])

        baselines = {
            "pandas_mask_top_of_book": latency(pandas_top, args.repeat),
            "numpy_mask_full_arrays": latency(numpy_full, args.repeat),
            "numpy_searchsorted_top_of_book": latency(numpy_searchsorted, args.repeat),
        }
        del df, levels, exch, sym_np, samp_np
        gc.collect()

        # -- the store ---------------------------------------------------------------------
        # First as built (several parts, background merges possibly still running), then
        # merged into one part, the state a long-lived store settles into.
        results = {}
        with connect(url) as store:
            results["top_of_book_as_built"] = latency(lambda: store.query_arrow(TOP_SQL, params).num_rows, args.repeat)
            t0 = time.perf_counter()
            store.command("OPTIMIZE TABLE book_snapshots FINAL")
            optimize_s = time.perf_counter() - t0
            parts_after = active_parts(store)
            results["top_of_book"] = latency(lambda: store.query_arrow(TOP_SQL, params).num_rows, args.repeat)
            results["full_arrays"] = latency(lambda: store.query_arrow(FULL_SQL, params).num_rows, args.repeat)
            results["queries_top_of_book"] = latency(
                lambda: len(queries.top_of_book(store, SYMBOL, pd.Timestamp(a_ns, tz="UTC"), pd.Timestamp(b_ns, tz="UTC"))),
                args.repeat)

        def with_connect() -> int:
            with connect(url) as store:
                return store.query_arrow(TOP_SQL, params).num_rows

        results["top_of_book_with_connect"] = latency(with_connect, args.repeat)

        # Where the time goes.
        candidates = {}
        with connect(url) as store:
            candidates["exch_ts_only"] = latency(
                lambda: store.query_arrow(TOP_SQL.replace(", best_bid_px, best_ask_px, best_bid_sz, best_ask_sz", ""),
                                          params).num_rows, args.repeat)
            candidates["array_index_top"] = latency(
                lambda: store.query_arrow(ARRAY_INDEX_TOP_SQL, params).num_rows, args.repeat)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    expected = baselines["pandas_mask_top_of_book"]["rows"]
    rows_agree = all(r["rows"] == expected for r in (*results.values(), *baselines.values(), *candidates.values()))
    pandas_p50 = baselines["pandas_mask_top_of_book"]["p50_ms"]
    top = results["top_of_book"]
    doc = {
        "benchmark": "query",
        "query": TOP_SQL,
        "window": {"from": params["a"], "to": params["b"], "hours": 1},
        "repeat": args.repeat,
        "store": built,
        "results": results,
        "baselines": baselines,
        "diagnostics": candidates,
        "rows_agree": rows_agree,
        "target": {
            "p50_ms_under": TARGET_MS,
            "top_of_book_p50_ms": top["p50_ms"],
            "met": top["p50_ms"] < TARGET_MS,
            "p95_also_under": top["p95_ms"] < TARGET_MS,
        },
        "store_vs_pandas_p50": round(pandas_p50 / top["p50_ms"], 2),
        "optimize_seconds": round(optimize_s, 2),
        "active_parts_after_optimize": parts_after,
        "notes": [
            "results.top_of_book* other than _as_built, full_arrays and queries_top_of_book run after OPTIMIZE FINAL",
            "diagnostics: exch_ts_only reads no book columns; array_index_top reads bid_px[1]... out of the"
            " 20-level arrays instead of the best-level columns of migration 002",
            "store timings include clickhouse-connect's Arrow result, i.e. what a caller gets",
            "baselines hold every row in memory already (loading them is store.load_into_memory_seconds)",
        ],
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": machine_info(),
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
