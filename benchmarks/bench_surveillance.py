"""Surveillance detectors: events/s over ~1M events, and online latency per event.

Input: a simulated market with every scenario injected (order events, trades and book rows:
about 1M events in all). Batch: every detector over the whole stream, after a warm-up run
(compilation). Online: the same detectors in a SurveillanceStream fed one event at a time
(orders, trades and book rows in time order), timing each call. Baseline: the same kernels
run as plain Python (NUMBA_DISABLE_JIT=1, in a child process) on a 2-minute market.
Prints one JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from genesis.feeds.simulator import SCENARIOS, simulate  # noqa: E402
from genesis.surveillance.detectors import all_detectors  # noqa: E402
from genesis.surveillance.engine import Inputs, SurveillanceStream, detect  # noqa: E402

SECONDS = 2200.0  # simulated: about a million events (orders + trades + book rows) with the default rates
ONLINE_EVENTS = 100_000
BASELINE_SECONDS = 120.0


def market(seconds: float) -> Inputs:
    return Inputs.from_events(simulate(seconds=seconds, seed=11, scenarios=list(SCENARIOS)).events)


def n_events(inputs: Inputs) -> int:
    return len(inputs.orders) + len(inputs.trades) + len(inputs.book)


def batch(inputs: Inputs) -> dict:
    detect(market(120.0))  # compile
    per_detector = {}
    for detector in all_detectors():
        began = time.perf_counter()
        alerts = detect(inputs, [detector])
        seconds = time.perf_counter() - began
        per_detector[detector.name] = {"events_per_s": round(n_events(inputs) / seconds), "alerts": len(alerts)}
    began = time.perf_counter()
    alerts = detect(inputs)
    seconds = time.perf_counter() - began
    return {"events": n_events(inputs), "seconds": round(seconds, 3), "events_per_s": round(n_events(inputs) / seconds),
            "alerts": len(alerts), "per_detector": per_detector}


def online(inputs: Inputs) -> dict:
    """One event per call, in time order (ties: orders, trades, book)."""
    stream = SurveillanceStream(inputs.symbol, sources=("orders", "trades", "book"))
    keys = np.concatenate([inputs.orders["exch_ts"], inputs.trades["exch_ts"], inputs.book.ts])
    source = np.concatenate([np.zeros(len(inputs.orders), int), np.ones(len(inputs.trades), int),
                             np.full(len(inputs.book), 2)])
    index = np.concatenate([np.arange(len(inputs.orders)), np.arange(len(inputs.trades)), np.arange(len(inputs.book))])
    order = np.lexsort((source, keys))[:ONLINE_EVENTS]
    latencies = np.empty(len(order))
    alerts = 0
    for k, i in enumerate(order):
        s, j = source[i], index[i]
        began = time.perf_counter_ns()
        if s == 0:
            out = stream.process(orders=inputs.orders[j : j + 1])
        elif s == 1:
            out = stream.process(trades=inputs.trades[j : j + 1])
        else:
            out = stream.process(book=inputs.book.take(slice(j, j + 1)))
        latencies[k] = time.perf_counter_ns() - began
        alerts += len(out)
    return {"events": len(order), "alerts": alerts, "p50_us": round(float(np.percentile(latencies, 50)) / 1e3, 1),
            "p99_us": round(float(np.percentile(latencies, 99)) / 1e3, 1),
            "mean_us": round(float(latencies.mean()) / 1e3, 1)}


def baseline() -> dict:
    """The same kernels without Numba (a child process: the switch must be set before import)."""
    code = (
        "import json, time, sys; sys.path.insert(0, %r)\n"
        "from benchmarks.bench_surveillance import market, n_events\n"
        "from genesis.surveillance.engine import detect\n"
        "inputs = market(%r); began = time.perf_counter(); alerts = detect(inputs)\n"
        "seconds = time.perf_counter() - began\n"
        "print(json.dumps({'events': n_events(inputs), 'seconds': round(seconds, 3),"
        " 'events_per_s': round(n_events(inputs) / seconds), 'alerts': len(alerts)}))"
    ) % (str(REPO), BASELINE_SECONDS)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(REPO)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    inputs = market(SECONDS)
    result = {"benchmark": "surveillance", "detectors": [d.name for d in all_detectors()],
              "batch": batch(inputs), "online_one_event_per_call": online(inputs),
              "baseline_pure_python": baseline()}
    result["speedup_batch_vs_python"] = round(result["batch"]["events_per_s"]
                                              / max(result["baseline_pure_python"]["events_per_s"], 1), 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
