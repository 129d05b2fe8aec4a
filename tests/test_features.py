"""Every registered feature: kernel = NumPy reference (real captures and edge cases),
online = batch, no look-ahead, and the registry's own rules."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from genesis.features import FeatureSpec, OnlineFeatures, Snapshots, Trades, compute_features, compute_matrix, features
from genesis.features.engine import _context
from genesis.features.context import new_primitive_state, primitives
from genesis.features.reference import DEFAULT_RTOL, REFERENCE, TOLERANCE, reference_features
from genesis.features.registry import _family_modules, registry
from tests import features_data

FULL = FeatureSpec.default()
ATOL = 1e-12


@lru_cache(maxsize=None)
def _real_results(name: str):
    snaps, trades = features_data.real(name)
    matrix, _ = compute_matrix(snaps, trades, FULL)
    return matrix, reference_features(snaps, trades, FULL)


def _assert_close(column: str, got: np.ndarray, want: np.ndarray, where: str) -> None:
    feature = column if column in REFERENCE else FULL.instances[FULL.columns.index(column)].feature.name
    rtol = TOLERANCE.get(feature, DEFAULT_RTOL)
    scale = np.nanmax(np.abs(want)) if np.isfinite(want).any() else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=ATOL * max(scale, 1.0), equal_nan=True,
                               err_msg=f"{column} on {where}: kernel and reference differ")


def test_registry_has_the_whole_library():
    names = [f.name for f in features()]
    assert len(names) >= 40, f"only {len(names)} features registered"
    for f in features():
        assert f.doc and f.unit and f.family, f.name
        assert f.name in REFERENCE, f"{f.name} has no NumPy reference"
    assert len(set(FULL.columns)) == len(FULL.columns)


def test_every_feature_is_reachable_through_its_family_dispatch():
    """The dispatch index of each feature calls that feature's kernel (not a neighbour's)."""
    snaps, trades = features_data.synthetic_book(300)
    modules = _family_modules()
    for name, (_, local, feature) in registry().items():
        inst = feature.bind()
        outs = []
        for call in (lambda *a: modules[feature.family].dispatch(local, *a), feature.kernel):
            trade_hi = np.searchsorted(trades.ts, snaps.ts, side="right").astype(np.int64)
            trade_lo = np.concatenate([[0], trade_hi[:-1]]).astype(np.int64)
            c = _context(snaps, trades, trade_lo, trade_hi)
            primitives(c, 0, len(snaps), new_primitive_state())
            out = np.full(len(snaps), np.nan)
            call(c, 0, len(snaps), np.zeros(inst.state_size), inst.param_vector, out)
            outs.append(out)
        np.testing.assert_array_equal(outs[0], outs[1], err_msg=f"dispatch of {name}")


@pytest.mark.parametrize("capture", features_data.REAL)
@pytest.mark.parametrize("column", FULL.columns)
def test_kernel_matches_reference_on_real_captures(capture, column):
    matrix, ref = _real_results(capture)
    _assert_close(column, matrix[FULL.columns.index(column)], ref[column], capture)


@pytest.mark.parametrize("case", sorted(features_data.edge_cases()))
def test_kernel_matches_reference_on_edge_cases(case):
    snaps, trades = features_data.edge_cases()[case]
    matrix, _ = compute_matrix(snaps, trades, FULL)
    ref = reference_features(snaps, trades, FULL)
    for j, column in enumerate(FULL.columns):
        _assert_close(column, matrix[j], ref[column], case)


def _online(snaps: Snapshots, trades: Trades, spec=FULL) -> np.ndarray:
    engine = OnlineFeatures(spec, levels=snaps.levels)
    out = np.full((len(spec), len(snaps)), np.nan)
    hi = np.searchsorted(trades.ts, snaps.ts, side="right")
    t = 0
    for i in range(len(snaps)):
        for k in range(t, hi[i]):
            engine.on_trade(trades.ts[k], trades.price[k], trades.qty[k], trades.side[k])
        t = hi[i]
        out[:, i] = engine.on_book(snaps.ts[i], snaps.bid_px[i], snaps.bid_sz[i], snaps.ask_px[i],
                                   snaps.ask_sz[i], snaps.updates[i])
    return out


@pytest.mark.parametrize("case", ["real", "nan_levels", "one_sided", "sides_unknown", "single_snapshot"])
def test_online_stepping_gives_the_batch_values(case):
    if case == "real":
        snaps, trades = features_data.real(features_data.REAL[0])
    else:
        snaps, trades = features_data.edge_cases()[case]
    batch, _ = compute_matrix(snaps, trades, FULL)
    online = _online(snaps, trades)
    for j, column in enumerate(FULL.columns):
        np.testing.assert_array_equal(online[j], batch[j], err_msg=f"{column}: online differs from batch")


def test_online_holds_back_trades_stamped_after_the_book_row():
    snaps, trades = features_data.synthetic_book(50)
    engine = OnlineFeatures(["trade_count(window=1)"] if "trade_count" in REFERENCE else ["mid"], levels=20)
    # Deliver every trade before the first book row: the row must only count those up to its time.
    for k in range(len(trades)):
        engine.on_trade(trades.ts[k], trades.price[k], trades.qty[k], trades.side[k])
    engine.on_book(snaps.ts[0], snaps.bid_px[0], snaps.bid_sz[0], snaps.ask_px[0], snaps.ask_sz[0])
    assert engine._n_trades == len(trades) - np.searchsorted(trades.ts, snaps.ts[0], side="right")
    with pytest.raises(ValueError, match="older"):
        engine.on_book(snaps.ts[0] - 1, snaps.bid_px[0], snaps.bid_sz[0], snaps.ask_px[0], snaps.ask_sz[0])


@pytest.mark.parametrize("case", ["real", "synthetic"])
def test_no_feature_looks_ahead(case):
    """Rewriting everything after time t leaves every feature at or before t unchanged."""
    if case == "real":
        snaps, trades = features_data.real(features_data.REAL[0])
    else:
        snaps, trades = features_data.edge_cases()["synthetic"]
    n = len(snaps)
    cut = int(np.flatnonzero(np.diff(snaps.ts[: n // 2 + 1]) > 0)[-1])  # rows [0, cut] are at or before t
    t = snaps.ts[cut]
    rng = np.random.default_rng(3)
    later = slice(cut + 1, n)
    changed = Snapshots(
        snaps.ts, snaps.bid_px.copy(), snaps.bid_sz.copy(), snaps.ask_px.copy(), snaps.ask_sz.copy(),
        snaps.updates.copy())
    shift = rng.normal(0, 50, (n - cut - 1, 1))
    changed.bid_px[later] += shift - 1.0
    changed.ask_px[later] += shift + 1.0
    changed.bid_sz[later] *= rng.uniform(0.1, 3.0, changed.bid_sz[later].shape)
    changed.ask_sz[later] *= rng.uniform(0.1, 3.0, changed.ask_sz[later].shape)
    changed.updates[later] = rng.integers(0, 100, n - cut - 1)
    after = trades.ts > t
    new_trades = Trades(trades.ts, np.where(after, trades.price * 1.01, trades.price),
                        np.where(after, trades.qty * 7.0, trades.qty), np.where(after, -trades.side, trades.side))
    before, _ = compute_matrix(snaps, trades, FULL)
    rewritten, _ = compute_matrix(changed, new_trades, FULL)
    assert not np.array_equal(before[:, cut + 1:], rewritten[:, cut + 1:], equal_nan=True)
    for j, column in enumerate(FULL.columns):
        np.testing.assert_array_equal(rewritten[j, : cut + 1], before[j, : cut + 1],
                                      err_msg=f"{column} at or before t changed when later data changed")


def test_one_feature_alone_equals_its_column_in_the_full_set():
    snaps, trades = features_data.edge_cases()["synthetic"]
    full, _ = compute_matrix(snaps, trades, FULL)
    for j, inst in enumerate(FULL.instances):
        alone, _ = compute_matrix(snaps, trades, [inst])
        np.testing.assert_array_equal(alone[0], full[j], err_msg=inst.column)


def test_outputs_pandas_arrow_numpy():
    snaps, trades = features_data.synthetic_book(20)
    frame = compute_features(snaps, trades, ["mid", "spread_bps as sbps"])
    assert list(frame.columns) == ["ts", "mid", "sbps"]
    assert str(frame["ts"].dt.tz) == "UTC"
    table = compute_features(snaps, trades, ["mid"], output="arrow")
    assert table.column_names == ["ts", "mid"] and str(table.schema.field("ts").type) == "timestamp[ns, tz=UTC]"
    arrays = compute_features(snaps, trades, ["mid"], output="numpy")
    np.testing.assert_array_equal(arrays["mid"], frame["mid"].to_numpy())


@pytest.mark.parametrize("spec, message", [
    (["no_such_feature"], "unknown feature 'no_such_feature'"),
    (["microprice(depth=3)"], "unknown parameter"),
    (["microprice(levels=0)"], "must be >= 1"),
    (["microprice(levels=2.5)"], "whole number"),
    (["microprice(levels=abc)"], "not a number"),
    (["mid", "mid"], "duplicate columns: mid"),
    (["microprice(levels=30)"], "snapshots have 20 levels"),
])
def test_bad_specs_are_refused_with_the_reason(spec, message):
    snaps, trades = features_data.synthetic_book(5)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        compute_matrix(snaps, trades, spec)


def test_bad_inputs_are_refused_with_the_reason():
    snaps, _ = features_data.synthetic_book(5)
    with pytest.raises(ValueError, match="snapshots.ts must be non-decreasing; row 3"):
        Snapshots(snaps.ts[[0, 1, 2, 1, 4]], snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz)
    with pytest.raises(ValueError, match="snapshots.bid_sz: expected shape"):
        Snapshots(snaps.ts, snaps.bid_px, snaps.bid_sz[:3], snaps.ask_px, snaps.ask_sz)
    with pytest.raises(ValueError, match="trades.ts must be non-decreasing"):
        Trades([3, 1], [1.0, 1.0], [1.0, 1.0], [1, -1])


def test_chunks_with_carried_state_equal_one_batch():
    from genesis.features import FeatureStream

    snaps, trades = features_data.real(features_data.REAL[0])
    whole, _ = compute_matrix(snaps, trades, FULL)
    stream = FeatureStream(FULL, snaps.levels)
    cuts = [0, 1, 700, 701, 3000, len(snaps)]
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        after = snaps.ts[a - 1] if a else np.iinfo(np.int64).min
        keep = (trades.ts > after) & (trades.ts <= snaps.ts[b - 1])
        chunk_trades = Trades(trades.ts[keep], trades.price[keep], trades.qty[keep], trades.side[keep])
        parts.append(stream.process(snaps.take(slice(a, b)), chunk_trades))
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


def test_the_default_set_fits_a_shallower_book_but_an_explicit_spec_must_fit():
    snaps, trades = features_data.synthetic_book(30, levels=10)
    matrix, spec = compute_matrix(snaps, trades)
    assert spec.levels <= 10 and "bid_depth_l10" in spec.columns and "bid_depth_l20" not in spec.columns
    assert len(spec) == len(FULL) - 3  # bid/ask depth and depth imbalance at 20 levels
    with pytest.raises(ValueError, match="snapshots have 10 levels"):
        compute_matrix(snaps, trades, ["bid_depth(levels=20)"])
