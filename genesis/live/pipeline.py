"""One symbol's stages: events -> L2 book -> features -> surveillance -> regimes.

:class:`SymbolPipeline` is stepped with consecutive slices of one symbol's events (book deltas
grouped into messages, trades, order events), each slice later than the one before. Every
stage is the package's own streaming form, so a pipeline stepped in any slices gives what the
batch paths give over all the rows:

* the book: :meth:`genesis.book.l2.L2Book.apply_groups` (state carried in the book), one top-L
  row per applied message, crossed results and messages without a venue time left out (as
  ingest's stored book rows and :meth:`genesis.surveillance.engine.Inputs.from_events` do);
* features: :class:`genesis.features.engine.FeatureStream` (trades later than a slice's last
  book row are carried to the next slice, since a book row takes every trade up to its time);
* surveillance: :class:`genesis.surveillance.engine.SurveillanceStream`;
* regimes: :class:`genesis.surveillance.regimes.RegimeTracker` fed the manipulation alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from genesis.book.l2 import L2Book
from genesis.feeds.events import ORDER_EVENT_DTYPE, TRADE_DTYPE, delta_events
from genesis.features.engine import FeatureStream, Snapshots
from genesis.surveillance.base import MANIPULATION_KINDS
from genesis.surveillance.engine import Book, SurveillanceStream
from genesis.surveillance.regimes import RegimeTracker, manipulation_alert_times

# What the dashboards show: prices, the feature strip (OFI, OBI, spread z, VPIN).
FEATURES = ("mid", "microprice", "spread", "ofi", "obi", "spread_z", "vpin")


@dataclass
class Step:
    """What one slice produced for one symbol.

    book: top-L rows after each applied message (``ts`` (n,), prices/sizes (n, L));
    features: (n_columns, n) float64 in ``columns`` order, one column per book row;
    trades: the slice's TRADE_DTYPE rows; alerts: the alerts released (ALERT_COLUMNS + symbol);
    regime_ts, regimes: book row times and regime codes released by the tracker.
    """

    symbol: str
    book: Book
    features: np.ndarray
    columns: list[str]
    trades: np.ndarray
    alerts: pd.DataFrame
    regime_ts: np.ndarray
    regimes: np.ndarray
    messages: int  # depth messages applied (crossed ones included)
    book_rows: np.ndarray = None  # (n,) index in the slice's deltas of each book row's first delta

    def __post_init__(self) -> None:
        if self.book_rows is None:
            self.book_rows = np.empty(0, np.int64)


class SymbolPipeline:
    """The stages of one symbol (see the module docstring).

    symbol: namespaced symbol; sources: the inputs it will be fed, among 'orders', 'trades',
    'book' (detectors needing a missing input are left out); levels: book levels kept;
    detectors: None for the defaults; features: feature spec items.
    """

    def __init__(self, symbol: str, *, sources: Sequence[str] = ("trades", "book"), levels: int = 20,
                 detectors=None, features: Sequence[str] = FEATURES):
        from genesis.surveillance.detectors import default_detectors

        if "book" not in sources:
            raise ValueError(f"SymbolPipeline({symbol!r}): sources must include 'book', got {list(sources)}")
        self.symbol = symbol
        self.levels = int(levels)
        self.sources = tuple(sources)
        self.book = L2Book(self.levels)
        self.features = FeatureStream(list(features), self.levels)
        self.columns = list(self.features.spec.columns)
        usable = [d for d in (default_detectors() if detectors is None else detectors)
                  if set(d.inputs) <= set(self.sources)]
        self.surveillance = SurveillanceStream(symbol, usable, sources=self.sources, levels=self.levels)
        # As classify_regimes: with order-level events, L2 spoofing inference is left out of the regime.
        self.regime_kinds = [k for k in MANIPULATION_KINDS if not ("orders" in self.sources and k == "spoofing_l2")]
        regime_sources = ("trades", "book", "alerts") if "trades" in self.sources else ("book", "alerts")
        self.regimes = RegimeTracker(sources=regime_sources, levels=self.levels)
        self._carry_trades = np.empty(0, TRADE_DTYPE)
        self._last_book_ts = np.iinfo(np.int64).min
        self._last_trade_ts = np.iinfo(np.int64).min
        self._last_order_ts = np.iinfo(np.int64).min

    @property
    def last_trade_ts(self) -> int:
        """Exchange time of the newest trade fed (int64 min before any)."""
        return self._last_trade_ts

    def step(self, deltas: np.ndarray, trades: np.ndarray | None = None, orders: np.ndarray | None = None) -> Step:
        """Apply one slice: DELTA_DTYPE rows of whole messages, TRADE_DTYPE and ORDER_EVENT_DTYPE rows."""
        trades = np.empty(0, TRADE_DTYPE) if trades is None else trades
        orders = np.empty(0, ORDER_EVENT_DTYPE) if orders is None else orders
        if len(deltas):
            starts, counts, snapshot = delta_events(deltas)
            bid_px, bid_sz, ask_px, ask_sz, crossed = self.book.apply_groups(
                starts, counts, snapshot, deltas["side"], deltas["price"], deltas["qty"])
            # A message without a venue time (a spot REST snapshot, stored at 0) builds the book but
            # gives no row, as ingest's book rows; times never go back along the applied stream.
            raw_ts = deltas["exch_ts"][starts]
            keep = ~crossed & (raw_ts > 0)
            ts = np.maximum.accumulate(np.maximum(raw_ts, self._last_book_ts))[keep]
            book = Book(ts, bid_px[keep], bid_sz[keep], ask_px[keep], ask_sz[keep])
            messages, book_rows = len(starts), np.asarray(starts, np.int64)[keep]
        else:
            book, messages, book_rows = Book.empty(self.levels), 0, np.empty(0, np.int64)
        if len(book):
            self._last_book_ts = int(book.ts[-1])
        if len(trades):
            self._last_trade_ts = int(trades["exch_ts"][-1])
        if len(orders):
            self._last_order_ts = int(orders["exch_ts"][-1])

        # Features: each book row takes the trades up to its time; later ones wait for the next row.
        pending = np.concatenate((self._carry_trades, trades)) if len(self._carry_trades) else trades
        if len(book):
            upto = int(np.searchsorted(pending["exch_ts"], book.ts[-1], side="right"))
            features = self.features.process(
                Snapshots(book.ts, book.bid_px, book.bid_sz, book.ask_px, book.ask_sz), pending[:upto])
            self._carry_trades = pending[upto:]
        else:
            features = np.empty((len(self.columns), 0))
            self._carry_trades = pending

        alerts = self.surveillance.process(orders if "orders" in self.sources and len(orders) else None,
                                           trades if "trades" in self.sources and len(trades) else None,
                                           book if len(book) else None)
        regime_ts, regimes = self._regimes(book, trades, alerts)
        return Step(self.symbol, book, features, self.columns, trades, alerts, regime_ts, regimes, messages,
                    book_rows)

    def _regimes(self, book: Book, trades: np.ndarray, alerts: pd.DataFrame, final: bool = False):
        times = manipulation_alert_times(alerts, self.regime_kinds,
                                         self.regimes.params.min_alert_score) if len(alerts) else None
        if final:
            if times is not None and len(times):
                self.regimes.update(alert_ts=np.sort(times))
            return self.regimes.finish()
        # Alerts are complete up to the surveillance watermark: every source has passed it.
        latest = {"book": self._last_book_ts, "trades": self._last_trade_ts, "orders": self._last_order_ts}
        through = min(latest[s] for s in self.sources)
        return self.regimes.update(book if len(book) else None,
                                   trades if "trades" in self.regimes.sources and len(trades) else None,
                                   np.sort(times) if times is not None and len(times) else None,
                                   alerts_through=through)

    def finish(self) -> Step:
        """The end of the stream: release every alert and regime still held back."""
        alerts = self.surveillance.finish()
        regime_ts, regimes = self._regimes(Book.empty(self.levels), np.empty(0, TRADE_DTYPE), alerts, final=True)
        return Step(self.symbol, Book.empty(self.levels), np.empty((len(self.columns), 0)), self.columns,
                    np.empty(0, TRADE_DTYPE), alerts, regime_ts, regimes, 0)


__all__ = ["SymbolPipeline", "Step", "FEATURES"]
