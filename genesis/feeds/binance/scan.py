"""Numba scanner for Binance capture lines: ``<local receive ns> <json>``.

The scanner reads the whole decompressed file as bytes and extracts, per line, the few
fields Genesis stores, without building Python objects. It is deliberately strict: it
accepts exactly the compact JSON Binance sends (no whitespace, decimal strings for prices
and sizes) and flags every other line ``LINE_FALLBACK``. Flagged lines go through the
reference parser in :mod:`genesis.feeds.binance.messages`, which either normalises them
(same numbers) or says precisely why they are invalid. Tests check that both parsers agree
on every line of the real captures.

Prices and sizes are parsed as ``mantissa / 10**decimals``: with an exact integer mantissa
below 2**53 and at most 22 decimals, IEEE division rounds correctly, so the result is the
same double as Python's ``float(text)``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Line kinds.
KIND_NONE = 0
KIND_DEPTH = 1
KIND_TRADE = 2
KIND_QUOTE = 3
KIND_SNAPSHOT = 4

# Line status.
LINE_OK = 0
LINE_FALLBACK = 1  # not in the strict fast-path shape: let the reference parser decide
LINE_BLANK = 2  # empty line (ignored, not an error)

_MAX_EXACT_MANTISSA = 1 << 53
# Venue times are milliseconds; beyond this their nanoseconds overflow int64 (messages.MAX_MS).
_MAX_MS = (2**63 - 1) // 1_000_000
# Longest symbol: 32 letters/digits plus a contract suffix such as _PERP or _240927 (messages.SYMBOL_RE).
_MAX_SYMBOL = 39

# Per-line output columns, one 2-D array each for ints and floats (see ``scan_lines``).
# ints: local_ts, exch_ts, event_time, id_first (U), id_last (u / trade id / lastUpdateId),
#       id_prev (pu, -1 when absent), flag (trade: buyer is maker), symbol hash,
#       level start, level count (bids then asks)
I_LOCAL, I_EXCH, I_EVENT, I_FIRST, I_LAST, I_PREV, I_FLAG, I_SYMBOL, I_LVL_START, I_LVL_COUNT = range(10)
N_INT_COLS = 10
# floats: trade (price, qty, -, -); quote (bid, bid size, ask, ask size)
N_FLOAT_COLS = 4

_POW10 = np.array([10.0**k for k in range(23)])

# Byte constants.
_QUOTE, _COLON, _COMMA, _LBRACE, _RBRACE, _LBRACK, _RBRACK = 34, 58, 44, 123, 125, 91, 93
_SPACE, _CR, _BACKSLASH, _DOT, _MINUS, _AT = 32, 13, 92, 46, 45, 64
_UNDERSCORE = 95

_STREAM_PREFIX = np.frombuffer(b'{"stream":"', dtype=np.uint8)
_DATA_PREFIX = np.frombuffer(b'","data":{', dtype=np.uint8)
_SNAPSHOT_PREFIX = np.frombuffer(b'{"lastUpdateId":', dtype=np.uint8)
_DEPTH = np.frombuffer(b"depth", dtype=np.uint8)
_MS = np.frombuffer(b"ms", dtype=np.uint8)
_TRADE = np.frombuffer(b"trade", dtype=np.uint8)
_BOOK_TICKER = np.frombuffer(b"bookTicker", dtype=np.uint8)
_BIDS = np.frombuffer(b"bids", dtype=np.uint8)
_ASKS = np.frombuffer(b"asks", dtype=np.uint8)
_SYMBOL = np.frombuffer(b"symbol", dtype=np.uint8)
_TRUE = np.frombuffer(b"true", dtype=np.uint8)
_FALSE = np.frombuffer(b"false", dtype=np.uint8)
_NULL = np.frombuffer(b"null", dtype=np.uint8)

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@nb.njit(cache=True, inline="always")
def _matches(buf, pos, end, pattern):
    n = pattern.shape[0]
    if pos + n > end:
        return False
    for k in range(n):
        if buf[pos + k] != pattern[k]:
            return False
    return True


@nb.njit(cache=True, inline="always")
def _key_is(buf, start, stop, pattern):
    return stop - start == pattern.shape[0] and _matches(buf, start, stop, pattern)


@nb.njit(cache=True)
def symbol_hash(buf, start, stop):
    """FNV-1a of the symbol's bytes, upper-cased (stream names are lower case, REST upper)."""
    h = _FNV_OFFSET
    for k in range(start, stop):
        c = buf[k]
        if 97 <= c <= 122:
            c -= 32
        h = (h ^ np.uint64(c)) * _FNV_PRIME
    return np.int64(h)


@nb.njit(cache=True)
def symbol_chars_ok(buf, start, stop):
    """Whether ``buf[start:stop]`` can be a symbol: 1 to 39 ASCII letters, digits or ``_``.

    The exact shape (messages.SYMBOL_RE) is checked once per distinct symbol by the reader;
    this keeps bytes that are no symbol at all (a flipped byte, a ``%``) out of the fast path.
    """
    if stop <= start or stop - start > _MAX_SYMBOL:
        return False
    for k in range(start, stop):
        c = buf[k]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == _UNDERSCORE):
            return False
    return True


@nb.njit(cache=True)
def _is_depth_channel(buf, start, stop):
    """``depth`` or ``depth@<1-6 digits>ms``: the diff depth stream (not ``depth5``, ``depth20@100ms``)."""
    n = _DEPTH.shape[0]
    if not _matches(buf, start, stop, _DEPTH):
        return False
    pos = start + n
    if pos == stop:
        return True
    if buf[pos] != _AT:
        return False
    pos += 1
    digits = 0
    while pos < stop and 48 <= buf[pos] <= 57:
        pos += 1
        digits += 1
    return 1 <= digits <= 6 and stop - pos == 2 and _matches(buf, pos, stop, _MS)


@nb.njit(cache=True)
def _parse_int(buf, pos, end):
    """Parse ``-?(0|[1-9][0-9]*)`` at ``pos`` (JSON's integers: no leading zero). Returns
    (value, next_pos); next_pos == -1 on failure."""
    negative = False
    if pos < end and buf[pos] == _MINUS:
        negative = True
        pos += 1
    start = pos
    value = 0
    while pos < end and 48 <= buf[pos] <= 57:
        value = value * 10 + (buf[pos] - 48)
        pos += 1
    # 19 digits fit int64 up to 2**63 - 1; beyond that the product wraps negative.
    if pos == start or pos - start > 19 or value < 0 or (buf[start] == 48 and pos - start > 1):
        return 0, -1
    return (-value if negative else value), pos


@nb.njit(cache=True)
def _parse_decimal_string(buf, pos, end):
    """Parse ``"digits[.digits]"`` at ``pos`` into a double equal to ``float(text)``.

    Returns (value, next_pos); next_pos == -1 for anything else (signs, exponents, NaN,
    empty, a leading zero before a digit, more than 17 significant digits), which sends the
    line to the reference parser.
    """
    if pos >= end or buf[pos] != _QUOTE:
        return 0.0, -1
    start = pos + 1
    stop = start
    dot = -1
    while stop < end and buf[stop] != _QUOTE:
        c = buf[stop]
        if c == _DOT:
            if dot >= 0:
                return 0.0, -1
            dot = stop
        elif c < 48 or c > 57:
            return 0.0, -1
        stop += 1
    if stop >= end:
        return 0.0, -1
    next_pos = stop + 1
    if dot >= 0:  # trailing fractional zeros change nothing: drop them (and a bare dot)
        while stop > dot + 1 and buf[stop - 1] == 48:
            stop -= 1
        if stop == dot + 1:
            stop = dot
    if stop == start:
        return 0.0, -1
    if buf[start] == 48 and start + 1 < stop and buf[start + 1] != _DOT:
        return 0.0, -1  # a leading zero before a digit ("05"): not how Binance writes a number
    mantissa = 0
    significant = 0
    decimals = 0
    for k in range(start, stop):
        c = buf[k]
        if c == _DOT:
            continue
        mantissa = mantissa * 10 + (c - 48)
        if mantissa > 0:
            significant += 1
        if 0 <= dot < k:
            decimals += 1
    if significant > 17 or mantissa >= _MAX_EXACT_MANTISSA or decimals > 22:
        return 0.0, -1
    return mantissa / _POW10[decimals], next_pos


@nb.njit(cache=True)
def _skip_value(buf, pos, end):
    """Skip one JSON value of a field the scanner does not use. -1 on anything it cannot
    vouch for, which sends the line to the reference parser: a string with an escape, a
    control character or a non-ASCII byte (Binance sends plain ASCII), a nested array or
    object (Binance sends none in fields Genesis skips), a number outside JSON's grammar.
    So a line the scanner accepts is one the reference parser accepts, with the same values."""
    if pos >= end:
        return -1
    c = buf[pos]
    if c == _QUOTE:
        pos += 1
        while pos < end:
            c = buf[pos]
            if c == _QUOTE:
                return pos + 1
            if c < 32 or c >= 127 or c == _BACKSLASH:
                return -1
            pos += 1
        return -1
    if _matches(buf, pos, end, _TRUE) or _matches(buf, pos, end, _NULL):
        return pos + 4
    if _matches(buf, pos, end, _FALSE):
        return pos + 5
    # -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    if pos < end and buf[pos] == _MINUS:
        pos += 1
    if pos >= end or not 48 <= buf[pos] <= 57:
        return -1
    if buf[pos] == 48:
        pos += 1
    else:
        while pos < end and 48 <= buf[pos] <= 57:
            pos += 1
    if pos < end and buf[pos] == _DOT:
        pos += 1
        digits = pos
        while pos < end and 48 <= buf[pos] <= 57:
            pos += 1
        if pos == digits:
            return -1
    if pos < end and (buf[pos] == 101 or buf[pos] == 69):
        pos += 1
        if pos < end and (buf[pos] == 43 or buf[pos] == _MINUS):
            pos += 1
        digits = pos
        while pos < end and 48 <= buf[pos] <= 57:
            pos += 1
        if pos == digits:
            return -1
    return pos


@nb.njit(cache=True)
def _parse_levels(buf, pos, end, side, lvl_side, lvl_price, lvl_qty, n_levels):
    """Parse ``[["p","q"],...]`` appending to the level arrays. Returns (next_pos, n_levels)."""
    if pos >= end or buf[pos] != _LBRACK:
        return -1, n_levels
    pos += 1
    if pos < end and buf[pos] == _RBRACK:
        return pos + 1, n_levels
    while pos < end:
        if buf[pos] != _LBRACK or n_levels >= lvl_side.shape[0]:
            return -1, n_levels
        price, pos = _parse_decimal_string(buf, pos + 1, end)
        if pos < 0 or pos >= end or buf[pos] != _COMMA or price <= 0.0:
            return -1, n_levels
        qty, pos = _parse_decimal_string(buf, pos + 1, end)
        if pos < 0 or pos >= end or buf[pos] != _RBRACK:
            return -1, n_levels
        lvl_side[n_levels] = side
        lvl_price[n_levels] = price
        lvl_qty[n_levels] = qty
        n_levels += 1
        pos += 1
        if pos < end and buf[pos] == _COMMA:
            pos += 1
        elif pos < end and buf[pos] == _RBRACK:
            return pos + 1, n_levels
        else:
            return -1, n_levels
    return -1, n_levels


@nb.njit(cache=True)
def _scan_object(buf, pos, end, kind, ints, floats, lvl_side, lvl_price, lvl_qty, n_levels):
    """Parse the flat JSON object at ``pos`` (just after ``{``) for a line of ``kind``.

    Fills ``ints``/``floats`` (one line's row) and appends depth levels. Returns
    (next_pos after ``}``, n_levels, fields_seen bitmask); next_pos == -1 on any surprise.
    """
    seen = 0
    n_bids = 0
    bids_done = False
    while pos < end:
        if buf[pos] != _QUOTE:
            return -1, n_levels, seen
        key_start = pos + 1
        key_stop = key_start
        while key_stop < end and buf[key_stop] != _QUOTE:
            if buf[key_stop] < 32 or buf[key_stop] >= 127 or buf[key_stop] == _BACKSLASH:
                return -1, n_levels, seen  # see _skip_value
            key_stop += 1
        if key_stop + 1 >= end or buf[key_stop + 1] != _COLON:
            return -1, n_levels, seen
        pos = key_stop + 2
        klen = key_stop - key_start
        k0 = buf[key_start] if klen > 0 else 0
        k1 = buf[key_start + 1] if klen > 1 else 0
        handled = False
        if klen == 1:
            if k0 == 69 or k0 == 84:  # E: event time, T: transaction / trade time (ms)
                value, pos = _parse_int(buf, pos, end)
                if value < 0 or value > _MAX_MS:
                    return -1, n_levels, seen
                if k0 == 69:
                    ints[I_EVENT] = value * 1_000_000
                    seen |= 1
                else:
                    ints[I_EXCH] = value * 1_000_000
                    seen |= 2
                handled = True
            elif k0 == 115 and kind != KIND_SNAPSHOT:  # s: the symbol again, must be the stream's
                if pos >= end or buf[pos] != _QUOTE:
                    return -1, n_levels, seen
                stop = pos + 1
                while stop < end and buf[stop] != _QUOTE:
                    if buf[stop] == _BACKSLASH:  # an escape: let the reference parser decode it
                        return -1, n_levels, seen
                    stop += 1
                if stop >= end or symbol_hash(buf, pos + 1, stop) != ints[I_SYMBOL]:
                    return -1, n_levels, seen
                pos = stop + 1
                handled = True
            elif k0 == 85 and kind == KIND_DEPTH:  # U: first update id
                ints[I_FIRST], pos = _parse_int(buf, pos, end)
                seen |= 4
                handled = True
            elif k0 == 117 and (kind == KIND_DEPTH or kind == KIND_QUOTE):  # u: final update id
                ints[I_LAST], pos = _parse_int(buf, pos, end)
                seen |= 8
                handled = True
            elif k0 == 116 and kind == KIND_TRADE:  # t: trade id
                ints[I_LAST], pos = _parse_int(buf, pos, end)
                seen |= 8
                handled = True
            elif k0 == 109 and kind == KIND_TRADE:  # m: buyer is maker
                if _matches(buf, pos, end, _TRUE):
                    ints[I_FLAG] = 1
                    pos += 4
                elif _matches(buf, pos, end, _FALSE):
                    ints[I_FLAG] = 0
                    pos += 5
                else:
                    return -1, n_levels, seen
                seen |= 16
                handled = True
            elif kind == KIND_TRADE and (k0 == 112 or k0 == 113):  # p, q
                col = 0 if k0 == 112 else 1
                floats[col], pos = _parse_decimal_string(buf, pos, end)
                seen |= 32 << col
                handled = True
            elif kind == KIND_QUOTE and (k0 == 98 or k0 == 66 or k0 == 97 or k0 == 65):  # b B a A
                col = 0 if k0 == 98 else (1 if k0 == 66 else (2 if k0 == 97 else 3))
                floats[col], pos = _parse_decimal_string(buf, pos, end)
                seen |= 32 << col
                handled = True
            elif kind == KIND_DEPTH and (k0 == 98 or k0 == 97):  # b, a: level arrays
                if k0 == 97 and not bids_done:
                    return -1, n_levels, seen  # asks before bids: let the reference parser order them
                before = n_levels
                pos, n_levels = _parse_levels(
                    buf, pos, end, 1 if k0 == 98 else -1, lvl_side, lvl_price, lvl_qty, n_levels
                )
                if k0 == 98:
                    n_bids = n_levels - before
                    bids_done = True
                seen |= 512 if k0 == 98 else 1024
                handled = True
        elif klen == 2 and k0 == 112 and k1 == 117 and kind == KIND_DEPTH:  # pu
            ints[I_PREV], pos = _parse_int(buf, pos, end)
            seen |= 2048
            handled = True
        elif kind == KIND_SNAPSHOT:
            if _key_is(buf, key_start, key_stop, _BIDS) or _key_is(buf, key_start, key_stop, _ASKS):
                is_bids = buf[key_start] == 98
                if not is_bids and not bids_done:
                    return -1, n_levels, seen
                pos, n_levels = _parse_levels(
                    buf, pos, end, 1 if is_bids else -1, lvl_side, lvl_price, lvl_qty, n_levels
                )
                bids_done = True
                seen |= 512 if is_bids else 1024
                handled = True
            elif _key_is(buf, key_start, key_stop, _SYMBOL):
                if pos >= end or buf[pos] != _QUOTE:
                    return -1, n_levels, seen
                stop = pos + 1
                while stop < end and buf[stop] != _QUOTE:
                    stop += 1
                if not symbol_chars_ok(buf, pos + 1, stop):
                    return -1, n_levels, seen
                ints[I_SYMBOL] = symbol_hash(buf, pos + 1, stop)
                pos = stop + 1
                seen |= 4096
                handled = True
        if not handled:
            pos = _skip_value(buf, pos, end)
        if pos < 0 or pos >= end:
            return -1, n_levels, seen
        if buf[pos] == _COMMA:
            pos += 1
        elif buf[pos] == _RBRACE:
            return pos + 1, n_levels, seen
        else:
            return -1, n_levels, seen
    return -1, n_levels, seen


# Fields each kind must carry (bitmask of ``seen``).
_REQUIRED_DEPTH = 1 | 4 | 8 | 512 | 1024  # E U u b a
_REQUIRED_TRADE = 2 | 8 | 16 | 32 | 64  # T t m p q
_REQUIRED_QUOTE = 8 | 32 | 64 | 128 | 256  # u b B a A
_REQUIRED_SNAPSHOT = 512 | 1024  # bids asks (lastUpdateId is in the prefix)


@nb.njit(cache=True)
def scan_lines(buf, line_starts, line_stops, ints, floats, kinds, status, lvl_side, lvl_price, lvl_qty):
    """Scan every line; fill per-line ``ints``/``floats``/``kinds``/``status`` and the levels.

    ``ints`` is (n_lines, N_INT_COLS) int64, ``floats`` (n_lines, N_FLOAT_COLS) float64.
    Returns the number of levels written. A line that does not fit the strict shape gets
    ``LINE_FALLBACK`` and contributes no levels.
    """
    n_levels = 0
    for i in range(line_starts.shape[0]):
        pos = line_starts[i]
        end = line_stops[i]
        while end > pos and (buf[end - 1] == _CR or buf[end - 1] == _SPACE):
            end -= 1
        row = ints[i]
        row[I_PREV] = -1
        row[I_FIRST] = -1
        if end == pos:
            status[i] = LINE_BLANK
            continue
        status[i] = LINE_FALLBACK
        if buf[pos] == _MINUS:  # a receive time is digits only
            continue
        local_ts, pos = _parse_int(buf, pos, end)
        if pos < 0 or pos >= end or buf[pos] != _SPACE:
            continue
        row[I_LOCAL] = local_ts
        pos += 1
        kind = KIND_NONE
        if _matches(buf, pos, end, _STREAM_PREFIX):
            name_start = pos + _STREAM_PREFIX.shape[0]
            at = name_start
            while at < end and buf[at] != _AT and buf[at] != _QUOTE:
                at += 1
            if at >= end or buf[at] != _AT or not symbol_chars_ok(buf, name_start, at):
                continue
            name_stop = at + 1
            while name_stop < end and buf[name_stop] != _QUOTE:
                name_stop += 1
            suffix = at + 1
            if _is_depth_channel(buf, suffix, name_stop):
                kind = KIND_DEPTH
            elif _key_is(buf, suffix, name_stop, _TRADE):
                kind = KIND_TRADE
            elif _key_is(buf, suffix, name_stop, _BOOK_TICKER):
                kind = KIND_QUOTE
            else:
                continue
            row[I_SYMBOL] = symbol_hash(buf, name_start, at)
            if not _matches(buf, name_stop, end, _DATA_PREFIX):
                continue
            pos = name_stop + _DATA_PREFIX.shape[0]
        elif _matches(buf, pos, end, _SNAPSHOT_PREFIX):
            kind = KIND_SNAPSHOT
            row[I_SYMBOL] = 0
            row[I_LAST], pos = _parse_int(buf, pos + _SNAPSHOT_PREFIX.shape[0], end)
            if pos < 0 or pos >= end:
                continue
            if buf[pos] == _COMMA:
                pos += 1
            else:
                continue
        else:
            continue
        first_level = n_levels
        pos, n_after, seen = _scan_object(
            buf, pos, end, kind, row, floats[i], lvl_side, lvl_price, lvl_qty, n_levels
        )
        if pos < 0:
            continue
        if kind != KIND_SNAPSHOT:  # the combined-stream envelope closes too
            if pos >= end or buf[pos] != _RBRACE:
                continue
            pos += 1
        if pos != end:
            continue
        if kind == KIND_DEPTH:
            required = _REQUIRED_DEPTH
        elif kind == KIND_TRADE:
            required = _REQUIRED_TRADE
        elif kind == KIND_QUOTE:
            required = _REQUIRED_QUOTE
        else:
            required = _REQUIRED_SNAPSHOT
        if seen & required != required:
            continue
        if kind == KIND_TRADE and not (floats[i, 0] > 0.0 and floats[i, 1] > 0.0):
            continue
        if kind == KIND_QUOTE and not (floats[i, 0] > 0.0 and floats[i, 2] > 0.0):
            continue
        if seen & 2 == 0:  # no transaction time: fall back to the event time (0 if none)
            row[I_EXCH] = row[I_EVENT]
        row[I_LVL_START] = first_level
        row[I_LVL_COUNT] = n_after - first_level
        n_levels = n_after
        kinds[i] = kind
        status[i] = LINE_OK
    return n_levels
