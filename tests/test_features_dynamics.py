"""Dynamics features on small series computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genesis.features import Snapshots, Trades, compute_matrix, get
from genesis.features.dynamics import FEATURES

NAN = np.nan
T0 = 1_723_161_256_505_000_123  # an exchange time in ns: beyond float64's exact integers


def book(rows, ts=None, updates=None, levels=3) -> Snapshots:
    """Snapshots from rows of ``(bids, asks)``, each a list of (price, size), best first."""
    n = len(rows)
    arrays = {name: np.full((n, levels), NAN) for name in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
    for i, (bids, asks) in enumerate(rows):
        for side, side_levels in (("bid", bids), ("ask", asks)):
            for k, (px, sz) in enumerate(side_levels):
                arrays[f"{side}_px"][i, k] = px
                arrays[f"{side}_sz"][i, k] = sz
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_000 if ts is None else np.asarray(ts, np.int64)
    return Snapshots(ts, **arrays, updates=updates)


def quotes(bids, asks) -> Snapshots:
    """One level per side, size 1; a NaN price leaves that side empty."""
    return book([([(b, 1.0)] if b == b else [], [(a, 1.0)] if a == a else []) for b, a in zip(bids, asks)])


def mids(values) -> Snapshots:
    """A book whose mid is each value (spread 2); NaN gives an empty row."""
    return quotes([m - 1.0 for m in values], [m + 1.0 for m in values])


def compute(snaps: Snapshots, *items: str, trades: Trades | None = None) -> dict[str, np.ndarray]:
    matrix, spec = compute_matrix(snaps, trades, list(items))
    return dict(zip(spec.columns, matrix))


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)


# -- returns, volatility, range -----------------------------------------------------------

def test_log_return_over_h_rows_is_nan_at_the_start_and_around_empty_rows():
    out = compute(mids([100.0, 101.0, NAN, 102.0, 103.0]), "log_return", "log_return(horizon=2)")
    close(out["log_return_h1"], [NAN, math.log(101 / 100), NAN, NAN, math.log(103 / 102)])
    close(out["log_return_h2"], [NAN, NAN, NAN, math.log(102 / 101), NAN])


def test_realized_vol_skips_undefined_returns_and_is_nan_without_any():
    l1, l4 = math.log(101 / 100), math.log(103 / 102)
    out = compute(mids([100.0, 101.0, NAN, 102.0, 103.0, 103.0]), "realized_vol(window=2)", "realized_vol(window=3)")
    # returns: [NaN, l1, NaN, NaN, l4, 0]; window 2 at row 3 holds only undefined ones.
    close(out["realized_vol_w2"], [NAN, abs(l1), abs(l1), NAN, abs(l4), abs(l4)])
    close(out["realized_vol_w3"], [NAN, abs(l1), abs(l1), abs(l1), abs(l4), abs(l4)])


def test_realized_vol_of_a_window_without_moves_is_exactly_zero():
    # The running sum drops a large square and keeps zeros: no rounding residue may remain.
    out = compute(mids([100.0, 100.7, 100.7, 100.7, 100.7, 100.7, 100.7, 100.7]), "realized_vol(window=3)")
    assert out["realized_vol_w3"][1] > 0
    assert np.all(out["realized_vol_w3"][5:] == 0.0)


def test_realized_range_over_the_window_skips_empty_rows():
    out = compute(mids([100.0, 102.0, NAN, 99.0, NAN, NAN, NAN]), "realized_range_bps(window=3)",
                  "realized_range_bps(window=1)")
    # The last mid is the window's latest valid one (102 at row 2, 99 at rows 4 and 5).
    close(out["realized_range_bps_w3"], [0.0, 2 / 102 * 1e4, 2 / 102 * 1e4, 3 / 99 * 1e4, 0.0, 0.0, NAN])
    close(out["realized_range_bps_w1"], [0.0, 0.0, NAN, 0.0, NAN, NAN, NAN])


@pytest.mark.parametrize("window", [1, 2, 3, 5, 8])
def test_realized_range_across_many_ring_wraps_equals_a_direct_max_and_min(window):
    rng = np.random.default_rng(window)
    values = 100.0 + rng.integers(-5, 6, 40).astype(float)
    values[rng.random(40) < 0.2] = NAN
    values[20:26] = NAN  # a run of empty rows longer than some windows
    got = compute(mids(values), f"realized_range_bps(window={window})")[f"realized_range_bps_w{window}"]
    want = []
    for i in range(len(values)):
        inside = values[max(0, i - window + 1): i + 1]
        valid = inside[~np.isnan(inside)]
        want.append((valid.max() - valid.min()) / valid[-1] * 1e4 if len(valid) else NAN)
    close(got, want)


# -- EWMA baselines -----------------------------------------------------------------------

def test_spread_ewma_and_z_by_hand():
    # halflife 1: alpha = 0.5. Spreads 1, 3, (one-sided), 3, 7.
    snaps = quotes([100.0, 100.0, 100.0, 100.0, 100.0], [101.0, 103.0, NAN, 103.0, 107.0])
    out = compute(snaps, "spread_ewma(halflife=1)", "spread_z(halflife=1)")
    # m: 1; 2 (v 0.5 * (0 + 0.5 * 4) = 1); unchanged; 2.5 (v 0.5 * (1 + 0.5 * 1) = 0.75); 4.75
    close(out["spread_ewma_hl1"], [1.0, 2.0, NAN, 2.5, 4.75])
    # z against the state before the row: v = 0 at row 1, NaN spread at row 2.
    close(out["spread_z_hl1"], [NAN, NAN, NAN, 1.0, 4.5 / math.sqrt(0.75)])


def test_ewma_alpha_follows_the_halflife():
    # After one half-life the first value's weight is 1/2: 0 then ten 1s at halflife 10.
    snaps = quotes([100.0] * 11, [100.5] + [101.0] * 10)
    out = compute(snaps, "spread_ewma(halflife=10)")["spread_ewma_hl10"]
    close(out[10], 0.5 * 0.5 + 0.5 * 1.0)


def test_spread_z_ignores_rounding_noise_in_the_spread():
    # These spreads are all one tick (0.1), but differ in the last bits (61800.3 - 61800.2 is
    # not 61800.1 - 61800.0): a z-score of that noise would be ~1e11 on the jump.
    bids = [61800.2, 61800.0, 61800.2, 61800.0, 61800.2, 61800.0, 61799.6]
    asks = [61800.3, 61800.1, 61800.3, 61800.1, 61800.3, 61800.1, 61800.4]
    spreads = np.subtract(asks, bids)
    assert len(set(spreads[:6])) == 2
    out = compute(quotes(bids, asks), "spread_z(halflife=5)")["spread_z_hl5"]
    assert np.isnan(out).all()


def test_depth_ewma_and_z_by_hand():
    rows = [
        ([(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)], [(101.0, 1.0), (102.0, 1.0), (103.0, 1.0)]),  # 5 at l2
        ([(100.0, 2.0)], [(101.0, 1.0), (102.0, 1.0)]),  # missing second bid counts 0: 4
        ([], []),  # empty: NaN, state unchanged
        ([(100.0, 3.0), (99.0, 3.0)], []),  # one-sided: 6
    ]
    out = compute(book(rows), "depth_ewma(levels=2, halflife=1)", "depth_z(levels=2, halflife=1)")
    # m: 5; 4.5 (v 0.5 * (0 + 0.5 * 1) = 0.25); -; 5.25
    close(out["depth_ewma_l2_hl1"], [5.0, 4.5, NAN, 5.25])
    close(out["depth_z_l2_hl1"], [NAN, NAN, NAN, 1.5 / 0.5])


def _trades(rows_qty, snaps):
    """One buy per (row, qty) pair, stamped at that row's time."""
    ts = [snaps.ts[r] for r, _ in rows_qty]
    return Trades(ts, [100.0] * len(ts), [q for _, q in rows_qty], [1] * len(ts))


def test_volume_ewma_and_z_by_hand_with_zero_volume_rows():
    snaps = mids([100.0] * 4)
    out = compute(snaps, "volume_ewma(halflife=1)", "volume_z(halflife=1)", trades=_trades([(1, 2.0)], snaps))
    # x = 0, 2, 0, 0. m: 0; 1 (v 1); 0.5 (v 0.75); 0.25
    close(out["volume_ewma_hl1"], [0.0, 1.0, 0.5, 0.25])
    close(out["volume_z_hl1"], [NAN, NAN, -1.0, -0.5 / math.sqrt(0.75)])
    none = compute(snaps, "volume_ewma", "volume_z")
    close(none["volume_ewma_hl100"], [0.0] * 4)
    close(none["volume_z_hl100"], [NAN] * 4)


# -- message rates ------------------------------------------------------------------------

SECOND = 1_000_000_000


def test_message_rate_divides_by_the_time_since_row_i_minus_w():
    ts = T0 + np.array([0, SECOND + 1, SECOND + 1, 3 * SECOND, 4 * SECOND + 7])
    snaps = book([([(100.0, 1.0)], [(101.0, 1.0)])] * 5, ts=ts, updates=[5, 10, 2, 4, 6])
    out = compute(snaps, "message_rate(window=2)", "message_rate(window=1)")
    el = lambda a, b: int(ts[a] - ts[b]) / 1e9  # noqa: E731  (exact int64 differences)
    # window 2: rows 0, 1 have no row i-2 and count from ts[0]; row 0 has no elapsed time.
    np.testing.assert_array_equal(out["message_rate_w2"], [NAN, 15 / el(1, 0), 12 / el(2, 0), 6 / el(3, 1),
                                                         10 / el(4, 2)])
    # window 1: rows 1 and 2 share a timestamp, so row 2 has no elapsed time.
    np.testing.assert_array_equal(out["message_rate_w1"], [NAN, 10 / el(1, 0), NAN, 4 / el(3, 2), 6 / el(4, 3)])


def test_order_to_trade_is_nan_while_the_window_has_no_trade():
    snaps = book([([(100.0, 1.0)], [(101.0, 1.0)])] * 5, updates=[5, 10, 2, 4, 9])
    trades = _trades([(2, 1.0), (2, 1.0), (2, 1.0), (3, 1.0)], snaps)  # n_trades 0, 0, 3, 1, 0
    out = compute(snaps, "order_to_trade(window=2)", trades=trades)
    close(out["order_to_trade_w2"], [NAN, NAN, 12 / 3, 6 / 4, 13 / 1])


@pytest.mark.parametrize("window", [1, 3, 4])
def test_windowed_sums_across_ring_wraps_equal_direct_sums(window):
    rng = np.random.default_rng(5)
    n = 23
    ts = T0 + np.cumsum(rng.integers(1, 4, n)) * 250_000_000
    updates = rng.integers(0, 20, n).astype(float)
    snaps = book([([(100.0, 1.0)], [(101.0, 1.0)])] * n, ts=ts, updates=updates)
    counts = rng.integers(0, 3, n)
    trades = _trades([(i, 1.0) for i in range(n) for _ in range(counts[i])], snaps)
    out = compute(snaps, f"message_rate(window={window})", f"order_to_trade(window={window})", trades=trades)
    rate, ratio = [], []
    for i in range(n):
        lo = max(0, i - window + 1)
        elapsed = int(ts[i] - ts[i - window if i >= window else 0]) / 1e9
        rate.append(updates[lo:i + 1].sum() / elapsed if elapsed else NAN)
        ratio.append(updates[lo:i + 1].sum() / counts[lo:i + 1].sum() if counts[lo:i + 1].sum() else NAN)
    np.testing.assert_array_equal(out[f"message_rate_w{window}"], rate)
    np.testing.assert_array_equal(out[f"order_to_trade_w{window}"], ratio)


# -- a single row, and the registry -------------------------------------------------------

def test_a_single_row():
    snaps = book([([(100.0, 1.0), (99.0, 2.0)], [(101.0, 3.0)])], updates=[7], levels=10)
    out = compute(snaps, *(f.name for f in FEATURES), trades=_trades([(0, 2.0)], snaps))
    for name in ("log_return_h1", "realized_vol_w100", "spread_z_hl100", "depth_z_l10_hl100", "volume_z_hl100",
                 "message_rate_w100"):
        assert np.isnan(out[name][0]), name
    assert out["realized_range_bps_w100"][0] == 0.0
    assert out["spread_ewma_hl100"][0] == 1.0
    assert out["depth_ewma_l10_hl100"][0] == 6.0
    assert out["volume_ewma_hl100"][0] == 2.0
    assert out["order_to_trade_w100"][0] == 7.0


def test_registry_entries():
    assert [f.name for f in FEATURES] == [
        "log_return", "realized_vol", "realized_range_bps", "spread_ewma", "spread_z", "depth_ewma", "depth_z",
        "volume_ewma", "volume_z", "message_rate", "order_to_trade"]
    assert get("log_return").bind(horizon=10).lookback == 10
    assert get("realized_vol").bind(window=1000).lookback == 1000
    assert get("depth_z").bind(levels=5, halflife=30).lookback == 300
    assert get("depth_z").bind(levels=5).levels == 5
    assert get("spread_ewma").bind(halflife=2.5).column == "spread_ewma_hl2p5"
