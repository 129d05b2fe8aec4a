"""Where the live engine's events come from: the store (REPLAY), the simulator (SIMULATION),
a Binance client (LIVE).

REPLAY and SIMULATION hold one :class:`~genesis.feeds.events.MarketEvents` per symbol in
memory (the store is read once, in one short lease, so the embedded store is not held while
the dashboards run) and walk them with a :class:`Cursor`: ``take(until)`` gives the events
with exchange time up to ``until``, whole depth messages at a time. LIVE collects what the
client applies (:class:`LiveCollector`) and hands it over in batches.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from genesis.feeds.binance.live import FeedListener
from genesis.feeds.events import DELTA_DTYPE, ORDER_EVENT_DTYPE, TRADE_DTYPE, MarketEvents, delta_events

MAX_REPLAY_ROWS = 20_000_000  # depth rows one replay may hold in memory (about 0.8 GB)


class Cursor:
    """A position in one symbol's events; :meth:`take` moves it forward in exchange time."""

    def __init__(self, events: MarketEvents):
        self.events = events
        self.symbol = events.symbol
        d = events.deltas
        starts, counts, _ = delta_events(d) if len(d) else (np.empty(0, np.int64),) * 3
        self.msg_starts = np.asarray(starts, np.int64)
        self.msg_ends = self.msg_starts + np.asarray(counts, np.int64)
        self.msg_ts = _message_times(d["exch_ts"][self.msg_starts]) if len(d) else np.empty(0, np.int64)
        self.trade_ts = events.trades["exch_ts"]
        self.order_ts = events.orders["exch_ts"] if events.orders is not None else np.empty(0, np.int64)
        self.rewind()

    def rewind(self) -> None:
        self.msg, self.trade, self.order = 0, 0, 0

    @property
    def first_ts(self) -> int:
        times = [a[0] for a in (self.msg_ts, self.trade_ts, self.order_ts) if len(a)]
        return int(min(times)) if times else 0

    @property
    def last_ts(self) -> int:
        times = [a[-1] for a in (self.msg_ts, self.trade_ts, self.order_ts) if len(a)]
        return int(max(times)) if times else 0

    @property
    def done(self) -> bool:
        return (self.msg >= len(self.msg_ts) and self.trade >= len(self.trade_ts)
                and self.order >= len(self.order_ts))

    def next_ts(self) -> int | None:
        """Exchange time of the next event not yet taken (None at the end)."""
        times = [a[k] for a, k in ((self.msg_ts, self.msg), (self.trade_ts, self.trade), (self.order_ts, self.order))
                 if k < len(a)]
        return int(min(times)) if times else None

    def pending(self, until: int) -> int:
        """Events with exchange time <= until not yet taken (messages + trades + order events)."""
        return (int(np.searchsorted(self.msg_ts, until, "right")) - self.msg
                + int(np.searchsorted(self.trade_ts, until, "right")) - self.trade
                + int(np.searchsorted(self.order_ts, until, "right")) - self.order)

    def take(self, until: int, max_events: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Deltas (whole messages), trades and order events with exchange time <= ``until``.

        ``max_events``: take at most about this many (messages + trades + order events), cut at an
        instant, so that a long jump is processed in bounded pieces.
        """
        m1 = int(np.searchsorted(self.msg_ts, until, "right"))
        t1 = int(np.searchsorted(self.trade_ts, until, "right"))
        o1 = int(np.searchsorted(self.order_ts, until, "right"))
        if max_events is not None and (m1 - self.msg) + (t1 - self.trade) + (o1 - self.order) > max_events:
            times = np.sort(np.concatenate((self.msg_ts[self.msg:m1], self.trade_ts[self.trade:t1],
                                            self.order_ts[self.order:o1])))
            cut = int(times[max_events])  # everything strictly before this instant ...
            side = "right" if cut == times[0] else "left"  # ... unless that is nothing at all
            m1 = int(np.searchsorted(self.msg_ts, cut, side))
            t1 = int(np.searchsorted(self.trade_ts, cut, side))
            o1 = int(np.searchsorted(self.order_ts, cut, side))
        d = self.events.deltas
        deltas = d[self.msg_starts[self.msg]:self.msg_ends[m1 - 1]] if m1 > self.msg else d[:0]
        trades = self.events.trades[self.trade:t1]
        orders = self.events.orders[self.order:o1]
        self.msg, self.trade, self.order = m1, t1, o1
        return deltas, trades, orders


def _message_times(ts: np.ndarray) -> np.ndarray:
    """When each message is replayed: its venue time; a message without one (<= 0: a spot REST
    snapshot) is taken with the next message that has one (else the last one before it); never
    going back."""
    ts = np.asarray(ts, np.int64).copy()
    known = ts > 0
    if not known.any():
        return np.zeros(len(ts), np.int64)
    n = len(ts)
    nxt = np.minimum.accumulate(np.where(known, np.arange(n), n)[::-1])[::-1]  # index of the next known time
    prev = np.maximum.accumulate(np.where(known, np.arange(n), -1))  # ... and of the last one before
    ts = np.where(known, ts, np.where(nxt < n, ts[np.minimum(nxt, n - 1)], ts[np.maximum(prev, 0)]))
    return np.maximum.accumulate(ts)


def load_replay(symbols: Sequence[str], start: Any = None, end: Any = None, *, store_url: str | None = None
                ) -> dict[str, MarketEvents]:
    """Each symbol's depth deltas, trades and order events in ``[start, end)`` from the store
    (one short lease). The deltas begin at the last stored snapshot at or before ``start`` (the
    book needs it), so the replay begins there. Symbols may be bare when unambiguous."""
    from genesis.features.store import stored_symbol, time_span
    from genesis.store import connect
    from genesis.store.queries import arrow_to_structured, to_ns

    if not symbols:
        raise ValueError("load_replay: name at least one symbol (genesis sql 'SELECT DISTINCT symbol FROM trades')")
    out: dict[str, MarketEvents] = {}
    with connect(store_url) as store:
        for name in symbols:
            symbol = stored_symbol(store, name)
            first, last = time_span(store, symbol)
            lo = first if start is None else to_ns(start)
            hi = last + 1 if end is None else to_ns(end)
            if hi <= lo:
                raise ValueError(f"load_replay: {symbol}: end {end!r} is not after start {start!r}")
            snap = store.query_rows(
                "SELECT toUnixTimestamp64Nano(max(exch_ts)), count() FROM depth_deltas WHERE symbol = {symbol:String}"
                " AND is_snapshot AND exch_ts <= fromUnixTimestamp64Nano({lo:Int64})", {"symbol": symbol, "lo": lo})
            # The book starts from that snapshot; trades and order events start at the range's start,
            # as the stored book rows do.
            book_lo = min(lo, int(snap[0][0])) if snap and snap[0][1] else lo
            params = {"symbol": symbol, "lo": lo, "hi": hi}
            book_params = {"symbol": symbol, "lo": book_lo, "hi": hi}
            where = ("WHERE symbol = {symbol:String} AND exch_ts >= fromUnixTimestamp64Nano({lo:Int64})"
                     " AND exch_ts < fromUnixTimestamp64Nano({hi:Int64})")
            n = store.query_rows(f"SELECT count() FROM depth_deltas {where}", book_params)[0][0]
            if n > MAX_REPLAY_ROWS:
                raise ValueError(f"load_replay: {symbol} has {n:,} depth rows in the range, more than one replay "
                                 f"holds ({MAX_REPLAY_ROWS:,}); choose a shorter --from/--to")
            deltas = arrow_to_structured(store.query_arrow(
                f"SELECT {', '.join(DELTA_DTYPE.names)} FROM depth_deltas {where} ORDER BY exch_ts, seq", book_params), DELTA_DTYPE)
            trades = arrow_to_structured(store.query_arrow(
                f"SELECT {', '.join(TRADE_DTYPE.names)} FROM trades {where} ORDER BY exch_ts, trade_id", params), TRADE_DTYPE)
            orders = arrow_to_structured(store.query_arrow(
                f"SELECT {', '.join(ORDER_EVENT_DTYPE.names)} FROM order_events {where} ORDER BY exch_ts, seq", params), ORDER_EVENT_DTYPE)
            if not len(deltas):
                raise ValueError(f"load_replay: {symbol} has no depth deltas in the range; "
                                 "ingest it first (genesis ingest ...)")
            out[symbol] = MarketEvents(symbol=symbol, deltas=deltas, trades=trades, orders=orders)
    return out


def simulated_market(scenario: str | None, *, seconds: float = 300.0, seed: int = 1, **config: Any) -> MarketEvents:
    """A simulated market with one scenario's episodes (None: none), named as ``genesis ingest
    simulate`` names it: ``sim:SPOOFING-1``. ``config``: :class:`SimConfig` fields."""
    from genesis.feeds.simulator import SCENARIOS, SimConfig, simulate

    if scenario is not None and scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r}: choose from {', '.join(SCENARIOS)}")
    name = f"sim:{(scenario or 'CLEAN').upper()}-{seed}"
    sim = simulate(SimConfig(symbol=name, **config), seconds=seconds, seed=seed,
                   scenarios=[scenario] if scenario else [])
    events = sim.events
    events.symbol = name
    return events


class LiveCollector(FeedListener):
    """What a :class:`~genesis.feeds.binance.live.BinanceClient` applies, kept until the engine takes it.

    Runs on the client's loop and only appends (thread-safe); ``take()`` (the engine thread)
    returns per symbol the applied depth messages as one DELTA_DTYPE array and the trades.
    ``also``: listeners the client's events are passed on to (a paper trader, a capture recorder).
    A symbol's pending rows are capped at ``max_pending`` messages + trades: beyond it the oldest
    are dropped and counted in ``dropped`` (the engine fell behind; the book is resynchronised
    by its next snapshot).
    """

    def __init__(self, also: Sequence[FeedListener] = (), max_pending: int = 200_000):
        self.also = list(also)
        self.max_pending = int(max_pending)
        self._lock = threading.Lock()
        self._depth: dict[str, list[np.ndarray]] = {}
        self._trades: dict[str, list[np.void]] = {}
        self.dropped = 0
        self.status: dict[str, str] = {}
        self.instruments: dict = {}  # newest trading terms (Instrument) per symbol, from the venue
        self.last_local_ts = 0

    def on_depth(self, symbol: str, deltas: np.ndarray) -> None:
        with self._lock:
            queue = self._depth.setdefault(symbol, [])
            queue.append(deltas.copy())
            if len(queue) > self.max_pending:
                del queue[0]
                self.dropped += 1
            self.last_local_ts = max(self.last_local_ts, int(deltas["local_ts"].max()) if len(deltas) else 0)
        for listener in self.also:
            listener.on_depth(symbol, deltas)

    def on_trade(self, symbol: str, trade: np.void) -> None:
        with self._lock:
            queue = self._trades.setdefault(symbol, [])
            queue.append(trade.copy())
            if len(queue) > self.max_pending:
                del queue[0]
                self.dropped += 1
            self.last_local_ts = max(self.last_local_ts, int(trade["local_ts"]))
        for listener in self.also:
            listener.on_trade(symbol, trade)

    def on_book(self, top) -> None:
        for listener in self.also:
            listener.on_book(top)

    def on_message(self, symbol: str, local_ts: int, raw: bytes, is_snapshot: bool) -> None:
        for listener in self.also:
            listener.on_message(symbol, local_ts, raw, is_snapshot)

    def on_rejected(self, local_ts: int, raw: bytes, reason: str) -> None:
        for listener in self.also:
            listener.on_rejected(local_ts, raw, reason)

    def on_status(self, symbol: str, status: str, detail: str) -> None:
        self.status[symbol] = status
        for listener in self.also:
            listener.on_status(symbol, status, detail)

    def on_instruments(self, specs: list, local_ts: int, raw: bytes) -> None:
        with self._lock:
            self.instruments.update({spec.symbol: spec for spec in specs})
        for listener in self.also:
            listener.on_instruments(specs, local_ts, raw)

    def take(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per symbol: (deltas of every message applied since the last call, with ``seq`` the
        message's index among them; the messages' venue update ids (the ``seq`` they came with);
        the trades)."""
        with self._lock:
            depth, self._depth = self._depth, {}
            trades, self._trades = self._trades, {}
        out = {}
        for symbol in set(depth) | set(trades):
            messages = depth.get(symbol) or []
            d = np.concatenate(messages) if messages else np.empty(0, DELTA_DTYPE)
            update_ids = np.array([int(m["seq"][0]) if len(m) else -1 for m in messages], np.int64)
            if len(d):
                # Each message is one group: number them (a snapshot and the next delta may share an update id).
                d["seq"] = np.repeat(np.arange(len(messages)), [len(m) for m in messages])
            t = np.array(trades[symbol], TRADE_DTYPE) if trades.get(symbol) else np.empty(0, TRADE_DTYPE)
            out[symbol] = (d, update_ids, t)
        return out


__all__ = ["Cursor", "load_replay", "simulated_market", "LiveCollector", "MAX_REPLAY_ROWS"]
