"""Depth features on small books computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from genesis.features import FeatureSpec, Snapshots, compute_matrix

NAN = np.nan


def book(rows, levels=3) -> Snapshots:
    """Snapshots from rows of ``(bids, asks)``, each a list of (price, size), best first."""
    n = len(rows)
    arrays = {name: np.full((n, levels), NAN) for name in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
    for i, (bids, asks) in enumerate(rows):
        for side, levels_ in (("bid", bids), ("ask", asks)):
            for k, (px, sz) in enumerate(levels_):
                arrays[f"{side}_px"][i, k] = px
                arrays[f"{side}_sz"][i, k] = sz
    return Snapshots(np.arange(n, dtype=np.int64) * 1_000_000, **arrays)


def compute(snaps: Snapshots, *items: str) -> dict[str, np.ndarray]:
    matrix, spec = compute_matrix(snaps, None, list(items))
    return dict(zip(spec.columns, matrix))


FULL = ([(100.0, 2.0), (99.0, 3.0), (98.0, 5.0)], [(101.0, 1.0), (102.0, 3.0)])  # third ask missing
BIDS_ONLY = ([(100.0, 2.0), (99.0, 3.0)], [])
ASKS_ONLY = ([], [(101.0, 1.0), (102.0, 3.0), (103.0, 1.0)])
EMPTY = ([], [])


def test_depth_sums_sizes_over_the_levels_and_missing_levels_count_zero():
    out = compute(book([FULL, BIDS_ONLY, ASKS_ONLY, EMPTY]),
                  "bid_depth(levels=1)", "bid_depth(levels=2)", "bid_depth(levels=3)",
                  "ask_depth(levels=1)", "ask_depth(levels=3)")
    np.testing.assert_array_equal(out["bid_depth_l1"], [2.0, 2.0, 0.0, NAN])
    np.testing.assert_array_equal(out["bid_depth_l2"], [5.0, 5.0, 0.0, NAN])
    np.testing.assert_array_equal(out["bid_depth_l3"], [10.0, 5.0, 0.0, NAN])
    np.testing.assert_array_equal(out["ask_depth_l1"], [1.0, 0.0, 1.0, NAN])
    np.testing.assert_array_equal(out["ask_depth_l3"], [4.0, 0.0, 5.0, NAN])


def test_depth_imbalance_is_cumulative_and_one_sided_books_give_plus_minus_one():
    out = compute(book([FULL, BIDS_ONLY, ASKS_ONLY, EMPTY]), "depth_imbalance(levels=1)",
                  "depth_imbalance(levels=3)")
    np.testing.assert_allclose(out["depth_imbalance_l1"], [(2 - 1) / 3, 1.0, -1.0, NAN])
    np.testing.assert_allclose(out["depth_imbalance_l3"], [(10 - 4) / 14, 1.0, -1.0, NAN])


def test_notional_sums_price_times_size():
    out = compute(book([FULL, BIDS_ONLY, EMPTY]), "bid_notional(levels=2)", "ask_notional(levels=3)")
    np.testing.assert_allclose(out["bid_notional_l2"], [200.0 + 297.0, 200.0 + 297.0, NAN])
    np.testing.assert_allclose(out["ask_notional_l3"], [101.0 + 306.0, 0.0, NAN])


def test_book_slope_is_the_ols_slope_of_cumulative_size_on_distance_in_bps():
    out = compute(book([FULL]), "book_slope_bid(levels=3)", "book_slope_ask(levels=3)",
                  "book_slope_bid(levels=2)")
    mid = 100.5
    bps = 1e4 / mid  # bps per unit of price at this mid
    # Bids: distances 0.5, 1.5, 2.5 (price units), cumulative sizes 2, 5, 10:
    # centred distances -1, 0, 1; slope = sum(dx * y) / sum(dx^2) = (-2 + 10) / 2 = 4 per price unit.
    np.testing.assert_allclose(out["book_slope_bid_l3"], [4.0 / bps], rtol=1e-12)
    # Asks: two levels present (0.5 -> 1, 1.5 -> 4): slope 3 per price unit.
    np.testing.assert_allclose(out["book_slope_ask_l3"], [3.0 / bps], rtol=1e-12)
    # Two bid levels: (0.5, 2), (1.5, 5): slope 3.
    np.testing.assert_allclose(out["book_slope_bid_l2"], [3.0 / bps], rtol=1e-12)
    x = np.array([0.5, 1.5, 2.5]) * bps
    np.testing.assert_allclose(out["book_slope_bid_l3"], [np.polyfit(x, [2.0, 5.0, 10.0], 1)[0]], rtol=1e-9)


def test_book_slope_is_nan_without_two_levels_a_mid_or_spread_in_distance():
    one_level = ([(100.0, 2.0)], [(101.0, 1.0), (102.0, 2.0)])
    same_price = ([(100.0, 2.0), (100.0, 3.0)], [(101.0, 1.0), (102.0, 2.0)])
    out = compute(book([one_level, same_price, BIDS_ONLY, ASKS_ONLY, EMPTY]),
                  "book_slope_bid(levels=3)", "book_slope_ask(levels=3)")
    np.testing.assert_array_equal(out["book_slope_bid_l3"], [NAN] * 5)
    # Asks (0.5 -> 1, 1.5 -> 3): 2 per price unit. One-sided books have no mid: NaN even on
    # the side that has levels.
    np.testing.assert_allclose(out["book_slope_ask_l3"], [2.0 * 100.5 / 1e4] * 2 + [NAN] * 3, rtol=1e-12)


def test_a_level_with_a_price_but_no_size_is_missing():
    snaps = book([FULL])
    snaps.bid_sz[0, 1] = NAN
    out = compute(snaps, "bid_depth(levels=3)", "bid_notional(levels=3)", "depth_imbalance(levels=3)")
    assert out["bid_depth_l3"][0] == 7.0
    assert out["bid_notional_l3"][0] == 200.0 + 490.0
    assert out["depth_imbalance_l3"][0] == pytest.approx((7 - 4) / 11)


def test_single_row_and_levels_parameter():
    out = compute(book([FULL], levels=5), "bid_depth", "ask_depth(levels=2)")
    assert out == {"bid_depth_l5": [10.0], "ask_depth_l2": [4.0]}
    assert FeatureSpec(["bid_depth(levels=7)"]).levels == 7
    assert FeatureSpec(["book_slope_ask"]).levels == 10
    with pytest.raises(ValueError, match="snapshots have 3 levels"):
        compute(book([FULL]), "bid_depth")  # levels=5 by default


def test_column_names_use_the_levels_abbreviation():
    spec = FeatureSpec(["bid_depth(levels=1)", "depth_imbalance(levels=20)", "bid_notional", "book_slope_bid"])
    assert spec.columns == ["bid_depth_l1", "depth_imbalance_l20", "bid_notional_l5", "book_slope_bid_l10"]
