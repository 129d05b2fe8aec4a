"""Runs hftbacktest 2.4 on event arrays made by :mod:`benchmarks.hftbacktest_data` (benchmark-only).

This file runs in the separate hftbacktest environment (``benchmarks/setup_hftbacktest.sh``,
default ``.venv-hftbacktest``) and imports only NumPy, Numba and hftbacktest, never ``genesis``,
so hftbacktest's pins (numpy<2.3) never touch the project's environment. The parent scripts
(``hftbacktest_compare.py``, ``bench_backtest.py``) write the events to a ``.npy`` file, run

    .venv-hftbacktest/bin/python benchmarks/hftbacktest_runner.py taker|noop|mm EVENTS.npy OUT.json [options]

and read back one JSON document (and, for ``taker``, an ``.npz`` of the fills).

How hftbacktest (``HashMapMarketDepthBacktest``, ``NoPartialFillExchange``, ``ConstantLatency``)
fills, as read in its source (hftbacktest/src/backtest, tag py-hftbacktest 2.4.4):

- The exchange processor applies rows flagged ``EXCH_EVENT`` at their ``exch_ts``; the strategy's
  local book applies rows flagged ``LOCAL_EVENT`` at their ``local_ts``. At equal timestamps the
  event loop takes local data, then local order responses, then exchange data, then orders
  arriving at the exchange (``EventSet``: first of the smallest), so an order arriving at ``T``
  meets the book after every exchange row with ``exch_ts <= T``.
- An order submitted at local time ``t`` (the backtest's current time) reaches the exchange at
  ``t + entry_latency``. A market order (or a marketable GTC/IOC limit) is filled there in full
  at the best opposite price, whatever its size and the size at that level: one fill, maker
  False, ``exch_timestamp = t + entry_latency``. The response reaches the strategy at
  ``exch_timestamp + response_latency``.
- Fees (``trading_value_fee_model``) are ``rate * price * qty`` per fill, rates as fractions
  (0.0005 is 5 bps); ``balance`` is minus the signed traded notional.
- ``elapse(d)`` moves the clock to exactly ``current + d`` after processing every event up to
  and including that time; the first call starts from the first row's timestamp.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
from numba import njit

import hftbacktest as hbt_mod
from hftbacktest import (
    CANCELED, FILLED, GTC, GTX, LIMIT, MARKET, NEW, NONE, BacktestAsset, HashMapMarketDepthBacktest,
    ROIVectorMarketDepthBacktest,
)
from hftbacktest.order import PARTIALLY_FILLED

# hftbacktest's "no best price" ticks (hftbacktest/src/depth/mod.rs INVALID_MIN / INVALID_MAX).
INVALID_MIN = np.iinfo(np.int64).min
INVALID_MAX = np.iinfo(np.int64).max

EXPECTED_EVENT_DTYPE = np.dtype(
    [("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8"), ("qty", "f8"), ("order_id", "u8"),
     ("ival", "i8"), ("fval", "f8")],
    align=True,
)
FILL_FIELDS = ("exch_ts", "local_ts", "order_id", "side", "price", "qty")


def check_version() -> None:
    """Fail early if the installed hftbacktest is not the event layout the converter writes."""
    if hbt_mod.event_dtype != EXPECTED_EVENT_DTYPE:
        sys.exit(f"hftbacktest {hbt_mod.__version__}: event dtype {hbt_mod.event_dtype} differs from the one "
                 f"benchmarks/hftbacktest_data.py writes ({EXPECTED_EVENT_DTYPE})")


def make_backtest(data: np.ndarray, args: argparse.Namespace):
    asset = (
        BacktestAsset()
        .data(data)
        .linear_asset(1.0)
        .constant_order_latency(args.entry_latency_ns, args.response_latency_ns)
        .trading_value_fee_model(args.maker_fee_bps * 1e-4, args.taker_fee_bps * 1e-4)
        .tick_size(args.tick_size)
        .lot_size(args.lot_size)
        .no_partial_fill_exchange()
        .parallel_load(False)
    )
    if args.queue == "risk_adverse":
        asset = asset.risk_adverse_queue_model()
    else:
        asset = asset.power_prob_queue_model(float(args.queue_power))
    if args.depth == "roivec":
        # A price vector over [roi_lb, roi_ub]; levels outside it are not kept.
        return ROIVectorMarketDepthBacktest([asset.roi_lb(args.roi_lb).roi_ub(args.roi_ub)])
    return HashMapMarketDepthBacktest([asset])


@njit
def _record_fills(hbt, fills, n):
    """Append the strategy's filled orders (as the local side knows them) to ``fills``; clear them."""
    values = hbt.orders(0).values()
    while values.has_next():
        order = values.get()
        if order.status == FILLED and n < len(fills):
            fills[n, 0] = order.exch_timestamp
            fills[n, 1] = order.local_timestamp
            fills[n, 2] = order.order_id
            fills[n, 3] = order.side
            fills[n, 4] = order.exec_price
            fills[n, 5] = order.exec_qty
            n += 1
    hbt.clear_inactive_orders(0)
    return n


@njit
def taker_kernel(hbt, start_ts, interval, n_orders, qty, fills):
    """Market orders of ``qty`` at local times start_ts + k * interval, buy first, then alternating.

    Returns (fills recorded, orders sent, final mid). ``fills`` rows are (exch_ts, request
    local_ts, order_id, side, price, qty) as float64.
    """
    n = 0
    sent = 0
    hbt.elapse(0)
    if hbt.elapse(start_ts - hbt.current_timestamp) != 0:
        return n, sent, np.nan
    for k in range(n_orders):
        side_buy = k % 2 == 0
        if side_buy:
            hbt.submit_buy_order(0, k + 1, 0.0, qty, GTC, MARKET, False)
        else:
            hbt.submit_sell_order(0, k + 1, 0.0, qty, GTC, MARKET, False)
        sent += 1
        if hbt.elapse(interval) != 0:
            break
        n = _record_fills(hbt, fills, n)
    n = _record_fills(hbt, fills, n)
    depth = hbt.depth(0)
    return n, sent, (depth.best_bid + depth.best_ask) / 2.0


@njit
def noop_kernel(hbt, timeout):
    """Wake on every market-data row the strategy receives (rows of one local time together) and
    do nothing; returns (wake-ups, 0)."""
    wakeups = 0
    while True:
        rc = hbt.wait_next_feed(False, timeout)
        if rc == 1:  # end of data
            break
        if rc != 0 and rc != 2:
            return -rc, 0
        wakeups += 1
    return wakeups, 0


@njit
def _working(order) -> bool:
    """Sent and not finished, as the strategy knows it: awaiting its ack, resting, or partly filled."""
    return (order.status == NONE and order.req == NEW) or order.status == NEW or order.status == PARTIALLY_FILLED


@njit
def _quote_side(hbt, oid, quoted_tick, is_buy, want_tick, qty, allowed, next_id):
    """One side of the market maker; returns (order id or 0, its price tick, next free id, sent, cancels)."""
    orders = hbt.orders(0)
    if oid != 0 and (not orders.__contains__(oid) or not _working(orders.get(oid))):
        oid = 0
    if oid != 0:
        order = orders.get(oid)
        if (not allowed or quoted_tick != want_tick) and order.req != CANCELED and order.cancellable:
            hbt.cancel(0, oid, False)
            return oid, quoted_tick, next_id, 0, 1
        return oid, quoted_tick, next_id, 0, 0
    if allowed:
        price = want_tick * hbt.depth(0).tick_size
        if is_buy:
            hbt.submit_buy_order(0, next_id, price, qty, GTX, LIMIT, False)
        else:
            hbt.submit_sell_order(0, next_id, price, qty, GTX, LIMIT, False)
        return next_id, want_tick, next_id + 1, 1, 0
    return 0, 0, next_id, 0, 0


@njit
def market_maker_kernel(hbt, qty, max_position, skew_ticks, timeout):
    """Genesis's ``market_maker`` (genesis/strategy/market_maker.py) written for hftbacktest.

    On every wake-up (market data or an order response): bid = best bid - skew, ask = best ask
    - skew, skew = round(skew_ticks * position / qty) ticks, the ask kept above the best bid and
    the bid below the best ask; post-only (GTX) orders of ``qty``, one per side at a time; a
    working quote at another price is cancelled, a new one goes out once the side has none; a
    side whose fill would take |position| past ``max_position`` is not quoted. (hftbacktest
    cannot cancel an order before its ack, so such a cancel waits for the ack; Genesis also
    wakes only on depth messages and responses, while ``wait_next_feed`` wakes on trades too.)
    Returns (wake-ups, orders sent, cancels sent).
    """
    wakeups = 0
    sent = 0
    cancels = 0
    next_id = 1
    bid_id = 0
    ask_id = 0
    bid_tick = 0
    ask_tick = 0
    limit = max_position * (1 + 1e-9)
    while True:
        rc = hbt.wait_next_feed(True, timeout)
        if rc == 1:
            break
        if rc < 0 or rc > 3:
            return -rc, sent, cancels
        wakeups += 1
        depth = hbt.depth(0)
        best_bid = depth.best_bid_tick
        best_ask = depth.best_ask_tick
        if best_bid == INVALID_MIN or best_ask == INVALID_MAX:
            continue
        pos = hbt.position(0)
        skew = int(round(skew_ticks * pos / qty))
        want_bid = best_bid - skew
        want_ask = best_ask - skew
        if want_ask <= best_bid:
            want_ask = best_bid + 1
        if want_bid >= best_ask:
            want_bid = best_ask - 1
        bid_id, bid_tick, next_id, s, c = _quote_side(hbt, bid_id, bid_tick, True, want_bid, qty,
                                                      pos + qty <= limit, next_id)
        sent += s
        cancels += c
        ask_id, ask_tick, next_id, s, c = _quote_side(hbt, ask_id, ask_tick, False, want_ask, qty,
                                                      -pos + qty <= limit, next_id)
        sent += s
        cancels += c
        if next_id % 64 == 0:
            hbt.clear_inactive_orders(0)
    return wakeups, sent, cancels


def state_of(hbt) -> dict:
    sv = hbt.state_values(0)
    return {"position": sv.position, "balance": sv.balance, "fee": sv.fee, "num_trades": int(sv.num_trades),
            "trading_volume": sv.trading_volume, "trading_value": sv.trading_value}


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


def run(args: argparse.Namespace) -> dict:
    check_version()
    data = np.load(args.events, mmap_mode=None)
    if data.dtype != EXPECTED_EVENT_DTYPE:
        sys.exit(f"{args.events}: dtype {data.dtype}, expected hftbacktest's event dtype")
    data = np.ascontiguousarray(data)
    out: dict = {"hftbacktest": hbt_mod.__version__, "numpy": np.__version__, "rows": len(data), "depth": args.depth}
    if args.mode == "taker":
        hbt = make_backtest(data, args)
        fills = np.zeros((args.orders + 1, len(FILL_FIELDS)), np.float64)
        t0 = time.perf_counter()
        n, sent, mid = taker_kernel(hbt, args.start_ts, args.interval_ns, args.orders, args.qty, fills)
        out["seconds"] = time.perf_counter() - t0
        out.update(fills=int(n), sent=int(sent), final_mid=float(mid), state=state_of(hbt))
        hbt.close()
        np.savez(args.fills_out, fills=fills[:n])
        return out
    # Benchmarks: compile on a small slice first so that the timed run measures the replay only.
    warm = data[: min(len(data), 20_000)].copy()
    hbt = make_backtest(warm, args)
    _bench_call(hbt, args)
    hbt.close()
    times = []
    for _ in range(args.repeats):  # a fresh backtest over the same in-memory events each time
        hbt = make_backtest(data, args)
        t0 = time.perf_counter()
        result = _bench_call(hbt, args)
        times.append(time.perf_counter() - t0)
        state = state_of(hbt)
        hbt.close()
    out.update(seconds=min(times), all_seconds=times, result=[int(x) for x in result], state=state,
               peak_rss_mib=peak_rss_mib())
    return out


def _bench_call(hbt, args):
    if args.mode == "noop":
        return noop_kernel(hbt, args.timeout_ns)
    return market_maker_kernel(hbt, args.qty, args.max_position, args.skew_ticks, args.timeout_ns)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("taker", "noop", "mm"))
    p.add_argument("events", help=".npy of hftbacktest events (benchmarks/hftbacktest_data.to_hbt_events)")
    p.add_argument("out", help="JSON result file")
    p.add_argument("--fills-out", help="taker: .npz for the fills")
    p.add_argument("--entry-latency-ns", type=int, default=0)
    p.add_argument("--response-latency-ns", type=int, default=0)
    p.add_argument("--maker-fee-bps", type=float, default=0.0)
    p.add_argument("--taker-fee-bps", type=float, default=0.0)
    p.add_argument("--tick-size", type=float, required=True)
    p.add_argument("--lot-size", type=float, required=True)
    p.add_argument("--depth", choices=("hashmap", "roivec"), default="hashmap",
                   help="HashMapMarketDepthBacktest (any price) or ROIVectorMarketDepthBacktest (a price range)")
    p.add_argument("--roi-lb", type=float, default=0.0, help="roivec: lowest price kept")
    p.add_argument("--roi-ub", type=float, default=0.0, help="roivec: highest price kept")
    p.add_argument("--queue", choices=("risk_adverse", "power_prob"), default="risk_adverse")
    p.add_argument("--queue-power", type=float, default=3.0)
    p.add_argument("--start-ts", type=int, default=0, help="taker: local time of the first order (ns)")
    p.add_argument("--interval-ns", type=int, default=1_000_000_000)
    p.add_argument("--orders", type=int, default=100)
    p.add_argument("--qty", type=float, default=0.001)
    p.add_argument("--max-position", type=float, default=0.005)
    p.add_argument("--skew-ticks", type=float, default=1.0)
    p.add_argument("--timeout-ns", type=int, default=3_600_000_000_000)
    p.add_argument("--repeats", type=int, default=1, help="noop/mm: timed replays (best is reported)")
    args = p.parse_args(argv)
    if args.mode == "taker" and not args.fills_out:
        p.error("taker needs --fills-out")
    result = run(args)
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
