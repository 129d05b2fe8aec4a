"""The shared window helpers (genesis.features.windows) against NumPy and exact sums."""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest

from genesis.features.windows import (elapsed_size, ring_advance, ring_full, ring_size, ring_slot, sums_begin,
                                      sums_count, sums_end, sums_nonzero, sums_put, sums_size, sums_total,
                                      ts_get, ts_put, window_elapsed, window_sum)

NAN = np.nan
SENTINEL = -12345.0  # fills the slots past a structure's size: nothing may write there
drive = nb.njit(error_model="numpy")


# -- drivers: the helpers as a kernel uses them, one row at a time -------------------------

@drive
def _window_sum(values, st, w, whole, out):
    for i in range(values.shape[0]):
        if whole:
            out[i] = window_sum(st, 0, w, values[i], True)
        else:
            out[i] = window_sum(st, 0, w, values[i])


@drive
def _sums3(values, st, w, totals, counts, nonzero):
    """Three parallel sums sharing one ring; value 0 is the counted one."""
    for i in range(values.shape[0]):
        off = sums_begin(st, 0, w, 3)
        for q in range(3):
            sums_put(st, 0, off, q, values[i, q])
        for q in range(3):
            totals[i, q] = sums_total(st, 0, q)
        counts[i] = sums_count(st, 0, w)
        nonzero[i] = sums_nonzero(st, 0)
        sums_end(st, 0, w, 3)


@drive
def _delay(values, st, n, out):
    """out[i] = values[i - n] (NaN for the first n rows), through a ring of n rows."""
    for i in range(values.shape[0]):
        off = ring_slot(st, 0, n, 1)
        out[i] = st[off] if ring_full(st, 0, n) else np.nan
        st[off] = values[i]
        ring_advance(st, 0, n)


@drive
def _elapsed(ts, st, w, out):
    for i in range(ts.shape[0]):
        out[i] = window_elapsed(st, 0, w, ts[i])


@drive
def _round_trip(ts, st, out):
    for i in range(ts.shape[0]):
        ts_put(st, 0, ts[i])
        out[i] = ts_get(st, 0)


def _state(size: int) -> np.ndarray:
    """Zeros (a kernel's fresh state) followed by sentinels that must stay untouched."""
    return np.concatenate([np.zeros(size), np.full(8, SENTINEL)])


def _untouched(st: np.ndarray, size: int) -> None:
    assert (st[size:] == SENTINEL).all(), "a helper wrote past its state size"


# -- references ---------------------------------------------------------------------------

def _windows(values: np.ndarray, w: int):
    for i in range(len(values)):
        yield values[max(0, i - w + 1): i + 1]


def exact_sums(values: np.ndarray, w: int) -> np.ndarray:
    """math.fsum (exactly rounded) of the non-NaN values of each window; NaN when none."""
    out = []
    for win in _windows(values, w):
        ok = win[~np.isnan(win)]
        out.append(math.fsum(ok) if len(ok) else NAN)
    return np.array(out)


def noisy(n: int, seed: int, nan_share: float = 0.2, zero_share: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4, size=n)
    values[rng.random(n) < zero_share] = 0.0
    values[rng.random(n) < nan_share] = NAN
    return values


def run_window_sum(values: np.ndarray, w: int, whole: bool = False, chunks: int = 1) -> np.ndarray:
    size = sums_size(w)
    st = _state(size)
    out = np.full(len(values), NAN)
    for part in np.array_split(np.arange(len(values)), chunks):
        if len(part):
            _window_sum(values[part], st, w, whole, out[part[0]:part[-1] + 1])
    _untouched(st, size)
    return out


# -- window sums --------------------------------------------------------------------------

@pytest.mark.parametrize("w", [1, 2, 3, 7, 64, 500])
def test_window_sum_equals_the_exact_sum_of_the_non_nan_values(w):
    values = noisy(2000, seed=w)
    got = run_window_sum(values, w)
    want = exact_sums(values, w)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    # compensated: within an ulp or so of the exact sum, plus eps**2 of the magnitudes summed
    scale = np.array([np.nansum(np.abs(win)) for win in _windows(values, w)])
    assert np.nanmax(np.abs(got - want) - 2.3e-16 * np.abs(want) - 1e-27 * scale) <= 0.0


def test_window_sum_is_the_value_itself_for_a_window_of_one_row():
    values = noisy(300, seed=11)
    np.testing.assert_array_equal(run_window_sum(values, 1), values)


@pytest.mark.parametrize("w", [2, 5, 256, 257])
def test_window_sum_in_chunks_equals_one_pass_bit_for_bit(w):
    """The state carries everything: chunked calls (the online path: one row a call) match."""
    values = noisy(1500, seed=w + 100)
    whole = run_window_sum(values, w)
    np.testing.assert_array_equal(run_window_sum(values, w, chunks=7), whole)
    np.testing.assert_array_equal(run_window_sum(values[:300], w, chunks=300), whole[:300])


def test_window_sum_keeps_small_values_exact_after_huge_ones_leave():
    """Compensation: 1e20 entering and leaving the window leaves no residue on the small sum."""
    w = 4
    values = np.array([1e20, 0.1, 0.2, 0.3, 0.7, 1e-3, 3e-5, 2.5, -1e18, 1.0, 1e-7, 0.4, 0.5, 0.6, 0.05] * 30)
    got = run_window_sum(values, w)
    want = exact_sums(values, w)
    np.testing.assert_allclose(got, want, rtol=2.3e-16, atol=0)
    # a plain running sum loses the small ones (checked so that the test is a real test)
    plain = np.cumsum(values)
    plain = plain - np.concatenate([np.zeros(w), plain[:-w]])
    small = np.abs(want) < 10
    assert small.sum() > 200 and np.max(np.abs(plain - want)[small] / np.abs(want[small])) > 1e-3


def test_window_sum_is_exactly_0_without_non_zero_values_and_nan_without_values():
    values = np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, NAN, NAN, NAN, 5.0, NAN, NAN, NAN])
    got = run_window_sum(values, 3)
    assert got[5] == 0.0 and got[6] == 0.0 and got[7] == 0.0  # zeros only: exactly 0, no residue
    assert np.isnan(got[8])  # three NaN: nothing to sum
    assert got[9] == 5.0 and got[11] == 5.0 and np.isnan(got[12])


def test_whole_numbers_sum_the_same_without_compensation():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 1000, size=3000).astype(float)
    counts[rng.random(3000) < 0.1] = NAN
    for w in (3, 100):
        np.testing.assert_array_equal(run_window_sum(counts, w, whole=True), run_window_sum(counts, w))
        np.testing.assert_array_equal(run_window_sum(counts, w, whole=True), exact_sums(counts, w))


@pytest.mark.parametrize("w", [1, 2, 9, 100])
def test_parallel_sums_share_one_ring_and_count_value_0(w):
    n = 1200
    values = np.stack([noisy(n, seed=w, nan_share=0.3, zero_share=0.4), noisy(n, seed=w + 1),
                       noisy(n, seed=w + 2, nan_share=0.0)], axis=1)
    size = sums_size(w, 3)
    st = _state(size)
    totals, counts, nonzero = np.empty((n, 3)), np.empty(n), np.empty(n)
    _sums3(values, st, w, totals, counts, nonzero)
    _untouched(st, size)
    for q in range(3):
        want = np.nan_to_num(exact_sums(values[:, q], w))  # the sum of no value is 0
        assert np.all(np.abs(totals[:, q] - want) <= 4e-16 * np.abs(want) + 1e-300)
    first = values[:, 0]
    np.testing.assert_array_equal(counts, [np.sum(~np.isnan(win)) for win in _windows(first, w)])
    np.testing.assert_array_equal(nonzero, [np.sum(np.nan_to_num(win) != 0.0) for win in _windows(first, w)])
    assert np.all(totals[nonzero == 0, 0] == 0.0)


# -- ring of raw values -------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 10, 333])
def test_ring_gives_back_the_value_n_rows_before(n):
    values = np.random.default_rng(n).normal(size=1000)
    size = ring_size(n)
    st = _state(size)
    out = np.empty(1000)
    _delay(values, st, n, out)
    _untouched(st, size)
    np.testing.assert_array_equal(out[n:], values[:-n])
    assert np.isnan(out[:n]).all()


# -- timestamps ---------------------------------------------------------------------------

def test_timestamps_round_trip_exactly_through_float64_halves():
    rng = np.random.default_rng(3)
    ts = 1_700_000_000_000_000_000 + rng.integers(0, 10**17, size=10_000, dtype=np.int64)
    edges = np.array([0, 1, 2**32 - 1, 2**32, 2**53 + 1, 1_723_161_256_505_000_123, -1, -(2**40) - 7,
                      np.iinfo(np.int64).max, np.iinfo(np.int64).min], dtype=np.int64)
    assert not np.array_equal(ts.astype(np.float64).astype(np.int64), ts)  # one float64 would not do
    ts = np.concatenate([ts, edges])
    st, out = np.zeros(2), np.zeros(len(ts), np.int64)
    _round_trip(ts, st, out)
    np.testing.assert_array_equal(out, ts)


@pytest.mark.parametrize("w", [1, 2, 50])
def test_elapsed_is_exact_int64_ns_from_the_row_before_the_window(w):
    rng = np.random.default_rng(w)
    ts = 1_723_161_256_505_000_123 + np.cumsum(rng.integers(0, 5_000_000, size=600)).astype(np.int64)
    size = elapsed_size(w)
    st = _state(size)
    out = np.zeros(len(ts), np.int64)
    _elapsed(ts, st, w, out)
    _untouched(st, size)
    start = ts[np.maximum(np.arange(len(ts)) - w, 0)]
    np.testing.assert_array_equal(out, ts - start)


def test_sizes_are_callable_from_python_with_float_parameters():
    """Feature(state=...) callables hand the parameters as floats."""
    assert ring_size(10.0, 4) == 41 and ring_size(3.0) == 4
    assert sums_size(100.0) == 105 and sums_size(100.0, 2) == 207
    assert elapsed_size(100.0) == 203
    assert all(isinstance(x, int) for x in (ring_size(2.0), sums_size(2.0, 3), elapsed_size(2.0)))
