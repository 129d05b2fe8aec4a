"""Market simulator throughput (L3 events per second); prints one JSON document.

    python benchmarks/bench_simulator.py [--seconds 3600] [--baseline-seconds 30]

Measured, after a warm-up call that compiles (or loads) the kernel:

- ``numba_kernel``: :func:`genesis.feeds.simulator.engine.simulate_kernel` alone over
  ``--seconds`` of simulated time with the default :class:`SimConfig` (background flow only),
  best of 3; L3 events per second of wall time;
- ``simulate``: the whole :func:`genesis.feeds.simulator.simulate` call (kernel, conversion to
  the order/delta/trade arrays, ground truth) on the same horizon, best of 3, without and with
  every scenario;
- ``pure_python_baseline``: the same kernel source run by the Python interpreter
  (``NUMBA_DISABLE_JIT=1`` in a child process, so every helper it calls is plain Python too,
  which ``kernel.py_func`` alone would not give) over ``--baseline-seconds``; events per second.

``speedup`` is numba_kernel / pure_python_baseline events per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genesis.feeds.simulator import SCENARIOS, SimConfig, simulate  # noqa: E402
from genesis.feeds.simulator import simulation as sim_module  # noqa: E402
from genesis.feeds.simulator.scenarios import build_script  # noqa: E402


def kernel_rate(seconds: float, repeats: int) -> tuple[float, int]:
    """Best events/s of the engine alone (arrays sized by a first run, so no retries are timed)."""
    cfg = SimConfig()
    script = build_script(cfg, seconds, np.random.default_rng([1, 1]), ())
    best = float("inf")
    n = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        ev, _, _, _ = sim_module._run(cfg, seconds, 1, script)
        best = min(best, time.perf_counter() - t0)
        n = len(ev)
    return n / best, n


def simulate_rate(seconds: float, repeats: int, scenarios=()) -> tuple[float, int]:
    best = float("inf")
    n = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim = simulate(SimConfig(), seconds=seconds, seed=1, scenarios=scenarios)
        best = min(best, time.perf_counter() - t0)
        n = len(sim.events.orders)
    return n / best, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3600.0, help="simulated seconds for the Numba runs")
    parser.add_argument("--baseline-seconds", type=float, default=30.0, help="simulated seconds, pure Python")
    parser.add_argument("--child-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_baseline:  # runs under NUMBA_DISABLE_JIT=1
        rate, n = kernel_rate(args.baseline_seconds, 1)
        print(json.dumps({"events_per_s": rate, "events": n}))
        return

    simulate(SimConfig(), seconds=10, seed=0, scenarios=SCENARIOS[:1])  # compile / load the cache
    kernel, n_kernel = kernel_rate(args.seconds, 3)
    full, n_full = simulate_rate(args.seconds, 3)
    with_scenarios, n_scen = simulate_rate(args.seconds, 3, SCENARIOS)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    child = subprocess.run([sys.executable, __file__, "--child-baseline", "--baseline-seconds",
                            str(args.baseline_seconds)], capture_output=True, text=True, env=env, check=True)
    baseline = json.loads(child.stdout)
    print(json.dumps({
        "benchmark": "simulator",
        "config": "SimConfig() defaults",
        "numba_kernel": {"simulated_seconds": args.seconds, "events": n_kernel, "events_per_s": round(kernel)},
        "simulate": {"simulated_seconds": args.seconds, "events": n_full, "events_per_s": round(full)},
        "simulate_all_scenarios": {"simulated_seconds": args.seconds, "events": n_scen,
                                   "events_per_s": round(with_scenarios)},
        "pure_python_baseline": {"simulated_seconds": args.baseline_seconds, "events": baseline["events"],
                                 "events_per_s": round(baseline["events_per_s"])},
        "speedup": round(kernel / baseline["events_per_s"], 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
