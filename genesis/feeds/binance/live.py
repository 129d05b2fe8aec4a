"""Live Binance market data: combined streams, snapshot synchronisation, resync, reconnect.

:class:`BinanceClient` keeps one order book per symbol for spot, USD-M or COIN-M, built
exactly as the capture reader builds it (the same :class:`~genesis.book.l2.L2Book` kernel
and sequencing rules), and reports to a :class:`FeedListener`:

* every applied depth event as a top-L :class:`BookTop`, every trade and bookTicker as a
  normalised row (``genesis.feeds.events``), and every message as received (the recorder
  writes those to capture files);
* status changes: connected, synced, gap (book dropped), resynced, disconnected;
* the symbols' trading terms (tick, lot, minimum notional, contract size) from the venue's
  REST ``exchangeInfo``, fetched once per connection in the background: a failed fetch is
  retried with backoff, logged and counted (``exchange_info_errors``), and never holds up the
  streams or the depth synchronisation.

Synchronisation (Binance's documented procedure): open the stream and buffer depth events;
fetch a REST snapshot; drop buffered events older than it; the first event applied must
cover ``lastUpdateId`` (spot ``U <= id+1 <= u``, futures ``U <= id <= u``); each next event
must chain (spot ``U == u_prev + 1``, futures ``pu == u_prev``). A broken chain drops the
book, buffers again and takes a new snapshot: one resync. A snapshot older than every
buffered event is fetched again.

Connections: one per ``venue.max_streams`` streams. A connection that errors, closes, or
stays silent for ``stale_after`` seconds is reopened with exponential backoff and jitter;
every book on it is resynchronised (a new connection cannot be assumed to continue the
old one). Binance closes connections after 24 hours, so the client reopens one on its own
after ``max_connection_age`` (counted apart from failures). Pings from the server are
answered by the websocket layer; the client pings too, to notice a dead TCP connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from genesis.book.l2 import GAP_EXPECTED, GAP_RECEIVED, LIVE, OUT_APPLIED, OUT_STALE, OUT_UNAPPLIED, L2Book, applied_clocks
from genesis.feeds.binance import scan
from genesis.feeds.binance.messages import BadMessage, parse_message
from genesis.feeds.binance.venues import Venue, instruments_from_exchange_info, is_loopback, venue as resolve_venue
from genesis.feeds.events import DELTA_DTYPE, QUOTE_DTYPE, TRADE_DTYPE

log = logging.getLogger(__name__)

CHANNELS = ("depth", "trade", "bookTicker")


class BookTop(NamedTuple):
    """The book's top-L after one applied depth event (arrays of shape (L,), NaN past the book)."""

    symbol: str
    exch_ts: int
    local_ts: int
    update_id: int
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


class FeedListener:
    """What a :class:`BinanceClient` reports; override the methods you need (all run on the
    client's event loop: keep them short, hand heavy work to a queue)."""

    def on_book(self, top: BookTop) -> None: ...

    def on_trade(self, symbol: str, trade: np.void) -> None: ...  # one TRADE_DTYPE row

    def on_quote(self, symbol: str, quote: np.void) -> None: ...  # one QUOTE_DTYPE row

    def on_depth(self, symbol: str, deltas: np.ndarray) -> None:
        """One depth message or REST snapshot the client APPLIED to its book, in the order
        applied: (k,) DELTA_DTYPE rows (absolute quantities; a snapshot's rows all have
        ``is_snapshot``; ``seq`` is the message's final update id, exch_ts <= 0 when the venue
        gave none). Called before the tops of the same batch; only when overridden."""

    def on_message(self, symbol: str, local_ts: int, raw: bytes, is_snapshot: bool) -> None:
        """Every valid message and REST snapshot exactly as received (bytes of the JSON)."""

    def on_rejected(self, local_ts: int, raw: bytes, reason: str) -> None:
        """A message that could not be used (malformed JSON, unknown stream, bad fields)."""

    def on_status(self, symbol: str, status: str, detail: str) -> None:
        """``status``: connected, synced, gap, resynced, disconnected."""

    def on_instruments(self, specs: list, local_ts: int, raw: bytes) -> None:
        """The venue's trading terms of the client's symbols: ``specs`` are
        :class:`~genesis.store.instruments.Instrument` (source 'exchangeInfo', valid from
        ``local_ts``, the receive time in ns) parsed from ``raw``, the ``exchangeInfo`` response
        exactly as received (futures venues list every symbol in it). Once per connection, or
        later when the fetch had to be retried."""


@dataclass
class FeedMetrics:
    """Counters of a client since it started, and recent rates and receive lags."""

    messages: int = 0
    connects: int = 0
    reconnects: int = 0  # connections opened after the first (failures and planned reopenings)
    planned_reconnects: int = 0  # reopened because of Binance's 24-hour connection limit
    stale_disconnects: int = 0  # no message for stale_after seconds
    disconnects: int = 0  # connection errors and closes (stale ones included)
    gaps: int = 0  # broken update-id chains detected (each drops the book)
    resyncs: int = 0  # snapshots applied after the first of a symbol
    snapshots: int = 0
    snapshot_errors: int = 0
    exchange_infos: int = 0  # exchangeInfo responses received and handed to the listener
    exchange_info_errors: int = 0  # failed exchangeInfo fetches (each retried after a backoff)
    duplicates: int = 0  # depth events already contained in the live book
    malformed: int = 0
    dropped: int = 0  # messages discarded: buffer overflow, and trades missing by trade-id gaps
    last_error: str = ""
    _lags_ms: np.ndarray = field(default_factory=lambda: np.full(8192, np.nan), repr=False)
    _lag_count: int = field(default=0, repr=False)
    _per_second: deque = field(default_factory=lambda: deque(maxlen=11), repr=False)

    def count_message(self, local_ts: int, exch_ts: int) -> None:
        self.messages += 1
        if exch_ts > 0:
            self._lags_ms[self._lag_count % len(self._lags_ms)] = (local_ts - exch_ts) / 1e6
            self._lag_count += 1
        second = local_ts // 1_000_000_000
        if self._per_second and self._per_second[-1][0] == second:
            self._per_second[-1][1] += 1
        else:
            self._per_second.append([second, 1])

    def messages_per_second(self) -> float:
        """Mean rate over the last complete seconds (up to 10)."""
        full = list(self._per_second)[:-1]
        if not full:
            return 0.0
        span = full[-1][0] - full[0][0] + 1
        return sum(count for _, count in full) / span

    def lag_ms(self, quantile: float) -> float:
        """Receive lag (local minus exchange event time) quantile over the last 8192 messages."""
        filled = self._lags_ms[: min(self._lag_count, len(self._lags_ms))]
        return float(np.quantile(filled, quantile)) if len(filled) else float("nan")

    def as_dict(self) -> dict[str, float | int | str]:
        counters = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return {**counters, "messages_per_s": self.messages_per_second(),
                "lag_p50_ms": self.lag_ms(0.5), "lag_p99_ms": self.lag_ms(0.99)}


class _Parsed(NamedTuple):
    """One received message, normalised (the capture reader's column layout, ``scan.I_*``)."""

    kind: int
    symbol_code: int  # scan.symbol_hash of the upper-case symbol (0 for a REST snapshot)
    ints: np.ndarray  # (N_INT_COLS,) int64
    floats: np.ndarray  # (N_FLOAT_COLS,) float64
    side: np.ndarray  # levels of a depth event or snapshot, bids then asks as received
    price: np.ndarray
    qty: np.ndarray


class _MessageParser:
    """Parse one received message with the capture reader's Numba scanner, falling back to
    the reference parser for shapes the scanner does not take: live and recorded data are
    read by the same code, so they give the same events."""

    def __init__(self) -> None:
        self._ints = np.zeros((1, scan.N_INT_COLS), np.int64)
        self._floats = np.zeros((1, scan.N_FLOAT_COLS), np.float64)
        self._kinds = np.zeros(1, np.int8)
        self._status = np.zeros(1, np.int8)
        self._starts = np.zeros(1, np.int64)
        self._stops = np.zeros(1, np.int64)
        self._grow(4096)

    def _grow(self, capacity: int) -> None:
        self._side = np.empty(capacity, np.int8)
        self._price = np.empty(capacity, np.float64)
        self._qty = np.empty(capacity, np.float64)

    def parse(self, local_ts: int, raw: bytes) -> _Parsed:
        line = b"%d %s" % (local_ts, raw)
        if len(line) // 10 + 16 > len(self._side):  # a level takes at least 10 bytes
            self._grow(len(line) // 10 + 16)
        self._stops[0] = len(line)
        n = scan.scan_lines(np.frombuffer(line, np.uint8), self._starts, self._stops, self._ints, self._floats,
                            self._kinds, self._status, self._side, self._price, self._qty)
        if self._status[0] == scan.LINE_OK:
            return _Parsed(int(self._kinds[0]), int(self._ints[0, scan.I_SYMBOL]), self._ints[0].copy(),
                           self._floats[0].copy(), self._side[:n].copy(), self._price[:n].copy(), self._qty[:n].copy())
        parsed = parse_message(local_ts, raw)  # raises BadMessage with the reason
        levels = np.array(parsed.levels, dtype=[("s", "i1"), ("p", "f8"), ("q", "f8")])
        code = _symbol_code(parsed.symbol) if parsed.symbol else 0
        return _Parsed(parsed.kind, code, np.array(parsed.ints, np.int64), np.array(parsed.floats, np.float64),
                       levels["s"].copy(), levels["p"].copy(), levels["q"].copy())


def _symbol_code(symbol: str) -> int:
    data = np.frombuffer(symbol.encode(), np.uint8)
    return int(scan.symbol_hash(data, 0, len(data)))


class _SymbolFeed:
    """Book and synchronisation state of one symbol."""

    def __init__(self, symbol: str, namespaced: str, depth_levels: int, sequencing: int):
        self.symbol = symbol  # upper case, as Binance names it
        self.namespaced = namespaced
        self.book = L2Book(depth_levels, sequencing)
        self.buffer: list[_Parsed] = []  # depth events waiting for a snapshot
        self.live = False  # events are applied as they come (else buffered)
        self.synced_once = False
        self.syncing: asyncio.Task | None = None
        self.last_trade_id = -1

    def drop(self) -> None:
        self.book.reset()
        self.buffer.clear()
        self.live = False
        if self.syncing is not None:
            self.syncing.cancel()
            self.syncing = None


def _depth_arrays(messages: list[_Parsed]) -> tuple[np.ndarray, ...]:
    """The arguments of :meth:`L2Book.apply_depth` for parsed depth events and snapshots."""
    n = len(messages)
    counts = np.fromiter((len(m.side) for m in messages), np.int64, n)
    starts = np.zeros(n, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    ints = np.stack([m.ints for m in messages])
    is_snapshot = np.fromiter((m.kind == scan.KIND_SNAPSHOT for m in messages), np.bool_, n)
    if n == 1:
        side, price, qty = messages[0].side, messages[0].price, messages[0].qty
    else:
        side = np.concatenate([m.side for m in messages])
        price = np.concatenate([m.price for m in messages])
        qty = np.concatenate([m.qty for m in messages])
    return (is_snapshot, ints[:, scan.I_FIRST], ints[:, scan.I_LAST], ints[:, scan.I_PREV], starts, counts,
            side, price, qty)


def _delta_rows(message: _Parsed, exch_ts: int, local_ts: int) -> np.ndarray:
    """The DELTA_DTYPE rows of one parsed depth event or snapshot, stamped with its clocks as
    applied (:func:`genesis.book.l2.applied_clocks`)."""
    ints = message.ints
    rows = np.empty(len(message.side), DELTA_DTYPE)
    rows["exch_ts"] = exch_ts
    rows["local_ts"] = local_ts
    rows["seq"] = ints[scan.I_LAST]
    rows["side"] = message.side
    rows["price"] = message.price
    rows["qty"] = message.qty
    rows["is_snapshot"] = message.kind == scan.KIND_SNAPSHOT
    return rows


class BinanceClient:
    """Live books, trades and quotes of several symbols on one Binance venue.

    Parameters
    ----------
    venue : 'spot', 'usdm' or 'coinm' (or 'binance-usdm', ...).
    symbols : Binance symbols, e.g. ``["BTCUSDT", "ETHUSDT"]`` (case-insensitive).
    listener : receives books, trades, quotes, raw messages and status changes.
    depth_levels : levels per side in each reported :class:`BookTop`.
    channels : any of ``depth``, ``trade``, ``bookTicker``.
    ws_url, rest_url : base URLs (default: Binance's, or ``GENESIS_BINANCE_<VENUE>_WS/_REST``).
    stale_after : seconds without any message after which a connection counts as dead.
    backoff : (first, largest) reconnect delay in seconds; each failure doubles it, with jitter.
    max_connection_age : seconds after which a connection is reopened (Binance allows 24 h).
    max_buffer : depth events kept per symbol while waiting for a snapshot (older ones dropped).
    """

    def __init__(
        self,
        venue: str | Venue,
        symbols: list[str] | tuple[str, ...],
        listener: FeedListener | None = None,
        *,
        depth_levels: int = 20,
        channels: tuple[str, ...] = CHANNELS,
        ws_url: str | None = None,
        rest_url: str | None = None,
        stale_after: float = 10.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        max_connection_age: float = 23.5 * 3600,
        ping_interval: float | None = 20.0,
        max_buffer: int = 50_000,
        seed: int | None = None,
    ):
        self.venue = venue if isinstance(venue, Venue) else resolve_venue(venue, ws_url=ws_url, rest_url=rest_url)
        if not symbols:
            raise ValueError("no symbols given")
        if stale_after <= 0 or backoff[0] <= 0 or backoff[1] < backoff[0] or max_connection_age <= 0:
            raise ValueError("stale_after, backoff and max_connection_age must be positive (backoff first <= largest)")
        self.listener = listener or FeedListener()
        self.channels = tuple(channels)
        self.venue.streams("x", self.channels)  # validates the channel names
        self.stale_after = stale_after
        self.backoff = backoff
        self.max_connection_age = max_connection_age
        self.ping_interval = ping_interval
        self.max_buffer = max_buffer
        self.metrics = FeedMetrics()
        self._feeds = {s.upper(): _SymbolFeed(s.upper(), f"{self.venue.name}:{s.upper()}", depth_levels,
                                              self.venue.sequencing) for s in symbols}
        self._by_code = {_symbol_code(f.symbol): f for f in self._feeds.values()}
        self._parser = _MessageParser()
        self._random = random.Random(seed)
        self._stop = asyncio.Event()
        self._sockets: set = set()
        # The newest trading terms of each symbol (namespaced), from the venue's exchangeInfo.
        self.instruments: dict = {}
        self._instrument_tasks: dict[tuple[str, ...], asyncio.Task] = {}

    # -- public -------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return [f.namespaced for f in self._feeds.values()]

    def book(self, symbol: str) -> L2Book:
        """The live book of ``symbol`` (Binance or namespaced name); check ``.is_valid``."""
        return self._feed(symbol).book

    def is_synced(self, symbol: str) -> bool:
        feed = self._feed(symbol)
        return feed.live and feed.book.sync_state == LIVE

    def stop(self) -> None:
        """Ask :meth:`run` to return (safe to call from the client's loop only; from another
        thread use ``loop.call_soon_threadsafe(client.stop)``)."""
        self._stop.set()
        for ws in list(self._sockets):
            asyncio.ensure_future(ws.close())

    async def run(self) -> None:
        """Stream until :meth:`stop` (a stopped client does not start again: make a new one):
        one task per connection, each reconnecting on failure."""
        per_connection = max(1, self.venue.max_streams // len(self.channels))
        feeds = list(self._feeds.values())
        groups = [feeds[i : i + per_connection] for i in range(0, len(feeds), per_connection)]
        try:
            await asyncio.gather(*(self._connection(group) for group in groups))
        finally:
            for feed in feeds:
                if feed.syncing is not None:
                    feed.syncing.cancel()
            for task in self._instrument_tasks.values():
                task.cancel()

    def reconnect_delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failed connections: exponential,
        capped, with jitter in [50%, 100%] so that many clients do not retry in step."""
        return min(self.backoff[1], self.backoff[0] * 2.0**failures) * self._random.uniform(0.5, 1.0)

    # -- connection ---------------------------------------------------------------------
    def _feed(self, symbol: str) -> _SymbolFeed:
        key = symbol.split(":", 1)[-1].upper()
        if key not in self._feeds:
            raise KeyError(f"{symbol!r} is not one of this client's symbols {self.symbols}")
        return self._feeds[key]

    def _url(self, feeds: list[_SymbolFeed]) -> str:
        streams = [name for f in feeds for name in self.venue.streams(f.symbol, self.channels)]
        return f"{self.venue.ws_url}/stream?streams={'/'.join(streams)}"

    async def _connection(self, feeds: list[_SymbolFeed]) -> None:
        url = self._url(feeds)
        failures = 0
        while not self._stop.is_set():
            for feed in feeds:  # nothing carries over from an earlier connection
                feed.drop()
            planned = False
            ws = None
            try:
                async with connect(url, compression=None, max_size=None, open_timeout=10,
                                   ping_interval=self.ping_interval, ping_timeout=self.ping_interval,
                                   proxy=None if is_loopback(url) else True) as ws:
                    self._sockets.add(ws)
                    self.metrics.connects += 1
                    if self.metrics.connects > 1:
                        self.metrics.reconnects += 1
                    for feed in feeds:
                        self.listener.on_status(feed.namespaced, "connected", url)
                    self._request_instruments(feeds)
                    planned, received = await self._receive(ws)
                    if received:  # the connection worked: the next failure starts the backoff afresh
                        failures = 0
            except (OSError, asyncio.TimeoutError, WebSocketException, InvalidHandshake) as exc:
                self.metrics.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("binance %s connection failed: %s", self.venue.key, self.metrics.last_error)
            finally:
                self._sockets.discard(ws)
            if self._stop.is_set():
                break
            if planned:
                self.metrics.planned_reconnects += 1
                continue
            self.metrics.disconnects += 1
            for feed in feeds:
                self.listener.on_status(feed.namespaced, "disconnected", self.metrics.last_error)
            delay = self.reconnect_delay(failures)
            failures += 1
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def _receive(self, ws) -> tuple[bool, bool]:
        """Read messages until the connection ends. Returns (ended for its age, any message received)."""
        opened = time.monotonic()
        received = False
        last_seen = time.monotonic()
        reason = ""

        async def watchdog() -> None:
            nonlocal reason
            while True:
                await asyncio.sleep(min(1.0, self.stale_after / 4))
                now = time.monotonic()
                if now - opened >= self.max_connection_age:
                    reason = "age"
                elif now - last_seen >= self.stale_after:
                    reason = "stale"
                    self.metrics.stale_disconnects += 1
                    self.metrics.last_error = f"no message for {self.stale_after:g} s"
                else:
                    continue
                await ws.close()
                return

        guard = asyncio.create_task(watchdog())
        try:
            while True:
                try:
                    raw = await ws.recv(decode=False)
                except WebSocketException as exc:
                    if not reason and not self._stop.is_set():
                        self.metrics.last_error = f"{type(exc).__name__}: {exc}"
                    return reason == "age", received
                received = True
                last_seen = time.monotonic()
                self.on_raw(raw, time.time_ns())
        finally:
            guard.cancel()

    # -- messages -----------------------------------------------------------------------
    def on_raw(self, raw: bytes, local_ts: int) -> None:
        """Handle one message as received at ``local_ts`` (ns); public so that a recording can
        be replayed through the same path."""
        try:
            parsed = self._parser.parse(local_ts, raw)
        except BadMessage as exc:
            self.metrics.malformed += 1
            self.listener.on_rejected(local_ts, raw, exc.reason)
            return
        feed = self._by_code.get(parsed.symbol_code)
        if feed is None or parsed.kind == scan.KIND_SNAPSHOT:
            self.metrics.malformed += 1
            self.listener.on_rejected(local_ts, raw, "message for a symbol this client did not subscribe to")
            return
        ints = parsed.ints
        self.metrics.count_message(local_ts, int(ints[scan.I_EVENT]))
        self.listener.on_message(feed.namespaced, local_ts, raw, False)
        if parsed.kind == scan.KIND_DEPTH:
            self._on_depth(feed, parsed)
        elif parsed.kind == scan.KIND_TRADE:
            self._on_trade(feed, parsed)
        else:
            f = parsed.floats
            quote = np.array((ints[scan.I_EXCH], local_ts, ints[scan.I_LAST], f[0], f[1], f[2], f[3]), QUOTE_DTYPE)
            self.listener.on_quote(feed.namespaced, quote[()])

    def _on_trade(self, feed: _SymbolFeed, parsed: _Parsed) -> None:
        ints = parsed.ints
        trade_id = int(ints[scan.I_LAST])
        aggressor = -1 if ints[scan.I_FLAG] == 1 else 1  # m: the buyer was the maker
        trade = np.array((ints[scan.I_EXCH], ints[scan.I_LOCAL], trade_id, parsed.floats[0], parsed.floats[1],
                          aggressor), TRADE_DTYPE)[()]
        if feed.last_trade_id >= 0 and trade_id > feed.last_trade_id + 1:
            self.metrics.dropped += trade_id - feed.last_trade_id - 1
        feed.last_trade_id = max(feed.last_trade_id, trade_id)
        self.listener.on_trade(feed.namespaced, trade)

    def _on_depth(self, feed: _SymbolFeed, parsed: _Parsed) -> None:
        if not feed.live:
            feed.buffer.append(parsed)
            if len(feed.buffer) > self.max_buffer:
                del feed.buffer[0]
                self.metrics.dropped += 1
            if feed.syncing is None:
                feed.syncing = asyncio.get_running_loop().create_task(self._synchronise(feed))
            return
        was_live = feed.book.sync_state == LIVE
        result = feed.book.apply_depth(*_depth_arrays([parsed]))
        outcome = int(result.outcome[0])
        if outcome == OUT_APPLIED:
            self._emit(feed, [parsed], result)
        elif outcome == OUT_STALE:
            if was_live:
                self.metrics.duplicates += 1  # (while syncing, stale events are the normal overlap)
        if not feed.book.is_valid:
            self._gap(feed, parsed, result)

    def _gap(self, feed: _SymbolFeed, parsed: _Parsed, result) -> None:
        self.metrics.gaps += 1
        gap = result.gaps[0] if len(result.gaps) else None
        expected, received = (int(gap[GAP_EXPECTED]), int(gap[GAP_RECEIVED])) if gap is not None else (-1, -1)
        self.listener.on_status(feed.namespaced, "gap", f"expected update {expected}, received {received}")
        feed.live = False
        feed.buffer = [parsed]
        if feed.syncing is None:
            feed.syncing = asyncio.get_running_loop().create_task(self._synchronise(feed))

    def _emit(self, feed: _SymbolFeed, messages: list[_Parsed], result) -> None:
        # Clocks in update-id order, as ingest stores them (a spot snapshot has no venue time).
        applied = [int(i) for i in result.applied]
        exch, local = applied_clocks(np.array([messages[i].ints[scan.I_EXCH] for i in applied], np.int64),
                                     np.array([messages[i].ints[scan.I_LOCAL] for i in applied], np.int64))
        clocks = {i: (int(e), int(t)) for i, e, t in zip(applied, exch, local)}
        if type(self.listener).on_depth is not FeedListener.on_depth:  # rows are built only for a listener
            for message_index in applied:
                self.listener.on_depth(feed.namespaced, _delta_rows(messages[message_index], *clocks[message_index]))
        for row, message_index in enumerate(result.top_msg):
            exch_ts, local_ts = clocks[int(message_index)]
            self.listener.on_book(BookTop(
                feed.namespaced, exch_ts, local_ts, int(messages[int(message_index)].ints[scan.I_LAST]),
                result.bid_px[row], result.bid_sz[row], result.ask_px[row], result.ask_sz[row]))

    async def _synchronise(self, feed: _SymbolFeed) -> None:
        """Fetch snapshots until one, with the buffered events, gives a valid book."""
        attempt = 0
        try:
            while True:
                try:
                    raw = await asyncio.to_thread(self._fetch_snapshot, feed.symbol)
                    local_ts = time.time_ns()
                    snapshot = self._parser.parse(local_ts, raw)
                    if snapshot.kind != scan.KIND_SNAPSHOT:
                        raise BadMessage("the depth endpoint did not return a snapshot")
                except (OSError, BadMessage, ValueError) as exc:
                    self.metrics.snapshot_errors += 1
                    self.metrics.last_error = f"snapshot {feed.symbol}: {exc}"
                    log.warning("binance %s: %s", self.venue.key, self.metrics.last_error)
                    await asyncio.sleep(min(self.backoff[1], self.backoff[0] * 2**attempt))
                    attempt += 1
                    continue
                self.metrics.snapshots += 1
                self.listener.on_message(feed.namespaced, local_ts, raw, True)
                messages = [snapshot, *feed.buffer]
                feed.buffer = []
                result = feed.book.apply_depth(*_depth_arrays(messages))
                self._emit(feed, messages, result)
                if feed.book.is_valid:
                    feed.live = True
                    if feed.synced_once:
                        self.metrics.resyncs += 1
                    self.listener.on_status(feed.namespaced, "resynced" if feed.synced_once else "synced",
                                            f"snapshot lastUpdateId {int(snapshot.ints[scan.I_LAST])}")
                    feed.synced_once = True
                    return
                # The snapshot is older than the buffered events, or they break among themselves:
                # keep what the book could not use and ask again.
                feed.buffer = [messages[i] for i in np.flatnonzero(result.outcome == OUT_UNAPPLIED)]
                attempt += 1
                await asyncio.sleep(min(self.backoff[0] * attempt, self.backoff[1]))
        finally:
            feed.syncing = None

    def _fetch_snapshot(self, symbol: str) -> bytes:
        url = f"{self.venue.rest_url}{self.venue.depth_path}?symbol={symbol}&limit={self.venue.snapshot_limit}"
        return _http_get(url)

    # -- trading terms ------------------------------------------------------------------
    def _request_instruments(self, feeds: list[_SymbolFeed]) -> None:
        """Fetch the terms of ``feeds`` in the background (once per connection: a fetch
        still retrying from an earlier connection goes on instead of starting another)."""
        key = tuple(f.symbol for f in feeds)
        task = self._instrument_tasks.get(key)
        if task is None or task.done():
            self._instrument_tasks[key] = asyncio.get_running_loop().create_task(self._instruments(list(key)))

    async def _instruments(self, symbols: list[str]) -> None:
        """Fetch ``exchangeInfo`` until it answers with the terms of ``symbols`` (retried with
        the reconnect backoff), then hand them to the listener."""
        failures = 0
        while not self._stop.is_set():
            try:
                raw, local_ts, specs = await asyncio.to_thread(self._fetch_exchange_info, symbols)
            except (OSError, ValueError) as exc:  # unreachable, HTTP error, not JSON, unusable filters
                self.metrics.exchange_info_errors += 1
                self.metrics.last_error = f"exchangeInfo {','.join(symbols)}: {exc}"
                delay = self.reconnect_delay(failures)
                failures += 1
                log.warning("binance %s: %s (retry in %.2f s)", self.venue.key, self.metrics.last_error, delay)
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                continue
            self.metrics.exchange_infos += 1
            missing = sorted(set(symbols) - {s.symbol.split(":", 1)[1] for s in specs})
            if missing:
                log.warning("binance %s: exchangeInfo lists no %s", self.venue.key, ", ".join(missing))
            self.instruments.update({s.symbol: s for s in specs})
            try:
                self.listener.on_instruments(specs, local_ts, raw)
            except Exception as exc:  # a background task: report, do not vanish
                self.metrics.last_error = f"on_instruments: {type(exc).__name__}: {exc}"
                log.exception("binance %s: the listener failed on exchangeInfo", self.venue.key)
            return

    def _fetch_exchange_info(self, symbols: list[str]) -> tuple[bytes, int, list]:
        """(response as received, receive time ns, specs of ``symbols``); runs on a worker thread.
        Spot is asked for the symbols only (its full answer is megabytes); the futures venues
        take no filter and answer with every symbol."""
        url = f"{self.venue.rest_url}{self.venue.exchange_info_path}"
        if self.venue.key == "spot":
            url += "?symbols=" + quote(json.dumps(sorted(symbols), separators=(",", ":")))
        raw = _http_get(url)
        local_ts = time.time_ns()
        try:
            specs = instruments_from_exchange_info(raw, self.venue.key, local_ts, symbols)
        except ValueError as exc:
            raise ValueError(f"{url}: {exc}") from None
        return raw, local_ts, specs


def _http_get(url: str, timeout: float = 10.0) -> bytes:
    """The body of a GET (no proxy for a loopback address); OSError naming the URL otherwise."""
    handlers = [urllib.request.ProxyHandler({})] if is_loopback(url) else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()[:200].decode("utf-8", "replace")
        raise OSError(f"HTTP {exc.code} from {url}: {body}") from None


def run_client(client: BinanceClient, seconds: float | None = None) -> FeedMetrics:
    """Run ``client`` on a new event loop (blocking) for ``seconds``, or until interrupted."""

    async def main() -> None:
        task = asyncio.create_task(client.run())
        try:
            if seconds is None:
                await task
            else:
                await asyncio.wait({task}, timeout=seconds)
        finally:
            client.stop()
            await task

    asyncio.run(main())
    return client.metrics


__all__ = ["BinanceClient", "BookTop", "FeedListener", "FeedMetrics", "CHANNELS", "run_client"]
