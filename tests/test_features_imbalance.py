"""Imbalance features on small books computed by hand; OFI windows against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from genesis.features import FeatureSpec, OnlineFeatures, compute_matrix
from genesis.features.reference import reference_features
from tests import features_data
from tests.test_features_depth import ASKS_ONLY, BIDS_ONLY, EMPTY, FULL, NAN, book, compute


def test_obi_is_the_best_level_imbalance_and_nan_on_a_one_sided_book():
    out = compute(book([FULL, ([(100.0, 3.0)], [(101.0, 1.0)]), BIDS_ONLY, ASKS_ONLY, EMPTY]), "obi")
    np.testing.assert_allclose(out["obi"], [1 / 3, 0.5, NAN, NAN, NAN])


def test_obi_weighted_decays_by_level_and_missing_levels_count_zero():
    out = compute(book([FULL, BIDS_ONLY, ASKS_ONLY, EMPTY]), "obi_weighted(levels=3, decay=0.5)",
                  "obi_weighted(levels=3, decay=1)", "obi_weighted(levels=1, decay=0.5)",
                  "depth_imbalance(levels=3)")
    # qb = 2, 3, 5; qa = 1, 3, (missing): num = 1 + 0.5 * 0 + 0.25 * 5, den = 3 + 0.5 * 6 + 0.25 * 5.
    np.testing.assert_allclose(out["obi_weighted_l3_d0p5"], [2.25 / 7.25, 1.0, -1.0, NAN], rtol=1e-12)
    # decay = 1 weighs levels equally: the cumulative depth imbalance.
    np.testing.assert_allclose(out["obi_weighted_l3_d1"], out["depth_imbalance_l3"], rtol=1e-12)
    np.testing.assert_allclose(out["obi_weighted_l1_d0p5"], [1 / 3, 1.0, -1.0, NAN], rtol=1e-12)


@pytest.mark.parametrize("decay, message", [(1.5, "must be <= 1"), (0, "must be >= 0.01"), ("x", "not a number")])
def test_obi_weighted_refuses_a_decay_outside_0_1(decay, message):
    with pytest.raises(ValueError, match=message):
        FeatureSpec([f"obi_weighted(decay={decay})"])


# Rows for OFI at the best level, with the term e of each row worked out by hand
# (e = 1{Pb >= Pb'} qb - 1{Pb <= Pb'} qb' - 1{Pa <= Pa'} qa + 1{Pa >= Pa'} qa').
OFI_ROWS = [
    ([(100.0, 2.0)], [(101.0, 1.0)]),  # first row: NaN
    ([(100.0, 3.0)], [(101.0, 1.0)]),  # same prices: (3 - 2) + (-1 + 1) = 1
    ([(100.5, 1.0)], [(101.0, 2.0)]),  # bid up: +1; ask same: -2 + 1 -> 0
    ([(100.0, 4.0)], [(100.8, 1.0)]),  # bid down: -1 (the old size); ask down: -1 -> -2
    EMPTY,                             # empty row: NaN
    ([(100.0, 1.0)], [(101.0, 1.0)]),  # previous row empty: NaN
    ([(100.0, 1.0)], []),              # asks vanish: bid 0, ask +inf >= 101: +1 -> 1
    ([(100.0, 1.0)], [(101.0, 2.0)]),  # asks reappear: 101 <= +inf: -2 -> -2
]
OFI_TERMS = [NAN, 1.0, 0.0, -2.0, NAN, NAN, 1.0, -2.0]


def test_ofi_at_the_best_level_by_hand():
    out = compute(book(OFI_ROWS, levels=1), "ofi", "ofi(window=2)", "ofi(window=3)", "ofi(window=100)")
    np.testing.assert_array_equal(out["ofi_l1_w1"], OFI_TERMS)
    # Windows skip NaN terms, and are NaN only when every term in them is.
    np.testing.assert_array_equal(out["ofi_l1_w2"], [NAN, 1.0, 1.0, -2.0, -2.0, NAN, 1.0, -1.0])
    np.testing.assert_array_equal(out["ofi_l1_w3"], [NAN, 1.0, 1.0, -1.0, -2.0, -2.0, 1.0, -1.0])
    np.testing.assert_array_equal(out["ofi_l1_w100"], [NAN, 1.0, 1.0, -1.0, -1.0, -1.0, 0.0, -2.0])


def test_ofi_of_a_deeper_level_counts_a_level_that_appears_or_vanishes_with_its_size():
    rows = [
        ([(100.0, 2.0), (99.0, 4.0)], [(101.0, 1.0), (102.0, 3.0)]),
        ([(100.0, 2.0)], [(101.0, 1.0), (102.0, 5.0)]),                 # bid level 2 vanishes: -4; ask: -5 + 3
        ([(100.0, 2.0), (99.5, 7.0)], [(101.0, 1.0)]),                  # bid level 2 appears: +7; ask vanishes: +5
        ([(100.0, 2.0), (99.5, 7.0)], [(101.0, 1.0), (101.5, 2.0)]),    # same bid: 7 - 7; ask appears: -2
    ]
    out = compute(book(rows, levels=2), "ofi(level=1)", "ofi(level=2)", "ofi_multi(levels=2)",
                  "ofi_multi(levels=2, window=2)")
    np.testing.assert_array_equal(out["ofi_l1_w1"], [NAN, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(out["ofi_l2_w1"], [NAN, -6.0, 12.0, -2.0])
    np.testing.assert_array_equal(out["ofi_multi_l2_w1"], [NAN, -6.0, 12.0, -2.0])
    np.testing.assert_array_equal(out["ofi_multi_l2_w2"], [NAN, -6.0, 6.0, 10.0])


def test_ofi_on_a_single_row_is_nan():
    out = compute(book(OFI_ROWS[:1], levels=1), "ofi(window=5)", "ofi_multi(levels=1)")
    np.testing.assert_array_equal(out["ofi_l1_w5"], [NAN])
    np.testing.assert_array_equal(out["ofi_multi_l1_w1"], [NAN])


def test_ofi_multi_is_the_sum_of_the_per_level_ofi():
    snaps, trades = features_data.edge_cases()["nan_levels"]
    levels = [f"ofi(level={m})" for m in range(1, 6)]
    out = compute_matrix(snaps, trades, [*levels, "ofi_multi(levels=5)"])[0]
    np.testing.assert_allclose(out[-1], out[:-1].sum(axis=0), rtol=1e-12, atol=1e-12, equal_nan=True)


WINDOWED = ["ofi(level=2, window=7)", "ofi(level=1, window=300)", "ofi_multi(levels=5, window=13)",
            "ofi_multi(levels=20, window=1000)", "obi_weighted(levels=20, decay=0.9)",
            "obi_weighted(levels=4, decay=0.01)"]


@pytest.mark.parametrize("case", ["synthetic", "nan_levels", "one_sided", "constant_book", "single_snapshot"])
def test_windows_longer_than_a_row_match_the_reference_and_online_equals_batch(case):
    """Windows that wrap their ring many times, across the engine's 256-row blocks."""
    snaps, trades = features_data.edge_cases()[case]
    spec = FeatureSpec(WINDOWED)
    batch, _ = compute_matrix(snaps, trades, spec)
    ref = reference_features(snaps, trades, spec)
    for j, column in enumerate(spec.columns):
        scale = max(1.0, np.nanmax(np.abs(ref[column])) if np.isfinite(ref[column]).any() else 1.0)
        np.testing.assert_allclose(batch[j], ref[column], rtol=1e-9, atol=1e-12 * scale, equal_nan=True,
                                   err_msg=f"{column} on {case}")
    engine = OnlineFeatures(spec, levels=snaps.levels)
    online = np.stack([engine.on_book(snaps.ts[i], snaps.bid_px[i], snaps.bid_sz[i], snaps.ask_px[i],
                                      snaps.ask_sz[i]).copy() for i in range(len(snaps))], axis=1)
    np.testing.assert_array_equal(online, batch)


def test_levels_and_lookback_of_ofi():
    spec = FeatureSpec(["ofi(level=3, window=10)"])
    assert spec.columns == ["ofi_l3_w10"] and spec.levels == 3 and spec.lookback == 11
    assert FeatureSpec(["ofi_multi(levels=4)"]).levels == 4
    assert FeatureSpec(["obi_weighted"]).columns == ["obi_weighted_l10_d0p5"]
    with pytest.raises(ValueError, match="snapshots have 1 levels"):
        compute(book(OFI_ROWS, levels=1), "ofi(level=2)")
