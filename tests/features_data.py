"""Inputs for the feature tests: the real captures, and generated edge cases."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from genesis.features import Snapshots, Trades, from_capture
from tests.conftest import capture_path

REAL = ("usdm_btcusdt_20240808.jsonl.gz", "spot_ethusdt_20240808.jsonl.gz")


@lru_cache(maxsize=None)
def real(name: str) -> tuple[Snapshots, Trades]:
    return from_capture(capture_path(name), depth=20)


def synthetic_book(n: int, levels: int = 20, seed: int = 7, tick: float = 0.1) -> tuple[Snapshots, Trades]:
    """A random-walk book with sizes that vary level to level, and trades between rows
    (some without a side, so Lee-Ready classifies them)."""
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(1, 50, n)) * 1_000_000 + 1_700_000_000_000_000_000
    mid_ticks = 10_000 + np.cumsum(rng.integers(-2, 3, n))
    half = rng.integers(1, 4, n)
    k = np.arange(levels)
    bid_px = (mid_ticks - half)[:, None] * tick - k * tick
    ask_px = (mid_ticks + half)[:, None] * tick + k * tick
    bid_sz = rng.lognormal(0.0, 1.0, (n, levels)).round(3) + 0.001
    ask_sz = rng.lognormal(0.0, 1.0, (n, levels)).round(3) + 0.001
    updates = rng.integers(0, 30, n).astype(float)
    m = 3 * n
    t_ts = np.sort(rng.integers(ts[0] - 5_000_000, ts[-1] + 1, m))
    row = np.minimum(np.searchsorted(ts, t_ts), n - 1)
    t_px = np.round(((mid_ticks[row] + rng.integers(-3, 4, m)) * tick), 10)
    t_qty = rng.lognormal(-1.0, 1.0, m).round(4) + 0.0001
    t_side = rng.choice([-1.0, 0.0, 1.0], m)
    return Snapshots(ts, bid_px, bid_sz, ask_px, ask_sz, updates), Trades(t_ts, t_px, t_qty, t_side)


def _with_book(s: Snapshots, **arrays) -> Snapshots:
    fields = dict(ts=s.ts, bid_px=s.bid_px, bid_sz=s.bid_sz, ask_px=s.ask_px, ask_sz=s.ask_sz, updates=s.updates)
    fields.update(arrays)
    return Snapshots(**fields)


def edge_cases() -> dict[str, tuple[Snapshots, Trades]]:
    snaps, trades = synthetic_book(400)
    rng = np.random.default_rng(11)
    cases = {"synthetic": (snaps, trades)}

    # Thin books: rows with fewer levels (NaN tails), and rows where the book was invalid (all NaN).
    bid_px, bid_sz, ask_px, ask_sz = (a.copy() for a in (snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz))
    for i in range(len(snaps)):
        nb_, na_ = rng.integers(1, 21), rng.integers(1, 21)
        bid_px[i, nb_:] = bid_sz[i, nb_:] = np.nan
        ask_px[i, na_:] = ask_sz[i, na_:] = np.nan
    dead = rng.choice(len(snaps), 25, replace=False)
    for a in (bid_px, bid_sz, ask_px, ask_sz):
        a[dead] = np.nan
    cases["nan_levels"] = (_with_book(snaps, bid_px=bid_px, bid_sz=bid_sz, ask_px=ask_px, ask_sz=ask_sz), trades)

    # One-sided books: runs of rows with no asks, then no bids.
    bid_px, bid_sz, ask_px, ask_sz = (a.copy() for a in (snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz))
    ask_px[100:140] = ask_sz[100:140] = np.nan
    bid_px[250:260] = bid_sz[250:260] = np.nan
    cases["one_sided"] = (_with_book(snaps, bid_px=bid_px, bid_sz=bid_sz, ask_px=ask_px, ask_sz=ask_sz), trades)

    cases["no_trades"] = (snaps, Trades.empty())
    zero = Trades(trades.ts, trades.price, np.zeros(len(trades)), trades.side)
    cases["zero_volume"] = (snaps, zero)
    cases["single_snapshot"] = (snaps.take(slice(0, 1)), trades)
    cases["sides_unknown"] = (snaps, Trades(trades.ts, trades.price, trades.qty, np.zeros(len(trades))))
    cases["constant_book"] = (_with_book(snaps, bid_px=np.repeat(snaps.bid_px[:1], len(snaps), 0),
                                         ask_px=np.repeat(snaps.ask_px[:1], len(snaps), 0),
                                         bid_sz=np.repeat(snaps.bid_sz[:1], len(snaps), 0),
                                         ask_sz=np.repeat(snaps.ask_sz[:1], len(snaps), 0)), Trades.empty())
    return cases
