"""Read Binance websocket capture files into normalised event arrays.

A capture file holds one message per line, ``<local receive time, ns> <json>``, optionally
gzip-compressed: combined-stream messages (``@depth``, ``@trade``, ``@bookTicker``) and
REST depth snapshots. :func:`read_capture` returns, per symbol, the depth messages (with
their update ids, for sequencing), trades and quotes as NumPy arrays with both clocks, plus
the lines that could not be used, each with its reason (for quarantine).

Symbols are namespaced by venue: ``binance-spot:BTCUSDT``, ``binance-usdm:BTCUSDT``,
``binance-coinm:BTCUSD_PERP``. The venue is read from the messages (futures depth events
carry ``pu``; COIN-M symbols carry a ``_`` contract suffix), or from the file name prefix
(``spot_``, ``usdm_``, ``cm_``) when the file has no depth events.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genesis.arrays import concat_ranges
from genesis.book.l2 import SEQ_FUTURES, SEQ_SPOT
from genesis.feeds.binance import scan
from genesis.feeds.binance.messages import BadMessage, parse_line
from genesis.feeds.events import QUOTE_DTYPE, TRADE_DTYPE


VENUE_SPOT = "binance-spot"
VENUE_USDM = "binance-usdm"
VENUE_COINM = "binance-coinm"
_FILE_PREFIX_VENUE = {"spot": VENUE_SPOT, "usdm": VENUE_USDM, "um": VENUE_USDM, "cm": VENUE_COINM, "coinm": VENUE_COINM}


@dataclass
class DepthMessages:
    """Depth events and snapshots of one symbol, in arrival order (one entry per message).

    ``first_id``/``last_id``/``prev_id`` are Binance's ``U``/``u``/``pu`` (``last_id`` is
    ``lastUpdateId`` for a snapshot; -1 where absent). Levels of message i are
    ``side/price/qty[level_start[i] : level_start[i] + level_count[i]]``, bids first.
    """

    line_no: np.ndarray
    local_ts: np.ndarray
    exch_ts: np.ndarray
    is_snapshot: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    prev_id: np.ndarray
    level_start: np.ndarray
    level_count: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray

    def __len__(self) -> int:
        return len(self.line_no)


@dataclass
class SymbolEvents:
    symbol: str  # namespaced, e.g. binance-usdm:BTCUSDT
    sequencing: int  # SEQ_SPOT or SEQ_FUTURES
    depth: DepthMessages
    trades: np.ndarray  # TRADE_DTYPE
    quotes: np.ndarray  # QUOTE_DTYPE
    quote_line_no: np.ndarray

    @property
    def has_snapshot(self) -> bool:
        return bool(self.depth.is_snapshot.any())


@dataclass
class BadLine:
    line_no: int  # 1-based
    local_ts: int  # 0 when unreadable
    stream: str
    reason: str
    raw: bytes


@dataclass
class CaptureFile:
    path: Path
    n_lines: int  # non-blank lines
    symbols: dict[str, SymbolEvents]
    bad_lines: list[BadLine] = field(default_factory=list)
    raw: bytes = b""  # decompressed content, kept to quote lines in quarantine
    line_starts: np.ndarray = field(default=None, repr=False)  # byte offsets of each line in ``raw``
    line_stops: np.ndarray = field(default=None, repr=False)

    def line(self, line_no: int) -> bytes:
        """The raw text of 1-based line ``line_no``."""
        return _line_bytes(self.raw, self.line_starts, self.line_stops, line_no - 1)

    def symbol_events(self, symbol: str | None = None) -> SymbolEvents:
        """One symbol's events: ``symbol`` namespaced ('binance-usdm:BTCUSDT') or bare
        ('BTCUSDT'), or None when the file holds exactly one symbol."""
        names = list(self.symbols)
        if symbol is None:
            if len(names) != 1:
                raise ValueError(f"{self.path}: holds {len(names)} symbols ({', '.join(names)}); name one")
            return self.symbols[names[0]]
        matches = [n for n in names if n == symbol or n.split(":", 1)[-1] == symbol.upper()]
        if not matches:
            raise ValueError(f"{self.path}: no symbol {symbol!r} (it holds {', '.join(names) or 'none'})")
        if len(matches) > 1:
            raise ValueError(f"{self.path}: symbol {symbol!r} is ambiguous ({', '.join(matches)}); give it namespaced")
        return self.symbols[matches[0]]


def _line_bytes(raw: bytes, starts: np.ndarray, stops: np.ndarray, index: int) -> bytes:
    return raw[int(starts[index]) : int(stops[index])].rstrip(b"\r")


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip."""
    stored = path.read_bytes()
    if stored[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(stored)
        except (EOFError, OSError) as exc:
            # A capture cut while being written: keep what decompresses, the last line will be truncated.
            partial = _decompress_prefix(stored)
            if not partial:
                raise ValueError(f"{path}: not a readable gzip file ({exc})") from None
            return partial
    return stored


def _decompress_prefix(stored: bytes) -> bytes:
    import zlib

    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return decoder.decompress(stored)
    except zlib.error:
        return b""


def _venue_from_name(path: Path) -> str | None:
    return _FILE_PREFIX_VENUE.get(path.name.split("_", 1)[0].lower())


def read_capture(path: str | Path, venue: str | None = None) -> CaptureFile:
    """Read one capture file (plain or gzip) into per-symbol event arrays.

    Lines the fast scanner does not accept are parsed by the reference parser; those that
    are invalid are returned in ``bad_lines`` with their reason and raw text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"capture file not found: {path}")
    raw = read_bytes(path)
    buf = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    stops = np.concatenate((newlines, [len(buf)])).astype(np.int64)
    if len(starts) and starts[-1] >= len(buf):  # file ends with a newline
        starts, stops = starts[:-1], stops[:-1]
    n = len(starts)

    ints = np.zeros((n, scan.N_INT_COLS), np.int64)
    floats = np.zeros((n, scan.N_FLOAT_COLS), np.float64)
    kinds = np.zeros(n, np.int8)
    status = np.zeros(n, np.int8)
    level_capacity = len(buf) // 10 + 16  # a level takes at least 10 bytes: ["1","0"],
    side = np.empty(level_capacity, np.int8)
    price = np.empty(level_capacity, np.float64)
    qty = np.empty(level_capacity, np.float64)
    n_levels = scan.scan_lines(buf, starts, stops, ints, floats, kinds, status, side, price, qty)

    names: dict[int, str] = {}  # symbol hash -> upper-case venue symbol
    bad: list[BadLine] = []
    extra_levels: list[tuple[int, float, float]] = []
    for i in np.flatnonzero(status == scan.LINE_FALLBACK):
        text = _line_bytes(raw, starts, stops, i)
        try:
            parsed = parse_line(text)
        except BadMessage as exc:
            head = text.split(b" ", 1)[0]
            local_ts = int(head) if head.isdigit() and len(head) < 20 else 0
            reason = exc.reason
            if i == n - 1 and not raw.endswith(b"\n") and not reason.startswith("truncated"):
                # A writer stopped mid-line (a killed recorder): say so rather than what the stump looks like.
                reason = f"truncated last line (the file ends without a newline): {reason}"
            bad.append(BadLine(int(i) + 1, local_ts, exc.stream, reason, text))
            continue
        if parsed is None:
            status[i] = scan.LINE_BLANK
            continue
        ints[i] = parsed.ints
        floats[i] = parsed.floats
        kinds[i] = parsed.kind
        if parsed.symbol:
            code = int(scan.symbol_hash(np.frombuffer(parsed.symbol.encode(), np.uint8), 0, len(parsed.symbol)))
            ints[i, scan.I_SYMBOL] = code
            names[code] = parsed.symbol
        ints[i, scan.I_LVL_START] = n_levels + len(extra_levels)  # appended after the scanned levels
        ints[i, scan.I_LVL_COUNT] = len(parsed.levels)
        extra_levels.extend(parsed.levels)
        status[i] = scan.LINE_OK
    side, price, qty = side[:n_levels], price[:n_levels], qty[:n_levels]
    if extra_levels:
        extra = np.array(extra_levels, dtype=[("s", "i1"), ("p", "f8"), ("q", "f8")])
        side = np.concatenate([side, extra["s"]])
        price = np.concatenate([price, extra["p"]])
        qty = np.concatenate([qty, extra["q"]])

    ok = status == scan.LINE_OK
    _name_symbols(raw, starts, kinds, ints, ok, names)
    capture = CaptureFile(path=path, n_lines=int(np.count_nonzero(status != scan.LINE_BLANK)),
                          symbols={}, bad_lines=bad, raw=raw,
                          line_starts=starts, line_stops=stops)

    _assign_snapshots(kinds, ints, ok, names, capture, raw, starts, stops)
    for code, name in names.items():
        mine = ok & (ints[:, scan.I_SYMBOL] == code)
        if not mine.any():
            continue
        events = _symbol_events(name, path, venue, mine, kinds, ints, floats, side, price, qty)
        capture.symbols[events.symbol] = events
    capture.bad_lines.sort(key=lambda b: b.line_no)
    return capture


def _name_symbols(raw, starts, kinds, ints, ok, names) -> None:
    """Recover each stream symbol's text from the first line that carries its hash."""
    streams = ok & (kinds != scan.KIND_SNAPSHOT)
    codes, first = np.unique(ints[streams, scan.I_SYMBOL], return_index=True)
    rows = np.flatnonzero(streams)[first]
    prefix = len(b'{"stream":"')
    for code, row in zip(codes.tolist(), rows.tolist()):
        if code in names:
            continue
        begin = raw.index(b" ", int(starts[row])) + 1 + prefix
        names[code] = raw[begin : raw.index(b"@", begin)].decode().upper()


def _assign_snapshots(kinds, ints, ok, names, capture, raw, starts, stops) -> None:
    """A REST snapshot without a ``symbol`` field belongs to the file's only depth stream."""
    orphan = ok & (kinds == scan.KIND_SNAPSHOT) & (ints[:, scan.I_SYMBOL] == 0)
    if not orphan.any():
        return
    depth_codes = np.unique(ints[ok & (kinds == scan.KIND_DEPTH), scan.I_SYMBOL])
    if len(depth_codes) == 1:
        ints[orphan, scan.I_SYMBOL] = depth_codes[0]
        return
    why = ("the file has no depth stream" if len(depth_codes) == 0 else
           f"the file has {len(depth_codes)} depth streams and the snapshot names no symbol")
    for i in np.flatnonzero(orphan):
        capture.bad_lines.append(BadLine(int(i) + 1, int(ints[i, scan.I_LOCAL]), "snapshot",
                                         f"snapshot cannot be assigned: {why}", _line_bytes(raw, starts, stops, i)))
        ok[i] = False


def _symbol_events(name, path, venue, mine, kinds, ints, floats, side, price, qty) -> SymbolEvents:
    depth_rows = np.flatnonzero(mine & ((kinds == scan.KIND_DEPTH) | (kinds == scan.KIND_SNAPSHOT)))
    is_snapshot = kinds[depth_rows] == scan.KIND_SNAPSHOT
    diff_rows = depth_rows[~is_snapshot]
    if len(diff_rows):
        futures = bool((ints[diff_rows, scan.I_PREV] != -1).any())
        inferred = (VENUE_COINM if "_" in name else VENUE_USDM) if futures else VENUE_SPOT
    else:
        inferred = _venue_from_name(path)
    venue = venue or inferred
    if venue is None:
        raise ValueError(
            f"{path}: cannot tell the venue of {name} (no depth events, file name does not start with "
            "spot_/usdm_/cm_); pass venue='binance-spot', 'binance-usdm' or 'binance-coinm'"
        )
    # Level arrays: gather each message's levels contiguously (bids then asks as received).
    counts = ints[depth_rows, scan.I_LVL_COUNT]
    gather = concat_ranges(ints[depth_rows, scan.I_LVL_START], counts)
    offsets = np.zeros(len(depth_rows), np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    depth = DepthMessages(
        line_no=depth_rows + 1,
        local_ts=ints[depth_rows, scan.I_LOCAL],
        exch_ts=ints[depth_rows, scan.I_EXCH],
        is_snapshot=is_snapshot,
        first_id=ints[depth_rows, scan.I_FIRST],
        last_id=ints[depth_rows, scan.I_LAST],
        prev_id=ints[depth_rows, scan.I_PREV],
        level_start=offsets,
        level_count=counts,
        side=side[gather],
        price=price[gather],
        qty=qty[gather],
    )
    trade_rows = np.flatnonzero(mine & (kinds == scan.KIND_TRADE))
    trades = np.empty(len(trade_rows), TRADE_DTYPE)
    trades["exch_ts"] = ints[trade_rows, scan.I_EXCH]
    trades["local_ts"] = ints[trade_rows, scan.I_LOCAL]
    trades["trade_id"] = ints[trade_rows, scan.I_LAST]
    trades["price"] = floats[trade_rows, 0]
    trades["qty"] = floats[trade_rows, 1]
    # m = buyer is the maker, so the seller took liquidity.
    trades["aggressor"] = np.where(ints[trade_rows, scan.I_FLAG] == 1, -1, 1)
    quote_rows = np.flatnonzero(mine & (kinds == scan.KIND_QUOTE))
    quotes = np.empty(len(quote_rows), QUOTE_DTYPE)
    quotes["exch_ts"] = ints[quote_rows, scan.I_EXCH]
    quotes["local_ts"] = ints[quote_rows, scan.I_LOCAL]
    quotes["update_id"] = ints[quote_rows, scan.I_LAST]
    for k, col in enumerate(("bid_px", "bid_sz", "ask_px", "ask_sz")):
        quotes[col] = floats[quote_rows, k]
    return SymbolEvents(
        symbol=f"{venue}:{name}",
        sequencing=SEQ_SPOT if venue == VENUE_SPOT else SEQ_FUTURES,
        depth=depth, trades=trades, quotes=quotes, quote_line_no=quote_rows + 1,
    )


__all__ = ["read_capture", "CaptureFile", "SymbolEvents", "DepthMessages", "BadLine", "TRADE_DTYPE", "QUOTE_DTYPE"]
