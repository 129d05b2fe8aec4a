"""Sampling: hand-computed cases for each mode, invariants, and a real capture."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.features import Snapshots, Trades
from genesis.features.sampling import sample, sample_index


def book(ts, updates=None):
    """One level; row i has bid i+1 so the test can tell which row was taken."""
    ts = np.asarray(ts, np.int64)
    bid = np.arange(1.0, len(ts) + 1)
    updates = np.arange(1.0, len(ts) + 1) if updates is None else updates
    return Snapshots(ts, bid, np.ones(len(ts)), bid + 0.5, np.ones(len(ts)), updates)


def trades(ts, qty, price=None):
    ts = np.asarray(ts, np.int64)
    price = np.full(len(ts), 100.0) if price is None else price
    return Trades(ts, price, qty, np.zeros(len(ts)))


SNAPS = book([10, 20, 20, 35, 50])  # updates 1..5


def taken(sampled):
    return (sampled.bid_px[:, 0] - 1).astype(int).tolist()


def check_invariants(snaps, sampled, rows):
    """No look-ahead, rows in order, and every covered update counted once."""
    assert len(sampled) == len(rows)
    assert (snaps.ts[rows] <= sampled.ts).all()
    assert (np.diff(rows) >= 0).all() and (np.diff(sampled.ts) >= 0).all()
    covered = snaps.updates[: rows[-1] + 1].sum() if len(rows) else 0.0
    assert sampled.updates.sum() == covered
    np.testing.assert_array_equal(sampled.bid_px, snaps.bid_px[rows])
    np.testing.assert_array_equal(sampled.ask_sz, snaps.ask_sz[rows])


# -- event ------------------------------------------------------------------------------

def test_event_is_unchanged():
    assert sample(SNAPS, None, "event") is SNAPS
    rows, ts = sample_index(SNAPS, None, "event")
    np.testing.assert_array_equal(rows, np.arange(5))
    np.testing.assert_array_equal(ts, SNAPS.ts)


# -- time grid -----------------------------------------------------------------------------

def test_grid_takes_the_row_in_force():
    out = sample(SNAPS, None, "10ns")
    np.testing.assert_array_equal(out.ts, [10, 20, 30, 40, 50])
    # at 20 the last of the two rows stamped 20; at 30 still that one; a row exactly at the grid time counts
    assert taken(out) == [0, 2, 2, 3, 4]
    np.testing.assert_array_equal(out.updates, [1, 2 + 3, 0, 4, 5])
    check_invariants(SNAPS, out, sample_index(SNAPS, None, "10ns")[0])


def test_grid_starts_on_the_grid_and_stops_at_the_last_row():
    snaps = book([15, 27, 41], updates=np.array([2.0, 3.0, 7.0]))
    rows, ts = sample_index(snaps, None, "10ns")
    np.testing.assert_array_equal(ts, [20, 30, 40])  # 15 rounds up to 20; nothing after 41
    np.testing.assert_array_equal(rows, [0, 1, 1])
    out = sample(snaps, None, "10ns")
    np.testing.assert_array_equal(out.updates, [2, 3, 0])  # the row at 41 is not covered yet
    assert sample(snaps, None, "1s").ts.size == 0  # no whole second inside the span


def test_grid_in_seconds():
    second = 1_000_000_000
    base = 1_723_161_256 * second
    snaps = book(base + np.array([300, 900, 1_200, 3_100]) * 1_000_000)  # ms after a whole second
    out = sample(snaps, None, "1s")
    np.testing.assert_array_equal(out.ts, base + np.array([1, 2, 3]) * second)
    assert taken(out) == [1, 2, 2]
    np.testing.assert_array_equal(out.updates, [1 + 2, 3, 0])
    np.testing.assert_array_equal(sample(snaps, None, "1min").ts, [])
    assert len(sample(snaps, None, "500ms")) == 6


# -- volume and notional time -------------------------------------------------------------

T = trades([5, 12, 20, 22, 36, 60], [0.4, 0.4, 0.4, 1.0, 0.3, 5.0])


def test_volume_bars():
    # cumulative 0.4, 0.8, 1.2 (crosses 1 at ts 20), 2.2 (crosses 2 at ts 22), 2.5, 7.5 (ts 60: after the last row)
    out = sample(SNAPS, T, "volume:1")
    np.testing.assert_array_equal(out.ts, [20, 35])  # the first rows at or after 20 and 22
    assert taken(out) == [1, 3]
    np.testing.assert_array_equal(out.updates, [1 + 2, 3 + 4])


def test_volume_bars_several_crossings_on_one_row():
    # 0.5 is crossed at ts 12 (-> row 1), 1.0 at ts 20 (-> row 1 again), 1.5 and 2.0 by one trade at ts 22
    # (-> row 3), 2.5 exactly at ts 36 (-> row 4).
    rows, ts = sample_index(SNAPS, T, "volume:0.5")
    np.testing.assert_array_equal(rows, [1, 3, 4])
    np.testing.assert_array_equal(ts, [20, 35, 50])
    np.testing.assert_array_equal(sample(SNAPS, T, "volume:0.5").updates, [3, 7, 5])


def test_volume_bars_cross_at_decimal_multiples():
    # 10 x 0.1 sums to 0.9999999999999999 in floats; in the trader's arithmetic it is 1.
    ts = np.arange(1, 31)
    snaps = book(ts)
    rows, _ = sample_index(snaps, trades(ts, np.full(30, 0.1)), "volume:1")
    np.testing.assert_array_equal(rows, [9, 19, 29])


def test_volume_bar_before_the_first_row_and_without_trades():
    rows, ts = sample_index(SNAPS, trades([1, 2], [2.0, 0.5]), "volume:1")
    np.testing.assert_array_equal(rows, [0])  # the first row in force after the trade
    np.testing.assert_array_equal(ts, [10])
    assert len(sample(SNAPS, None, "volume:1")) == 0
    assert len(sample(SNAPS, Trades.empty(), "notional:5")) == 0


def test_notional_bars():
    t = trades([10, 20, 35, 50], [1.0, 2.0, 1.0, 1.0], price=np.array([100.0, 101.0, 99.0, 100.0]))
    # notional 100, 302 (crosses 250 at ts 20), 401 (crosses 500? no), 501 (crosses 500 at ts 50)
    out = sample(SNAPS, t, "notional:250")
    np.testing.assert_array_equal(out.ts, [20, 50])
    assert taken(out) == [1, 4]
    np.testing.assert_array_equal(out.updates, [1 + 2, 3 + 4 + 5])


def test_nan_quantities_count_as_zero():
    t = trades([12, 20, 36], [0.6, np.nan, 0.6])
    np.testing.assert_array_equal(sample_index(SNAPS, t, "volume:1")[0], [4])


# -- errors and edge cases ------------------------------------------------------------------

@pytest.mark.parametrize("every", ["2 s", "0s", "1h", "events", "", "volume:0", "volume:-1", "volume:x",
                                   "notional:", "volume=1", "tick:5", "volume:nan"])
def test_bad_every(every):
    with pytest.raises(ValueError, match=f"every={every!r}: .*expected 'event', a duration such as 100ms"):
        sample(SNAPS, T, every)


def test_a_grid_too_long_is_refused():
    with pytest.raises(ValueError, match="grid rows"):
        sample(book([0, 86_400 * 10**9]), None, "1ns")


def test_negative_quantity_is_refused():
    with pytest.raises(ValueError, match="negative"):
        sample(SNAPS, trades([12], [-1.0]), "volume:1")


def test_empty_snapshots():
    empty = book([])
    for every in ("event", "1s", "volume:1"):
        out = sample(empty, T, every)
        assert len(out) == 0 and out.levels == 1


# -- invariants on random books -----------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.integers(0, 40), min_size=1, max_size=60),
       trade_times=st.lists(st.integers(-20, 2_500), max_size=80),
       step=st.integers(1, 60), bar=st.sampled_from([0.3, 1.0, 2.5]), mode=st.sampled_from(["grid", "volume"]),
       seed=st.integers(0, 2**16))
def test_invariants(gaps, trade_times, step, bar, mode, seed):
    rng = np.random.default_rng(seed)
    snaps = book(np.cumsum(gaps) + 1_000, updates=rng.integers(0, 9, len(gaps)).astype(float))
    qty = rng.choice([0.1, 0.2, 0.5, 1.5], len(trade_times))
    t = trades(np.sort(np.array(trade_times, np.int64) + 1_000), qty)
    every = f"{step}ns" if mode == "grid" else f"volume:{bar}"
    rows, ts = sample_index(snaps, t, every)
    check_invariants(snaps, sample(snaps, t, every), rows)
    if mode == "grid":
        # the row in force: the last at or before the grid time
        assert (np.searchsorted(snaps.ts, ts, side="right") - 1 == rows).all()
        assert (ts % step == 0).all() and (np.diff(ts) == step).all()
    else:
        assert (np.diff(rows) > 0).all()  # one row per row hit


# -- a real capture ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def capture():
    from tests.features_data import real
    return real("usdm_btcusdt_20240808.jsonl.gz")


def grid_loop(ts, step):
    """Walk the rows and the grid together: the last row at or before each grid time."""
    t, rows, times = -(-int(ts[0]) // step) * step, [], []
    i = 0
    while t <= ts[-1]:
        while i + 1 < len(ts) and ts[i + 1] <= t:
            i += 1
        rows.append(i)
        times.append(t)
        t += step
    return np.array(rows), np.array(times)


def bars_loop(snap_ts, trades_, size, notional):
    """Exact decimal running totals; the first row at or after each crossing trade."""
    size = Decimal(str(size))
    total, bars, rows, crossed_at = Decimal(0), 0, [], []
    i = 0  # trades come in time order, so the first row at or after each only moves forward
    for ts, px, qty in zip(trades_.ts, trades_.price, trades_.qty):
        total += Decimal(repr(float(qty))) * (Decimal(repr(float(px))) if notional else 1)
        if total // size > bars:
            bars = int(total // size)
            while i < len(snap_ts) and snap_ts[i] < ts:
                i += 1
            if i < len(snap_ts) and (not rows or rows[-1] != i):
                rows.append(i)
                crossed_at.append(ts)
    return np.array(rows, np.int64), np.array(crossed_at, np.int64)


@pytest.mark.slow
@pytest.mark.parametrize("every", ["100ms", "1s", "1min"])
def test_grid_on_a_real_capture(capture, every):
    snaps, trades_ = capture
    from genesis.book.sampling import parse_duration
    rows, ts = sample_index(snaps, trades_, every)
    want_rows, want_ts = grid_loop(snaps.ts, parse_duration(every))
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(ts, want_ts)
    check_invariants(snaps, sample(snaps, trades_, every), rows)


@pytest.mark.slow
@pytest.mark.parametrize("every", ["volume:0.5", "volume:2", "notional:100000", "notional:1000000"])
def test_bars_on_a_real_capture(capture, every):
    snaps, trades_ = capture
    kind, size = every.split(":")
    rows, ts = sample_index(snaps, trades_, every)
    want_rows, crossed_at = bars_loop(snaps.ts, trades_, float(size), kind == "notional")
    np.testing.assert_array_equal(rows, want_rows)
    out = sample(snaps, trades_, every)
    check_invariants(snaps, out, rows)
    np.testing.assert_array_equal(out.ts, snaps.ts[rows])
    # the crossing trade is one of the sampled row's trades: after the row before, not after this one
    assert (crossed_at <= out.ts).all()
    assert (snaps.ts[np.maximum(rows - 1, 0)][rows > 0] < crossed_at[rows > 0]).all()
    assert len(out) > 10


@pytest.mark.slow
def test_features_on_a_sampled_capture(capture):
    from genesis.features import compute_matrix
    snaps, trades_ = capture
    out = sample(snaps, trades_, "1s")
    matrix, _ = compute_matrix(out, trades_, ["mid"])
    np.testing.assert_array_equal(matrix[0], (out.bid_px[:, 0] + out.ask_px[:, 0]) / 2)


def test_deltas_on_grid_equals_the_event_by_event_book_in_any_chunking():
    from genesis.book.sampling import deltas_on_grid
    from genesis.feeds.simulator import SimConfig, simulate
    from genesis.surveillance.engine import Inputs

    events = simulate(SimConfig(), seconds=60, seed=3).events
    book = Inputs.from_events(events, levels=5).book  # every event's top-5, the plain way
    for chunk in (1_000, 10**9):
        ts, *arrays = deltas_on_grid(events.deltas, 250_000_000, 5, chunk_events=chunk)
        assert (np.diff(ts) == 250_000_000).all() and ts[0] >= book.ts[0] and ts[-1] <= book.ts[-1]
        want = book.take(np.searchsorted(book.ts, ts, side="right") - 1)
        for got, expected in zip(arrays, (want.bid_px, want.bid_sz, want.ask_px, want.ask_sz)):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="no deltas"):
        deltas_on_grid(events.deltas[:0], 1_000_000)
