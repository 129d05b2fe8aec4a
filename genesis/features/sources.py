"""Feature inputs from where the data lives: a capture file (no store needed) or the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from genesis.book.l2 import L2Book, applied_clocks
from genesis.features.engine import Snapshots, Trades, compute_features
from genesis.features.registry import FeatureSpec
from genesis.features.sampling import sample
from genesis.store.queries import to_ns
from genesis.feeds.binance.capture import read_capture


def from_capture(path: str | Path, symbol: str | None = None, depth: int = 20,
                 venue: str | None = None) -> tuple[Snapshots, Trades]:
    """Event-time snapshots (one row after every applied depth event) and the trades of one
    symbol of a Binance capture, rebuilt with :class:`~genesis.book.l2.L2Book`.

    ``symbol`` may be bare (``BTCUSDT``) or namespaced; it may be left out when the file
    holds one symbol. ``updates`` counts the level updates of each applied event.
    """
    events = read_capture(path, venue=venue).symbol_events(symbol)
    d = events.depth
    book = L2Book(depth=depth, sequencing=events.sequencing)
    result = book.apply_depth(d.is_snapshot, d.first_id, d.last_id, d.prev_id, d.level_start,
                              d.level_count, d.side, d.price, d.qty)
    rows = result.top_msg
    # Row times as ingest stores them: along the applied stream, in update-id order.
    exch_ts = d.exch_ts.copy()
    exch_ts[result.applied] = applied_clocks(d.exch_ts[result.applied], d.local_ts[result.applied])[0]
    ts = exch_ts[rows].astype(np.int64)
    snaps = Snapshots(ts, result.bid_px, result.bid_sz, result.ask_px, result.ask_sz,
                      d.level_count[rows].astype(np.float64))
    t = np.sort(events.trades, order="exch_ts", kind="stable")
    return snaps, Trades(t["exch_ts"], t["price"], t["qty"], t["aggressor"])


def load_range(symbol: str, start: Any = None, end: Any = None, spec: Any = None, sampling: str = "event",
               capture: str | Path | None = None, store_url: str | None = None, also: Iterable[str] = ()
               ) -> tuple[pd.DataFrame, Snapshots, Trades]:
    """Features of ``symbol`` over ``[start, end)``, exact from the first row, with the rows and
    trades they came from: ``(frame, snapshots, trades)``. ``spec`` None is the default set,
    fitted to the depth of the stored book; ``also`` lists items added when the spec lacks
    them (e.g. the columns a plot draws).

    From the store (default): reads the range plus ``spec.lookback`` rows before it, computes,
    and drops those warm-up rows. From a ``capture`` file: rebuilds the book of the whole file,
    computes, and keeps the range. ``start``/``end`` are anything :class:`pandas.Timestamp`
    reads (naive means UTC); None for the first row / past the last. ``symbol`` may be bare
    when one venue has it. Raises ValueError naming what the store holds when it has no rows.
    """
    from genesis.features.store import load_inputs
    from genesis.store import connect

    # Warm-up rows for the widest spec this can become; the spec is fitted once the book's depth is known.
    lookback = FeatureSpec.coerce(spec).including(also).lookback
    if capture is not None:
        snaps, trades = from_capture(capture, symbol)
        snaps, n_warmup = sample(snaps, trades, sampling), 0
    else:
        with connect(store_url) as store:
            symbol = _stored_symbol(store, symbol)
            snaps, trades, n_warmup = load_inputs(store, symbol, start, end, sampling=sampling,
                                                  warmup_rows=lookback)
    frame = compute_features(snaps, trades, FeatureSpec.coerce(spec, snaps.levels).including(also))
    keep = np.arange(len(snaps)) >= n_warmup
    if start is not None:
        keep &= snaps.ts >= to_ns(start)
    if end is not None:
        keep &= snaps.ts < to_ns(end)
    if not keep.any():
        raise ValueError(f"{symbol}: no {sampling} rows in [{start}, {end})")
    snaps = snaps.take(keep)
    shown = (trades.ts >= snaps.ts[0]) & (trades.ts <= snaps.ts[-1])
    trades = Trades(trades.ts[shown], trades.price[shown], trades.qty[shown], trades.side[shown])
    return frame[keep].reset_index(drop=True), snaps, trades


def time_span(symbol: str, capture: str | Path | None = None, store_url: str | None = None
              ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last book-row time of ``symbol`` (UTC), in the store or a capture file."""
    if capture is not None:
        snaps, _ = from_capture(capture, symbol)
        first, last = int(snaps.ts[0]), int(snaps.ts[-1])
    else:
        from genesis.features.store import time_span as stored_span
        from genesis.store import connect

        with connect(store_url) as store:
            first, last = stored_span(store, _stored_symbol(store, symbol))
    return pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC")


def _stored_symbol(store, symbol: str) -> str:
    """``symbol`` as the store names it; a LookupError saying what it holds and how to ingest."""
    from genesis.features.store import stored_symbol

    hint = ("ingest it first: `make run` (the bundled sample) or `genesis ingest binance-capture <files>`; "
            "or read a capture file directly (capture=...)")
    try:
        return stored_symbol(store, symbol)
    except ValueError as exc:
        raise LookupError(f"{exc}; {hint}") from None
