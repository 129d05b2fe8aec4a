"""Reference parser for one Binance capture line, and the reasons a line is rejected.

This is the plain-Python definition of what a capture line means. The Numba scanner
(:mod:`.scan`) handles the common, strict shape fast; every line it does not accept comes
here, and the tests run both over the real captures and require identical output.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import orjson

from genesis.feeds.binance import scan as _scan


# A Binance symbol: upper-case letters and digits, with a contract suffix for delivery and
# COIN-M contracts (BTCUSD_PERP, BTCUSD_240927, BTCUSDT_241227). Stream names carry it in
# lower case. Anything else in a symbol's place is a corrupted line, never a new symbol.
SYMBOL_RE = re.compile(r"[A-Z0-9]{1,32}(?:_(?:PERP|[0-9]{6}))?")
SYMBOL_RULE = "upper-case letters and digits, COIN-M and delivery contracts with a _PERP or _YYMMDD suffix"
# The diff depth stream, with its optional update speed (``depth``, ``depth@100ms``, ``depth@0ms``).
# Partial book streams (``depth5``, ``depth20@100ms``) are not diffs and are refused.
_DEPTH_CHANNEL_RE = re.compile(r"depth(?:@[0-9]{1,6}ms)?")
# Longest line the reference parser reads. A REST snapshot of 5,000 levels a side is about
# 350 KB; a longer line is not a Binance message, and parsing it into Python objects would
# take many times its size in memory.
MAX_MESSAGE_BYTES = 8 << 20
# Venue times are milliseconds; beyond this their nanoseconds overflow int64 (year 2262).
MAX_MS = (2**63 - 1) // 1_000_000
_MAX_REASON = 500
# How Binance writes prices and sizes: digits, no sign, no exponent, no leading zero before a digit.
_PLAIN_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+")
_MAX_STREAM = 200


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit - 30]}... ({len(text):,} characters)"


class BadMessage(ValueError):
    """A capture line that cannot be used; ``reason`` is stored in quarantine.

    Both are clipped (a reason quotes what it found, which can be anything of any length)."""

    def __init__(self, reason: str, stream: str = ""):
        reason, stream = _clip(reason, _MAX_REASON), _clip(stream, _MAX_STREAM)
        super().__init__(reason)
        self.reason = reason
        self.stream = stream


def symbol_problem(symbol: str) -> str | None:
    """Why ``symbol`` (as written in a stream name or a snapshot, any case) is not a Binance
    symbol, or None when it is one."""
    if symbol.isascii() and SYMBOL_RE.fullmatch(symbol.upper()):
        return None
    return f"symbol {_clip(repr(symbol), 80)} is not a Binance symbol ({SYMBOL_RULE})"


@dataclass
class ParsedLine:
    """One normalised line, in the scanner's column layout (see ``scan.I_*``)."""

    kind: int
    stream: str
    symbol: str  # upper case venue symbol, "" for a snapshot without one
    ints: list[int]
    floats: list[float]
    levels: list[tuple[int, float, float]] = field(default_factory=list)  # (side, price, qty)


def _decimal(value, what: str, stream: str, *, positive: bool) -> float:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise BadMessage(f"{what} is {type(value).__name__}, expected a decimal string", stream)
    try:
        number = float(value)
    except ValueError:
        raise BadMessage(f"{what} {value!r} is not a number", stream) from None
    if math.isnan(number) or math.isinf(number):
        raise BadMessage(f"{what} is {value!r}", stream)
    if number < 0 or (positive and number == 0):
        raise BadMessage(f"{what} {value!r} is {'not positive' if number == 0 else 'negative'}", stream)
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        # float() also reads '1_000', ' 5', '+5', '1e3', '05': Binance never writes those, a flipped byte can.
        raise BadMessage(f"{what} {value!r} is not a plain decimal", stream)
    return number


def _integer(data: dict, key: str, stream: str) -> int:
    if key not in data:
        raise BadMessage(f"missing field {key!r}", stream)
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadMessage(f"field {key!r} is {value!r}, expected an integer", stream)
    if not -(2**63) <= value < 2**63:
        raise BadMessage(f"field {key!r} is {value}, out of the 64-bit integer range", stream)
    return value


def _levels(data: dict, key: str, side: int, stream: str) -> list[tuple[int, float, float]]:
    if key not in data:
        raise BadMessage(f"missing field {key!r}", stream)
    rows = data[key]
    if not isinstance(rows, list):
        raise BadMessage(f"field {key!r} is not a list of levels", stream)
    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 2:
            raise BadMessage(f"level {row!r} in {key!r} is not [price, size]", stream)
        price = _decimal(row[0], f"{key} price", stream, positive=True)
        qty = _decimal(row[1], f"{key} size", stream, positive=False)
        out.append((side, price, qty))
    return out


def _times(data: dict, ints: list[int]) -> None:
    """exch_ts: transaction time T where sent, else event time E, else 0 (venue sent none)."""
    event = data.get("E")
    trans = data.get("T")
    for key, value in (("E", event), ("T", trans)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadMessage(f"field {key!r} is {value!r}, expected milliseconds")
        if value is not None and not 0 <= value <= MAX_MS:
            raise BadMessage(f"field {key!r} is {value}, out of range for milliseconds since 1970")
    ints[_scan.I_EVENT] = (event or 0) * 1_000_000
    ints[_scan.I_EXCH] = (trans if trans is not None else (event or 0)) * 1_000_000


def parse_line(line: bytes) -> ParsedLine | None:
    """Parse one capture line. Returns None for a blank line; raises :class:`BadMessage`."""
    if len(line) > MAX_MESSAGE_BYTES:  # checked first: no copy of a huge line is made
        raise BadMessage(f"line of {len(line):,} bytes is longer than any Binance message "
                         f"(limit {MAX_MESSAGE_BYTES >> 20} MiB); not parsed")
    text = line.rstrip(b"\r\n ")
    if not text:
        return None
    head, sep, body = text.partition(b" ")
    if not sep or not head.isdigit():
        raise BadMessage("line does not start with '<receive time ns> '")
    if head[:1] == b"0" and len(head) > 1:
        raise BadMessage(f"receive time {_clip(head.decode(), 40)} has a leading zero")
    # More than 19 digits cannot be int64 nanoseconds (and int() of thousands of digits is refused).
    if len(head) > 19 or int(head) >= 2**63:
        raise BadMessage(f"receive time {_clip(head.decode(), 40)} ({len(head):,} digits) is out of range "
                         "for nanoseconds since 1970")
    return parse_message(int(head), body)


def parse_message(local_ts: int, body: bytes | str) -> ParsedLine:
    """Parse one message as received (a combined-stream message or a REST depth snapshot),
    stamped with its receive time ``local_ts`` (ns). Raises :class:`BadMessage`."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson reports the character position; an error at the very end means the line was cut.
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        truncated = exc.pos >= len(text) - 1
        raise BadMessage(("truncated message: " if truncated else "invalid JSON: ") + exc.msg) from None
    if not isinstance(message, dict):
        raise BadMessage("message is not a JSON object")

    ints = [0] * _scan.N_INT_COLS
    ints[_scan.I_LOCAL] = local_ts
    ints[_scan.I_FIRST] = -1
    ints[_scan.I_PREV] = -1
    floats = [0.0] * _scan.N_FLOAT_COLS

    if "lastUpdateId" in message:
        stream = "snapshot"
        ints[_scan.I_LAST] = _integer(message, "lastUpdateId", stream)
        _times(message, ints)
        levels = _levels(message, "bids", 1, stream) + _levels(message, "asks", -1, stream)
        symbol = message.get("symbol", "")
        if not isinstance(symbol, str):
            raise BadMessage(f"snapshot field 'symbol' is {symbol!r}, expected a string", stream)
        if symbol and (problem := symbol_problem(symbol)):
            raise BadMessage(f"snapshot {problem}", stream)
        return ParsedLine(_scan.KIND_SNAPSHOT, stream, symbol.upper(), ints, floats, levels)

    stream = message.get("stream")
    data = message.get("data")
    if not isinstance(stream, str) or not isinstance(data, dict):
        raise BadMessage("neither a combined-stream message {stream, data} nor a depth snapshot")
    symbol, _, channel = stream.partition("@")
    if _DEPTH_CHANNEL_RE.fullmatch(channel):
        kind = _scan.KIND_DEPTH
    elif channel == "trade":
        kind = _scan.KIND_TRADE
    elif channel == "bookTicker":
        kind = _scan.KIND_QUOTE
    else:
        raise BadMessage(f"unknown stream {stream!r}", stream)
    if problem := symbol_problem(symbol):
        raise BadMessage(f"stream {problem}", stream)
    named = data.get("s")  # the symbol again, inside the event: both must agree
    if named is not None and (not isinstance(named, str) or named.upper() != symbol.upper()):
        raise BadMessage(f"stream {stream!r} carries an event of symbol {named!r}", stream)

    try:
        _times(data, ints)
    except BadMessage as exc:
        raise BadMessage(exc.reason, stream) from None
    levels: list[tuple[int, float, float]] = []
    if kind == _scan.KIND_DEPTH:
        if "E" not in data:
            raise BadMessage("missing field 'E'", stream)
        ints[_scan.I_FIRST] = _integer(data, "U", stream)
        ints[_scan.I_LAST] = _integer(data, "u", stream)
        if "pu" in data:
            ints[_scan.I_PREV] = _integer(data, "pu", stream)
        levels = _levels(data, "b", 1, stream) + _levels(data, "a", -1, stream)
    elif kind == _scan.KIND_TRADE:
        if "T" not in data:
            raise BadMessage("missing field 'T'", stream)
        ints[_scan.I_LAST] = _integer(data, "t", stream)
        maker = data.get("m")
        if not isinstance(maker, bool):
            raise BadMessage(f"field 'm' is {maker!r}, expected true or false", stream)
        ints[_scan.I_FLAG] = int(maker)
        floats[0] = _decimal(data.get("p"), "trade price", stream, positive=True)
        floats[1] = _decimal(data.get("q"), "trade size", stream, positive=True)
    else:
        ints[_scan.I_LAST] = _integer(data, "u", stream)
        floats[0] = _decimal(data.get("b"), "best bid price", stream, positive=True)
        floats[1] = _decimal(data.get("B"), "best bid size", stream, positive=False)
        floats[2] = _decimal(data.get("a"), "best ask price", stream, positive=True)
        floats[3] = _decimal(data.get("A"), "best ask size", stream, positive=False)
    return ParsedLine(kind, stream, symbol.upper(), ints, floats, levels)
