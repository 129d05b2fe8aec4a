"""Genesis's replay backtester against hftbacktest 2.4 on a real capture: the same taker-only
strategy, constant latency and fees must give the same fills and PnL. Prints one JSON document;
exits 1 on a mismatch, 2 when hftbacktest's environment is missing.

    .venv/bin/python benchmarks/hftbacktest_compare.py [--capture PATH] [--tick-size T --lot-size L]
        [--qty Q] [--orders 300]
        [--interval-ms 1000] [--entry-latency-us 1000] [--response-latency-us 1000] [--taker-fee-bps 5]

hftbacktest runs in its own environment (``benchmarks/setup_hftbacktest.sh``; ``--hbt-python``
or ``HFTBACKTEST_PYTHON`` to point elsewhere), on the very events Genesis replays, converted by
:mod:`hftbacktest_data`. A third, independent figure is a NumPy reference: the top of
:class:`genesis.book.l2.L2Book` after the last depth message the venue had applied when each
order arrived.

The strategy: market orders of ``--qty`` (default the lot, e.g. 0.001 BTC, so always within the
best level) at fixed local times ``start + k * interval``, buy first, then alternating sell/buy,
so the position returns to flat. The fill assumptions both engines must share (see
``hftbacktest_runner``'s docstring for where hftbacktest does each of them):

- an order sent at local time ``t`` reaches the venue at ``t + entry_latency`` and takes the best
  opposite level of the book as the venue has it then: every venue (exch_ts) event at or
  before that time applied, none after; the fill is stamped ``exch_ts = t + entry_latency``
  and reported to the strategy at ``+ response_latency``;
- hftbacktest fills a taker order in full at the best price whatever its size; Genesis walks
  the levels. With the lot size always inside the best level the two coincide, and the script
  checks that each Genesis fill is a single level;
- fees are ``rate * price * qty`` per fill (taker rate; no maker fills happen here);
- the capture's local clock runs about 1.27 s behind the venue's, so ``local_ts`` is shifted
  to make the smallest feed latency ``--min-feed-latency-us`` (default 0) for both engines;
- orders go at whole multiples of the interval (Genesis's ``taker_only``), and the entry latency
  is not a whole millisecond (1 ms becomes 1,000,137 ns), so no order arrives exactly on a
  venue event time (Binance stamps events in whole milliseconds) and the tie rules of the two
  engines, which differ (hftbacktest at equal times: local data, local responses, venue data,
  venue orders; Genesis: market rows, venue arrivals, responses, timer), never come into play.
- Genesis's taker orders deplete the replayed venue book until the data next sets the level;
  hftbacktest's do not. With orders 2 intervals apart on a side and data updating the touch
  many times a second, this shows only if a level of exactly the lot size were taken and not
  refreshed for two intervals; the script would report it as a price mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import hftbacktest_data as hd  # noqa: E402
from genesis.book.l2 import L2Book  # noqa: E402
from genesis.feeds.events import MarketEvents, delta_events  # noqa: E402
from genesis.store.instruments import infer_instrument  # noqa: E402

DEFAULT_HBT_VENV = REPO / ".venv-hftbacktest"
FILL_COLUMNS = ("exch_ts", "local_ts", "side", "price", "qty", "fee")


def hbt_python(explicit: str | None = None) -> Path | None:
    """The hftbacktest environment's interpreter, or None when it is not set up."""
    for candidate in (explicit, os.environ.get("HFTBACKTEST_PYTHON"), DEFAULT_HBT_VENV / "bin" / "python"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def order_schedule(events: MarketEvents, interval_ns: int, n_orders: int) -> tuple[np.ndarray, np.ndarray]:
    """Local times (n,) int64 and sides (n,) int8 of the orders, as Genesis's ``taker_only`` sends them.

    ``taker_only`` sends at the multiples of ``interval_ns`` since the epoch that follow the first
    market event it sees (the snapshot, here: the book is two-sided from then on), a buy first,
    then alternating. At most ``n_orders``, and none in the last two intervals of the data (so
    every order reaches the venue and its response comes back before the data ends).
    """
    first = int(min(events.deltas["local_ts"].min(), events.trades["local_ts"].min()))
    last = int(min(events.deltas["exch_ts"].max(), events.deltas["local_ts"].max()))
    times = (first // interval_ns + 1 + np.arange(n_orders, dtype=np.int64)) * interval_ns
    times = times[times < last - 2 * interval_ns]
    sides = np.where(np.arange(len(times)) % 2 == 0, 1, -1).astype(np.int8)
    return times, sides


def reference_fills(events: MarketEvents, times: np.ndarray, sides: np.ndarray, qty: float,
                    entry_ns: int, response_ns: int, taker_fee_bps: float) -> np.ndarray:
    """Fills of the schedule by a plain reading of the rules: the best opposite price of the book
    after the last depth message with ``exch_ts <= t + entry_ns``. Rows (n, 6) float64 in
    :data:`FILL_COLUMNS` order."""
    d = events.deltas
    starts, counts, snap = delta_events(d)
    book = L2Book(depth=1)
    bid_px, _, ask_px, _, crossed = book.apply_groups(starts, counts, snap, d["side"], d["price"], d["qty"])
    if crossed.any():
        raise ValueError(f"{events.symbol}: {int(crossed.sum())} depth messages cross the book")
    msg_exch = d["exch_ts"][starts]
    if np.any(np.diff(msg_exch) < 0):
        raise ValueError(f"{events.symbol}: depth messages are not in exch_ts order")
    arrival = times + entry_ns
    last_msg = np.searchsorted(msg_exch, arrival, side="right") - 1
    if np.any(last_msg < 0):
        raise ValueError("an order arrives before the first depth message")
    price = np.where(sides > 0, ask_px[last_msg, 0], bid_px[last_msg, 0])
    out = np.empty((len(times), len(FILL_COLUMNS)))
    out[:, 0] = arrival
    out[:, 1] = arrival + response_ns
    out[:, 2] = sides
    out[:, 3] = price
    out[:, 4] = qty
    out[:, 5] = taker_fee_bps * 1e-4 * price * qty
    return out


def run_hftbacktest(python: Path, events: MarketEvents, times: np.ndarray, args: argparse.Namespace,
                    workdir: Path) -> tuple[np.ndarray, dict]:
    """hftbacktest's fills (n, 6) in FILL_COLUMNS order and its run summary."""
    data = hd.to_hbt_events(events)
    hd.check_hbt_order(data)
    events_path, out_path, fills_path = workdir / "hbt_events.npy", workdir / "hbt.json", workdir / "hbt_fills.npz"
    np.save(events_path, data)
    interval = int(times[1] - times[0]) if len(times) > 1 else 1_000_000_000
    cmd = [str(python), str(HERE / "hftbacktest_runner.py"), "taker", str(events_path), str(out_path),
           "--fills-out", str(fills_path), "--tick-size", str(args.tick_size), "--lot-size", str(args.lot_size),
           "--entry-latency-ns", str(args.entry_latency_ns), "--response-latency-ns", str(args.response_latency_ns),
           "--taker-fee-bps", str(args.taker_fee_bps), "--start-ts", str(int(times[0])),
           "--interval-ns", str(interval), "--orders", str(len(times)), "--qty", str(args.qty)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"hftbacktest runner failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    summary = json.loads(out_path.read_text())
    with np.load(fills_path) as z:
        raw = z["fills"]  # (exch_ts, request local_ts, order_id, side, price, qty)
    raw = raw[np.argsort(raw[:, 2], kind="stable")]
    fills = np.empty((len(raw), len(FILL_COLUMNS)))
    fills[:, 0] = raw[:, 0]
    fills[:, 1] = raw[:, 0] + args.response_latency_ns  # hftbacktest reports the request time; the
    fills[:, 2] = raw[:, 3]                             # response reaches the strategy this much later
    fills[:, 3] = raw[:, 4]
    fills[:, 4] = raw[:, 5]
    fills[:, 5] = args.taker_fee_bps * 1e-4 * raw[:, 4] * raw[:, 5]
    summary["rows"] = int(len(data))
    return fills, summary


def run_genesis(events: MarketEvents, times: np.ndarray, sides: np.ndarray,
                args: argparse.Namespace) -> tuple[np.ndarray | None, dict]:
    """Genesis's fills (n, 6) in FILL_COLUMNS order for the orders sent at ``times``, and a summary.

    Runs the registered ``taker_only`` strategy over the whole replay; it keeps sending until
    the data ends, so fills of orders sent after ``times[-1]`` are left out of the comparison.
    """
    try:
        from genesis.backtest.engine import Fees, Latency, run_backtest
    except ImportError as exc:
        return None, {"available": False, "reason": f"genesis.backtest.engine: {exc}"}
    interval = int(times[1] - times[0]) if len(times) > 1 else 1_000_000_000
    t0 = time.perf_counter()
    result = run_backtest("taker_only", {"interval_ns": interval, "qty": args.qty}, events,
                          tick_size=args.tick_size, lot_size=args.lot_size,
                          latency=Latency.constant(args.entry_latency_ns, args.response_latency_ns),
                          fees=Fees(maker_bps=0.0, taker_bps=args.taker_fee_bps), equity_interval_ns=0)
    seconds = time.perf_counter() - t0
    f = result.fills
    sent_at = f["exch_ts"] - args.entry_latency_ns
    keep = sent_at <= times[-1]
    f = f[keep]
    out = np.empty((len(f), len(FILL_COLUMNS)))
    out[:, 0] = f["exch_ts"]
    out[:, 1] = f["local_ts"]
    out[:, 2] = f["side"]
    out[:, 3] = f["price"]
    out[:, 4] = f["qty"]
    out[:, 5] = f["fee"]
    # One fill per order means no order walked past the best level (hftbacktest's assumption holds).
    orders, per_order = np.unique(f["order_id"], return_counts=True)
    realized = float(f["realized_pnl"][-1]) if len(f) else 0.0
    info = {"own_state": {"realized_pnl": realized, "fees": float(f["fee"].sum()),
                          "position": float(f["position"][-1]) if len(f) else 0.0},
            "seconds": seconds, "orders_filled": int(len(orders)),
            "orders_filled_over_levels": int((per_order > 1).sum()),
            "makers": int(f["maker"].sum()), "fills_after_schedule_dropped": int((~keep).sum())}
    return out, info


def pnl_of(fills: np.ndarray, final_mid: float) -> dict:
    """Realized + unrealized PnL (marked to ``final_mid``), fees and net, from fill rows."""
    side, price, qty, fee = fills[:, 2], fills[:, 3], fills[:, 4], fills[:, 5]
    cash = float(-(side * price * qty).sum())
    position = float((side * qty).sum())
    gross = cash + position * final_mid
    fees = float(fee.sum())
    return {"fills": int(len(fills)), "position": round(position, 9), "gross_pnl": gross, "fees": fees,
            "net_pnl": gross - fees}


def compare(name: str, a: np.ndarray, b: np.ndarray, price_tol: float, money_tol: float) -> dict:
    """Row-by-row differences between two fill tables (same schedule, so same order)."""
    out: dict = {"against": name, "n": [int(len(a)), int(len(b))], "same_count": len(a) == len(b)}
    if len(a) != len(b) or not len(a):
        out["ok"] = len(a) == len(b)
        return out
    dt = np.abs(a[:, 0] - b[:, 0])
    dp = np.abs(a[:, 3] - b[:, 3])
    dq = np.abs(a[:, 4] - b[:, 4])
    df = np.abs(a[:, 5] - b[:, 5])
    out.update(
        max_exch_ts_diff_ns=int(dt.max()), max_local_ts_diff_ns=int(np.abs(a[:, 1] - b[:, 1]).max()),
        side_mismatches=int((a[:, 2] != b[:, 2]).sum()), max_price_diff=float(dp.max()),
        max_qty_diff=float(dq.max()), max_fee_diff=float(df.max()),
        first_price_mismatch=int(np.argmax(dp > price_tol)) if (dp > price_tol).any() else None,
    )
    out["ok"] = bool(dt.max() == 0 and out["side_mismatches"] == 0 and dp.max() <= price_tol
                     and dq.max() <= 1e-12 and df.max() <= money_tol)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--capture", type=Path, default=None, help="Binance capture (default: shared BTCUSDT, else bundled)")
    p.add_argument("--orders", type=int, default=100_000, help="at most this many (default: all the data allows)")
    p.add_argument("--interval-ms", type=float, default=1000.0)
    p.add_argument("--qty", type=float, default=None, help="order size (default: the lot)")
    p.add_argument("--entry-latency-us", type=float, default=1000.0)
    p.add_argument("--response-latency-us", type=float, default=1000.0)
    p.add_argument("--taker-fee-bps", type=float, default=5.0)
    p.add_argument("--min-feed-latency-us", type=float, default=0.0)
    p.add_argument("--tick-size", type=float, default=None,
                   help="the venue's tick (default: inferred exactly from the capture's prices)")
    p.add_argument("--lot-size", type=float, default=None,
                   help="the venue's lot (default: inferred exactly from the capture's sizes)")
    p.add_argument("--hbt-python", default=None, help="interpreter of the hftbacktest environment")
    args = p.parse_args(argv)
    # Latencies in ns; 1000 us becomes 1,000,137 ns: never a whole millisecond (see the docstring).
    args.entry_latency_ns = int(round(args.entry_latency_us * 1000)) + 137
    args.response_latency_ns = int(round(args.response_latency_us * 1000))
    interval_ns = int(round(args.interval_ms * 1e6))

    capture = args.capture or hd.default_capture()
    raw = hd.capture_market_events(capture)
    offset = hd.feed_latency_offset(raw, int(args.min_feed_latency_us * 1000))
    events = hd.shift_local_clock(raw, offset)
    # The instrument: as given (the venue's exchangeInfo), else inferred exactly from the capture,
    # which can only be finer than the venue's lot (e.g. spot market orders sized in quote units).
    inferred = infer_instrument(events.symbol, np.concatenate((events.deltas["price"], events.trades["price"])),
                                np.concatenate((events.deltas["qty"], events.trades["qty"])))
    given = [name for name in ("tick_size", "lot_size") if getattr(args, name) is not None]
    source = "given" if len(given) == 2 else f"{' and '.join(given)} given, the rest inferred" if given \
        else "inferred from the capture"
    args.tick_size = args.tick_size if args.tick_size is not None else inferred.tick_size
    args.lot_size = args.lot_size if args.lot_size is not None else inferred.lot_size
    args.qty = args.qty if args.qty is not None else args.lot_size
    times, sides = order_schedule(events, interval_ns, args.orders)
    reference = reference_fills(events, times, sides, args.qty, args.entry_latency_ns, args.response_latency_ns,
                                args.taker_fee_bps)
    final_mid = None
    report: dict = {
        "benchmark": "hftbacktest_compare",
        "capture": str(capture), "symbol": events.symbol,
        "events": {"deltas": int(len(events.deltas)), "trades": int(len(events.trades))},
        "local_clock_shift_ns": offset,
        "strategy": {"kind": "taker-only market orders, alternating buy/sell", "orders": int(len(times)),
                     "interval_ns": interval_ns, "qty": args.qty, "first_order_local_ts": int(times[0]),
                     "genesis_strategy": "taker_only"},
        "instrument": {"tick_size": args.tick_size, "lot_size": args.lot_size, "source": source},
        "latency_ns": {"entry": args.entry_latency_ns, "response": args.response_latency_ns},
        "fees_bps": {"taker": args.taker_fee_bps},
    }
    python = hbt_python(args.hbt_python)
    ok = True
    tol_price = args.tick_size * 1e-6
    with tempfile.TemporaryDirectory(prefix="genesis-hbt-") as tmp:
        if python is None:
            report["hftbacktest"] = {"available": False,
                                     "reason": f"no hftbacktest environment at {DEFAULT_HBT_VENV}: run "
                                               "benchmarks/setup_hftbacktest.sh (or set HFTBACKTEST_PYTHON)"}
            print(json.dumps(report, indent=2))
            return 2
        t0 = time.perf_counter()
        hbt_fills, hbt_summary = run_hftbacktest(python, events, times, args, Path(tmp))
        final_mid = hbt_summary["final_mid"]
        state = hbt_summary["state"]
        report["hftbacktest"] = {
            "version": hbt_summary["hftbacktest"], "rows": hbt_summary["rows"], "seconds": time.perf_counter() - t0,
            **pnl_of(hbt_fills, final_mid),
            "own_state": {"fee": state["fee"], "balance": state["balance"], "position": state["position"],
                          "num_trades": state["num_trades"], "equity": state["balance"]
                          + state["position"] * final_mid - state["fee"]},
        }
    report["reference"] = pnl_of(reference, final_mid)
    checks = [compare("hftbacktest vs reference", hbt_fills, reference, tol_price, 1e-9)]
    genesis_fills, genesis_info = run_genesis(events, times, sides, args)
    if genesis_fills is None:
        report["genesis"] = genesis_info
        ok = False
    else:
        report["genesis"] = {**genesis_info, **pnl_of(genesis_fills, final_mid)}
        checks.append(compare("genesis vs hftbacktest", genesis_fills, hbt_fills, tol_price, 1e-9))
        checks.append(compare("genesis vs reference", genesis_fills, reference, tol_price, 1e-9))
    report["checks"] = checks
    pnl = [report[k]["net_pnl"] for k in ("hftbacktest", "genesis", "reference") if "net_pnl" in report.get(k, {})]
    report["max_net_pnl_diff"] = float(max(pnl) - min(pnl)) if pnl else None
    ok = ok and all(c["ok"] for c in checks) and report["max_net_pnl_diff"] <= 1e-6
    # The shared assumption: every Genesis order filled as a taker within the best level.
    ok = ok and genesis_info.get("orders_filled_over_levels", 0) == 0 and genesis_info.get("makers", 0) == 0
    report["ok"] = bool(ok)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
