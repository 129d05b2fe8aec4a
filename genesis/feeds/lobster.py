"""Read LOBSTER message + orderbook files into normalised event arrays, and check them.

LOBSTER (lobsterdata.com) reconstructs NASDAQ TotalView-ITCH into two CSV files per symbol
and day, with the same number of lines, line ``i`` of one belonging to line ``i`` of the other:

* ``TICKER_YYYY-MM-DD_start_end_message_L.csv``: one event per line,
  ``time, type, order_id, size, price, direction``. ``time`` is seconds after midnight in
  exchange local time (New York), with up to 9 decimals; ``type`` is 1 submit, 2 partial
  cancel, 3 delete, 4 visible execution, 5 hidden execution, 6 cross trade (auction),
  7 trading halt; ``price`` is dollars x 10000; ``direction`` is the side of the *resting*
  order (1 buy, -1 sell). For a halt, ``price`` is -1 (halt), 0 (quoting resumes) or
  1 (trading resumes).
* ``..._orderbook_L.csv``: the top ``L`` levels *after* each message, ``4 * L`` columns,
  level by level ``ask price, ask size, bid price, bid size``; an empty level is the sentinel
  price 9999999999 (ask) / -9999999999 (bid) with size 0.

Either file may be gzipped (``.csv.gz``): it is read as the file itself.

:func:`read_lobster` returns a :class:`LobsterData`: order-level events, trades (from
executions), the top-L book (empty levels NaN, prices in dollars), the halts and the raw
messages. Conventions:

* symbols are ``nasdaq:TICKER`` (LOBSTER is built from NASDAQ TotalView-ITCH);
* times are int64 ns since the epoch (UTC), converted exactly from the decimal text (no
  float rounding) with the New York UTC offset of that day (daylight saving included);
* ``local_ts == exch_ts``: LOBSTER has no receive clock;
* ``seq`` (orders, book) and ``trade_id`` (trades) are the **1-based line number** of the
  message, which is also the line of its orderbook row: the same number identifies a message
  in both files and in :func:`check_consistency`'s report.

:func:`check_consistency` checks every message against the two orderbook rows around it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numba as nb
import numpy as np
import pandas as pd

from genesis.feeds.events import (
    EV_HALT,
    EV_RESUME_QUOTING,
    EV_RESUME_TRADING,
    EVENT_NAMES,
    NO_ID,
    ORDER_EVENT_DTYPE,
    TRADE_DTYPE,
    MarketEvents,
)

VENUE = "nasdaq"
PRICE_SCALE = 10_000  # LOBSTER prices are dollars x 10000
EMPTY_PRICE = 9_999_999_999  # |price| of an empty orderbook level (ask +, bid -)
NS_PER_S = 1_000_000_000

# LOBSTER message types (1-7 share their codes with genesis.feeds.events.EV_*; a halt's
# price field further says which status change it is).
MSG_SUBMIT, MSG_CANCEL, MSG_DELETE, MSG_EXECUTE, MSG_EXECUTE_HIDDEN, MSG_CROSS, MSG_HALT = 1, 2, 3, 4, 5, 6, 7
MESSAGE_TYPES = (1, 2, 3, 4, 5, 6, 7)
# A halt's price field says which status change it is.
HALT_EVENTS = {-1: EV_HALT, 0: EV_RESUME_QUOTING, 1: EV_RESUME_TRADING}
MESSAGE_NAMES = EVENT_NAMES

# The message file, one row per line, as read (prices in dollars, NaN for halts).
MESSAGE_DTYPE = np.dtype(
    [("line", "i8"), ("exch_ts", "i8"), ("type", "i1"), ("order_id", "i8"), ("size", "f8"),
     ("price", "f8"), ("direction", "i1")]
)

_NAME = re.compile(
    r"^(?P<ticker>.+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_message_(?P<levels>\d+)\.csv(?:\.gz)?$"
)


@dataclass
class LobsterData:
    """One LOBSTER message/orderbook pair, read.

    ``events.orders`` (ORDER_EVENT_DTYPE, one per message, cross trades as ``EV_CROSS``),
    ``events.trades`` (TRADE_DTYPE: types 4, 5 and 6), ``events.book``
    (dict: ``exch_ts``, ``local_ts``, ``seq`` (n,) int64 and ``bid_px``, ``bid_sz``,
    ``ask_px``, ``ask_sz`` (n, levels) float64, dollars and shares, best level first, NaN for
    empty levels; row i is the book *after* message i). ``messages`` (n,) MESSAGE_DTYPE is the
    message file itself, aligned with the book rows. ``halts`` has one row per type-7 message:
    ``line``, ``exch_ts``, ``event`` (EV_HALT / EV_RESUME_QUOTING / EV_RESUME_TRADING), ``name``.
    """

    events: MarketEvents
    messages: np.ndarray
    halts: pd.DataFrame
    levels: int
    trading_date: dt.date
    message_path: Path
    orderbook_path: Path
    tz: str = "America/New_York"

    @property
    def symbol(self) -> str:
        return self.events.symbol

    @property
    def book(self) -> dict[str, np.ndarray]:
        assert self.events.book is not None
        return self.events.book

    def __len__(self) -> int:
        return len(self.messages)

    def to_frame(self) -> pd.DataFrame:
        """The messages as a DataFrame: ``time`` (UTC timestamps), event name, and the fields."""
        frame = pd.DataFrame(self.messages)
        frame.insert(1, "time", pd.to_datetime(frame["exch_ts"], unit="ns", utc=True))
        frame.insert(3, "name", frame["type"].map(MESSAGE_NAMES))
        halt = frame["type"] == MSG_HALT
        frame.loc[halt, "name"] = self.halts["name"].to_numpy()
        return frame


def parse_file_name(path: str | Path) -> dict | None:
    """``TICKER_YYYY-MM-DD_start_end_message_L.csv`` -> ticker, date, start/end (ms after
    midnight), levels; None when the name does not follow LOBSTER's pattern."""
    match = _NAME.match(Path(path).name)
    if match is None:
        return None
    return {
        "ticker": match["ticker"],
        "date": dt.date.fromisoformat(match["date"]),
        "start_ms": int(match["start"]),
        "end_ms": int(match["end"]),
        "levels": int(match["levels"]),
    }


# ---------------------------------------------------------------------------------------------
# Parsing: one pass over the bytes, exact integers (the time column in ns), errors located.

_OK, _ERR_NOT_NUMBER, _ERR_FEW_COLUMNS, _ERR_MANY_COLUMNS, _ERR_DECIMALS, _ERR_TOO_LONG = range(6)


@nb.njit(cache=True)
def _parse_numeric_csv(buf, ncols, decimal_col, out):
    """Parse comma-separated integers into ``out`` (rows, ncols) int64.

    Column ``decimal_col`` may carry up to 9 decimals and is stored x 1e9 (seconds -> ns),
    exactly. ``buf`` (uint8) must not end in blank lines. Returns (rows read, error code,
    0-based row, 0-based column, byte offset of the error's line start).
    """
    n = buf.size
    pos = 0
    row = 0
    while pos < n:
        line_start = pos
        col = 0
        while True:
            while pos < n and buf[pos] == 32:
                pos += 1
            negative = False
            if pos < n and (buf[pos] == 45 or buf[pos] == 43):
                negative = buf[pos] == 45
                pos += 1
            value = 0
            digits = 0
            while pos < n and 48 <= buf[pos] <= 57:
                if digits == 18:
                    return row, _ERR_TOO_LONG, row, col, line_start
                value = value * 10 + (buf[pos] - 48)
                digits += 1
                pos += 1
            if col == decimal_col:
                if digits > 9:  # more than 10^9 seconds: not a time of day, and x 1e9 overflows
                    return row, _ERR_TOO_LONG, row, col, line_start
                fraction = 0
                decimals = 0
                if pos < n and buf[pos] == 46:
                    pos += 1
                    while pos < n and 48 <= buf[pos] <= 57:
                        if decimals == 9:
                            return row, _ERR_DECIMALS, row, col, line_start
                        fraction = fraction * 10 + (buf[pos] - 48)
                        decimals += 1
                        pos += 1
                for _ in range(9 - decimals):
                    fraction *= 10
                digits += decimals
                value = value * 1_000_000_000 + fraction
            if digits == 0:
                return row, _ERR_NOT_NUMBER, row, col, line_start
            while pos < n and buf[pos] == 32:
                pos += 1
            if col < ncols:
                out[row, col] = -value if negative else value
            col += 1
            if pos >= n or buf[pos] == 10 or buf[pos] == 13:
                break
            if buf[pos] != 44:
                return row, _ERR_NOT_NUMBER, row, col - 1, line_start
            pos += 1
            if col == ncols:
                return row, _ERR_MANY_COLUMNS, row, col, line_start
        if col < ncols:
            return row, _ERR_FEW_COLUMNS, row, col, line_start
        if pos < n and buf[pos] == 13:
            pos += 1
        if pos < n and buf[pos] == 10:
            pos += 1
        row += 1
    return row, _OK, -1, -1, -1


def _read_numeric(path: Path, ncols: int | None, decimal_col: int, what: str) -> np.ndarray:
    """The file as an (n, ncols) int64 array; ``ncols`` None takes the first line's count.

    Raises ValueError naming the file, the 1-based line and column, and the problem.
    """
    if not path.is_file():
        raise ValueError(f"LOBSTER {what} file {path} does not exist")
    raw = path.read_bytes()
    if path.suffix == ".gz":  # a gzipped copy (e.g. a test fixture) reads as the file itself
        raw = gzip.decompress(raw)
    end = len(raw)
    while end and raw[end - 1] in b" \t\r\n":  # trailing blank lines (not copying the file)
        end -= 1
    if not end:
        raise ValueError(f"{path}: LOBSTER {what} file is empty")
    if ncols is None:
        first_end = raw.find(b"\n", 0, end)
        ncols = raw.count(b",", 0, first_end if first_end >= 0 else end) + 1
    buf = np.frombuffer(raw, np.uint8, count=end)
    capacity = raw.count(b"\n", 0, end) + 1
    out = np.empty((capacity, ncols), np.int64)
    rows, code, err_row, err_col, line_start = _parse_numeric_csv(buf, ncols, decimal_col, out)
    if code != _OK:
        line_end = raw.find(b"\n", line_start, end)
        text = raw[line_start: line_end if line_end >= 0 else end].rstrip(b"\r").decode("utf-8", "replace")
        found = text.count(",") + 1
        problem = {
            _ERR_NOT_NUMBER: f"column {err_col + 1} is not a number",
            _ERR_FEW_COLUMNS: f"{found} columns, expected {ncols}",
            _ERR_MANY_COLUMNS: f"{found} columns, expected {ncols}",
            _ERR_DECIMALS: f"column {err_col + 1} has more than 9 decimals",
            _ERR_TOO_LONG: f"column {err_col + 1} has too many digits",
        }[code]
        shown = text if len(text) <= 120 else text[:117] + "..."
        raise ValueError(f"{path}: line {err_row + 1}: {problem}: {shown!r}")
    return out[:rows]


def _wall_to_utc_ns(seconds_ns: np.ndarray, date: dt.date, tz: str) -> np.ndarray:
    """Seconds after local midnight (ns, int64) on ``date`` in ``tz`` -> ns since epoch UTC.

    The UTC offset is taken from the zone database at each event's wall-clock time (a day
    has at most two offsets; on a normal trading day one), so daylight saving is exact.
    """
    zone = ZoneInfo(tz)
    midnight = dt.datetime(date.year, date.month, date.day)
    epoch = dt.datetime(1970, 1, 1)
    wall_midnight_ns = (midnight - epoch) // dt.timedelta(microseconds=1) * 1000
    wall = wall_midnight_ns + seconds_ns

    def offset_ns(wall_ns: int) -> int:
        local = epoch + dt.timedelta(microseconds=wall_ns // 1000)
        return int(local.replace(tzinfo=zone).utcoffset() // dt.timedelta(microseconds=1)) * 1000

    if len(wall) == 0:
        return wall.copy()
    first, last = offset_ns(int(wall.min())), offset_ns(int(wall.max()))
    if first == last:
        return wall - first
    # A day with a daylight-saving change: take the offset second by second (rare, small).
    seconds, inverse = np.unique(wall // NS_PER_S, return_inverse=True)
    offsets = np.array([offset_ns(int(s) * NS_PER_S) for s in seconds], np.int64)
    return wall - offsets[inverse]


# ---------------------------------------------------------------------------------------------


def read_lobster(
    message_path: str | Path,
    orderbook_path: str | Path | None = None,
    *,
    symbol: str | None = None,
    trading_date: dt.date | str | None = None,
    tz: str = "America/New_York",
) -> LobsterData:
    """Read a LOBSTER message file and its orderbook file.

    ``orderbook_path`` defaults to the message file's name with ``_message_`` replaced by
    ``_orderbook_``. ``symbol`` (``'AAPL'`` or namespaced ``'nasdaq:AAPL'``) and
    ``trading_date`` default to what LOBSTER's file name says. Raises ValueError naming the
    file, the 1-based line and the problem for a missing file, a wrong column count (6 in the
    message file, 4 x levels in the orderbook file), a row count mismatch between the files,
    a non-numeric value, an unknown message type or direction, a halt code other than -1/0/1,
    or time going backwards.
    """
    message_path = Path(message_path)
    info = parse_file_name(message_path)
    if orderbook_path is None:
        if "_message_" not in message_path.name:
            raise ValueError(f"{message_path}: cannot derive the orderbook file name (no '_message_' in it); "
                             "pass orderbook_path")
        orderbook_path = message_path.with_name(message_path.name.replace("_message_", "_orderbook_"))
    orderbook_path = Path(orderbook_path)
    if symbol is None:
        if info is None:
            raise ValueError(f"{message_path}: the file name is not LOBSTER's "
                             "TICKER_YYYY-MM-DD_start_end_message_L.csv; pass symbol")
        symbol = info["ticker"]
    if ":" not in symbol:
        symbol = f"{VENUE}:{symbol}"
    if trading_date is None:
        if info is None:
            raise ValueError(f"{message_path}: the file name does not give the trading date; pass trading_date")
        trading_date = info["date"]
    elif isinstance(trading_date, str):
        trading_date = dt.date.fromisoformat(trading_date)

    raw_msg = _read_numeric(message_path, 6, 0, "message")
    raw_book = _read_numeric(orderbook_path, None, -1, "orderbook")
    ncols = raw_book.shape[1]
    if ncols % 4:
        raise ValueError(f"{orderbook_path}: line 1: {ncols} columns, expected 4 per level")
    levels = ncols // 4
    if info is not None and orderbook_path.name == message_path.name.replace("_message_", "_orderbook_") \
            and info["levels"] != levels:
        raise ValueError(f"{orderbook_path}: line 1: {ncols} columns, expected {4 * info['levels']} "
                         f"({info['levels']} levels, as the file name says)")
    if len(raw_msg) != len(raw_book):
        raise ValueError(f"{message_path} has {len(raw_msg)} rows but {orderbook_path} has {len(raw_book)}: "
                         "they must have one orderbook row per message")

    messages = _messages(raw_msg, message_path, trading_date, tz)
    book = _book(raw_book, orderbook_path, messages)
    orders, halts = _orders(messages, raw_msg[:, 4])
    trades = _trades(messages)
    events = MarketEvents(symbol=symbol, trades=trades, orders=orders, book=book)
    return LobsterData(events=events, messages=messages, halts=halts, levels=levels,
                       trading_date=trading_date, message_path=message_path,
                       orderbook_path=orderbook_path, tz=tz)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _messages(raw: np.ndarray, path: Path, date: dt.date, tz: str) -> np.ndarray:
    seconds_ns, kind, order_id, size, price, direction = raw.T
    bad = ~np.isin(kind, MESSAGE_TYPES)
    if bad.any():
        line = _first_bad(bad)
        raise ValueError(f"{path}: line {line}: unknown event type {kind[line - 1]} (expected 1-7)")
    halt = kind == MSG_HALT
    bad = ~halt & (np.abs(direction) != 1)
    if bad.any():
        line = _first_bad(bad)
        raise ValueError(f"{path}: line {line}: direction {direction[line - 1]}, expected 1 (buy) or -1 (sell)")
    bad = halt & ~np.isin(price, list(HALT_EVENTS))
    if bad.any():
        line = _first_bad(bad)
        raise ValueError(f"{path}: line {line}: halt (type 7) with price {price[line - 1]}, expected -1, 0 or 1")
    bad = (size < 0) | ((size == 0) & (kind <= MSG_EXECUTE_HIDDEN))
    if bad.any():
        line = _first_bad(bad)
        raise ValueError(f"{path}: line {line}: size {size[line - 1]} is not positive")
    bad = seconds_ns[1:] < seconds_ns[:-1]
    if bad.any():
        line = _first_bad(bad) + 1
        raise ValueError(f"{path}: line {line}: time goes backwards "
                         f"({seconds_ns[line - 1] / NS_PER_S} s after {seconds_ns[line - 2] / NS_PER_S} s)")
    out = np.empty(len(raw), MESSAGE_DTYPE)
    out["line"] = np.arange(1, len(raw) + 1)
    out["exch_ts"] = _wall_to_utc_ns(seconds_ns, date, tz)
    out["type"] = kind
    out["order_id"] = order_id
    out["size"] = size
    out["price"] = np.where(halt, np.nan, price / PRICE_SCALE)
    out["direction"] = np.where(halt, 0, direction)
    return out


@nb.njit(cache=True)
def _split_book(raw, ask_px, ask_sz, bid_px, bid_sz):
    """LOBSTER orderbook rows (n, 4L) int64 -> four (n, L) float64 arrays, dollars, NaN for
    empty levels. Returns the (row, column) of the first empty level with a size, or (-1, -1)."""
    n, levels = ask_px.shape
    for i in range(n):
        for j in range(levels):
            for side in range(2):  # 0 ask, 1 bid: columns 4j, 4j+1 and 4j+2, 4j+3
                px = raw[i, 4 * j + 2 * side]
                sz = raw[i, 4 * j + 2 * side + 1]
                if abs(px) >= EMPTY_PRICE:
                    if sz != 0:
                        return i, 4 * j + 2 * side + 1
                    price, size = np.nan, np.nan
                else:
                    price, size = px / PRICE_SCALE, float(sz)
                if side == 0:
                    ask_px[i, j] = price
                    ask_sz[i, j] = size
                else:
                    bid_px[i, j] = price
                    bid_sz[i, j] = size
    return -1, -1


def _book(raw: np.ndarray, path: Path, messages: np.ndarray) -> dict[str, np.ndarray]:
    n, levels = len(raw), raw.shape[1] // 4
    arrays = {key: np.empty((n, levels)) for key in ("ask_px", "ask_sz", "bid_px", "bid_sz")}
    row, col = _split_book(raw, arrays["ask_px"], arrays["ask_sz"], arrays["bid_px"], arrays["bid_sz"])
    if row >= 0:
        raise ValueError(f"{path}: line {row + 1}: column {col + 1}: empty level (price {raw[row, col - 1]}) "
                         f"with size {raw[row, col]}")
    ts = messages["exch_ts"].copy()
    return {"exch_ts": ts, "local_ts": ts.copy(), "seq": messages["line"].copy(), **arrays}


def _orders(messages: np.ndarray, raw_price: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    m = messages
    halt = m["type"] == MSG_HALT
    event = m["type"].astype(np.int8)  # types 1-6 are the EV_* codes
    for code, ev in HALT_EVENTS.items():
        event[halt & (raw_price == code)] = ev
    orders = np.empty(len(m), ORDER_EVENT_DTYPE)
    orders["exch_ts"] = m["exch_ts"]
    orders["local_ts"] = m["exch_ts"]  # LOBSTER has no receive clock
    orders["seq"] = m["line"]
    orders["event"] = event
    orders["order_id"] = m["order_id"]
    orders["side"] = m["direction"]
    orders["price"] = m["price"]
    orders["qty"] = m["size"]
    orders["owner"] = NO_ID
    orders["contra_id"] = NO_ID
    orders["contra_owner"] = NO_ID
    halts = pd.DataFrame({
        "line": m["line"][halt], "exch_ts": m["exch_ts"][halt], "event": event[halt],
        "name": [EVENT_NAMES[int(e)] for e in event[halt]],
    })
    return orders, halts


def _trades(messages: np.ndarray) -> np.ndarray:
    is_trade = np.isin(messages["type"], (MSG_EXECUTE, MSG_EXECUTE_HIDDEN, MSG_CROSS))
    m = messages[is_trade]
    trades = np.empty(len(m), TRADE_DTYPE)
    trades["exch_ts"] = m["exch_ts"]
    trades["local_ts"] = m["exch_ts"]
    trades["trade_id"] = m["line"]
    trades["price"] = m["price"]
    trades["qty"] = m["size"]
    # ``direction`` is the side of the resting order that was hit: the aggressor is the other
    # side. A cross (auction) trade has no aggressor.
    trades["aggressor"] = np.where(m["type"] == MSG_CROSS, 0, -m["direction"])
    return trades


# ---------------------------------------------------------------------------------------------
# Consistency of messages and orderbook rows.

AGREES, DISAGREES, OUTSIDE, NO_ROW_BEFORE = 0, 1, 2, 3
STATUS_NAMES = {AGREES: "agrees", DISAGREES: "disagrees", OUTSIDE: "outside visible levels",
                NO_ROW_BEFORE: "no row before"}

# Reasons (bit flags) a message disagrees with its two orderbook rows.
R_SIZE = 1
R_WINDOW = 2
R_OWN_SIDE = 4
R_OTHER_SIDE = 8
R_CHANGED = 16
REASONS = {
    R_SIZE: "the size at the message's price changed by {observed:g}, expected {expected:+g}",
    R_WINDOW: "the message's price is within the visible levels of only one of the two rows",
    R_OWN_SIDE: "other levels on the message's side changed",
    R_OTHER_SIDE: "the opposite side changed",
    R_CHANGED: "the book changed on a message that leaves the visible book as it was",
}

# Messages checked per block: bounds the temporary (block, levels) arrays to a few hundred MB.
CHECK_BLOCK = 262_144

# Change of the visible size at the message's price, per message type, in units of its size.
_SIGN = np.zeros(8, np.float64)
_SIGN[MSG_SUBMIT] = 1.0
_SIGN[MSG_CANCEL] = _SIGN[MSG_DELETE] = _SIGN[MSG_EXECUTE] = -1.0


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality with NaN == NaN (empty level == empty level)."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


def consistency_arrays(data: LobsterData) -> dict[str, np.ndarray]:
    """The check of :func:`check_consistency` for every message, as arrays (n,).

    ``status`` (AGREES / DISAGREES / OUTSIDE / NO_ROW_BEFORE), ``reasons`` (R_* bit flags),
    ``expected`` and ``observed`` change of the visible size at the message's price (NaN
    where not observable: deeper than the shown levels, or a halt), ``before`` and ``after``
    sizes there (NaN where unknown).
    """
    m = data.messages
    book = data.book
    n = len(m)
    status = np.full(n, NO_ROW_BEFORE, np.int8)
    reasons = np.zeros(n, np.int64)
    expected = _SIGN[m["type"]] * m["size"]
    observed = np.full(n, np.nan)
    size_before = np.full(n, np.nan)
    size_after = np.full(n, np.nan)
    out = {"status": status, "reasons": reasons, "expected": expected, "observed": observed,
           "before": size_before, "after": size_after}
    for lo in range(1, n, CHECK_BLOCK):
        _check_block(m, book, lo, min(lo + CHECK_BLOCK, n), out)
    return out


def _check_block(m: np.ndarray, book: dict[str, np.ndarray], lo: int, hi: int, out: dict[str, np.ndarray]) -> None:
    """Check messages ``lo..hi-1`` (0-based, lo >= 1) against book rows ``lo-1..hi-1``, into ``out``."""
    k = slice(lo, hi)  # message i is checked against rows i-1 (before) and i (after)
    rows_before, rows_after = slice(lo - 1, hi - 1), slice(lo, hi)
    expected, observed = out["expected"], out["observed"]
    kind = m["type"][k]
    price = m["price"][k][:, None]
    is_bid = (m["direction"][k] == 1)[:, None]

    def side_arrays(rows: slice) -> tuple[np.ndarray, ...]:
        own_px = np.where(is_bid, book["bid_px"][rows], book["ask_px"][rows])
        own_sz = np.where(is_bid, book["bid_sz"][rows], book["ask_sz"][rows])
        other_px = np.where(is_bid, book["ask_px"][rows], book["bid_px"][rows])
        other_sz = np.where(is_bid, book["ask_sz"][rows], book["bid_sz"][rows])
        return own_px, own_sz, other_px, other_sz

    b_px, b_sz, bo_px, bo_sz = side_arrays(rows_before)
    a_px, a_sz, ao_px, ao_sz = side_arrays(rows_after)
    direction = np.where(is_bid[:, 0], 1.0, -1.0)

    def size_at(px: np.ndarray, sz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Visible size at the message's price, and whether it is known: the level is shown,
        or the price lies inside the shown levels (so its size is 0), or the side shows fewer
        than ``levels`` levels (everything it has is shown)."""
        hit = px == price
        found = hit.any(axis=1)
        deepest = px[:, -1]
        inside = direction * (price[:, 0] - deepest) > 0
        known = found | np.isnan(deepest) | inside
        size = np.where(hit, sz, 0.0).sum(axis=1)
        return np.where(known, size, np.nan), known

    before, known_b = size_at(b_px, b_sz)
    after, known_a = size_at(a_px, a_sz)
    out["before"][k] = before
    out["after"][k] = after
    observed[k] = np.where(kind == MSG_HALT, np.nan, after - before)  # a halt has no price

    visible_change = np.isin(kind, (MSG_SUBMIT, MSG_CANCEL, MSG_DELETE, MSG_EXECUTE))
    flags = np.zeros(hi - lo, np.int64)
    both = known_b & known_a
    flags |= np.where(visible_change & both & (observed[k] != expected[k]), R_SIZE, 0)
    flags |= np.where(visible_change & (known_b != known_a), R_WINDOW, 0)

    # The other levels of the message's side: remove the message's price from both rows,
    # then the remaining levels must agree on the shorter of the two; the shorter one must
    # be a full row (a level left or entered the window at its deep end).
    def without_price(px: np.ndarray, sz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(px == price, axis=1, kind="stable")
        kept_px = np.take_along_axis(np.where(px == price, np.nan, px), order, axis=1)
        kept_sz = np.take_along_axis(np.where(px == price, np.nan, sz), order, axis=1)
        return kept_px, kept_sz, (~np.isnan(kept_px)).sum(axis=1)

    kb_px, kb_sz, nb_ = without_price(b_px, b_sz)
    ka_px, ka_sz, na_ = without_price(a_px, a_sz)
    shown = b_px.shape[1]
    common = np.minimum(nb_, na_)
    column = np.arange(shown)[None, :]
    differs = (column < common[:, None]) & ~(_same(kb_px, ka_px) & _same(kb_sz, ka_sz))
    full_b = ~np.isnan(b_px[:, -1])
    full_a = ~np.isnan(a_px[:, -1])
    lengths_ok = np.where(nb_ < na_, full_b, np.where(na_ < nb_, full_a, True))
    own_changed = differs.any(axis=1) | ~lengths_ok
    other_changed = ~(_same(bo_px, ao_px) & _same(bo_sz, ao_sz)).all(axis=1)
    flags |= np.where(visible_change & own_changed, R_OWN_SIDE, 0)
    flags |= np.where(visible_change & other_changed, R_OTHER_SIDE, 0)

    # Hidden executions, cross trades and halts leave the visible book as it was (the
    # hidden order's price level is not checked: the hidden size was never shown).
    whole_same = np.ones(hi - lo, bool)
    for key in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        whole_same &= _same(book[key][rows_before], book[key][rows_after]).all(axis=1)
    flags |= np.where(~visible_change & ~whole_same, R_CHANGED, 0)

    out["reasons"][k] = flags
    out["status"][k] = np.where(flags != 0, DISAGREES, np.where(visible_change & ~both, OUTSIDE, AGREES))


def check_consistency(data: LobsterData, *, all_rows: bool = False) -> pd.DataFrame:
    """Check each message against the orderbook rows before (line i-1) and after (line i) it.

    For a submit the visible size at the message's price (on the message's side) must grow by
    the message's size; for a partial cancel, delete or visible execution it must shrink by it;
    the other levels of that side may only shift (a level entering or leaving the window at
    its deep end) and the opposite side must not change. A hidden execution, cross trade or
    halt must leave the whole visible book as it was (the hidden order's price is not checked).
    A message whose price lies deeper than the visible levels in both rows cannot be checked
    at its price (``'outside visible levels'``; the visible levels are still checked); the
    first message has no row before (``'no row before'``).

    Returns one row per disagreeing message (every message with ``all_rows=True``):
    ``line`` (1-based, the same in both files), ``event``, ``side``, ``price``, ``size``,
    ``expected_change``, ``observed_change``, ``size_before``, ``size_after``, ``status``,
    ``reason``.
    """
    arrays = consistency_arrays(data)
    rows = np.arange(len(data)) if all_rows else np.flatnonzero(arrays["status"] == DISAGREES)
    m = data.messages[rows]
    flags = arrays["reasons"][rows]
    expected = arrays["expected"][rows]
    observed = arrays["observed"][rows]
    reason = []
    for f, e, o in zip(flags.tolist(), expected.tolist(), observed.tolist()):
        reason.append("; ".join(text.format(expected=e, observed=o) for bit, text in REASONS.items() if f & bit))
    return pd.DataFrame({
        "line": m["line"],
        "event": [MESSAGE_NAMES[int(t)] for t in m["type"]],
        "side": m["direction"],
        "price": m["price"],
        "size": m["size"],
        "expected_change": expected,
        "observed_change": observed,
        "size_before": arrays["before"][rows],
        "size_after": arrays["after"][rows],
        "status": [STATUS_NAMES[int(s)] for s in arrays["status"][rows]],
        "reason": reason,
    })


__all__ = [
    "LobsterData", "read_lobster", "check_consistency", "consistency_arrays", "parse_file_name",
    "MESSAGE_DTYPE", "MESSAGE_NAMES", "HALT_EVENTS", "VENUE", "PRICE_SCALE", "EMPTY_PRICE",
    "AGREES", "DISAGREES", "OUTSIDE", "NO_ROW_BEFORE", "STATUS_NAMES", "REASONS",
    "R_SIZE", "R_WINDOW", "R_OWN_SIDE", "R_OTHER_SIDE", "R_CHANGED",
]
