"""Labels: hand-computed cases, a property test against plain loops, and a real capture."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.features.labels import NO_LABEL, class_balance, fi2010_labels, triple_barrier

N = NO_LABEL


# -- plain loops: the definitions, written out ---------------------------------------------

def fi2010_loop(mid, horizon, alpha, smoothing="future"):
    """Window sums in exact rational arithmetic, then l = fl(S_plus - S_t) / fl(S_t) as documented."""
    n = len(mid)
    out = np.full(n, NO_LABEL, np.int8)
    for t in range(n):
        first = t - horizon + 1 if smoothing == "both" else t
        if first < 0 or t + horizon >= n:
            continue
        window = [float(x) for x in mid[first:t + horizon + 1]]
        if not all(np.isfinite(window)):
            continue
        s_plus = sum(Fraction(x) for x in mid[t + 1:t + horizon + 1])
        if smoothing == "both":
            s_now = sum(Fraction(x) for x in mid[t - horizon + 1:t + 1])
        else:
            s_now = horizon * Fraction(float(mid[t]))
        if s_now == 0:
            continue
        l = float(s_plus - s_now) / float(s_now)
        out[t] = 1 if l > alpha else -1 if l < -alpha else 0
    return out


def triple_barrier_loop(price, horizon, upper, lower, vertical="zero"):
    n = len(price)
    upper = np.broadcast_to(np.asarray(upper, float), (n,))
    lower = np.broadcast_to(np.asarray(lower, float), (n,))
    label, exit_index, ret = [NO_LABEL] * n, [-1] * n, [np.nan] * n
    for t in range(n):
        p0 = float(price[t])
        if np.isnan(p0) or np.isnan(upper[t]) or np.isnan(lower[t]):
            continue
        top, bottom = p0 * (1.0 + upper[t]), p0 * (1.0 - lower[t])
        in_force = p0
        for j in range(t + 1, t + horizon + 1):
            if j >= n:
                break
            if np.isnan(price[j]):
                continue
            in_force = float(price[j])
            if in_force >= top or in_force <= bottom:
                label[t] = 1 if in_force >= top else -1
                exit_index[t], ret[t] = j, in_force / p0 - 1.0
                break
        else:
            if t + horizon < n:
                r = in_force / p0 - 1.0
                label[t] = 0 if vertical == "zero" else int(np.sign(r))
                exit_index[t], ret[t] = t + horizon, r
    return np.array(label, np.int8), np.array(exit_index, np.int64), np.array(ret)


def assert_same_barriers(got, want):
    for g, w, what in zip(got, want, ("label", "exit_index", "ret")):
        np.testing.assert_array_equal(g, w, err_msg=what)
    assert got[0].dtype == np.int8 and got[1].dtype == np.int64 and got[2].dtype == np.float64


# -- FI-2010: by hand ----------------------------------------------------------------------

def test_fi2010_horizon_one():
    mid = [100.0, 101.0, 100.0, 99.0, 100.0]
    # l = 0.01, -1/101, -0.01, 1/99, then no future
    np.testing.assert_array_equal(fi2010_labels(mid, 1, 0.005), [1, -1, -1, 1, N])
    assert fi2010_labels(mid, 1, 0.005).dtype == np.int8


def test_fi2010_exactly_at_the_threshold_is_stationary():
    # (101 - 100) / 100 == 0.01 and (99 - 100) / 100 == -0.01: both ties.
    np.testing.assert_array_equal(fi2010_labels([100.0, 101.0], 1, 0.01), [0, N])
    np.testing.assert_array_equal(fi2010_labels([100.0, 99.0], 1, 0.01), [0, N])
    np.testing.assert_array_equal(fi2010_labels([100.0, 101.0], 1, 0.0099), [1, N])
    # horizon 2: m_plus = (100 + 102) / 2 = 101 -> l = 0.01, a tie; then 0.03 and 1.5 / 102.
    mid = [100.0, 100.0, 102.0, 104.0, 103.0]
    np.testing.assert_array_equal(fi2010_labels(mid, 2, 0.01), [0, 1, 1, N, N])
    np.testing.assert_array_equal(fi2010_labels(mid, 2, 0.02), [0, 1, 0, N, N])
    # alpha = 0: a flat future is stationary, not up or down by a rounding error.
    np.testing.assert_array_equal(fi2010_labels([0.1] * 10, 3, 0.0), [0] * 7 + [N] * 3)


def test_fi2010_no_drift_over_a_long_series():
    # A long noisy stretch, then a flat one: a float running sum would leave residue that
    # turns the flat stretch's exact zeros into +-1 at alpha = 0.
    rng = np.random.default_rng(3)
    mid = np.concatenate([60_000 + np.cumsum(rng.normal(0, 7.3, 50_000)), np.full(300, 60_000.05)])
    labels = fi2010_labels(mid, 37, 0.0)
    assert (labels[-300:-37] == 0).all()
    assert (labels[-37:] == N).all()


def test_fi2010_nan_and_series_end():
    nan = np.nan
    mid = [100.0, nan, 101.0, 102.0, 103.0]
    # t=0 sees the NaN ahead, t=1 is NaN itself
    np.testing.assert_array_equal(fi2010_labels(mid, 1, 0.0), [N, N, 1, 1, N])
    np.testing.assert_array_equal(fi2010_labels(mid, 2, 0.0), [N, N, 1, N, N])
    np.testing.assert_array_equal(fi2010_labels([100.0, np.inf, 100.0], 1, 0.0), [N, N, N])
    np.testing.assert_array_equal(fi2010_labels([100.0, 101.0], 5, 0.0), [N, N])
    assert fi2010_labels([], 3, 0.0).shape == (0,)
    np.testing.assert_array_equal(fi2010_labels([0.0, 1.0, 1.0], 1, 0.0), [N, 0, N])  # zero price


def test_fi2010_both():
    # m_minus = mean(mid[t-1..t]), m_plus = mean(mid[t+1..t+2]).
    mid = [100.0, 102.0, 104.0, 106.0, 108.0]
    np.testing.assert_array_equal(fi2010_labels(mid, 2, 0.0, "both"), [N, 1, 1, N, N])
    # t=1: m_minus = 101, m_plus = (101 + 101) / 2 = 101: stationary at alpha = 0.
    np.testing.assert_array_equal(fi2010_labels([100.0, 102.0, 101.0, 101.0], 2, 0.0, "both"), [N, 0, N, N])
    # (105 - 101) / 101 > 0.03 but < 0.04
    assert fi2010_labels(mid, 2, 0.03, "both")[1] == 1
    assert fi2010_labels(mid, 2, 0.04, "both")[1] == 0
    # a NaN in the past window
    np.testing.assert_array_equal(fi2010_labels([100.0, np.nan, 102.0, 103.0, 104.0, 105.0], 2, 0.0, "both"),
                                  [N, N, N, 1, N, N])
    # horizon 1: the present is not smoothed, so "both" equals "future"
    mid = [100.0, 101.0, 100.5, 100.5, 99.0]
    np.testing.assert_array_equal(fi2010_labels(mid, 1, 0.0, "both"), fi2010_labels(mid, 1, 0.0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(horizon=0), "horizon"), (dict(horizon=1.5), "horizon"), (dict(horizon=True), "horizon"),
    (dict(alpha=-0.1), "alpha"), (dict(alpha=np.nan), "alpha"), (dict(smoothing="past"), "smoothing"),
    (dict(mid=np.ones((2, 2))), "mid"),
])
def test_fi2010_rejects(kwargs, match):
    args = dict(mid=[1.0, 2.0, 3.0], horizon=1, alpha=0.0) | kwargs
    with pytest.raises(ValueError, match=match):
        fi2010_labels(**args)


# -- triple barrier: by hand -------------------------------------------------------------

def test_triple_barrier_touching_and_both_barriers():
    # Powers of two: the barriers are exact. t=0: 6 touches the upper (4*1.5), t=1: 3.75 =
    # 5*0.75 touches the lower; t=2: 3 <= 4.5; t=3: nothing after it.
    price = [4.0, 5.0, 6.0, 3.75]
    label, exit_index, ret = triple_barrier(price, 3, 0.5, 0.25)
    np.testing.assert_array_equal(label, [1, -1, -1, N])
    np.testing.assert_array_equal(exit_index, [2, 3, 3, -1])
    np.testing.assert_array_equal(ret, [0.5, -0.25, 3.75 / 6.0 - 1.0, np.nan])
    # just short of the barriers: no hit, and the series ends before the vertical barrier
    label, exit_index, ret = triple_barrier([4.0, 5.9999, 3.0001, 5.0], 4, 0.5, 0.25)
    assert (label[0], exit_index[0], np.isnan(ret[0])) == (N, -1, True)
    # the same walk with the vertical barrier on the last row
    label, exit_index, ret = triple_barrier([4.0, 5.9999, 3.0001, 5.0], 3, 0.5, 0.25)
    assert (label[0], exit_index[0], ret[0]) == (0, 3, 0.25)


def test_triple_barrier_vertical():
    price = [100.0, 100.2, 100.1, 100.0, 100.1, 100.0]  # moves of 0.2% at most: no 1% barrier
    label, exit_index, ret = triple_barrier(price, 2, 0.01, 0.01)
    np.testing.assert_array_equal(label, [0, 0, 0, 0, N, N])
    np.testing.assert_array_equal(exit_index, [2, 3, 4, 5, -1, -1])
    np.testing.assert_array_equal(ret, [100.1 / 100.0 - 1, 100.0 / 100.2 - 1, 0.0, 0.0, np.nan, np.nan])
    label, _, ret2 = triple_barrier(price, 2, 0.01, 0.01, vertical="sign")
    np.testing.assert_array_equal(label, [1, -1, 0, 0, N, N])  # zero returns stay 0
    np.testing.assert_array_equal(ret2, ret)


def test_triple_barrier_hit_before_the_series_ends():
    label, exit_index, ret = triple_barrier([4.0, 4.5, 6.0], 10, 0.5, 0.5)
    np.testing.assert_array_equal(label, [1, N, N])
    np.testing.assert_array_equal(exit_index, [2, -1, -1])
    assert ret[0] == 0.5


def test_triple_barrier_nan():
    nan = np.nan
    label, exit_index, ret = triple_barrier([4.0, nan, 6.0, 5.0], 2, 0.5, 0.5)
    # t=0 skips the NaN; t=1 is NaN; t=2, t=3: the series ends first
    np.testing.assert_array_equal(label, [1, N, N, N])
    np.testing.assert_array_equal(exit_index, [2, -1, -1, -1])
    # the vertical barrier falls on a NaN: the price in force (4.5) gives the return
    label, exit_index, ret = triple_barrier([4.0, 4.5, nan, 4.0], 2, 0.5, 0.5, vertical="sign")
    assert (label[0], exit_index[0], ret[0]) == (1, 2, 0.125)
    # all NaN up to the vertical barrier: nothing moved
    label, exit_index, ret = triple_barrier([4.0, nan, nan], 2, 0.5, 0.5, vertical="sign")
    assert (label[0], exit_index[0], ret[0]) == (0, 2, 0.0)


def test_triple_barrier_per_row_widths():
    price = [4.0, 5.0, 6.0, 3.0, 4.0]
    upper = [0.5, np.nan, 0.1, 0.5, 0.5]  # NaN: e.g. a volatility still warming up
    lower = [np.inf, 0.5, 0.5, 0.5, 0.5]  # inf: no lower barrier
    label, exit_index, _ = triple_barrier(price, 1, upper, lower)
    # t=0: 5 < 6 -> vertical; t=1 unlabelled; t=2: 3 <= 3 touches; t=3: 4 < 4.5 -> vertical
    np.testing.assert_array_equal(label, [0, N, -1, 0, N])
    np.testing.assert_array_equal(exit_index, [1, -1, 3, 4, -1])
    label, _, _ = triple_barrier([4.0, 1e-9], 1, np.inf, np.inf)
    assert label[0] == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(horizon=0), "horizon"), (dict(upper=0.0), "upper"), (dict(lower=-0.1), "lower"),
    (dict(upper=[0.1, 0.1]), "upper"), (dict(upper=[0.1, 0.0, 0.1]), "upper: .* row 1"),
    (dict(lower=np.ones((3, 1))), "lower"),
    (dict(vertical="up"), "vertical"), (dict(price=np.ones((3, 3))), "price"),
])
def test_triple_barrier_rejects(kwargs, match):
    args = dict(price=[1.0, 2.0, 3.0], horizon=1, upper=0.1, lower=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        triple_barrier(**args)


# -- class balance --------------------------------------------------------------------------

def test_class_balance():
    table = class_balance(np.array([1, 1, 0, -1, N, N], np.int8))
    assert list(table.index) == [-1, 0, 1] and table.index.name == "label"
    assert table["count"].tolist() == [1, 1, 2]
    np.testing.assert_allclose(table["share"], [0.25, 0.25, 0.5])
    assert table["name"].tolist() == ["down", "flat", "up"]
    empty = class_balance(np.array([N, N], np.int8))
    assert empty["count"].sum() == 0 and empty["share"].isna().all()
    with pytest.raises(ValueError, match="unexpected"):
        class_balance([0, 2])
    assert isinstance(class_balance(pd.Series([1, -1])), pd.DataFrame)


# -- property tests: the kernels against the plain loops ---------------------------------

# Mids on a tick grid, so that equal windows and exact ties happen often.
ticks = st.lists(st.one_of(st.integers(19_990, 20_010).map(lambda k: k * 0.05), st.just(np.nan)),
                 min_size=0, max_size=40)


@settings(max_examples=300, deadline=None)
@given(mid=ticks, horizon=st.integers(1, 6), alpha=st.sampled_from([0.0, 2.5e-5, 1e-4, 5e-4, 1e-3]),
       smoothing=st.sampled_from(["future", "both"]))
def test_fi2010_matches_the_loop(mid, horizon, alpha, smoothing):
    mid = np.array(mid, float)
    np.testing.assert_array_equal(fi2010_labels(mid, horizon, alpha, smoothing),
                                  fi2010_loop(mid, horizon, alpha, smoothing))


@settings(max_examples=300, deadline=None)
@given(mid=ticks, horizon=st.integers(1, 6), upper=st.sampled_from([1e-4, 2.5e-4, 5e-4, np.inf]),
       lower=st.sampled_from([1e-4, 2.5e-4, 5e-4]), per_row=st.booleans(),
       vertical=st.sampled_from(["zero", "sign"]))
def test_triple_barrier_matches_the_loop(mid, horizon, upper, lower, per_row, vertical):
    price = np.array(mid, float)
    if per_row:  # widths that change row to row, some unknown
        k = np.arange(len(price))
        upper = np.where(k % 7 == 3, np.nan, upper * (1 + k % 3))
        lower = lower * (1 + k % 2)
    assert_same_barriers(triple_barrier(price, horizon, upper, lower, vertical),
                         triple_barrier_loop(price, horizon, upper, lower, vertical))


# -- a real capture -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_mid():
    from tests.features_data import real
    snaps, _ = real("usdm_btcusdt_20240808.jsonl.gz")
    return (snaps.bid_px[:, 0] + snaps.ask_px[:, 0]) / 2


@pytest.mark.slow
@pytest.mark.parametrize("horizon, alpha, smoothing", [
    (10, 0.0, "future"), (50, 2e-5, "future"), (20, 1e-5, "both"),
])
def test_fi2010_on_a_real_capture(real_mid, horizon, alpha, smoothing):
    labels = fi2010_labels(real_mid, horizon, alpha, smoothing)
    np.testing.assert_array_equal(labels, fi2010_loop(real_mid, horizon, alpha, smoothing))
    balance = class_balance(labels)
    assert balance["count"].sum() == len(real_mid) - horizon - (horizon - 1) * (smoothing == "both")
    assert (balance["count"] > 0).all()


@pytest.mark.slow
def test_triple_barrier_on_a_real_capture(real_mid):
    returns = pd.Series(real_mid).pct_change()
    volatility = returns.rolling(100).std()
    assert (volatility == 0).any()  # the mid can sit still for 100 events: those rows go unlabelled
    volatility = volatility.where(volatility > 0).to_numpy()  # and NaN for the first 100 rows
    for upper, lower, vertical in ((2e-4, 2e-4, "zero"), (2 * volatility, 3 * volatility, "sign")):
        got = triple_barrier(real_mid, 200, upper, lower, vertical)
        assert_same_barriers(got, triple_barrier_loop(real_mid, 200, upper, lower, vertical))
        assert set(np.unique(got[0])) >= {-1, 0, 1, N} - ({0} if vertical == "sign" else set())
