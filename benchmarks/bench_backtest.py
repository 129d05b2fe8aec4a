"""Replay backtester throughput, Genesis against hftbacktest on the same events; prints one JSON document.

    .venv/bin/python benchmarks/bench_backtest.py [--min-events 5000000] [--repeats 3] [--capture PATH]

Events: the real Binance USD-M BTCUSDT capture (``/work/shared/data/...`` when beside the
repository, else the bundled ``data/sample`` file), its local clock shifted so the smallest feed
latency is 0, repeated back to back with both clocks shifted (each copy starts with the
capture's REST snapshot, which replaces the book) until there are at least ``--min-events``
market events (depth level updates + trades; about 467k per copy of the full capture).

Strategies, each run by both engines on the same events:

- ``noop``: woken on every market-data message (Genesis: once per depth message or trade on
  the local clock; hftbacktest: ``wait_next_feed``, once per distinct local timestamp, which is
  the same count on this data), does nothing else;
- ``market_maker``: one post-only order a side at the touch, requoted when the touch moves,
  inventory skew, a position cap; constant 1 ms latencies, conservative queue model
  (hftbacktest: ``RiskAdverseQueueModel``), maker -0.5 bps / taker 5 bps.

Each engine runs in its own child process (so their peak RSS is their own): Genesis in this
environment, hftbacktest in ``.venv-hftbacktest`` (``benchmarks/setup_hftbacktest.sh``). Each
child compiles on a small slice first, then times the replay alone, ``--repeats`` times; the engines
take turns for ``--rounds`` rounds and each figure is the best replay of all;
building each engine's input (Genesis: ``from_market_events``, the replay rows; hftbacktest: this
benchmark's conversion to its event array, which its users do once and store) is timed apart and
shown as ``events_per_s_including_prepare`` / ``..._including_conversion``. hftbacktest runs with
both of its L2 depths, ``ROIVectorMarketDepthBacktest`` (a price vector over half to 1.5 times the
median price; its faster) and ``HashMapMarketDepthBacktest``; ``ratio`` is Genesis's events/s
over the faster hftbacktest's (``ratio_vs_roivec``, ``ratio_vs_hashmap`` each). When the
hftbacktest environment is missing the JSON says so and gives Genesis's figures alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import hftbacktest_data as hd  # noqa: E402

DEFAULT_HBT_VENV = REPO / ".venv-hftbacktest"
STRATEGIES = ("noop", "market_maker")
# hftbacktest's two L2 depths: a vector over a price range (its fastest) and a hash map.
HBT_DEPTHS = ("roivec", "hashmap")
LATENCY_NS = 1_000_000
MAKER_FEE_BPS = -0.5
TAKER_FEE_BPS = 5.0
MM_QTY = hd.BTCUSDT_LOT
MM_MAX_POSITION = 5 * hd.BTCUSDT_LOT
MM_SKEW_TICKS = 1.0  # ticks of skew per MM_QTY of inventory (genesis.strategy.market_maker's defaults)


def hbt_python(explicit: str | None = None) -> Path | None:
    for candidate in (explicit, os.environ.get("HFTBACKTEST_PYTHON"), DEFAULT_HBT_VENV / "bin" / "python"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB): VmHWM, which starts afresh at exec (ru_maxrss
    would carry the parent's peak into a child)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# -- Genesis child ----------------------------------------------------------------------------

def genesis_params(strategy: str) -> dict:
    if strategy == "noop":
        return {}
    return {"qty": MM_QTY, "max_position": MM_MAX_POSITION, "skew_ticks": MM_SKEW_TICKS, "tick": hd.BTCUSDT_TICK}


def genesis_child(events_path: Path, strategy: str, repeats: int) -> dict:
    """Replay the saved events with Genesis; time the replay alone, best of ``repeats``."""
    from genesis.backtest.engine import Backtester, Fees, Latency, QueueModel
    from genesis.backtest.events import from_market_events

    events = hd.load_market_events(events_path)
    # Compile (or load from Numba's cache) the row builder's kernels on a slice, as the replay's below.
    from_market_events(dataclasses.replace(events, deltas=events.deltas[:2000], trades=events.trades[:200]))
    t0 = time.perf_counter()
    rows = from_market_events(events)
    prepare = time.perf_counter() - t0
    name = {"noop": "noop", "market_maker": "market_maker"}[strategy]

    def make():
        return Backtester(name, genesis_params(strategy), latency=Latency.constant(LATENCY_NS, LATENCY_NS),
                          queue=QueueModel.conservative(), fees=Fees(MAKER_FEE_BPS, TAKER_FEE_BPS),
                          equity_interval_ns=1_000_000_000)

    make().process(rows[:20_000])  # compile, or load Numba's cache
    best, bt = float("inf"), None
    for _ in range(repeats):
        bt = make()
        t0 = time.perf_counter()
        bt.process(rows)
        best = min(best, time.perf_counter() - t0)
    result = bt.result()
    fills = result.fills
    return {"seconds": best, "prepare_seconds": prepare, "rows": int(len(rows)),
            "fills": int(len(fills)), "orders_sent": int(result.meta["orders_sent"]),
            "final_position": float(bt.position), "peak_rss_mib": peak_rss_mib()}


# -- parent -----------------------------------------------------------------------------------

def build_events(capture: Path, min_events: int):
    raw = hd.capture_market_events(capture)
    base = hd.shift_local_clock(raw, hd.feed_latency_offset(raw, 0))
    per_copy = len(base.deltas) + len(base.trades)
    copies = max(1, -(-min_events // per_copy))
    return hd.repeat_events(base, copies), copies, per_copy


def run_child(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_hbt(python: Path, events_npy: Path, strategy: str, repeats: int, workdir: Path, depth: str,
            roi: tuple[float, float]) -> dict:
    out = workdir / f"hbt_{strategy}_{depth}.json"
    mode = {"noop": "noop", "market_maker": "mm"}[strategy]
    cmd = [str(python), str(HERE / "hftbacktest_runner.py"), mode, str(events_npy), str(out),
           "--tick-size", str(hd.BTCUSDT_TICK), "--lot-size", str(hd.BTCUSDT_LOT),
           "--entry-latency-ns", str(LATENCY_NS), "--response-latency-ns", str(LATENCY_NS),
           "--maker-fee-bps", str(MAKER_FEE_BPS), "--taker-fee-bps", str(TAKER_FEE_BPS),
           "--queue", "risk_adverse", "--qty", str(MM_QTY), "--max-position", str(MM_MAX_POSITION),
           "--skew-ticks", str(MM_SKEW_TICKS), "--depth", depth, "--roi-lb", str(roi[0]), "--roi-ub", str(roi[1]),
           "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    return json.loads(out.read_text())


def best_of(runs: list[dict]) -> dict:
    """The run with the shortest replay, with every round's best seconds beside it."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    best = dict(min(ok, key=lambda r: r["seconds"]))
    best["round_seconds"] = [round(r["seconds"], 4) for r in ok]
    best.pop("all_seconds", None)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--min-events", type=int, default=5_000_000)
    p.add_argument("--repeats", type=int, default=3, help="timed replays per engine and round")
    p.add_argument("--rounds", type=int, default=2, help="rounds alternating the engines")
    p.add_argument("--capture", type=Path, default=None)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--hbt-python", default=None)
    p.add_argument("--child", choices=STRATEGIES, help=argparse.SUPPRESS)
    p.add_argument("--events", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        print(json.dumps(genesis_child(args.events, args.child, args.repeats)))
        return

    strategies = [s for s in args.strategies.split(",") if s]
    for s in strategies:
        if s not in STRATEGIES:
            p.error(f"--strategies: unknown {s!r} (known: {', '.join(STRATEGIES)})")
    capture = args.capture or hd.default_capture()
    t0 = time.perf_counter()
    events, copies, per_copy = build_events(capture, args.min_events)
    n_events = len(events.deltas) + len(events.trades)
    build_s = time.perf_counter() - t0
    python = hbt_python(args.hbt_python)
    report: dict = {
        "benchmark": "backtest_replay",
        "events": {"source": f"{capture.name} repeated {copies}x with shifted clocks (real capture, not simulated)",
                   "capture": str(capture), "per_copy": per_copy, "copies": copies, "market_events": n_events,
                   "depth_updates": int(len(events.deltas)), "trades": int(len(events.trades)),
                   "build_seconds": round(build_s, 2)},
        "models": {"latency_ns": {"entry": LATENCY_NS, "response": LATENCY_NS}, "queue": "conservative",
                   "fees_bps": {"maker": MAKER_FEE_BPS, "taker": TAKER_FEE_BPS}},
    }
    with tempfile.TemporaryDirectory(prefix="genesis-bench-bt-") as tmp:
        work = Path(tmp)
        events_npz = work / "events.npz"
        hd.save_market_events(events, events_npz)
        hbt_npy = work / "hbt_events.npy"
        # ROIVectorMarketDepthBacktest keeps prices within half to one and a half times the median price.
        median = float(np.median(events.deltas["price"][: min(len(events.deltas), 1_000_000)]))
        roi = (round(0.5 * median, 1), round(1.5 * median, 1))
        report["events"]["hftbacktest_roi"] = list(roi)
        if python is not None:
            t0 = time.perf_counter()
            data = hd.to_hbt_events(events)
            report["events"]["hftbacktest_rows"] = int(len(data))
            report["events"]["hftbacktest_convert_seconds"] = round(time.perf_counter() - t0, 3)
            np.save(hbt_npy, data)
            del data
        else:
            report["hftbacktest"] = {"available": False,
                                     "reason": f"no hftbacktest environment at {DEFAULT_HBT_VENV}: run "
                                               "benchmarks/setup_hftbacktest.sh (or set HFTBACKTEST_PYTHON)"}
        del events
        results: dict = {}
        for strategy in strategies:
            # Rounds alternate the engines, so that a burst of load elsewhere on the machine does
            # not fall on one engine only; each figure is the best replay over all rounds.
            runs: dict[str, list[dict]] = {"genesis": [], **{d: [] for d in HBT_DEPTHS}}
            for _ in range(args.rounds):
                runs["genesis"].append(run_child([sys.executable, __file__, "--child", strategy, "--events",
                                                  str(events_npz), "--repeats", str(args.repeats)]))
                if python is not None:
                    for depth in HBT_DEPTHS:
                        runs[depth].append(run_hbt(python, hbt_npy, strategy, args.repeats, work, depth, roi))
            entry: dict = {"genesis": _rates(best_of(runs["genesis"]), n_events)}
            if python is not None:
                gr = entry["genesis"].get("events_per_s")
                rates = []
                for depth in HBT_DEPTHS:
                    h = _rates(best_of(runs[depth]), n_events)
                    entry[f"hftbacktest_{depth}"] = h
                    if gr and h.get("events_per_s"):
                        entry[f"ratio_vs_{depth}"] = round(gr / h["events_per_s"], 3)
                        rates.append(h["events_per_s"])
                if gr and rates:
                    entry["ratio"] = round(gr / max(rates), 3)  # against hftbacktest's faster depth
                convert = report["events"].get("hftbacktest_convert_seconds")
                for depth in HBT_DEPTHS:
                    h = entry[f"hftbacktest_{depth}"]
                    if convert is not None and "seconds" in h:
                        h["events_per_s_including_conversion"] = round(n_events / (h["seconds"] + convert))
            results[strategy] = entry
    report["results"] = results
    report["aim"] = "genesis events/s >= 1.5x hftbacktest's on both strategies"
    report["python"] = platform.python_version()
    report["machine"] = platform.machine()
    report["cpus"] = os.cpu_count()
    print(json.dumps(report, indent=2))


def _rates(r: dict, n_events: int) -> dict:
    if "error" in r:
        return r
    out = {"events_per_s": round(n_events / r["seconds"]), "seconds": round(r["seconds"], 4)}
    if "prepare_seconds" in r:  # Genesis: building the replay rows from the events, then the replay
        out["events_per_s_including_prepare"] = round(n_events / (r["seconds"] + r["prepare_seconds"]))
    out.update({k: v for k, v in r.items() if k not in ("seconds",)})
    return out


if __name__ == "__main__":
    main()
