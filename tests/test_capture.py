"""Binance captures: the rebuilt book agrees with Binance's own bookTicker, on real data."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from tests.conftest import ALL_CAPTURES, capture_lines, capture_path
from genesis.book.l2 import OUT_APPLIED, L2Book
from genesis.feeds.binance import scan
from genesis.feeds.binance.capture import read_capture
from genesis.feeds.binance.messages import BadMessage, parse_line


def rebuild(events, book=None):
    book = book or L2Book(depth=20, sequencing=events.sequencing)
    d = events.depth
    return book, book.apply_depth(d.is_snapshot, d.first_id, d.last_id, d.prev_id, d.level_start, d.level_count,
                                  d.side, d.price, d.qty)


def book_ticker_checks(events, result):
    """(checked, agreeing): bookTickers whose u is the final id of an applied depth event."""
    row_of_u = {int(u): r for r, u in enumerate(events.depth.last_id[result.top_msg])}
    checked = agreeing = 0
    for q in events.quotes:
        r = row_of_u.get(int(q["update_id"]))
        if r is None:
            continue
        checked += 1
        agreeing += (result.bid_px[r, 0], result.bid_sz[r, 0], result.ask_px[r, 0], result.ask_sz[r, 0]) == (
            q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"])
    return checked, agreeing


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_rebuilt_top_of_book_equals_every_matching_book_ticker(name):
    capture = read_capture(capture_path(name))
    assert capture.bad_lines == [] and len(capture.symbols) == 1
    (events,) = capture.symbols.values()
    _, result = rebuild(events)
    checked, agreeing = book_ticker_checks(events, result)
    assert checked >= 300, f"only {checked} bookTickers line up with applied depth events"
    assert agreeing == checked
    assert len(result.gaps) == 0


def test_symbols_are_namespaced_by_venue():
    expected = {
        "usdm_btcusdt_20240808.jsonl.gz": "binance-usdm:BTCUSDT",
        "spot_ethusdt_20240808.jsonl.gz": "binance-spot:ETHUSDT",
    }
    for name, symbol in expected.items():
        assert list(read_capture(capture_path(name)).symbols) == [symbol]


@pytest.mark.parametrize("name, cut_fraction", [("usdm_btcusdt_20240808.jsonl.gz", 0.37),
                                                ("spot_ethusdt_20240808.jsonl.gz", 0.71)])
def test_capture_split_in_two_files_continues_the_book(tmp_path, name, cut_fraction):
    lines = capture_lines(name)
    depth_lines = [i for i, line in enumerate(lines) if b"@depth" in line[:80]]
    cut = depth_lines[int(len(depth_lines) * cut_fraction)]  # the second file starts at a depth event
    first, second = tmp_path / "part1.jsonl.gz", tmp_path / "part2.jsonl"
    first.write_bytes(gzip.compress(b"\n".join(lines[:cut]) + b"\n"))
    second.write_bytes(b"\n".join(lines[cut:]) + b"\n")

    part1, part2 = read_capture(first), read_capture(second)
    (events1,), (events2,) = part1.symbols.values(), part2.symbols.values()
    assert events1.has_snapshot and not events2.has_snapshot
    book, result1 = rebuild(events1)
    _, result2 = rebuild(events2, book)  # the same book carries over
    assert (result2.outcome == OUT_APPLIED).all()
    checked, agreeing = book_ticker_checks(events2, result2)
    assert checked > 50 and agreeing == checked

    whole = read_capture(capture_path(name))
    (events,) = whole.symbols.values()
    _, result = rebuild(events)
    assert len(result1.top_msg) + len(result2.top_msg) == len(result.top_msg)
    np.testing.assert_array_equal(np.vstack([result1.ask_px, result2.ask_px]), result.ask_px)


@pytest.mark.parametrize("name", ["spot_ethusdt_20240808.jsonl.gz", "usdm_btcusdt_20240808.jsonl.gz"])
def test_scanner_agrees_with_the_reference_parser_on_every_line(name):
    """The Numba fast path and the plain-Python parser read every real line identically."""
    raw = gzip.decompress(capture_path(name).read_bytes())
    lines = raw.splitlines()
    capture = read_capture(capture_path(name))
    (events,) = capture.symbols.values()
    d = events.depth
    trades = iter(events.trades)
    quotes = iter(events.quotes)
    depth_index = {int(line_no): k for k, line_no in enumerate(d.line_no)}
    for i, line in enumerate(lines[:40_000]):
        parsed = parse_line(line)
        if parsed.kind == scan.KIND_TRADE:
            t = next(trades)
            assert (t["local_ts"], t["exch_ts"], t["trade_id"], t["price"], t["qty"], t["aggressor"]) == (
                parsed.ints[scan.I_LOCAL], parsed.ints[scan.I_EXCH], parsed.ints[scan.I_LAST],
                parsed.floats[0], parsed.floats[1], -1 if parsed.ints[scan.I_FLAG] else 1)
        elif parsed.kind == scan.KIND_QUOTE:
            q = next(quotes)
            assert (q["update_id"], q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"]) == (
                parsed.ints[scan.I_LAST], *parsed.floats)
        else:
            k = depth_index[i + 1]
            assert (d.first_id[k], d.last_id[k], d.prev_id[k], d.exch_ts[k], d.local_ts[k]) == (
                parsed.ints[scan.I_FIRST], parsed.ints[scan.I_LAST], parsed.ints[scan.I_PREV],
                parsed.ints[scan.I_EXCH], parsed.ints[scan.I_LOCAL])
            lo, n = d.level_start[k], d.level_count[k]
            assert list(zip(d.side[lo:lo + n].tolist(), d.price[lo:lo + n].tolist(), d.qty[lo:lo + n].tolist())) \
                == parsed.levels


@pytest.mark.parametrize("text, fast", [
    ("61800.20", True), ("0.00000000", True), ("2500.00000000", True), ("0.001", True), ("7", True),
    ("5.", True), (".5", True), ("9007199254740991", True),
    ("9007199254740993", False),  # above 2**53: not exact as an integer mantissa
    ("123456789.12345678", False), ("1e5", False), ("-1", False), ("NaN", False), ("", False), (".", False),
    ("0.5", True), ("0", True), ("0980", False), ("00.5", False),  # a leading zero before a digit: a flipped '.'
])
def test_fast_decimal_parse_is_bit_identical_to_float_or_declines(text, fast):
    buf = np.frombuffer(f'"{text}",'.encode(), np.uint8)
    value, end = scan._parse_decimal_string(buf, 0, len(buf))
    assert (end > 0) == fast  # declined text goes to the reference parser
    if fast:
        assert value == float(text) and end == len(text) + 2


@pytest.mark.parametrize("line, reason", [
    (b'1 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"t":1,"p":"6', "truncated message"),
    (b'1 {"stream":"btcusdt@trade","data":{"p":}}', "invalid JSON"),
    (b'1 {"stream":"btcusdt@trade","data":{"T":1,"t":1,"p":"NaN","q":"1","m":true}}', "trade price is 'NaN'"),
    (b'1 {"stream":"btcusdt@trade","data":{"T":1,"t":1,"p":"5","q":"-1","m":true}}', "trade size '-1' is negative"),
    (b'1 {"stream":"btcusdt@kline_1m","data":{}}', "unknown stream"),
    (b'{"stream":"btcusdt@trade"}', "does not start with '<receive time ns> '"),
    (b'1 {"stream":"btcusdt@depth","data":{"E":1,"U":1,"u":2,"b":[["1","x"]],"a":[]}}', "b size 'x' is not a number"),
    (b"7" * 5000 + b' {"stream":"btcusdt@trade"}', "receive time 77777"),
    (b'9999999999999999999 {"stream":"btcusdt@trade"}', "(19 digits) is out of range for nanoseconds"),
    (b'0723 {"stream":"btcusdt@trade"}', "receive time 0723 has a leading zero"),
    (b'1 {"stream":"%tcusdt@trade","data":{}}', "stream symbol '%tcusdt' is not a Binance symbol"),
    (b'1 {"stream":"btc_usdt@trade","data":{}}', "stream symbol 'btc_usdt' is not a Binance symbol"),
    (b'1 {"stream":"btcusdt@trade","data":{"s":"BTCUSDU"}}', "carries an event of symbol 'BTCUSDU'"),
    (b'1 {"stream":"btcusdt@depth20@100ms","data":{}}', "unknown stream 'btcusdt@depth20@100ms'"),
    (b'1 {"lastUpdateId":5,"symbol":"BTC%","bids":[],"asks":[]}', "snapshot symbol 'BTC%' is not a Binance symbol"),
    (b'1 {"stream":"btcusdt@trade","data":{"T":99999999999999,"t":1,"p":"5","q":"1","m":true}}',
     "field 'T' is 99999999999999, out of range for milliseconds"),
    (b'1 {"stream":"btcusdt@trade","data":{"T":-1,"t":1,"p":"5","q":"1","m":true}}', "field 'T' is -1, out of range"),
    (b'1 {"stream":"btcusdt@trade","data":{"T":1,"t":18446744073709551615,"p":"5","q":"1","m":true}}',
     "field 't' is 18446744073709551615, out of the 64-bit integer range"),
    (b'1 {"stream":"btcusdt@trade","data":{"T":1,"t":1,"p":"61_00.5","q":"1","m":true}}',
     "trade price '61_00.5' is not a plain decimal"),
    (b'1 {"stream":"' + b"x" * 5000 + b'@kline","data":{}}', "... (5,"),  # a reason quotes a few hundred at most
])
def test_reference_parser_names_the_problem(line, reason):
    with pytest.raises(BadMessage, match=re.escape(reason)) as raised:
        parse_line(line)
    assert len(raised.value.reason) <= 500 and len(raised.value.stream) <= 200


@pytest.mark.parametrize("name", ["usdm_btcusdt_20240808.jsonl.gz", "spot_ethusdt_20240808.jsonl.gz"])
def test_scanner_accepts_only_what_the_reference_parser_accepts_on_corrupted_real_lines(name):
    """Real lines with one byte set at random (any value; often one that keeps the line valid
    JSON): every line the Numba scanner accepts, the reference parser accepts with the same
    numbers, but for the symbol's exact shape, which the reader checks once per symbol."""
    import random

    rng = random.Random(7)
    alphabet = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.,:\"{}[]@ \x00\xff\xc3"
    lines = []
    for line in capture_lines(name)[:4000]:
        mutated = bytearray(line)
        mutated[rng.randrange(len(mutated))] = rng.choice(alphabet)
        lines.append(bytes(mutated).replace(b"\n", b"?"))
    buf = np.frombuffer(b"\n".join(lines), np.uint8)
    stops = np.cumsum([len(line) + 1 for line in lines]) - 1
    starts = stops - [len(line) for line in lines]
    n = len(lines)
    ints, floats = np.zeros((n, scan.N_INT_COLS), np.int64), np.zeros((n, scan.N_FLOAT_COLS))
    kinds, status = np.zeros(n, np.int8), np.zeros(n, np.int8)
    side, price, qty = np.empty(len(buf), np.int8), np.empty(len(buf)), np.empty(len(buf))
    scan.scan_lines(buf, starts.astype(np.int64), stops.astype(np.int64), ints, floats, kinds, status, side, price, qty)
    accepted = np.flatnonzero(status == scan.LINE_OK)
    assert n // 20 < len(accepted) < n  # some flips leave a valid line (a digit for a digit...), most do not
    for i in accepted.tolist():
        try:
            parsed = parse_line(lines[i])
        except BadMessage as exc:
            assert "is not a Binance symbol" in exc.reason, (lines[i], exc.reason)
            continue
        mine, ref = ints[i].tolist(), list(parsed.ints)
        code = scan.symbol_hash(np.frombuffer(parsed.symbol.encode(), np.uint8), 0, len(parsed.symbol))
        ref[scan.I_SYMBOL] = int(code) if parsed.symbol else 0
        lo, count = mine[scan.I_LVL_START], mine[scan.I_LVL_COUNT]
        mine[scan.I_LVL_START:], ref[scan.I_LVL_START:] = [count], [len(parsed.levels)]
        assert (kinds[i], mine, floats[i].tolist()) == (parsed.kind, ref, parsed.floats), lines[i]
        assert list(zip(side[lo:lo + count].tolist(), price[lo:lo + count].tolist(),
                        qty[lo:lo + count].tolist())) == parsed.levels, lines[i]


def test_lines_the_scanner_declines_are_read_by_the_reference_parser_identically(tmp_path):
    """Valid but differently formatted JSON (spaces) takes the fallback path, levels included."""
    import json

    lines = capture_lines("spot_ethusdt_20240808.jsonl.gz")[:2000]
    reformatted = []
    for k, line in enumerate(lines):
        head, body = line.split(b" ", 1)
        if k % 3 == 0:  # every third line, snapshot and depth events among them
            body = json.dumps(json.loads(body)).encode()  # ", " and ": " separators
        reformatted.append(head + b" " + body)
    strict, loose = tmp_path / "strict.jsonl", tmp_path / "loose.jsonl"
    strict.write_bytes(b"\n".join(lines))
    loose.write_bytes(b"\n".join(reformatted))
    (a,), (b,) = read_capture(strict).symbols.values(), read_capture(loose).symbols.values()
    for name in ("first_id", "last_id", "prev_id", "exch_ts", "level_count", "side", "price", "qty"):
        np.testing.assert_array_equal(getattr(a.depth, name), getattr(b.depth, name), err_msg=name)
    np.testing.assert_array_equal(a.trades, b.trades)
    np.testing.assert_array_equal(a.quotes, b.quotes)
