"""Binance venues: where their streams and REST depth snapshots live, and how depth chains.

Base URLs are configurable (a test harness, a proxy, Binance's testnets): pass ``ws_url`` /
``rest_url`` to the client, or set ``GENESIS_BINANCE_<VENUE>_WS`` / ``..._REST``
(e.g. ``GENESIS_BINANCE_USDM_WS=ws://127.0.0.1:9000``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from genesis.book.l2 import SEQ_FUTURES, SEQ_SPOT
from genesis.feeds.binance.capture import VENUE_COINM, VENUE_SPOT, VENUE_USDM


@dataclass(frozen=True)
class Venue:
    name: str  # namespace of its symbols, e.g. 'binance-usdm'
    key: str  # short name: spot, usdm, coinm (capture file prefix, env variable)
    ws_url: str  # base of the combined stream endpoint '<ws_url>/stream?streams=...'
    rest_url: str
    depth_path: str  # REST order book snapshot
    depth_speed: str  # diff depth stream suffix: fastest update speed the venue offers
    sequencing: int  # SEQ_SPOT (U/u) or SEQ_FUTURES (U/u/pu)
    max_streams: int  # streams per connection
    snapshot_limit: int  # levels per side asked of the REST snapshot
    exchange_info_path: str  # REST trading rules of the symbols (tick, lot, notional, contract size)

    @property
    def file_prefix(self) -> str:
        return {"spot": "spot", "usdm": "usdm", "coinm": "cm"}[self.key]

    def streams(self, symbol: str, channels: tuple[str, ...]) -> list[str]:
        """Stream names of one symbol, e.g. ``btcusdt@depth@0ms``."""
        lower = symbol.lower()
        names = {"depth": f"{lower}@depth{self.depth_speed}", "trade": f"{lower}@trade",
                 "bookTicker": f"{lower}@bookTicker"}
        unknown = set(channels) - set(names)
        if unknown:
            raise ValueError(f"unknown channel(s) {sorted(unknown)}; choose from {sorted(names)}")
        return [names[c] for c in channels]


VENUES = {
    "spot": Venue(VENUE_SPOT, "spot", "wss://stream.binance.com:9443", "https://api.binance.com",
                  "/api/v3/depth", "@100ms", SEQ_SPOT, 1024, 1000, "/api/v3/exchangeInfo"),
    "usdm": Venue(VENUE_USDM, "usdm", "wss://fstream.binance.com", "https://fapi.binance.com",
                  "/fapi/v1/depth", "@0ms", SEQ_FUTURES, 200, 1000, "/fapi/v1/exchangeInfo"),
    "coinm": Venue(VENUE_COINM, "coinm", "wss://dstream.binance.com", "https://dapi.binance.com",
                   "/dapi/v1/depth", "@0ms", SEQ_FUTURES, 200, 1000, "/dapi/v1/exchangeInfo"),
}
_ALIASES = {VENUE_SPOT: "spot", VENUE_USDM: "usdm", VENUE_COINM: "coinm", "cm": "coinm", "um": "usdm"}


def venue(name: str, *, ws_url: str | None = None, rest_url: str | None = None) -> Venue:
    """A venue by short or namespaced name (``usdm``, ``binance-usdm``), with its base URLs
    overridden by the arguments, else by ``GENESIS_BINANCE_<KEY>_WS`` / ``_REST``."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in VENUES:
        raise ValueError(f"unknown Binance venue {name!r}; choose from spot, usdm, coinm")
    base = VENUES[key]
    ws = ws_url or os.environ.get(f"GENESIS_BINANCE_{key.upper()}_WS") or base.ws_url
    rest = rest_url or os.environ.get(f"GENESIS_BINANCE_{key.upper()}_REST") or base.rest_url
    for what, url, schemes in (("ws_url", ws, ("ws", "wss")), ("rest_url", rest, ("http", "https"))):
        if urlsplit(url).scheme not in schemes or not urlsplit(url).hostname:
            raise ValueError(f"{what} {url!r} is not a {'/'.join(schemes)} URL")
    return replace(base, ws_url=ws.rstrip("/"), rest_url=rest.rstrip("/"))


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (then no proxy from the environment is used)."""
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def instruments_from_exchange_info(info: dict | bytes | str, venue_name: str, valid_from: int,
                                   symbols: list[str] | None = None) -> list:
    """:class:`~genesis.store.instruments.Instrument` specs (source 'exchangeInfo') from a
    Binance ``exchangeInfo`` response of ``venue_name`` (spot, usdm, coinm or namespaced),
    valid from ``valid_from`` (ns): tick from ``PRICE_FILTER.tickSize``, lot from
    ``LOT_SIZE.stepSize``, minimum notional from ``NOTIONAL.minNotional`` (spot) or
    ``MIN_NOTIONAL.notional`` (USD-M), contract size from ``contractSize`` (COIN-M). Only
    ``symbols`` when given (Binance names, any case). A ValueError names a symbol whose
    filters are missing or not numbers."""
    import json

    from genesis.store.instruments import EXCHANGE_INFO, Instrument

    if isinstance(info, (bytes, str)):
        info = json.loads(info)
    namespace = venue(venue_name).name
    if not isinstance(info, dict) or not isinstance(info.get("symbols", []), list):
        raise ValueError(f"exchangeInfo of {namespace}: expected an object with a 'symbols' list, got "
                         f"{type(info).__name__} {str(info)[:80]!r}")
    wanted = {s.upper() for s in symbols} if symbols else None
    specs = []
    for entry in info.get("symbols", []):
        name = str(entry.get("symbol", ""))
        if wanted is not None and name.upper() not in wanted:
            continue
        filters = {f.get("filterType"): f for f in entry.get("filters", [])}
        try:
            tick = float(filters["PRICE_FILTER"]["tickSize"])
            lot = float(filters["LOT_SIZE"]["stepSize"])
            notional = filters.get("NOTIONAL", {}).get("minNotional") or filters.get("MIN_NOTIONAL", {}).get(
                "notional") or filters.get("MIN_NOTIONAL", {}).get("minNotional") or 0
            specs.append(Instrument(
                f"{namespace}:{name.upper()}", tick, lot, min_notional=float(notional),
                contract_size=float(entry.get("contractSize", 1) or 1),
                price_precision=int(entry.get("pricePrecision", -1)),
                # Spot declares no quantityPrecision: then the lot's decimals (its baseAssetPrecision,
                # 8 on every symbol, is the asset's balance precision, not the order quantity's).
                qty_precision=int(entry.get("quantityPrecision", -1)),
                valid_from=int(valid_from), source=EXCHANGE_INFO))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"exchangeInfo of {namespace}: symbol {name!r} has no usable PRICE_FILTER/LOT_SIZE "
                             f"({type(exc).__name__}: {exc})") from None
    return specs


def exchange_info_path(capture: str | Path) -> Path:
    """Where the recorder keeps the ``exchangeInfo`` it fetched for a capture file, beside it:
    ``usdm_btcusdt_20240808.jsonl.gz`` -> ``usdm_btcusdt_20240808.exchangeinfo.json``. The file
    holds ``{"local_ts": ns, "venue": "usdm", "response": <exchangeInfo as Binance sent it>}``;
    ingest records its specs in the ``instruments`` table."""
    capture = Path(capture)
    name = capture.name
    for suffix in (".gz", ".jsonl", ".txt"):
        name = name.removesuffix(suffix)
    return capture.with_name(f"{name}.exchangeinfo.json")


def read_exchange_info(capture: str | Path) -> list:
    """The declared specs of a capture's symbols from its ``exchangeInfo`` file
    (:func:`exchange_info_path`), or [] when the recorder left none. A ValueError names the
    file when it is there but unreadable."""
    import json

    path = exchange_info_path(capture)
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_bytes())
        return instruments_from_exchange_info(doc["response"], doc["venue"], int(doc["local_ts"]))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable exchangeInfo record ({type(exc).__name__}: {exc})") from None
