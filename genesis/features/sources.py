"""Feature inputs from where the data lives: a capture file (no store needed) or the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genesis.book.l2 import L2Book
from genesis.features.engine import Snapshots, Trades
from genesis.feeds.binance.capture import read_capture


def from_capture(path: str | Path, symbol: str | None = None, depth: int = 20,
                 venue: str | None = None) -> tuple[Snapshots, Trades]:
    """Event-time snapshots (one row after every applied depth event) and the trades of one
    symbol of a Binance capture, rebuilt with :class:`~genesis.book.l2.L2Book`.

    ``symbol`` may be bare (``BTCUSDT``) or namespaced; it may be left out when the file
    holds one symbol. ``updates`` counts the level updates of each applied event.
    """
    capture = read_capture(path, venue=venue)
    names = list(capture.symbols)
    if symbol is None:
        if len(names) != 1:
            raise ValueError(f"{path}: holds {len(names)} symbols ({', '.join(names)}); pass symbol=")
        chosen = names[0]
    else:
        matches = [n for n in names if n == symbol or n.split(":", 1)[-1] == symbol.upper()]
        if not matches:
            raise ValueError(f"{path}: no symbol {symbol!r} (it holds {', '.join(names) or 'none'})")
        chosen = matches[0]
    events = capture.symbols[chosen]
    d = events.depth
    book = L2Book(depth=depth, sequencing=events.sequencing)
    result = book.apply_depth(d.is_snapshot, d.first_id, d.last_id, d.prev_id, d.level_start,
                              d.level_count, d.side, d.price, d.qty)
    rows = result.top_msg
    # A REST snapshot carries no exchange time; its row takes the next event's time so
    # that rows stay in time order.
    ts = d.exch_ts[rows].astype(np.int64)
    valid = ~d.is_snapshot[rows]
    if not valid.all():
        later = np.maximum.accumulate(np.where(valid, ts, np.iinfo(np.int64).min)[::-1])[::-1]
        ts = np.where(valid, ts, np.where(later > np.iinfo(np.int64).min, later, ts))
        ts = np.maximum.accumulate(ts)
    snaps = Snapshots(ts, result.bid_px, result.bid_sz, result.ask_px, result.ask_sz,
                      d.level_count[rows].astype(np.float64))
    t = np.sort(events.trades, order="exch_ts", kind="stable")
    return snaps, Trades(t["exch_ts"], t["price"], t["qty"], t["aggressor"])
