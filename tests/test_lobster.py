"""LOBSTER reader: the bundled AAPL sample (tests/data/lobster) and small synthetic files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genesis.feeds.events import (
    EV_ADD, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, EV_HALT, EV_RESUME_QUOTING, EV_RESUME_TRADING, NO_ID,
    ORDER_EVENT_DTYPE, TRADE_DTYPE,
)
from genesis.feeds.lobster import (
    AGREES, DISAGREES, NO_ROW_BEFORE, OUTSIDE, R_CHANGED, R_OTHER_SIDE, R_OWN_SIDE, R_SIZE, R_WINDOW,
    check_consistency, consistency_arrays, parse_file_name, read_lobster,
)

DATA = Path(__file__).resolve().parent / "data" / "lobster"
STEM = "AAPL_2012-06-21_34200000_57600000"
MESSAGE = DATA / f"{STEM}_message_10.csv"
ORDERBOOK = DATA / f"{STEM}_orderbook_10.csv"


@pytest.fixture(scope="module")
def sample():
    return read_lobster(MESSAGE)


def message_lines() -> list[list[str]]:
    return [line.split(",") for line in MESSAGE.read_text().splitlines()]


def book_lines() -> list[list[str]]:
    return [line.split(",") for line in ORDERBOOK.read_text().splitlines()]


def write_pair(folder: Path, messages: list[list], book: list[list], levels: int,
               stem: str = STEM) -> Path:
    """Write a message/orderbook pair with LOBSTER's names; returns the message path."""
    folder.mkdir(parents=True, exist_ok=True)
    message = folder / f"{stem}_message_{levels}.csv"
    message.write_text("\n".join(",".join(map(str, row)) for row in messages) + "\n")
    (folder / f"{stem}_orderbook_{levels}.csv").write_text("\n".join(",".join(map(str, row)) for row in book) + "\n")
    return message


def truncated(folder: Path, levels: int) -> Path:
    """The sample with only its first ``levels`` levels: many messages fall deeper than that."""
    return write_pair(folder, message_lines(), [row[: 4 * levels] for row in book_lines()], levels)


# --- a plain per-row reference of the consistency check -------------------------------------------


def reference_check(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """status, reason flags and observed size change per message, one message at a time."""
    m, book, levels = data.messages, data.book, data.levels
    n = len(m)
    status = np.full(n, NO_ROW_BEFORE)
    flags = np.zeros(n, np.int64)
    observed = np.full(n, np.nan)

    def side(row: int, bid: bool) -> list[tuple[float, float]]:
        px, sz = (book["bid_px"], book["bid_sz"]) if bid else (book["ask_px"], book["ask_sz"])
        return [(float(p), float(s)) for p, s in zip(px[row], sz[row]) if not np.isnan(p)]

    def size_at(level_list, price, bid):
        sizes = dict(level_list)
        if price in sizes:
            return sizes[price]
        deeper = len(level_list) < levels or (price > level_list[-1][0] if bid else price < level_list[-1][0])
        return 0.0 if deeper else None

    for i in range(1, n):
        kind, price, size, bid = int(m["type"][i]), float(m["price"][i]), float(m["size"][i]), m["direction"][i] == 1
        before_own, after_own = side(i - 1, bid), side(i, bid)
        before_other, after_other = side(i - 1, not bid), side(i, not bid)
        f = 0
        s0, s1 = size_at(before_own, price, bid), size_at(after_own, price, bid)
        if kind != 7 and s0 is not None and s1 is not None:
            observed[i] = s1 - s0
        if kind in (1, 2, 3, 4):
            expected = size if kind == 1 else -size
            if s0 is not None and s1 is not None:
                if s1 - s0 != expected:
                    f |= R_SIZE
            elif (s0 is None) != (s1 is None):
                f |= R_WINDOW
            rest0 = [lv for lv in before_own if lv[0] != price]
            rest1 = [lv for lv in after_own if lv[0] != price]
            common = min(len(rest0), len(rest1))
            if rest0[:common] != rest1[:common]:
                f |= R_OWN_SIDE
            if (len(rest0) < len(rest1) and len(before_own) < levels) or \
                    (len(rest1) < len(rest0) and len(after_own) < levels):
                f |= R_OWN_SIDE
            if before_other != after_other:
                f |= R_OTHER_SIDE
            unchecked = s0 is None or s1 is None
        else:
            if side(i - 1, True) != side(i, True) or side(i - 1, False) != side(i, False):
                f |= R_CHANGED
            unchecked = False
        flags[i] = f
        status[i] = DISAGREES if f else (OUTSIDE if unchecked else AGREES)
    return status, flags, observed


def assert_matches_reference(data) -> None:
    arrays = consistency_arrays(data)
    status, flags, observed = reference_check(data)
    np.testing.assert_array_equal(arrays["status"], status)
    np.testing.assert_array_equal(arrays["reasons"], flags)
    np.testing.assert_array_equal(arrays["observed"], observed)


# --- reading the sample ------------------------------------------------------------------------


def test_file_name_gives_symbol_date_levels():
    info = parse_file_name(MESSAGE)
    assert info == {"ticker": "AAPL", "date": dt.date(2012, 6, 21), "start_ms": 34200000, "end_ms": 57600000,
                    "levels": 10}
    assert parse_file_name("foo.csv") is None


def test_sample_reads(sample):
    raw = message_lines()
    assert sample.symbol == "nasdaq:AAPL"
    assert sample.levels == 10 and len(sample) == len(raw) == 999
    assert sample.trading_date == dt.date(2012, 6, 21)
    assert sample.orderbook_path == ORDERBOOK
    orders = sample.events.orders
    assert orders.dtype == ORDER_EVENT_DTYPE and len(orders) == 999  # no cross trades in the sample
    np.testing.assert_array_equal(orders["seq"], np.arange(1, 1000))
    np.testing.assert_array_equal(orders["event"], [int(r[1]) for r in raw])  # codes map one to one
    np.testing.assert_array_equal(orders["order_id"], [int(r[2]) for r in raw])
    np.testing.assert_array_equal(orders["qty"], [float(r[3]) for r in raw])
    np.testing.assert_array_equal(orders["price"], [int(r[4]) / 10000 for r in raw])
    np.testing.assert_array_equal(orders["side"], [int(r[5]) for r in raw])
    assert (orders["owner"] == NO_ID).all() and (orders["contra_id"] == NO_ID).all()
    counts = pd.Series(orders["event"]).value_counts().to_dict()
    assert counts == {EV_ADD: 471, EV_DELETE: 369, EV_EXECUTE: 98, EV_EXECUTE_HIDDEN: 61}
    assert sample.halts.empty
    book = sample.book
    for key in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        assert book[key].shape == (999, 10) and book[key].dtype == np.float64
    np.testing.assert_array_equal(book["seq"], np.arange(1, 1000))
    # line 1 of the orderbook file: ask 585.94 x 200, bid 585.33 x 18 at the top
    assert (book["ask_px"][0, 0], book["ask_sz"][0, 0], book["bid_px"][0, 0], book["bid_sz"][0, 0]) == \
        (585.94, 200.0, 585.33, 18.0)
    assert (np.diff(book["bid_px"], axis=1) < 0).all() and (np.diff(book["ask_px"], axis=1) > 0).all()


def test_parser_matches_pandas(sample):
    """The byte parser against pandas' CSV reader on the whole sample."""
    frame = pd.read_csv(ORDERBOOK, header=None).to_numpy()
    np.testing.assert_array_equal(sample.book["ask_px"], frame[:, 0::4] / 10000)
    np.testing.assert_array_equal(sample.book["ask_sz"], frame[:, 1::4])
    np.testing.assert_array_equal(sample.book["bid_px"], frame[:, 2::4] / 10000)
    np.testing.assert_array_equal(sample.book["bid_sz"], frame[:, 3::4])
    msgs = pd.read_csv(MESSAGE, header=None)
    np.testing.assert_array_equal(sample.messages["order_id"], msgs[2])
    np.testing.assert_array_equal(sample.messages["direction"], msgs[5])


def test_times_are_exact_ns_in_utc(sample):
    ts = sample.messages["exch_ts"]
    # 34200.004241176 s after midnight in New York on 2012-06-21 (EDT, UTC-4) = 13:30 UTC
    assert ts[0] == pd.Timestamp("2012-06-21T13:30:00.004241176Z").value
    assert ts[1] == pd.Timestamp("2012-06-21T13:30:00.004260640Z").value  # "34200.00426064": 8 decimals
    # every time against an exact decimal reading of the text
    midnight = pd.Timestamp("2012-06-21T04:00:00Z").value
    exact = [midnight + int(Decimal(r[0]) * 10**9) for r in message_lines()]
    np.testing.assert_array_equal(ts, exact)
    assert (sample.events.orders["local_ts"] == ts).all()  # no receive clock in LOBSTER
    np.testing.assert_array_equal(sample.book["exch_ts"], ts)
    np.testing.assert_array_equal(sample.book["local_ts"], ts)


def test_winter_date_uses_standard_time(tmp_path):
    """In January New York is UTC-5: 09:30 local is 14:30 UTC."""
    messages = [["34200.5", 1, 11, 100, 1000000, 1]]
    book = [[1010000, 5, 1000000, 100]]
    path = write_pair(tmp_path, messages, book, 1, stem="XYZ_2012-01-03_34200000_57600000")
    data = read_lobster(path)
    assert data.symbol == "nasdaq:XYZ"
    assert data.messages["exch_ts"][0] == pd.Timestamp("2012-01-03T14:30:00.5Z").value


def test_trades_are_executions_with_aggressor_opposite_the_resting_side(sample):
    trades = sample.events.trades
    m = sample.messages
    executed = np.isin(m["type"], (4, 5))
    assert trades.dtype == TRADE_DTYPE and len(trades) == executed.sum() == 159
    np.testing.assert_array_equal(trades["trade_id"], m["line"][executed])
    np.testing.assert_array_equal(trades["price"], m["price"][executed])
    np.testing.assert_array_equal(trades["qty"], m["size"][executed])
    np.testing.assert_array_equal(trades["aggressor"], -m["direction"][executed])
    # line 36: "34200.275016159,4,5740544,40,5857400,-1": a resting sell hit by a buyer
    first = trades[0]
    assert (first["trade_id"], first["price"], first["qty"], first["aggressor"]) == (36, 585.74, 40.0, 1)


# --- consistency ---------------------------------------------------------------------------------


def test_every_row_of_the_sample_agrees(sample):
    report = check_consistency(sample)
    assert report.empty, report.head().to_string()
    status = consistency_arrays(sample)["status"]
    assert status[0] == NO_ROW_BEFORE  # the first message has no orderbook row before it
    checkable = int((status == AGREES).sum())
    outside = int((status == OUTSIDE).sum())
    assert checkable + outside == 998 and checkable >= 0.9 * 998
    every = check_consistency(sample, all_rows=True)
    assert len(every) == 999 and every["status"].iloc[0] == "no row before"
    assert (every["status"].iloc[1:] == "agrees").sum() == checkable
    # a submit grows its level by its size, a delete shrinks it
    adds = every[every["event"] == "add"].iloc[1:]
    np.testing.assert_array_equal(adds["observed_change"], adds["size"])


@pytest.mark.parametrize("levels", [1, 2, 5])
def test_fewer_levels_leave_messages_outside_but_none_disagree(tmp_path, levels):
    """Cut the sample to its top levels: messages deeper than that cannot be checked at their
    price, levels shift into and out of the window, and still nothing disagrees."""
    data = read_lobster(truncated(tmp_path, levels))
    assert data.levels == levels
    status = consistency_arrays(data)["status"]
    assert check_consistency(data).empty
    assert (status == OUTSIDE).sum() > 50
    assert_matches_reference(data)


def test_vectorised_check_matches_per_row_reference(sample):
    assert_matches_reference(sample)


def test_reference_agrees_on_randomly_corrupted_books(tmp_path):
    rng = np.random.default_rng(7)
    book = book_lines()
    for trial in range(5):
        rows = [row[:] for row in book]
        for line in rng.choice(len(rows), 5, replace=False):
            col = int(rng.integers(0, 12))
            value = int(rows[line][col])
            rows[line][col] = str(value + (1 if col % 2 else 100))
        data = read_lobster(write_pair(tmp_path / str(trial), message_lines(), [r[:12] for r in rows], 3))
        assert (consistency_arrays(data)["status"] == DISAGREES).any()
        assert_matches_reference(data)


def test_a_corrupted_orderbook_row_is_reported(tmp_path):
    """Row k is the book after message k and before message k+1: both checks see it."""
    raw = message_lines()
    k = 101  # "34200.888800256,1,16291456,100,5856100,1": a buy submit of 100 at 585.61
    assert raw[k - 1][1] == "1" and raw[k - 1][3] == "100"
    book = book_lines()
    row = book[k - 1]
    column = next(j for j in range(2, 40, 4) if row[j] == raw[k - 1][4])  # the bid level at 585.61
    row[column + 1] = str(int(row[column + 1]) + 7)
    data = read_lobster(write_pair(tmp_path, raw, book, 10))
    report = check_consistency(data)
    assert report["line"].tolist() == [k, k + 1]
    first = report.iloc[0]
    assert (first["event"], first["expected_change"], first["observed_change"]) == ("add", 100.0, 107.0)
    assert "changed by 107, expected +100" in first["reason"]
    assert report.iloc[1]["status"] == "disagrees"


def test_a_corrupted_last_row_or_message_is_reported_alone(tmp_path):
    raw, book = message_lines(), book_lines()
    book[-1][1] = str(int(book[-1][1]) + 1)  # best ask size of the last row
    report = check_consistency(read_lobster(write_pair(tmp_path / "book", raw, book, 10)))
    assert report["line"].tolist() == [999]
    # a message whose size disagrees with the book: only that message
    raw, book = message_lines(), book_lines()
    k = 34  # "34200.274847884,3,16113575,18,5853300,1": delete of 18 at 585.33
    raw[k - 1][3] = "17"
    report = check_consistency(read_lobster(write_pair(tmp_path / "message", raw, book, 10)))
    assert report["line"].tolist() == [k]
    assert report["reason"].iloc[0] == "the size at the message's price changed by -18, expected -17"
    assert consistency_arrays(read_lobster(write_pair(tmp_path / "message", raw, book, 10)))["reasons"][k - 1] == R_SIZE


def test_hidden_execution_must_leave_the_book_unchanged(tmp_path):
    raw, book = message_lines(), book_lines()
    k = next(i for i, r in enumerate(raw, 1) if r[1] == "5" and i > 1)
    book[k - 1][3] = str(int(book[k - 1][3]) + 1)  # best bid size changes on a hidden execution
    data = read_lobster(write_pair(tmp_path, raw, book, 10))
    report = check_consistency(data)
    assert report["line"].tolist()[0] == k and report["event"].iloc[0] == "execute_hidden"
    assert consistency_arrays(data)["reasons"][k - 1] == R_CHANGED


# --- synthetic: halts and empty levels ------------------------------------------------------------

E = 9999999999


def halt_pair(tmp_path: Path) -> Path:
    messages = [
        ["34200.1", 1, 1, 100, 1000000, 1],
        ["34200.2", 1, 2, 50, 1010000, -1],
        ["34300", 7, 0, 0, -1, -1],
        ["34400.25", 7, 0, 0, 0, -1],
        ["34500.000000001", 7, 0, 0, 1, -1],
        ["34600", 3, 2, 50, 1010000, -1],
        ["34700", 4, 1, 40, 1000000, 1],
    ]
    book = [
        [E, 0, 1000000, 100, E, 0, -E, 0],
        [1010000, 50, 1000000, 100, E, 0, -E, 0],
        [1010000, 50, 1000000, 100, E, 0, -E, 0],
        [1010000, 50, 1000000, 100, E, 0, -E, 0],
        [1010000, 50, 1000000, 100, E, 0, -E, 0],
        [E, 0, 1000000, 100, E, 0, -E, 0],
        [E, 0, 1000000, 60, E, 0, -E, 0],
    ]
    return write_pair(tmp_path, messages, book, 2, stem="TEST_2013-03-04_34200000_57600000")


def test_halts_map_to_status_events(tmp_path):
    data = read_lobster(halt_pair(tmp_path))
    orders = data.events.orders
    assert orders["event"].tolist() == [EV_ADD, EV_ADD, EV_HALT, EV_RESUME_QUOTING, EV_RESUME_TRADING, EV_DELETE,
                                        EV_EXECUTE]
    status = orders[2:5]
    assert (status["side"] == 0).all() and np.isnan(status["price"]).all()
    assert data.halts["line"].tolist() == [3, 4, 5]
    assert data.halts["name"].tolist() == ["halt", "resume_quoting", "resume_trading"]
    assert data.halts["exch_ts"].iloc[2] == pd.Timestamp("2013-03-04T14:35:00.000000001Z").value  # EST, UTC-5
    assert data.events.trades["trade_id"].tolist() == [7]
    assert data.events.trades["aggressor"].tolist() == [-1]  # a resting buy hit by a seller
    assert check_consistency(data).empty
    assert data.to_frame()["name"].tolist()[2:5] == ["halt", "resume_quoting", "resume_trading"]


def test_empty_level_sentinels_are_nan(tmp_path):
    data = read_lobster(halt_pair(tmp_path))
    book = data.book
    assert np.isnan(book["ask_px"][0]).all() and np.isnan(book["ask_sz"][0]).all()
    assert book["bid_px"][0].tolist()[0] == 100.0 and np.isnan(book["bid_px"][0, 1]) and np.isnan(book["bid_sz"][0, 1])
    assert (book["ask_px"][1, 0], book["ask_sz"][1, 0]) == (101.0, 50.0)
    assert np.isnan(book["ask_px"][1, 1]) and np.isnan(book["ask_sz"][1, 1])
    assert_matches_reference(data)


# --- bad input -------------------------------------------------------------------------------


def test_missing_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_lobster(tmp_path / f"{STEM}_message_10.csv")
    message = tmp_path / f"{STEM}_message_10.csv"
    message.write_bytes(MESSAGE.read_bytes())
    with pytest.raises(ValueError, match=f"orderbook file .*{STEM}_orderbook_10.csv does not exist"):
        read_lobster(message)
    other = tmp_path / "messages.csv"
    other.write_bytes(MESSAGE.read_bytes())
    with pytest.raises(ValueError, match="cannot derive the orderbook file name"):
        read_lobster(other)
    with pytest.raises(ValueError, match="pass symbol"):
        read_lobster(other, ORDERBOOK)
    data = read_lobster(other, ORDERBOOK, symbol="AAPL", trading_date="2012-06-21")
    assert data.symbol == "nasdaq:AAPL" and len(data) == 999


@pytest.mark.parametrize("which, line, edit, problem", [
    ("message", 5, lambda r: r[:5], "line 5: 5 columns, expected 6"),
    ("message", 7, lambda r: r + ["0"], "line 7: 7 columns, expected 6"),
    ("message", 9, lambda r: [r[0], "x"] + r[2:], "line 9: column 2 is not a number"),
    ("message", 11, lambda r: ["34200.1234567891"] + r[1:], "line 11: column 1 has more than 9 decimals"),
    ("message", 12, lambda r: [r[0], "8"] + r[2:], "line 12: unknown event type 8"),
    ("message", 13, lambda r: r[:5] + ["0"], "line 13: direction 0"),
    ("message", 14, lambda r: ["34100"] + r[1:], "line 14: time goes backwards"),
    ("orderbook", 20, lambda r: r[:39], "line 20: 39 columns, expected 40"),
    ("orderbook", 21, lambda r: r[:3] + ["1.5"] + r[4:], "line 21: column 4 is not a number"),
    ("orderbook", 22, lambda r: [str(E), "3"] + r[2:], "line 22: column 2: empty level"),
])
def test_bad_rows_raise_naming_file_and_line(tmp_path, which, line, edit, problem):
    raw, book = message_lines(), book_lines()
    rows = raw if which == "message" else book
    rows[line - 1] = edit(rows[line - 1])
    path = write_pair(tmp_path, raw, book, 10)
    named = path if which == "message" else path.with_name(path.name.replace("_message_", "_orderbook_"))
    with pytest.raises(ValueError) as error:
        read_lobster(path)
    assert str(named) in str(error.value) and problem in str(error.value)


def test_row_count_and_level_count_mismatches(tmp_path):
    raw, book = message_lines(), book_lines()
    with pytest.raises(ValueError, match="has 998 rows but .* has 999"):
        read_lobster(write_pair(tmp_path / "a", raw[:-1], book, 10))
    with pytest.raises(ValueError, match="line 1: 38 columns, expected 4 per level"):
        read_lobster(write_pair(tmp_path / "b", raw, [r[:38] for r in book], 10))
    with pytest.raises(ValueError, match=r"line 1: 20 columns, expected 40 \(10 levels"):
        read_lobster(write_pair(tmp_path / "c", raw, [r[:20] for r in book], 10))
    halt = [r[:] for r in raw]
    halt[3] = [halt[3][0], "7", "0", "0", "2", "-1"]
    with pytest.raises(ValueError, match="line 4: halt .* price 2, expected -1, 0 or 1"):
        read_lobster(write_pair(tmp_path / "d", halt, book, 10))


def test_check_in_small_blocks_is_the_same(sample, monkeypatch, tmp_path):
    """The check runs in blocks of CHECK_BLOCK messages (bounded memory): block edges change nothing."""
    import genesis.feeds.lobster as lobster

    data = read_lobster(truncated(tmp_path, 2))
    for case in (sample, data):
        whole = consistency_arrays(case)
        monkeypatch.setattr(lobster, "CHECK_BLOCK", 7)
        blocks = consistency_arrays(case)
        monkeypatch.undo()
        for key in whole:
            np.testing.assert_array_equal(blocks[key], whole[key])


def test_a_day_with_a_daylight_saving_change(tmp_path):
    """2012-03-11: New York moves from UTC-5 to UTC-4 at 02:00 local; each event gets its own offset."""
    messages = [["3600", 1, 1, 100, 1000000, 1], ["10800.25", 1, 2, 100, 1000000, 1]]
    book = [[1010000, 5, 1000000, 100], [1010000, 5, 1000000, 200]]
    data = read_lobster(write_pair(tmp_path, messages, book, 1, stem="XYZ_2012-03-11_0_86400000"))
    assert data.messages["exch_ts"].tolist() == [pd.Timestamp("2012-03-11T06:00:00Z").value,
                                                 pd.Timestamp("2012-03-11T07:00:00.25Z").value]
    assert check_consistency(data).empty
