"""Binance venues: where their streams and REST depth snapshots live, and how depth chains.

Base URLs are configurable (a test harness, a proxy, Binance's testnets): pass ``ws_url`` /
``rest_url`` to the client, or set ``GENESIS_BINANCE_<VENUE>_WS`` / ``..._REST``
(e.g. ``GENESIS_BINANCE_USDM_WS=ws://127.0.0.1:9000``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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
                  "/api/v3/depth", "@100ms", SEQ_SPOT, 1024, 1000),
    "usdm": Venue(VENUE_USDM, "usdm", "wss://fstream.binance.com", "https://fapi.binance.com",
                  "/fapi/v1/depth", "@0ms", SEQ_FUTURES, 200, 1000),
    "coinm": Venue(VENUE_COINM, "coinm", "wss://dstream.binance.com", "https://dapi.binance.com",
                   "/dapi/v1/depth", "@0ms", SEQ_FUTURES, 200, 1000),
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
    return Venue(base.name, key, ws.rstrip("/"), rest.rstrip("/"), base.depth_path, base.depth_speed,
                 base.sequencing, base.max_streams, base.snapshot_limit)


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (then no proxy from the environment is used)."""
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
