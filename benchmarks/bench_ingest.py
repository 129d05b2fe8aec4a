"""Ingest throughput on a real Binance capture; prints one JSON document.

    python benchmarks/bench_ingest.py [CAPTURE] [--repeat 3]

Default capture: the largest shared one, ``../shared/data/binance/usdm_btcusdt_20240808.jsonl.gz``
(beside the clone), else the bundled copy under ``data/sample/``. Measured in the same run,
each after a warm-up (numba compiles or loads its cache; chDB starts its engine):

- ``json_loads``: baseline, a plain Python loop of ``json.loads`` over every line's JSON part
  of the already-decompressed file (no gunzip, no arrays: a lower bound for a Python parser);
- ``orjson_loads``: the same loop with ``orjson.loads`` (the stronger baseline);
- ``genesis_parse``: :func:`genesis.feeds.binance.capture.read_capture` (read, sha256, gunzip,
  scan into per-symbol arrays);
- ``genesis_parse_book``: the above plus :meth:`L2Book.apply_depth` per symbol (20 levels);
- ``genesis_ingest_e2e``: :func:`ingest_binance_capture` into a fresh embedded store (parse, book,
  insert every table); the store is created and migrated before the clock starts, a new one
  for every repetition.

Each figure reports the median and best of ``--repeat`` runs; ``vs_json_loads`` is the
median throughput over the ``json_loads`` baseline's.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
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

REPO = Path(__file__).resolve().parents[1]
SHARED_CAPTURE = REPO.parent / "shared" / "data" / "binance" / "usdm_btcusdt_20240808.jsonl.gz"
BUNDLED_CAPTURE = REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"


def default_capture() -> Path:
    return SHARED_CAPTURE if SHARED_CAPTURE.is_file() else BUNDLED_CAPTURE


def machine_info() -> dict:
    import chdb
    import numba
    import numpy

    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numpy": numpy.__version__,
        "chdb": getattr(chdb, "__version__", None),
    }


def timed(fn: Callable[[], int], repeat: int, setup: Callable[[], object] | None = None) -> dict:
    """Run ``fn`` ``repeat`` times (``setup`` untimed before each); ``fn`` returns the message count."""
    seconds, counts = [], set()
    for _ in range(repeat):
        arg = setup() if setup else None
        gc.collect()
        start = time.perf_counter()
        counts.add(fn(arg) if setup else fn())
        seconds.append(time.perf_counter() - start)
    assert len(counts) == 1, f"message counts differ between repetitions: {counts}"
    n = counts.pop()
    median, best = statistics.median(seconds), min(seconds)
    return {
        "n_messages": n,
        "seconds_median": round(median, 4),
        "seconds_best": round(best, 4),
        "messages_per_s_median": round(n / median),
        "messages_per_s_best": round(n / best),
        "seconds_all": [round(s, 4) for s in seconds],
    }


def json_parts(raw: bytes) -> list[bytes]:
    """Every non-blank line's JSON part (after the ``<local ns> `` prefix)."""
    parts = []
    for line in raw.split(b"\n"):
        if line.strip():
            parts.append(line[line.index(b" ") + 1 :])
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", type=Path, default=None, help="capture file (default: see module doc)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    path = (args.capture or default_capture()).resolve()
    if not path.is_file():
        parser.error(f"capture file not found: {path}")

    import orjson

    from genesis.book.l2 import L2Book
    from genesis.feeds.binance.capture import read_capture
    from genesis.pipelines.ingest import ingest_binance_capture
    from genesis.store import connect, migrate

    stored = path.read_bytes()
    t0 = time.perf_counter()
    raw = gzip.decompress(stored) if stored[:2] == b"\x1f\x8b" else stored
    gunzip_s = time.perf_counter() - t0

    # Baselines: the JSON parts are cut out before the clock starts (the baseline's best case).
    parts = json_parts(raw)

    def json_loop() -> int:
        loads = json.loads
        for part in parts:
            loads(part)
        return len(parts)

    def orjson_loop() -> int:
        loads = orjson.loads
        for part in parts:
            loads(part)
        return len(parts)

    def parse() -> int:
        return read_capture(path).n_lines

    def parse_book() -> int:
        capture = read_capture(path)
        for events in capture.symbols.values():
            d = events.depth
            L2Book(20, events.sequencing).apply_depth(
                d.is_snapshot, d.first_id, d.last_id, d.prev_id, d.level_start, d.level_count, d.side, d.price, d.qty
            )
        return capture.n_lines

    tmp_root = Path(tempfile.mkdtemp(prefix="genesis-bench-ingest-"))
    stores = iter(range(1_000_000))

    def fresh_store() -> str:
        url = f"chdb://{tmp_root / f'store{next(stores)}'}"
        with connect(url) as store:
            migrate(store)
        return url

    def e2e(url: str) -> int:
        report = ingest_binance_capture(path, store_url=url, progress=False)
        assert report.files[0].status == "ingested", report.files[0].status
        return report.messages

    try:
        # Warm-up: numba compiles (or loads its on-disk cache) and chDB starts its engine.
        t0 = time.perf_counter()
        parse_book()
        warmup_parse_book_s = time.perf_counter() - t0
        url = fresh_store()
        t0 = time.perf_counter()
        e2e(url)
        warmup_e2e_s = time.perf_counter() - t0
        with connect(url) as store:
            rows = dict(store.query_rows(
                "SELECT table, sum(rows) FROM system.parts WHERE active AND database = currentDatabase()"
                " GROUP BY table"
            ))

        results = {
            "json_loads": timed(json_loop, args.repeat),
            "orjson_loads": timed(orjson_loop, args.repeat),
            "genesis_parse": timed(parse, args.repeat),
            "genesis_parse_book": timed(parse_book, args.repeat),
            "genesis_ingest_e2e": timed(e2e, args.repeat, setup=fresh_store),
        }
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    base = results["json_loads"]["messages_per_s_median"]
    for figure in results.values():
        figure["vs_json_loads"] = round(figure["messages_per_s_median"] / base, 2)
    line_counts = {name: r["n_messages"] for name, r in results.items()}

    doc = {
        "benchmark": "ingest",
        "capture": str(path),
        "capture_bytes_gz": len(stored),
        "capture_bytes": len(raw),
        "n_messages": results["genesis_parse"]["n_messages"],
        "repeat": args.repeat,
        "statistic": "median (best also given)",
        "results": results,
        "message_counts_agree": len(set(line_counts.values())) == 1,
        "gunzip_seconds": round(gunzip_s, 4),
        "warmup_seconds": {"parse_book_first_call": round(warmup_parse_book_s, 3), "e2e_first_call": round(warmup_e2e_s, 3)},
        "e2e_rows_written": {k: int(v) for k, v in sorted(rows.items()) if v},
        "notes": [
            "json_loads/orjson_loads exclude gunzip and line splitting and build no arrays; "
            "genesis_* include reading the file, sha256 and gunzip",
            "genesis_ingest_e2e excludes creating and migrating the store (done before the clock starts)",
        ],
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": machine_info(),
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
