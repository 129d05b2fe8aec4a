"""Trade features on small hand-computed cases (the generic kernel = reference, online =
batch and look-ahead checks are in test_features.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genesis.features import OnlineFeatures, Snapshots, Trades, compute_matrix
from tests import features_data

S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S
nan = np.nan


def book(mids, ts=None, half=1.0) -> Snapshots:
    """An L1 book around the given mids (NaN mid: an empty ask, i.e. a one-sided book)."""
    mids = np.asarray(mids, dtype=float)
    n = len(mids)
    ts = T0 + (np.arange(1, n + 1) * S if ts is None else np.asarray(ts, dtype=np.int64))
    bid = np.where(np.isnan(mids), 100.0, mids - half)
    ask = mids + half
    return Snapshots(ts, bid, np.ones(n), ask, np.ones(n))


def trades(*rows) -> Trades:
    """(seconds after T0, price, qty, side) tuples."""
    if not rows:
        return Trades.empty()
    t, px, qty, side = zip(*rows)
    return Trades(T0 + np.round(np.array(t) * S).astype(np.int64), px, qty, side)


def run(snaps: Snapshots, trades_: Trades, *items: str) -> dict[str, np.ndarray]:
    matrix, spec = compute_matrix(snaps, trades_, list(items))
    return dict(zip(spec.columns, matrix))


def one(snaps, trades_, item):
    return next(iter(run(snaps, trades_, item).values()))


# The main case: 6 rows one second apart, mids below; row 4's book is one-sided.
#   row 0 (t=1s): a buy 1 @ 101 (given side)
#   row 1 (t=2s): a sell 2 @ 98.5; an unsided 3 @ 101 at exactly t=2s (rows include their own
#                 time; Lee-Ready: 101 > mid_before 100, a buy)
#   row 2: no trades
#   row 3: an unsided 4 @ 100 (100 < mid_before 101: a sell)
#   row 4: a buy of zero quantity
#   row 5: no trades; a trade after the last row belongs to no row
MIDS = [100.0, 100.0, 101.0, 101.0, nan, 102.0]
TRADES = [(0.5, 101.0, 1.0, 1), (1.5, 98.5, 2.0, -1), (2.0, 101.0, 3.0, 0), (3.5, 100.0, 4.0, 0),
          (4.2, 101.0, 0.0, 1), (6.5, 100.0, 9.0, 1)]


@pytest.fixture(scope="module")
def case():
    return book(MIDS), trades(*TRADES)


def check(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_volumes_and_counts(case):
    got = run(*case, "trade_volume", "trade_volume(window=2)", "trade_volume(window=3)", "buy_volume",
              "sell_volume", "trade_count", "trade_count(window=2)", "signed_volume", "signed_volume(window=3)",
              "buy_volume(window=2)", "sell_volume(window=2)")
    check(got["trade_volume_w1"], [1, 5, 0, 4, 0, 0])
    check(got["trade_volume_w2"], [1, 6, 5, 4, 4, 0])
    check(got["trade_volume_w3"], [1, 6, 6, 9, 4, 4])
    check(got["buy_volume_w1"], [1, 3, 0, 0, 0, 0])
    check(got["sell_volume_w1"], [0, 2, 0, 4, 0, 0])
    check(got["buy_volume_w2"], [1, 4, 3, 0, 0, 0])
    check(got["sell_volume_w2"], [0, 2, 2, 4, 4, 0])
    check(got["trade_count_w1"], [1, 2, 0, 1, 1, 0])
    check(got["trade_count_w2"], [1, 3, 2, 1, 2, 1])
    check(got["signed_volume_w1"], [1, 1, 0, -4, 0, 0])
    check(got["signed_volume_w3"], [1, 2, 2, -3, -4, -4])


def test_trade_imbalance(case):
    got = run(*case, "trade_imbalance(window=2)", "trade_imbalance(window=1)")
    check(got["trade_imbalance_w2"], [1, 2 / 6, 1 / 5, -1, -1, nan])  # rows 4-5: only a zero-qty trade
    check(got["trade_imbalance_w1"], [1, 1 / 5, nan, -1, nan, nan])


def test_trade_intensity(case):
    # elapsed = ts[i] - ts[i-w], or ts[i] - ts[0] before the window fills; row 0: nothing elapsed
    check(one(*case, "trade_intensity(window=2)"), [nan, 3 / 1, 2 / 2, 1 / 2, 2 / 2, 1 / 2])
    check(one(*case, "trade_intensity(window=1)"), [nan, 2, 0, 1, 1, 0])


def test_trade_intensity_at_nanosecond_resolution():
    # Timestamps near 1.7e18 ns do not fit a float64 exactly; the gaps of 1 and 2 ns must.
    snaps = book([100.0] * 4, ts=[0, 1, 3, 3])
    t = Trades(T0 + np.array([0, 1, 3]), [100.0] * 3, [1.0] * 3, [1, 1, 1])
    check(one(snaps, t, "trade_intensity(window=1)"), [nan, 1e9, 0.5e9, nan])  # row 3: same ts
    check(one(snaps, t, "trade_intensity(window=2)"), [nan, 2e9, 2 / 3e-9, 1 / 2e-9])


def test_trade_vwap(case):
    check(one(*case, "trade_vwap(window=2)"), [101, 601 / 6, 100, 100, 100, nan])
    check(one(*case, "trade_vwap(window=1)"), [101, 100, nan, 100, nan, nan])


def test_effective_spread(case):
    # row 0: no quote in force; row 1: sell @ 98.5 pays 2*1.5/100*1e4 = 300, buy @ 101 pays 200,
    # volume-weighted (2*300 + 3*200)/5; row 3: sell @ 100 under a 101 mid; row 4: zero volume
    check(one(*case, "effective_spread_bps"), [nan, 240, nan, 2e4 / 101, nan, nan])


def test_realized_spread(case):
    # delay 1: row 2 measures row 1's trades against mid[2] = 101: the sell earned
    # 2*(101-98.5)/100*1e4 = 500, the buy at 101 earned 0: (2*500 + 3*0)/5 = 200.
    # row 4 measures row 3 against an empty mid; row 5 measures row 4's zero volume.
    check(one(*case, "realized_spread_bps(delay=1)"), [nan, nan, 200, nan, nan, nan])
    # delay 2: row 3 sees row 1 against mid 101; row 5 sees row 3 (sell @ 100, quote 101) against 102
    check(one(*case, "realized_spread_bps(delay=2)"), [nan, nan, nan, 200, nan, 2 * 2 / 101 * 1e4])


def test_lee_ready_share(case):
    check(one(*case, "lee_ready_share(window=2)"), [0, 1 / 3, 1 / 2, 1, 1 / 2, 0])
    check(one(*case, "lee_ready_share(window=1)"), [0, 1 / 2, nan, 1, 0, nan])


def test_amihud(case):
    r = math.log(101 / 100)  # the only defined non-zero mid move, at row 2
    check(one(*case, "amihud(window=2)"), [0, 0, r / 500 * 1e6, r / 400 * 1e6, 0, nan])


def test_kyle_lambda(case):
    # dm is defined at rows 1-3 only (row 0 has no previous mid, rows 4-5 touch the empty mid):
    # (x, dm) = (1, 0), (0, 1), (-4, 0).
    check(one(*case, "kyle_lambda(window=3)"), [nan, nan, -1, 1 / 14, 1 / 4, nan])


def test_kyle_lambda_needs_variance_in_the_signed_volume():
    snaps = book([100.0, 101.0, 100.5, 102.0, 101.0])
    t = trades((1.5, 101.0, 2.0, 1), (2.5, 100.0, 2.0, 1))  # rows 1 and 2 both x = 2
    # (x, dm): row 1 (2, 1), row 2 (2, -0.5), row 3 (0, 1.5), row 4 (0, -1)
    check(one(snaps, t, "kyle_lambda(window=2)"), [nan, nan, nan, (1.5 + 0.5) / (0 - 2), nan])
    check(one(snaps, Trades.empty(), "kyle_lambda(window=3)"), [nan] * 5)


def test_windowed_sums_keep_no_residue_of_a_burst():
    # A 1e8 trade at row 1, then small ones: plain running sums would keep ~1e-8 of the burst
    # in the volume and ~1 in sum(x^2), which swamps the variance of the small signed volumes.
    mids = np.array([100.0, 100, 101, 100, 102, 101, 103, 101])
    x = np.array([0.0, 1e8, -1e-3, 2e-3, -1e-3, 3e-3, 1e-3, -2e-3])  # signed volume per row
    t = trades(*((k + 0.5, 100.0, abs(x[k]), np.sign(x[k])) for k in range(1, 8)))
    got = run(book(mids), t, "trade_volume(window=3)", "trade_imbalance(window=3)", "kyle_lambda(window=4)")
    dm = np.diff(mids, prepend=nan)
    for i in range(4, 8):
        rows = slice(i - 2, i + 1)
        np.testing.assert_allclose(got["trade_volume_w3"][i], np.abs(x[rows]).sum(), rtol=1e-14)
        np.testing.assert_allclose(got["trade_imbalance_w3"][i], x[rows].sum() / np.abs(x[rows]).sum(), rtol=1e-12)
    for i in range(5, 8):
        rows = slice(i - 3, i + 1)
        slope = np.polyfit(x[rows], dm[rows], 1)[0]
        np.testing.assert_allclose(got["kyle_lambda_w4"][i], slope, rtol=1e-9)


def vpin_book():
    # mids 100, 101, 102, 101: dm = 0 (no previous mid), 1, 1, -1
    return book([100.0, 101.0, 102.0, 101.0], half=0.5)


def test_vpin_bulk_classification_by_hand():
    h = 1  # alpha = 1/2: var after row 1 = 0.5, after row 2 = 0.75
    t = trades((1.5, 100.0, 1.0, 0), (2.5, 125.0, 2.0, 0), (3.5, 150.0, 1.0, 0))  # notional 0, 100, 250, 150
    got = one(vpin_book(), t, f"vpin(bucket_notional=100, buckets=2, sigma_halflife={h})")
    p2 = 0.5 * (1 + math.erf(1 / math.sqrt(0.5) / math.sqrt(2)))  # row 2: dm 1, sigma sqrt(0.5)
    p3 = 0.5 * (1 + math.erf(-1 / math.sqrt(0.75) / math.sqrt(2)))  # row 3: dm -1, sigma sqrt(0.75)
    # row 1: sigma still 0, so f = 1/2: bucket 1 balanced. row 2 fills buckets 2 and 3 at f = p2
    # and leaves 50 open; row 3 closes bucket 4 (50 at p2 + 50 at p3) and fills bucket 5 at p3.
    want_2 = (2 * 100 * abs(2 * p2 - 1)) / (2 * 100)
    want_3 = (100 * abs(p2 + p3 - 1) + 100 * abs(2 * p3 - 1)) / (2 * 100)
    check(got, [nan, nan, want_2, want_3])


def test_vpin_one_row_completing_many_buckets():
    snaps = book([100.0] * 4)  # constant mid: every bar is split 50/50
    t = trades((0.5, 100.0, 10.0, 1), (2.5, 100.0, 0.5, 1), (3.5, 100.0, 100.0, -1))  # notional 1000, 0, 50, 1e4
    got = run(snaps, t, "vpin(bucket_notional=100, buckets=3, sigma_halflife=5)",
              "vpin(bucket_notional=100, buckets=11, sigma_halflife=5)",
              "vpin(bucket_notional=100, buckets=200, sigma_halflife=5)")
    check(got["vpin_n100_b3_h5"], [0, 0, 0, 0])  # 10 buckets complete in row 0 alone
    check(got["vpin_n100_b11_h5"], [nan, nan, nan, 0])  # 10.5 buckets until row 3
    check(got["vpin_n100_b200_h5"], [nan] * 4)  # 110.5 buckets in all


def test_single_row():
    snaps = book([100.0])
    t = trades((0.5, 101.0, 2.0, 0), (0.7, 100.5, 1.0, -1))
    got = run(snaps, t, "trade_volume", "buy_volume", "sell_volume", "trade_count", "trade_imbalance",
              "trade_intensity", "trade_vwap", "effective_spread_bps", "realized_spread_bps",
              "lee_ready_share", "vpin(bucket_notional=100, buckets=1)", "kyle_lambda", "amihud")
    # No quote before row 0 and no earlier price: Lee-Ready cannot sign the first trade.
    want = {"trade_volume_w1": 3, "buy_volume_w1": 0, "sell_volume_w1": 1, "trade_count_w1": 2,
            "trade_imbalance_w100": -1, "trade_intensity_w100": nan, "trade_vwap_w100": 302.5 / 3,
            "effective_spread_bps": nan, "realized_spread_bps_d10": nan, "lee_ready_share_w100": 0.5,
            "vpin_n100_b1_h100": 0.0, "kyle_lambda_w100": nan, "amihud_w100": 0.0}
    for column, value in want.items():
        check(got[column], [value])


def test_no_rows():
    snaps = book([])
    got = run(snaps, trades((0.5, 100.0, 1.0, 1)), "trade_volume", "vpin", "kyle_lambda")
    assert all(len(v) == 0 for v in got.values())


def test_online_matches_batch_with_short_windows():
    """Windows that wrap many times and buckets that fill often, stepped one row at a time."""
    snaps, t = features_data.edge_cases()["sides_unknown"]
    spec = ["trade_volume(window=3)", "trade_imbalance(window=7)", "trade_intensity(window=2)",
            "trade_vwap(window=5)", "realized_spread_bps(delay=3)", "lee_ready_share(window=4)",
            "vpin(bucket_notional=500, buckets=4, sigma_halflife=3)", "kyle_lambda(window=6)", "amihud(window=9)"]
    batch, _ = compute_matrix(snaps, t, spec)
    engine = OnlineFeatures(spec, levels=snaps.levels)
    hi = np.searchsorted(t.ts, snaps.ts, side="right")
    k = 0
    for i in range(len(snaps)):
        for j in range(k, hi[i]):
            engine.on_trade(t.ts[j], t.price[j], t.qty[j], t.side[j])
        k = hi[i]
        row = engine.on_book(snaps.ts[i], snaps.bid_px[i], snaps.bid_sz[i], snaps.ask_px[i], snaps.ask_sz[i])
        np.testing.assert_array_equal(row, batch[:, i], err_msg=f"row {i}")
    assert np.isfinite(batch).sum(axis=1).min() > 100  # every column has values to compare


def test_columns_and_parameters():
    _, spec = compute_matrix(book([100.0]), None, ["vpin", "realized_spread_bps(delay=3)", "trade_volume(window=5)"])
    assert spec.columns == ["vpin_n1000000_b50_h100", "realized_spread_bps_d3", "trade_volume_w5"]
    assert spec.instances[0].lookback == 1000
    for bad, message in (("vpin(buckets=0)", "must be >= 1"), ("realized_spread_bps(delay=1.5)", "whole number"),
                         ("trade_imbalance(window=0)", "must be >= 1")):
        with pytest.raises(ValueError, match=message):
            compute_matrix(book([100.0]), None, [bad])
    _, spec = compute_matrix(book([100.0]), None, ["vpin(bucket_notional=2.5e5)"])
    assert spec.columns == ["vpin_n250000_b50_h100"]
