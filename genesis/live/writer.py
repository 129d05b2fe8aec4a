"""LIVE mode with a ClickHouse server: what the engine applied goes to the store in batches.

With the embedded store a running server records capture files instead (the embedded engine
admits one process at a time; ingest reads the files later). With a server, many processes may
write, so :class:`StoreWriter` inserts the applied depth messages (``depth_deltas``, ``seq`` the
venue's final update id), the top-L row after each (``book_snapshots``, sampling 'event') and
the trades, every ``flush_s`` seconds or ``max_rows`` rows, one insert per table per batch.
Rows are tagged ``source_id`` = ``live:<venue>:<UTC start time>`` so a session's rows can be
found, or deleted, together. The writer is also a feed listener: the trading terms the client
fetches (``exchangeInfo``) go to the ``instruments`` table with the next batch
(:func:`genesis.store.instruments.write_instruments`, idempotent).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np

from genesis.feeds.binance.live import FeedListener
from genesis.live.pipeline import Step


class StoreWriter(FeedListener):
    """Batches of live rows inserted into the store at ``store_url`` (see the module docstring)."""

    def __init__(self, store_url: str | None, venue: str, *, flush_s: float = 5.0, max_rows: int = 200_000):
        if flush_s <= 0 or max_rows < 1:
            raise ValueError(f"flush_s={flush_s} and max_rows={max_rows} must be positive")
        self.store_url = store_url
        self.source_id = f"live:{venue}:{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
        self.flush_s = float(flush_s)
        self.max_rows = int(max_rows)
        self.inserted = {"depth_deltas": 0, "book_snapshots": 0, "trades": 0, "instruments": 0}
        self.batches = 0
        self._pending: list[tuple[str, np.ndarray, np.ndarray, Step]] = []
        self._instruments: list = []  # specs received, recorded with the next batch
        self._rows = 0
        self._last = time.monotonic()
        self._migrated = False

    def add(self, symbol: str, deltas: np.ndarray, update_ids: np.ndarray, step: Step) -> None:
        """One slice: its deltas (``seq`` = message index in the slice), each message's venue
        update id, and the pipeline's step over it (book rows, trades)."""
        if len(deltas) or len(step.trades):
            self._pending.append((symbol, deltas, np.asarray(update_ids, np.int64), step))
            self._rows += len(deltas) + len(step.trades)
        if self._rows >= self.max_rows or time.monotonic() - self._last >= self.flush_s:
            self.flush()

    def on_instruments(self, specs: list, local_ts: int, raw: bytes) -> None:
        """The venue's terms of the client's symbols: recorded with the next batch."""
        self._instruments.extend(specs)

    def flush(self) -> int:
        """Insert everything pending (one short lease); returns the rows inserted."""
        self._last = time.monotonic()
        if not self._pending and not self._instruments:
            return 0
        from genesis.pipelines.ingest import insert_book_rows
        from genesis.store import connect, migrate
        from genesis.store.instruments import write_instruments

        pending, self._pending, self._rows = self._pending, [], 0
        specs, self._instruments = self._instruments, []
        n = 0
        with connect(self.store_url) as store:
            if not self._migrated:
                migrate(store)
                self._migrated = True
            if specs:
                written = write_instruments(store, specs, source_id=self.source_id)
                self.inserted["instruments"] += written
                n += written
            for symbol, deltas, update_ids, step in pending:
                tag = {"symbol": symbol, "source_id": self.source_id}
                if len(deltas):
                    seq = update_ids[deltas["seq"]].astype(np.uint64)
                    n += store.insert_columns("depth_deltas", {
                        **tag, "exch_ts": deltas["exch_ts"], "local_ts": deltas["local_ts"], "seq": seq,
                        "side": deltas["side"], "price": deltas["price"], "qty": deltas["qty"],
                        "is_snapshot": deltas["is_snapshot"]})
                    self.inserted["depth_deltas"] += len(deltas)
                b = step.book
                if len(b):
                    first = step.book_rows
                    rows = insert_book_rows(store, tag, "event", b.ts, deltas["local_ts"][first],
                                             update_ids[deltas["seq"][first]], b.bid_px, b.bid_sz, b.ask_px, b.ask_sz)
                    self.inserted["book_snapshots"] += rows
                    n += rows
                t = step.trades
                if len(t):
                    n += store.insert_columns("trades", {
                        **tag, "exch_ts": t["exch_ts"], "local_ts": t["local_ts"],
                        "trade_id": t["trade_id"].astype(np.uint64), "price": t["price"], "qty": t["qty"],
                        "aggressor": t["aggressor"]})
                    self.inserted["trades"] += len(t)
        self.batches += 1
        return n


__all__ = ["StoreWriter"]
