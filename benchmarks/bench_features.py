"""The full feature set over >= 1M snapshots (L=20) on one core; prints one JSON document.

    python benchmarks/bench_features.py [--rows 1000000] [--online-rows 100000]

Input: the bundled Binance sample (USD-M BTCUSDT, ~6 minutes, ~6.5k event rows of a 20-level
book rebuilt by genesis.book) and its trades, tiled end to end, each copy shifted later in
time, until there are ``--rows`` rows. Measured, after a warm-up call that compiles:

- ``numba_batch``: :func:`genesis.features.compute_matrix` with the default full set
  (``FeatureSpec.default()``), best of 3; snapshots/s.
- ``numpy_pandas_baseline``: the vectorised NumPy/pandas implementation of the same set
  (:mod:`genesis.features.reference`, the tests' oracle) over the same rows, once.
- ``online``: :class:`genesis.features.OnlineFeatures` stepped through ``--online-rows`` rows
  (trades delivered with ``on_trade`` before each row); latency of each ``on_book`` call (the
  full set's step), p50/p99/max in microseconds.

The process is pinned to one CPU and Numba to one thread. Aims (issue 3): >= 1M snapshots/s
batch; <= 20 us p99 per online step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"

from genesis.features import FeatureSpec, OnlineFeatures, Snapshots, Trades, compute_matrix, from_capture  # noqa: E402
from genesis.features.reference import reference_features  # noqa: E402


def tiled(rows: int) -> tuple[Snapshots, Trades]:
    snaps, trades = from_capture(SAMPLE, depth=20)
    copies = -(-rows // len(snaps))
    span = int(snaps.ts[-1] - snaps.ts[0]) + 1_000_000
    shift = np.arange(copies, dtype=np.int64) * span
    ts = (snaps.ts[None, :] + shift[:, None]).ravel()[:rows]
    book = [np.tile(a, (copies, 1))[:rows] for a in (snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz)]
    keep = (trades.ts > snaps.ts[0] - 1) & (trades.ts <= snaps.ts[-1])
    t_ts = (trades.ts[keep][None, :] + shift[:, None]).ravel()
    cut = t_ts <= ts[-1]
    tile = lambda a: np.tile(a[keep], copies)[cut]  # noqa: E731
    return (Snapshots(ts, *book, np.tile(snaps.updates, copies)[:rows]),
            Trades(t_ts[cut], tile(trades.price), tile(trades.qty), tile(trades.side)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--online-rows", type=int, default=100_000)
    args = parser.parse_args()
    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})

    spec = FeatureSpec.default()
    snaps, trades = tiled(args.rows)
    compute_matrix(snaps.take(slice(0, 1000)), trades, spec)  # compile (or load the cache)

    times = []
    for _ in range(3):
        start = time.perf_counter()
        matrix, _ = compute_matrix(snaps, trades, spec)
        times.append(time.perf_counter() - start)
    batch_s = min(times)

    start = time.perf_counter()
    reference = reference_features(snaps, trades, spec)
    baseline_s = time.perf_counter() - start
    # Agreement, as the tests measure it: the largest difference relative to the column's
    # scale, and whether both mark the same rows NaN.
    worst, nan_rows_differ = 0.0, 0
    for j, column in enumerate(spec.columns):
        got, want = matrix[j], reference[column]
        scale = max(float(np.nanmax(np.abs(want), initial=0.0)), 1e-300)
        both = np.isfinite(got) & np.isfinite(want)
        worst = max(worst, float(np.max(np.abs(got[both] - want[both]), initial=0.0)) / scale)
        nan_rows_differ += int(np.count_nonzero(np.isnan(got) != np.isnan(want)))

    n_online = min(args.online_rows, len(snaps))
    online = OnlineFeatures(spec, levels=20)
    hi = np.searchsorted(trades.ts, snaps.ts[:n_online], side="right")
    lat = np.empty(n_online)
    t = 0
    clock = time.perf_counter_ns
    for i in range(n_online):
        for k in range(t, hi[i]):
            online.on_trade(trades.ts[k], trades.price[k], trades.qty[k], trades.side[k])
        t = hi[i]
        bp, bs, ap, az = snaps.bid_px[i], snaps.bid_sz[i], snaps.ask_px[i], snaps.ask_sz[i]
        t0 = clock()
        online.on_book(snaps.ts[i], bp, bs, ap, az, snaps.updates[i])
        lat[i] = clock() - t0
    lat_us = lat[1000:] / 1e3 if n_online > 2000 else lat / 1e3

    result = {
        "benchmark": "features",
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "pinned_cpu": cpu, "numba_threads": os.environ["NUMBA_NUM_THREADS"]},
        "input": {"rows": len(snaps), "levels": snaps.levels, "trades": len(trades),
                  "source": f"{SAMPLE.name} tiled", "columns": len(spec), "features": len({i.feature.name for i in spec.instances})},
        "numba_batch": {"seconds": round(batch_s, 4), "snapshots_per_s": round(len(snaps) / batch_s),
                        "aim_snapshots_per_s": 1_000_000, "aim_met": len(snaps) / batch_s >= 1_000_000},
        "numpy_pandas_baseline": {"seconds": round(baseline_s, 4), "snapshots_per_s": round(len(snaps) / baseline_s),
                                  "numba_speedup": round(baseline_s / batch_s, 2),
                                  "max_difference_relative_to_column_scale": worst,
                                  "rows_where_nan_differs": nan_rows_differ},
        "online": {"steps": int(len(lat_us)), "p50_us": round(float(np.percentile(lat_us, 50)), 2),
                   "p99_us": round(float(np.percentile(lat_us, 99)), 2), "max_us": round(float(lat_us.max()), 2),
                   "aim_p99_us": 20, "aim_met": float(np.percentile(lat_us, 99)) <= 20},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
