"""A local stand-in for Binance that replays real captures, with injectable faults.

:class:`FakeBinance` serves, on 127.0.0.1 and a free port, one venue's combined-stream
websocket (``/stream?streams=a/b/c``) and its REST depth snapshot endpoint
(``/api/v3/depth``, ``/fapi/v1/depth`` or ``/dapi/v1/depth``) from capture files, so that
the live client, the recorder and the dashboards run offline against real market data.

The market is the captures' stream messages in receive-time order, replayed at ``speed``
times real time (``None``: as fast as the connection takes them). It advances only while a
client is subscribed, so a test sees every message. The REST snapshot is what Binance would
answer at that moment: the book after every depth event the market has produced so far
(dropped or not: faults happen on the wire), rebuilt with the same kernel as ingest; before
the capture's own snapshot has been reached, that snapshot itself (it lies in the future of
the stream, as real snapshots often do).

It also serves the venue's ``exchangeInfo`` (``/api/v3/exchangeInfo``, ``/fapi/v1/exchangeInfo``,
``/dapi/v1/exchangeInfo``) in Binance's format, with the trading terms of each served symbol:
given to the constructor (``instruments={"BTCUSDT": {"tick_size": 0.01, "lot_size": 1e-5}}``)
or else inferred exactly from the capture's prices and quantities
(:func:`genesis.store.instruments.infer_instrument`).

Faults (:class:`Faults`) act on the websocket: dropped, duplicated, reordered (swapped
with the next) and malformed messages (an extra truncated frame), a disconnect after given
message counts, and stalls (the stream goes silent without closing); and on ``exchangeInfo``:
its first requests can be made to fail with HTTP 500.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from genesis.book.l2 import L2Book
from genesis.feeds.binance.capture import read_bytes, read_capture
from genesis.feeds.binance.venues import VENUES, Venue
from genesis.store.instruments import EXCHANGE_INFO, INFERRED, Instrument


@dataclass(frozen=True)
class Faults:
    """Faults injected into the websocket stream; indices count stream messages from 0.

    Rates are probabilities per message, drawn from ``seed``; ``drop_at`` etc. name exact
    messages. ``disconnect_after``: close every connection after sending that many messages.
    ``stall_at``: ``(message index, seconds)``: the open connections go silent before the
    message for that long (or until a new connection comes, which gets the stream again).
    """

    drop_rate: float = 0.0
    drop_at: tuple[int, ...] = ()
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    malformed_rate: float = 0.0
    disconnect_after: tuple[int, ...] = ()
    stall_at: tuple[tuple[int, float], ...] = ()
    depth_only: bool = True  # drops/duplicates/reorders hit depth events only (trades are kept)
    seed: int = 0
    exchange_info_errors: int = 0  # the first N exchangeInfo requests answer HTTP 500

    def __post_init__(self) -> None:
        for name in ("drop_rate", "duplicate_rate", "reorder_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name}={value}: a probability must lie in [0, 1]")
        if self.exchange_info_errors < 0:
            raise ValueError(f"Faults.exchange_info_errors={self.exchange_info_errors}: a count must be >= 0")


@dataclass
class FakeStats:
    sent: int = 0  # frames sent, faults included
    market: int = 0  # stream messages the market has produced (position in the replay)
    dropped: list[int] = field(default_factory=list)  # message indices
    duplicated: list[int] = field(default_factory=list)
    reordered: list[int] = field(default_factory=list)
    malformed: int = 0
    disconnects: int = 0
    stalls: int = 0
    snapshots: int = 0
    connections: int = 0
    exchange_info: int = 0  # exchangeInfo requests answered
    exchange_info_failed: int = 0  # exchangeInfo requests failed on purpose (Faults.exchange_info_errors)


@dataclass
class _Message:
    local_ts: int
    stream: str
    body: bytes
    symbol: str  # upper case
    is_depth: bool


class _SymbolMarket:
    """The venue's view of one symbol: its depth events in order, and the book after them."""

    def __init__(self, path: Path):
        capture = read_capture(path)
        if len(capture.symbols) != 1:
            raise ValueError(f"{path}: a capture served by FakeBinance must hold one symbol, found "
                             f"{sorted(capture.symbols)}")
        (self.events,) = capture.symbols.values()
        self.namespaced = self.events.symbol
        depth = self.events.depth
        self.line_of_depth = depth.line_no  # file line of each depth message (snapshots included)
        self.snapshot_lines = [capture.line(int(n)).split(b" ", 1)[1] for n in depth.line_no[depth.is_snapshot]]
        self.book = L2Book(depth=1, sequencing=self.events.sequencing)
        self.applied = 0  # depth messages applied to self.book
        self.produced = 0  # depth messages the market has produced

    def advance(self) -> None:
        depth = self.events.depth
        if self.produced > self.applied:
            window = slice(self.applied, self.produced)
            self.book.apply_depth(depth.is_snapshot[window], depth.first_id[window], depth.last_id[window],
                                  depth.prev_id[window], depth.level_start[window], depth.level_count[window],
                                  depth.side, depth.price, depth.qty)
            self.applied = self.produced

    def snapshot(self, limit: int, with_times: bool) -> bytes | None:
        """The REST answer now: the rebuilt book, or the capture's next snapshot if there is none yet."""
        self.advance()
        if not self.book.is_valid:
            taken = int(np.count_nonzero(self.events.depth.is_snapshot[: self.produced]))
            return self.snapshot_lines[taken] if taken < len(self.snapshot_lines) else None
        bid_px, bid_sz, ask_px, ask_sz = (a[:limit] for a in self.book.levels())
        last = self.applied - 1
        body = {"lastUpdateId": self.book.last_update_id}
        if with_times:
            ms = int(self.events.depth.exch_ts[last] // 1_000_000)
            body.update(E=ms, T=ms)
        body["bids"] = [[_decimal(p), _decimal(q)] for p, q in zip(bid_px, bid_sz)]
        body["asks"] = [[_decimal(p), _decimal(q)] for p, q in zip(ask_px, ask_sz)]
        return orjson.dumps(body)


def _decimal(x: float) -> str:
    return np.format_float_positional(x, trim="-")


def _read_messages(path: Path, k: int) -> list[tuple[int, int, int, bytes]]:
    """(receive time, file index, 1-based line number as the capture reader counts, body)."""
    out = []
    for n, line in enumerate(read_bytes(path).split(b"\n"), start=1):
        head, _, body = line.partition(b" ")
        if head.isdigit() and body.strip():
            out.append((int(head), k, n, body.rstrip(b"\r")))
    return out


class FakeBinance:
    """Serve capture files as one Binance venue on ``127.0.0.1``.

    Use as a context manager (the server runs on its own thread and loop), or ``await
    fake.start()`` / ``await fake.stop()`` on a running loop. ``ws_url`` / ``rest_url`` are
    the base URLs to give the client.

    ``instruments``: the terms ``exchangeInfo`` declares, per Binance symbol, as an
    :class:`~genesis.store.instruments.Instrument` or a dict of any of :data:`INSTRUMENT_TERMS`;
    a tick or lot not given is inferred from the capture, a COIN-M contract size not given is
    Binance's (100 USD for BTC, else 10). :attr:`instruments` holds the terms served.
    """

    def __init__(self, captures, *, speed: float | None = None, faults: Faults | None = None,
                 host: str = "127.0.0.1", port: int = 0, ping_interval: float | None = None,
                 instruments: dict | None = None):
        paths = [Path(captures)] if isinstance(captures, (str, Path)) else [Path(p) for p in captures]
        if not paths:
            raise ValueError("FakeBinance needs at least one capture file")
        if speed is not None and speed <= 0:
            raise ValueError(f"speed={speed}: must be positive (None for as fast as possible)")
        self.speed = speed
        self.faults = faults or Faults()
        self.host, self.port = host, port
        self.ping_interval = ping_interval  # the server pings like Binance does; a client must answer
        self.stats = FakeStats()
        self.markets: dict[str, _SymbolMarket] = {}
        per_file = []
        for k, path in enumerate(paths):
            market = _SymbolMarket(path)
            symbol = market.namespaced.split(":", 1)[1]
            if symbol in self.markets:
                raise ValueError(f"{path}: {symbol} is served twice")
            self.markets[symbol] = market
            per_file.append(_read_messages(path, k))
        venues = {m.namespaced.split(":", 1)[0] for m in self.markets.values()}
        if len(venues) != 1:
            raise ValueError(f"captures of several venues {sorted(venues)}: serve each venue with its own FakeBinance")
        (venue_name,) = venues
        self.venue: Venue = next(v for v in VENUES.values() if v.name == venue_name)
        self._given_terms = _check_terms(instruments or {}, list(self.markets))
        # Inferred here, not on the first request: the server's loop (often the client's too) never waits on it.
        self.instruments: dict[str, Instrument] = {symbol: self._terms(symbol, market)
                                                   for symbol, market in self.markets.items()}
        self.messages: list[_Message] = []
        # Per message: its market and how many of that market's depth messages (REST snapshot
        # lines included, which are never sent) exist once the message is produced.
        self._produced: list[tuple[_SymbolMarket, int]] = []
        symbols = list(self.markets)
        counters = dict.fromkeys(symbols, 0)
        # Files interleave by receive time; each file keeps its own order.
        for local_ts, k, line_no, body in heapq.merge(*per_file, key=lambda m: m[0]):
            symbol = symbols[k]
            market = self.markets[symbol]
            while counters[symbol] < len(market.line_of_depth) and market.line_of_depth[counters[symbol]] <= line_no:
                counters[symbol] += 1
            if body.startswith(b'{"lastUpdateId"'):
                continue
            stream = body[11 : body.index(b'"', 11)].decode() if body.startswith(b'{"stream":"') else ""
            self.messages.append(_Message(local_ts, stream, body, symbol, "@depth" in stream))
            self._produced.append((market, counters[symbol]))
        self.done = asyncio.Event()
        self._subscribers: dict[ServerConnection, set[str]] = {}
        self._has_subscriber = asyncio.Event()
        self._server = None
        self._pump: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- addresses ---------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def finished(self) -> bool:
        return self.stats.market >= len(self.messages)

    # -- trading terms -----------------------------------------------------------------
    def _terms(self, symbol: str, market: _SymbolMarket) -> Instrument:
        given = self._given_terms.get(symbol, {})
        if isinstance(given, Instrument):
            return replace(given, symbol=market.namespaced)
        terms = dict(given)
        source = EXCHANGE_INFO
        if "tick_size" not in terms or "lot_size" not in terms:
            try:
                inferred = market.events.inferred_instrument()
            except ValueError as exc:
                raise ValueError(f"cannot infer the terms of {symbol} for exchangeInfo ({exc}); give them: "
                                 f"instruments={{'{symbol}': {{'tick_size': ..., 'lot_size': ...}}}} "
                                 f"(genesis fake binance --instrument {symbol}:tick_size=...,lot_size=...)") from None
            terms = {"tick_size": inferred.tick_size, "lot_size": inferred.lot_size, **terms}
            source = INFERRED
        if self.venue.key == "coinm":
            terms.setdefault("contract_size", 100.0 if symbol.startswith("BTC") else 10.0)
        return Instrument(market.namespaced, **{k: float(v) if k not in ("price_precision", "qty_precision") else int(v)
                                                for k, v in terms.items()}, source=source)

    def exchange_info(self, symbols: list[str] | None = None) -> dict:
        """The ``exchangeInfo`` answer (of ``symbols`` only, when given), shaped like Binance's."""
        entries = [_symbol_entry(self.venue.key, s, spec) for s, spec in self.instruments.items()
                   if symbols is None or s in symbols]
        doc = {"timezone": "UTC", "serverTime": time.time_ns() // 1_000_000,
               "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                               "limit": 6000 if self.venue.key == "spot" else 2400}],
               "exchangeFilters": []}
        if self.venue.key == "usdm":
            doc["assets"] = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
        doc["symbols"] = entries
        return doc

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> FakeBinance:
        self.done = asyncio.Event()
        self._has_subscriber = asyncio.Event()
        self._new_connection = asyncio.Event()
        self._server = await serve(self._handle, self.host, self.port, process_request=self._http,
                                   compression=None, max_size=None, ping_interval=self.ping_interval,
                                   ping_timeout=self.ping_interval)
        self.port = self._server.sockets[0].getsockname()[1]
        self._pump = asyncio.create_task(self._run_market())
        return self

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def __enter__(self) -> FakeBinance:
        started = threading.Event()
        failure: list[BaseException] = []

        def serve_forever() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop())
            self._loop.close()

        self._thread = threading.Thread(target=serve_forever, name="fake-binance", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc_info) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def wait_finished(self, timeout: float) -> bool:
        """Block (threaded use) until the market has produced every message."""
        deadline = time.monotonic() + timeout
        while not self.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.finished

    # -- REST --------------------------------------------------------------------------
    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlsplit(request.path)
        if url.path == self.venue.exchange_info_path:
            return self._exchange_info_response(parse_qs(url.query))
        if url.path != self.venue.depth_path:
            return _json(HTTPStatus.NOT_FOUND, {"code": -1000, "msg": f"unknown path {url.path}"})
        query = parse_qs(url.query)
        symbol = query.get("symbol", [""])[0].upper()
        market = self.markets.get(symbol)
        if market is None:
            return _json(HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."})
        try:
            limit = int(query.get("limit", ["1000"])[0])
        except ValueError:
            return _json(HTTPStatus.BAD_REQUEST, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."})
        body = market.snapshot(limit, with_times=self.venue.key != "spot")
        if body is None:
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"code": -1008, "msg": "no book available"})
        self.stats.snapshots += 1
        return Response(200, "OK", Headers([("Content-Type", "application/json"),
                                            ("Content-Length", str(len(body)))]), body)

    def _exchange_info_response(self, query: dict[str, list[str]]) -> Response:
        if self.stats.exchange_info_failed < self.faults.exchange_info_errors:
            self.stats.exchange_info_failed += 1
            return _json(HTTPStatus.INTERNAL_SERVER_ERROR,
                         {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."})
        symbols = None
        if self.venue.key == "spot" and ("symbol" in query or "symbols" in query):  # the futures ignore filters
            try:
                symbols = ([query["symbol"][0]] if "symbol" in query else orjson.loads(query["symbols"][0]))
                symbols = [str(s).upper() for s in symbols]
            except (orjson.JSONDecodeError, TypeError):
                return _json(HTTPStatus.BAD_REQUEST,
                             {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."})
            if not symbols or any(s not in self.markets for s in symbols):
                return _json(HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."})
        self.stats.exchange_info += 1
        return _json(HTTPStatus.OK, self.exchange_info(symbols))

    # -- websocket ---------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        url = urlsplit(connection.request.path)
        if url.path != "/stream":
            await connection.close(1008, "use /stream?streams=...")
            return
        streams = set(parse_qs(url.query).get("streams", [""])[0].split("/")) - {""}
        self._subscribers[connection] = streams
        self.stats.connections += 1
        self._has_subscriber.set()
        self._new_connection.set()
        try:
            await connection.wait_closed()
        finally:
            self._subscribers.pop(connection, None)
            if not self._subscribers:
                self._has_subscriber.clear()

    async def _send(self, body: bytes, stream: str) -> None:
        for connection, streams in list(self._subscribers.items()):
            if stream in streams or not stream:
                try:
                    await connection.send(body, text=True)
                    self.stats.sent += 1
                except ConnectionClosed:
                    self._subscribers.pop(connection, None)

    async def _run_market(self) -> None:
        faults = self.faults
        draw = random.Random(faults.seed)
        drops, stalls = set(faults.drop_at), dict(faults.stall_at)
        disconnects = set(faults.disconnect_after)
        held: _Message | None = None  # a message being reordered after the next one
        started_wall, first_ts = None, self.messages[0].local_ts if self.messages else 0
        for i, message in enumerate(self.messages):
            while not self._subscribers:
                self._has_subscriber.clear()
                await self._has_subscriber.wait()
            if i in stalls:
                # The connections open now go silent; one opened meanwhile gets the stream again.
                self.stats.stalls += 1
                self._new_connection.clear()
                try:
                    await asyncio.wait_for(self._new_connection.wait(), timeout=stalls[i])
                except asyncio.TimeoutError:
                    pass
                while not self._subscribers:
                    await self._has_subscriber.wait()
            if self.speed is not None:
                started_wall = started_wall or time.monotonic()
                due = started_wall + (message.local_ts - first_ts) / 1e9 / self.speed
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
            elif i % 64 == 0:
                await asyncio.sleep(0)  # let the REST handler and other connections in
            self.stats.market = i + 1
            market, produced = self._produced[i]
            market.produced = produced
            faultable = message.is_depth or not faults.depth_only
            if faultable and (i in drops or draw.random() < faults.drop_rate):
                self.stats.dropped.append(i)
            elif held is None and faultable and draw.random() < faults.reorder_rate:
                held = message
                self.stats.reordered.append(i)
                continue
            else:
                await self._send(message.body, message.stream)
                if faultable and draw.random() < faults.duplicate_rate:
                    self.stats.duplicated.append(i)
                    await self._send(message.body, message.stream)
            if held is not None and held is not message:
                await self._send(held.body, held.stream)
                held = None
            if draw.random() < faults.malformed_rate:
                self.stats.malformed += 1
                await self._send(message.body[: len(message.body) // 2], message.stream)
            if i + 1 in disconnects:
                self.stats.disconnects += 1
                for connection in list(self._subscribers):
                    await connection.close(1001, "fault injection: disconnect")
                    self._subscribers.pop(connection, None)
        if held is not None:
            await self._send(held.body, held.stream)
        self.done.set()


# Terms an ``instruments`` entry may give (Instrument fields).
INSTRUMENT_TERMS = ("tick_size", "lot_size", "min_notional", "contract_size", "price_precision", "qty_precision")
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY")


def _check_terms(given: dict, served: list[str]) -> dict:
    """``instruments`` by upper-case symbol, each checked: a served symbol, known terms, positive increments."""
    out = {}
    for symbol, terms in given.items():
        key = str(symbol).split(":", 1)[-1].upper()
        if key not in served:
            raise ValueError(f"instruments: {symbol!r} is not served (the captures hold {', '.join(served)})")
        if not isinstance(terms, Instrument):
            if not isinstance(terms, dict):
                raise ValueError(f"instruments[{symbol!r}]: expected an Instrument or a dict of {INSTRUMENT_TERMS}")
            unknown = sorted(set(terms) - set(INSTRUMENT_TERMS))
            if unknown:
                raise ValueError(f"instruments[{symbol!r}]: unknown term(s) {unknown}; choose from {INSTRUMENT_TERMS}")
            for name in ("tick_size", "lot_size"):
                if name in terms and not (isinstance(terms[name], (int, float)) and terms[name] > 0):
                    raise ValueError(f"instruments[{symbol!r}]: {name}={terms[name]!r} must be a positive number")
        out[key] = terms
    return out


def _text(value: float, places: int = 0) -> str:
    """A decimal string as Binance writes one (``0.01``; spot pads: ``0.01000000``)."""
    d = Decimal(repr(float(value)))
    if places and -d.as_tuple().exponent < places:
        d = d.quantize(Decimal(1).scaleb(-places))
    return format(d.normalize() if not places else d, "f")


def _symbol_entry(venue_key: str, symbol: str, spec: Instrument) -> dict:
    """One ``symbols`` entry of an exchangeInfo answer, with the fields and filters Binance
    documents for the venue (spot: decimal strings padded to 8 places and a NOTIONAL filter, no
    price/quantity precision; USD-M: MIN_NOTIONAL.notional; COIN-M: contractSize)."""
    pair = symbol.split("_", 1)[0]
    quote = next((q for q in _QUOTES if pair.endswith(q) and len(pair) > len(q)), pair[-4:])
    base = pair[: -len(quote)]
    places = 8 if venue_key == "spot" else 0
    tick, lot = _text(spec.tick_size, places), _text(spec.lot_size, places)
    filters = [{"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": _text(1_000_000, places), "tickSize": tick},
               {"filterType": "LOT_SIZE", "minQty": lot, "maxQty": _text(9_000, places), "stepSize": lot},
               {"filterType": "MARKET_LOT_SIZE", "minQty": lot, "maxQty": _text(1_000, places), "stepSize": lot}]
    if venue_key == "spot":
        if spec.min_notional:
            filters.append({"filterType": "NOTIONAL", "minNotional": _text(spec.min_notional, places),
                            "applyMinToMarket": True, "maxNotional": _text(9_000_000, places),
                            "applyMaxToMarket": False, "avgPriceMins": 5})
        filters.append({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200})
        return {"symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
                "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True, "filters": filters,
                "permissions": [], "permissionSets": [["SPOT"]]}
    filters.append({"filterType": "MAX_NUM_ORDERS", "limit": 200})
    if spec.min_notional and venue_key == "usdm":
        filters.append({"filterType": "MIN_NOTIONAL", "notional": _text(spec.min_notional)})
    entry = {"symbol": symbol, "pair": pair, "contractType": "PERPETUAL", "status": "TRADING", "baseAsset": base,
             "quoteAsset": quote, "marginAsset": quote if venue_key == "usdm" else base,
             "pricePrecision": spec.price_precision, "quantityPrecision": spec.qty_precision,
             "baseAssetPrecision": 8, "quotePrecision": 8, "filters": filters,
             "orderTypes": ["LIMIT", "MARKET", "STOP", "TAKE_PROFIT"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}
    if venue_key == "coinm":
        entry["contractStatus"] = entry.pop("status")
        size = spec.contract_size
        entry["contractSize"] = int(size) if float(size).is_integer() else size
    return entry


def _json(status: HTTPStatus, body: dict) -> Response:
    data = orjson.dumps(body)
    return Response(status.value, status.phrase, Headers([("Content-Type", "application/json"),
                                                          ("Content-Length", str(len(data)))]), data)


__all__ = ["FakeBinance", "Faults", "FakeStats", "INSTRUMENT_TERMS"]
