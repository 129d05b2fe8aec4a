"""Read Binance websocket capture files into normalised event arrays.

A capture file holds one message per line, ``<local receive time, ns> <json>``, optionally
gzip-compressed: combined-stream messages (``@depth``, ``@trade``, ``@bookTicker``) and
REST depth snapshots. :func:`read_capture` returns, per symbol, the depth messages (with
their update ids, for sequencing), trades and quotes as NumPy arrays with both clocks, plus
the lines that could not be used, each with its reason (for quarantine).

Symbols are namespaced by venue: ``binance-spot:BTCUSDT``, ``binance-usdm:BTCUSDT``,
``binance-coinm:BTCUSD_PERP``. The venue of a symbol is, in this order: the ``venue``
argument; its depth events (futures events carry ``pu``; COIN-M symbols are ``<base>USD_``
contracts); its contract suffix; the file name prefix (``spot_``, ``usdm_``, ``cm_``); the one
venue of the file's other symbols. A file where a symbol's venue cannot be told raises
:class:`CaptureError`, naming the file.

Nothing is dropped silently: a line that cannot be used (bad receive time, bad JSON, unknown
stream, a symbol outside Binance's alphabet, a line too long to be a message...) is returned
in ``bad_lines`` with its number, reason, length, sha256 and at most :data:`RAW_LIMIT` bytes of
its text; corrupt gzip data ends the readable part of a file and is reported the same way.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genesis.arrays import concat_ranges
from genesis.book.l2 import SEQ_FUTURES, SEQ_SPOT
from genesis.feeds.binance import scan
from genesis.feeds.binance.messages import MAX_MESSAGE_BYTES, BadMessage, parse_line, symbol_problem
from genesis.feeds.events import QUOTE_DTYPE, TRADE_DTYPE


VENUE_SPOT = "binance-spot"
VENUE_USDM = "binance-usdm"
VENUE_COINM = "binance-coinm"
_FILE_PREFIX_VENUE = {"spot": VENUE_SPOT, "usdm": VENUE_USDM, "um": VENUE_USDM, "cm": VENUE_COINM, "coinm": VENUE_COINM}
VENUES = (VENUE_SPOT, VENUE_USDM, VENUE_COINM)
RAW_LIMIT = 64 * 1024  # bytes of a bad line kept for quarantine (its full length and sha256 are kept too)
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_CHUNK = 1 << 16


class CaptureError(ValueError):
    """A capture file that cannot be read as a whole (unreadable, or a symbol whose venue
    cannot be told); the message names the file. Problems of single lines are never raised:
    they are :class:`BadLine` s."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


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

    def inferred_instrument(self):
        """The symbol's tick and lot inferred exactly from its prices (depth, trades, quotes) and
        sizes (depth, trades), valid from its first venue time
        (:func:`genesis.store.instruments.infer_instrument`; a ValueError when it has none)."""
        from genesis.store.instruments import infer_instrument

        d, t, q = self.depth, self.trades, self.quotes
        times = np.concatenate((d.exch_ts, t["exch_ts"]))
        times = times[times > 0]
        return infer_instrument(self.symbol, np.concatenate((d.price, t["price"], q["bid_px"], q["ask_px"])),
                                np.concatenate((d.qty, t["qty"])), int(times.min()) if len(times) else 0)


@dataclass
class BadLine:
    line_no: int  # 1-based
    local_ts: int  # 0 when unreadable
    stream: str
    reason: str
    raw: bytes  # the line's first RAW_LIMIT bytes at most
    length: int = -1  # the whole line's length in bytes (-1: ``raw`` is the whole line)
    sha256: str = ""  # of the whole line, hex

    def __post_init__(self) -> None:
        if self.length < 0:
            self.raw, self.length, self.sha256 = quote_line(self.raw)

    @classmethod
    def of(cls, line_no: int, local_ts: int, stream: str, reason: str, line: bytes | memoryview) -> BadLine:
        """A bad line quoted from ``line`` (a memoryview of a huge line is not copied)."""
        raw, length, digest = quote_line(line)
        return cls(line_no, local_ts, stream, reason, raw, length, digest)


def quote_line(line: bytes | memoryview) -> tuple[bytes, int, str]:
    """(at most RAW_LIMIT bytes of ``line``, its length, its sha256 hex). The cut does not split
    a UTF-8 character, so the kept text stays readable."""
    digest = hashlib.sha256(line).hexdigest()
    cut = len(line)
    if cut > RAW_LIMIT:
        cut = RAW_LIMIT
        while cut > RAW_LIMIT - 3 and line[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            cut -= 1
    return bytes(line[:cut]), len(line), digest


def receive_time(line: bytes | memoryview) -> int:
    """The receive time a line starts with (ns), or 0 when it has none that fits int64."""
    head = bytes(line[:20]).split(b" ", 1)[0]
    if head.isdigit() and len(head) <= 19 and int(head) < 2**63:
        return int(head)
    return 0


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

    def bad_line(self, line_no: int, local_ts: int, stream: str, reason: str) -> BadLine:
        """Line ``line_no`` as a :class:`BadLine` (for problems found after reading, such as
        an update that crosses the book), quoted without copying the whole line."""
        return BadLine.of(line_no, local_ts, stream, reason, _line_view(self.raw, self.line_starts,
                                                                        self.line_stops, line_no - 1))

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


def _positions(buf: np.ndarray, byte: int, chunk: int = 1 << 24) -> np.ndarray:
    """Offsets of ``byte`` in ``buf`` (int64), in chunks: no temporary the size of the file."""
    parts = [np.flatnonzero(buf[at : at + chunk] == byte) + at for at in range(0, len(buf), chunk)]
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)


def _line_bytes(raw: bytes, starts: np.ndarray, stops: np.ndarray, index: int) -> bytes:
    return raw[int(starts[index]) : int(stops[index])].rstrip(b"\r")


def _line_view(raw: bytes, starts: np.ndarray, stops: np.ndarray, index: int) -> memoryview:
    """Line ``index`` without its trailing ``\\r``, as a view (no copy)."""
    start, stop = int(starts[index]), int(stops[index])
    while stop > start and raw[stop - 1] == 13:
        stop -= 1
    return memoryview(raw)[start:stop]


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip. Of a gzip file cut short or corrupt,
    what decompresses before the cut or the corruption."""
    return read_content(Path(path))[0]


def read_content(path: Path) -> tuple[bytes, BadLine | None]:
    """``(content, problem)``: the file's bytes, decompressed if gzip, and, when gzip data
    is corrupt, a :class:`BadLine` (stream ``'gzip'``, numbered after the last line read)
    that says where, with the unreadable compressed bytes quoted. A gzip file merely cut
    short (a recorder killed mid-write) is no problem here: its torn last line is one.
    Raises :class:`CaptureError` when the file cannot be read at all."""
    try:
        stored = path.read_bytes()
    except OSError as exc:
        raise CaptureError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if stored[:2] != _GZIP_MAGIC:
        return stored, None
    content, error, stop = _gunzip(stored)
    if not content and error:
        raise CaptureError(path, f"not a readable gzip file ({error})")
    if not error:
        return content, None
    lines = content.count(b"\n") + (0 if content.endswith(b"\n") or not content else 1)
    tail = memoryview(stored)[stop:]
    reason = (f"{error} at compressed byte {stop:,} of {len(stored):,}: the {len(tail):,} bytes after it "
              "cannot be decompressed (raw: those bytes); the lines before it are read")
    return content, BadLine.of(lines + 1, 0, "gzip", reason, tail)


def _gunzip(stored: bytes) -> tuple[bytes, str, int]:
    """Decompress every gzip member of ``stored``, keeping all that decompresses before
    corrupt data. Returns (content, error ('' if none), offset of the first unused byte)."""
    out: list[bytes] = []
    view = memoryview(stored)
    pos = 0
    while pos < len(stored):
        if stored[pos : pos + 2] != _GZIP_MAGIC:
            if not stored[pos:].strip(b"\x00"):  # zero padding after the last member
                return b"".join(out), "", len(stored)
            return b"".join(out), "data after the gzip stream is not gzip", pos
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not decoder.eof and pos < len(stored):
            chunk = view[pos : pos + _GZIP_CHUNK]
            saved = decoder.copy()
            try:
                out.append(decoder.decompress(chunk))
            except zlib.error as exc:
                # Again, a byte at a time from before this chunk: keep all output up to the bad byte.
                decoder = saved
                for k in range(len(chunk)):
                    try:
                        out.append(decoder.decompress(chunk[k : k + 1]))
                    except zlib.error:
                        return b"".join(out), f"corrupt gzip data ({exc})", pos + k
                    if decoder.eof:  # (not expected: the member ended before the error)
                        chunk = chunk[: k + 1]
                        break
            pos += len(chunk) - len(decoder.unused_data)
        if not decoder.eof:  # cut short: keep what decompresses, the last line shows the cut
            out.append(decoder.flush())
            break
    return b"".join(out), "", len(stored)


def _venue_from_name(path: Path) -> str | None:
    return _FILE_PREFIX_VENUE.get(path.name.split("_", 1)[0].lower())


def _venue_from_contract(name: str) -> str | None:
    """The venue a contract suffix tells: COIN-M contracts are ``<base>USD_PERP`` or
    ``<base>USD_YYMMDD``; USD-M delivery contracts ``<base>USDT_YYMMDD``. None without a suffix."""
    base, sep, suffix = name.partition("_")
    if not sep:
        return None
    return VENUE_COINM if suffix == "PERP" or base.endswith("USD") else VENUE_USDM


def normalize_venue(venue: str | None) -> str | None:
    """``'binance-usdm'``, or a short name (``usdm``, ``um``, ``spot``, ``cm``, ``coinm``) for one."""
    if venue is None or venue in VENUES:
        return venue
    if venue.lower() in _FILE_PREFIX_VENUE:
        return _FILE_PREFIX_VENUE[venue.lower()]
    raise ValueError(f"unknown Binance venue {venue!r}; choose from {', '.join(VENUES)}")


def read_capture(path: str | Path, venue: str | None = None) -> CaptureFile:
    """Read one capture file (plain or gzip) into per-symbol event arrays.

    Lines the fast scanner does not accept are parsed by the reference parser; those that
    are invalid are returned in ``bad_lines`` with their reason and raw text.
    """
    path = Path(path)
    venue = normalize_venue(venue)
    if not path.is_file():
        raise FileNotFoundError(f"capture file not found: {path}")
    raw, gzip_problem = read_content(path)
    buf = np.frombuffer(raw, dtype=np.uint8)
    newlines = _positions(buf, ord("\n"))
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    stops = np.concatenate((newlines, [len(buf)])).astype(np.int64)
    if len(starts) and starts[-1] >= len(buf):  # file ends with a newline
        starts, stops = starts[:-1], stops[:-1]
    n = len(starts)

    ints = np.zeros((n, scan.N_INT_COLS), np.int64)
    floats = np.zeros((n, scan.N_FLOAT_COLS), np.float64)
    kinds = np.zeros(n, np.int8)
    status = np.zeros(n, np.int8)
    # Every level opens with '[': room for as many levels as the file has of them (not a
    # guess from its length, which a huge line that holds no levels would inflate).
    level_capacity = len(_positions(buf, ord("["))) + 16
    side = np.empty(level_capacity, np.int8)
    price = np.empty(level_capacity, np.float64)
    qty = np.empty(level_capacity, np.float64)
    n_levels = scan.scan_lines(buf, starts, stops, ints, floats, kinds, status, side, price, qty)

    names: dict[int, str] = {}  # symbol hash -> upper-case venue symbol (of stream lines)
    bad: list[BadLine] = []
    extra_levels: list[tuple[int, float, float]] = []
    for i in np.flatnonzero(status == scan.LINE_FALLBACK):
        view = _line_view(raw, starts, stops, i)
        try:
            # A line too long to be a message is refused by its length, without a copy.
            parsed = parse_line(view if len(view) > MAX_MESSAGE_BYTES else bytes(view))
        except BadMessage as exc:
            reason = exc.reason
            if i == n - 1 and not raw.endswith(b"\n") and not reason.startswith("truncated"):
                # A writer stopped mid-line (a killed recorder): say so rather than what the stump looks like.
                reason = f"truncated last line (the file ends without a newline): {reason}"
            bad.append(BadLine.of(int(i) + 1, receive_time(view), exc.stream, reason, view))
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
            if parsed.kind != scan.KIND_SNAPSHOT:  # a snapshot's symbol must be one of the streams'
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
    if gzip_problem is not None:
        capture.bad_lines.append(gzip_problem)

    _refuse_bad_symbols(kinds, ints, ok, names, capture)
    _assign_snapshots(kinds, ints, ok, names, capture, raw, starts, stops)
    _refuse_unmatched_snapshots(kinds, ints, ok, names, capture)
    groups = _rows_by_symbol(ints, ok)
    venues = _venues(path, venue, names, groups, kinds, ints)
    for code, rows in groups.items():
        events = _symbol_events(names[code], venues[code], rows, kinds, ints, floats, side, price, qty)
        capture.symbols[events.symbol] = events
    capture.bad_lines.sort(key=lambda b: b.line_no)
    # Every non-blank line is now a symbol's event (every usable line's symbol is named) or a bad line.
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


def _refuse_bad_symbols(kinds, ints, ok, names, capture) -> None:
    """Stream lines whose symbol is not a Binance symbol go to ``bad_lines`` (the scanner
    checks the alphabet only; the exact shape is checked here, once per symbol)."""
    bad_codes = [code for code, name in names.items() if symbol_problem(name)]
    if not bad_codes:
        return
    rows = np.flatnonzero(ok & (kinds != scan.KIND_SNAPSHOT) & np.isin(ints[:, scan.I_SYMBOL], bad_codes))
    prefix = len(b'{"stream":"')
    for i in rows.tolist():
        view = _line_view(capture.raw, capture.line_starts, capture.line_stops, i)
        begin = bytes(view[:64]).index(b" ") + 1 + prefix
        stream = bytes(view[begin : begin + 128]).split(b'"', 1)[0].decode()
        reason = f"stream {symbol_problem(stream.partition('@')[0])}"  # as the reference parser says it
        capture.bad_lines.append(BadLine.of(i + 1, int(ints[i, scan.I_LOCAL]), stream, reason, view))
        ok[i] = False
    for code in bad_codes:
        del names[code]


def _refuse_unmatched_snapshots(kinds, ints, ok, names, capture) -> None:
    """A snapshot naming a symbol that has no stream in the file cannot be used (it may be a
    corrupted name): it goes to ``bad_lines``, never makes a new symbol."""
    rows = np.flatnonzero(ok & (kinds == scan.KIND_SNAPSHOT)
                          & ~np.isin(ints[:, scan.I_SYMBOL], np.array(list(names), np.int64)))
    for i in rows.tolist():
        view = _line_view(capture.raw, capture.line_starts, capture.line_stops, i)
        found = re.search(rb'"symbol"\s*:\s*"([^"]{0,40})', view)
        named = found[1].decode("utf-8", "replace") if found else "?"
        capture.bad_lines.append(BadLine.of(
            i + 1, int(ints[i, scan.I_LOCAL]), "snapshot",
            f"snapshot of symbol {named!r}, which has no stream in this file", view))
        ok[i] = False


def _rows_by_symbol(ints, ok) -> dict[int, np.ndarray]:
    """Row numbers of each symbol's usable lines, in file order (one sort, not a scan per symbol)."""
    rows = np.flatnonzero(ok)
    codes = ints[rows, scan.I_SYMBOL]
    order = np.argsort(codes, kind="stable")
    unique, first = np.unique(codes[order], return_index=True)
    bounds = np.append(first, len(order))
    return {int(code): rows[order[a:b]] for code, a, b in zip(unique.tolist(), bounds[:-1], bounds[1:])}


def _venues(path, venue, names, groups, kinds, ints) -> dict[int, str]:
    """The venue of each symbol (see the module docstring); CaptureError when one cannot be told."""
    if venue is not None:
        return dict.fromkeys(groups, venue)
    found: dict[int, str | None] = {}
    for code, rows in groups.items():
        name = names[code]
        diffs = rows[kinds[rows] == scan.KIND_DEPTH]
        if len(diffs):
            futures = bool((ints[diffs, scan.I_PREV] != -1).any())
            found[code] = (_venue_from_contract(name) or VENUE_USDM) if futures else VENUE_SPOT
        else:
            found[code] = _venue_from_contract(name) or _venue_from_name(path)
    told = {v for v in found.values() if v is not None}
    unknown = [names[code] for code, v in found.items() if v is None]
    if unknown and len(told) == 1:  # a capture comes from one venue: its other streams tell it
        (only,) = told
        return {code: v or only for code, v in found.items()}
    if unknown:
        raise CaptureError(path, (
            f"cannot tell the venue of {', '.join(sorted(unknown))}: no depth events, no contract suffix, "
            "the file name does not start with spot_/usdm_/cm_"
            + (f", and the file's other symbols are of {len(told)} venues" if told else "")
            + "; name the venue (--venue spot|usdm|coinm, or venue='binance-spot'|'binance-usdm'|'binance-coinm')"))
    return found


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
        capture.bad_lines.append(BadLine.of(int(i) + 1, int(ints[i, scan.I_LOCAL]), "snapshot",
                                            f"snapshot cannot be assigned: {why}", _line_view(raw, starts, stops, i)))
        ok[i] = False


def _symbol_events(name, venue, rows, kinds, ints, floats, side, price, qty) -> SymbolEvents:
    """One symbol's events from its usable ``rows`` (line indices, in file order)."""
    row_kinds = kinds[rows]
    depth_rows = rows[(row_kinds == scan.KIND_DEPTH) | (row_kinds == scan.KIND_SNAPSHOT)]
    is_snapshot = kinds[depth_rows] == scan.KIND_SNAPSHOT
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
    trade_rows = rows[row_kinds == scan.KIND_TRADE]
    trades = np.empty(len(trade_rows), TRADE_DTYPE)
    trades["exch_ts"] = ints[trade_rows, scan.I_EXCH]
    trades["local_ts"] = ints[trade_rows, scan.I_LOCAL]
    trades["trade_id"] = ints[trade_rows, scan.I_LAST]
    trades["price"] = floats[trade_rows, 0]
    trades["qty"] = floats[trade_rows, 1]
    # m = buyer is the maker, so the seller took liquidity.
    trades["aggressor"] = np.where(ints[trade_rows, scan.I_FLAG] == 1, -1, 1)
    quote_rows = rows[row_kinds == scan.KIND_QUOTE]
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


__all__ = ["read_capture", "CaptureFile", "CaptureError", "SymbolEvents", "DepthMessages", "BadLine", "RAW_LIMIT",
           "TRADE_DTYPE", "QUOTE_DTYPE"]
