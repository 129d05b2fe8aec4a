"""DeepLOB data: LOB rows, scaler, lazy windows, leak-free walk-forward folds, the data module."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.features.labels import NO_LABEL, fi2010_labels
from genesis.models.data import (
    Fold, InputTransform, LOBDataModule, Scaler, WindowDataset, class_to_label, class_weights, feature_names,
    label_to_class, lob_features, subtract_mid_ema, walk_forward_folds,
)

torch.set_num_threads(2)


def random_book(n: int, levels: int = 10, seed: int = 0, start: float = 100.0):
    """A random-walk book: (bid_px, bid_sz, ask_px, ask_sz), each (n, levels)."""
    rng = np.random.default_rng(seed)
    mid = start + np.cumsum(rng.normal(0.0, 0.02, n))
    depth = 0.01 * np.arange(1, levels + 1)
    return (mid[:, None] - depth, rng.uniform(1, 5, (n, levels)),
            mid[:, None] + depth, rng.uniform(1, 5, (n, levels)))


def spans_overlap(a: np.ndarray, b: np.ndarray, window: int, horizon: int) -> bool:
    """Brute force: does any span [e - window + 1, e + horizon] of ``a`` meet one of ``b``?"""
    if not len(a) or not len(b):
        return False
    lo_a, hi_a = a[:, None] - window + 1, a[:, None] + horizon
    lo_b, hi_b = b[None, :] - window + 1, b[None, :] + horizon
    return bool(np.any((lo_a <= hi_b) & (lo_b <= hi_a)))


# -- rows ----------------------------------------------------------------------------------

def test_lob_features_order_is_fi2010():
    bid_px, bid_sz, ask_px, ask_sz = random_book(5, levels=10)
    rows = lob_features(bid_px, bid_sz, ask_px, ask_sz, dtype=np.float64)
    assert rows.shape == (5, 40)
    for level in range(10):
        np.testing.assert_array_equal(rows[:, 4 * level + 0], ask_px[:, level])
        np.testing.assert_array_equal(rows[:, 4 * level + 1], ask_sz[:, level])
        np.testing.assert_array_equal(rows[:, 4 * level + 2], bid_px[:, level])
        np.testing.assert_array_equal(rows[:, 4 * level + 3], bid_sz[:, level])
    assert feature_names()[:5] == ["ask_px_1", "ask_sz_1", "bid_px_1", "bid_sz_1", "ask_px_2"]
    assert lob_features(bid_px, bid_sz, ask_px, ask_sz).dtype == np.float32


def test_lob_features_fill_missing_levels():
    bid_px = np.array([[10.0, 9.0, 8.0], [10.0, np.nan, np.nan], [np.nan, np.nan, np.nan], [11.0, 10.0, 9.0]])
    bid_sz = np.where(np.isnan(bid_px), np.nan, 1.0)
    ask_px = np.array([[np.nan, np.nan, np.nan], [12.0, 13.0, 14.0], [12.0, 13.0, np.nan], [12.0, 13.0, 14.0]])
    ask_sz = np.where(np.isnan(ask_px), np.nan, 2.0)
    rows = lob_features(bid_px, bid_sz, ask_px, ask_sz, levels=4, dtype=np.float64)
    assert np.isfinite(rows).all()
    bids, asks = rows[:, 2::4], rows[:, 0::4]
    # Deeper missing level: the better level's price, size 0. Level 4 is past the arrays.
    np.testing.assert_array_equal(bids[1], [10.0, 10.0, 10.0, 10.0])
    np.testing.assert_array_equal(rows[1, 3::4], [1.0, 0.0, 0.0, 0.0])
    # Empty side: the last row's prices (sizes 0); leading empty rows: the first prices seen.
    np.testing.assert_array_equal(bids[2], bids[1])
    np.testing.assert_array_equal(rows[2, 3::4], 0.0)
    np.testing.assert_array_equal(asks[0], asks[1])
    np.testing.assert_array_equal(asks[2], [12.0, 13.0, 13.0, 13.0])
    with pytest.raises(ValueError, match="ask_px: no finite price"):
        lob_features(bid_px, bid_sz, np.full((4, 3), np.nan), ask_sz)
    with pytest.raises(ValueError, match="bid_sz: 3 rows"):
        lob_features(bid_px, bid_sz[:3], ask_px, ask_sz)


# -- scaler --------------------------------------------------------------------------------

def test_scaler_zscore_constant_columns_and_round_trip():
    rng = np.random.default_rng(1)
    rows = np.column_stack([rng.normal(60_000.0, 3.0, 500), np.full(500, 7.0), rng.uniform(0, 1, 500)])
    scaler = Scaler().fit(rows)
    z = scaler.transform(rows)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, [0, 2]].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, [0, 2]].std(axis=0), 1.0, rtol=1e-5)
    assert scaler.std[1] == 1.0 and np.all(z[:, 1] == 0.0)  # constant: std 1, maps to 0
    again = Scaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(rows), z)
    np.testing.assert_allclose(again.inverse_transform(z), rows, rtol=1e-6, atol=1e-6)  # float32 z
    with pytest.raises(ValueError, match="row 3, column 2"):
        bad = rows.copy()
        bad[3, 2] = np.nan
        Scaler().fit(bad)
    with pytest.raises(RuntimeError, match="before fit"):
        Scaler().transform(rows)


# -- classes -------------------------------------------------------------------------------

def test_class_index_mapping_and_weights():
    np.testing.assert_array_equal(label_to_class([-1, 0, 1]), [0, 1, 2])
    np.testing.assert_array_equal(class_to_label([0, 1, 2]), [-1, 0, 1])
    with pytest.raises(ValueError):
        label_to_class([NO_LABEL])
    labels = np.array([-1] * 10 + [0] * 30 + [1] * 20 + [NO_LABEL] * 5)
    w = class_weights(labels)
    assert w.dtype == torch.float32 and w.shape == (3,)
    inverse = 1 / np.array([10, 30, 20])
    np.testing.assert_allclose(w.numpy(), inverse / inverse.mean(), rtol=1e-6)
    assert float(w.mean()) == pytest.approx(1.0)
    # Each class then carries the same total weight.
    np.testing.assert_allclose(w.numpy() * [10, 30, 20], float(w[0]) * 10, rtol=1e-6)
    assert class_weights([0, 0, 1]).tolist()[0] == 0.0  # absent class: weight 0


# -- windows -------------------------------------------------------------------------------

def test_window_dataset_items_are_the_rows():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 40)).astype(np.float32)
    labels = rng.integers(-1, 2, 400).astype(np.int8)
    labels[250] = NO_LABEL
    ends = np.array([5, 99, 100, 250, 399])  # 5 is too early, 250 has no label
    ds = WindowDataset(features, labels, ends)
    assert len(ds) == 3 and ds.ends.tolist() == [99, 100, 399]
    x, y = ds[1]
    assert x.shape == (1, 100, 40) and x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_array_equal(x[0].numpy(), features[1:101])
    assert int(y) == labels[100] + 1
    xb, yb = ds.batch()
    assert xb.shape == (3, 1, 100, 40)
    np.testing.assert_array_equal(xb[2, 0].numpy(), features[300:400])
    np.testing.assert_array_equal(yb.numpy(), labels[[99, 100, 399]] + 1)
    x[0, 0, 0] = 1e9  # the item is a copy: the base rows stay as they were
    assert features[1, 0] != 1e9


def test_window_dataset_memory_does_not_grow_with_windows():
    features = np.random.default_rng(3).normal(size=(20_000, 40)).astype(np.float32)  # 3.2 MB
    labels = np.zeros(20_000, np.int8)
    small = WindowDataset(features, labels, np.arange(99, 200))
    tracemalloc.start()
    big = WindowDataset(features, labels, np.arange(99, 20_000))  # 19,901 windows: 318 MB if copied
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < features.nbytes / 4  # the int64 ends and int8 labels, no window copies
    for ds in (small, big):
        assert ds.features is features
        assert np.shares_memory(ds.windows, features)
        assert ds.windows.shape == (20_000 - 99, 100, 40)
    np.testing.assert_array_equal(big.windows[12_345], features[12_345:12_445])


def test_window_dataset_pickles_the_base_rows_only():
    features = np.random.default_rng(4).normal(size=(2_000, 40)).astype(np.float32)
    ds = WindowDataset(features, np.zeros(2_000, np.int8), np.arange(99, 2_000))
    blob = pickle.dumps(ds)
    assert len(blob) < 2 * features.nbytes  # not 1,901 windows of 16 kB
    again = pickle.loads(blob)
    assert np.shares_memory(again.windows, again.features)
    np.testing.assert_array_equal(again[500][0].numpy(), ds[500][0].numpy())


def test_window_dataset_rejects_bad_inputs():
    features = np.zeros((200, 40), np.float32)
    with pytest.raises(ValueError, match="float32"):
        WindowDataset(features.astype(np.float64), np.zeros(200, np.int8), [150])
    with pytest.raises(ValueError, match="labels"):
        WindowDataset(features, np.zeros(199, np.int8), [150])
    with pytest.raises(ValueError, match="past the last row"):
        WindowDataset(features, np.zeros(200, np.int8), [200])


# -- folds ---------------------------------------------------------------------------------

def assert_no_leak(folds, window, horizon):
    for k, fold in enumerate(folds):
        for name, later in (("val", fold.val), ("test", fold.test)):
            assert not spans_overlap(fold.train, later, window, horizon), f"fold {k}: train meets {name}"
        assert not spans_overlap(fold.val, fold.test, window, horizon), f"fold {k}: val meets test"
        # Time order: train before val before test.
        if len(fold.train) and len(fold.test):
            assert fold.train.max() < fold.test.min()
        if len(fold.val) and len(fold.test):
            assert fold.val.max() < fold.test.min()


def test_walk_forward_layout_and_purge():
    folds = walk_forward_folds(2_000, n_folds=3, horizon=10, window=100)
    assert len(folds) == 3
    assert_no_leak(folds, 100, 10)
    tests = [f.test for f in folds]
    # Test blocks follow one another and cover the last 3/4 of the candidates.
    assert tests[0].min() > folds[0].train.max()
    assert tests[1].min() == tests[0].max() + 1 and tests[2].min() == tests[1].max() + 1
    assert tests[2].max() == 1_999
    # Expanding: every fold trains from the first window; the gap is exactly the purge.
    assert all(f.train.min() == 99 for f in folds)
    last = folds[-1]
    assert last.val.min() - last.train.max() == 110 and last.test.min() - last.val.max() == 110
    rolling = walk_forward_folds(2_000, n_folds=3, horizon=10, window=100, scheme="rolling")
    assert rolling[2].train.min() > rolling[1].train.min()
    assert_no_leak(rolling, 100, 10)


def test_walk_forward_refuses_a_short_purge_and_too_few_windows():
    with pytest.raises(ValueError, match="purge=50 rows is too short"):
        walk_forward_folds(2_000, 3, horizon=10, window=100, purge=50)
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        walk_forward_folds(103, 5, horizon=1, window=100)
    with pytest.raises(ValueError, match="time order"):
        walk_forward_folds(np.array([300, 200, 400, 500]), 1, horizon=1)


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(150, 1_500), n_folds=st.integers(1, 6), horizon=st.integers(1, 60),
       window=st.integers(1, 120), extra_purge=st.integers(0, 30), val_fraction=st.sampled_from([0.0, 0.1, 0.3]),
       scheme=st.sampled_from(["expanding", "rolling"]), drop=st.integers(0, 5))
def test_walk_forward_never_leaks(n_rows, n_folds, horizon, window, extra_purge, val_fraction, scheme, drop):
    ends = np.arange(window - 1, n_rows)
    ends = ends[(ends % 7) >= drop]  # holes, as NO_LABEL rows make
    if len(ends) < n_folds + 1:
        return
    folds = walk_forward_folds(ends, n_folds, horizon, window, purge=horizon + window - 1 + extra_purge,
                               val_fraction=val_fraction, scheme=scheme)
    assert len(folds) == n_folds
    assert_no_leak(folds, window, horizon)
    for fold in folds:
        assert np.isin(np.concatenate(fold), ends).all()
        assert len(np.intersect1d(fold.train, fold.test)) == 0 and len(np.intersect1d(fold.val, fold.test)) == 0


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(150, 700), min_size=2, max_size=4), n_folds=st.integers(1, 4),
       horizon=st.integers(1, 40), window=st.integers(1, 100))
def test_walk_forward_groups_purge_within_each_series(lengths, n_folds, horizon, window):
    """Series concatenated (rows of series 1 follow those of series 0) on a common clock."""
    ends, times, groups, offset = [], [], [], 0
    for g, n in enumerate(lengths):
        e = np.arange(window - 1, n)
        ends.append(e + offset)
        times.append(e * 1_000 + 37 * g)  # each series spans the same period
        groups.append(np.full(len(e), g))
        offset += n
    ends, times, groups = map(np.concatenate, (ends, times, groups))
    folds = walk_forward_folds(ends, n_folds, horizon, window, times=times, groups=groups)
    for fold in folds:
        for g in range(len(lengths)):
            mine = [part[np.isin(part, ends[groups == g])] for part in fold]
            assert_no_leak([Fold(*mine)], window, horizon)
        # A common clock: every test window is later than every train window, whatever its series.
        if len(fold.train) and len(fold.test):
            assert times[np.isin(ends, fold.train)].max() < times[np.isin(ends, fold.test)].min()


# -- data module ---------------------------------------------------------------------------

def test_data_module_scaler_sees_train_rows_only():
    book = random_book(3_000, seed=4)
    dm = LOBDataModule.from_arrays(*book, ts=np.arange(3_000) * 1_000_000, horizon=10, n_folds=3, batch_size=16)
    dm.setup()
    train = dm.ends["train"]
    rows = lob_features(*book, dtype=np.float64)[train.min() - 99: train.max() + 1]
    np.testing.assert_allclose(dm.scaler.mean, rows.mean(axis=0), rtol=1e-12)
    # Changing every row after the train windows leaves the scaler as it was.
    changed = [a.copy() for a in book]
    for a in changed:
        a[train.max() + 1:] *= 3.0
    other = LOBDataModule.from_arrays(*changed, ts=np.arange(3_000) * 1_000_000, horizon=10, n_folds=3)
    other.setup()
    np.testing.assert_array_equal(other.ends["train"], train)
    np.testing.assert_array_equal(other.scaler.mean, dm.scaler.mean)
    np.testing.assert_array_equal(other.scaler.std, dm.scaler.std)
    assert dm.features.dtype == np.float32 and dm.features.shape == (3_000, 40)
    assert set(dm.scaler.to_dict()) == {"kind", "mean", "std"}


def test_subtract_mid_ema_matches_pandas_and_streams():
    import pandas as pd

    rows = lob_features(*random_book(700, levels=3, seed=11), levels=3, dtype=np.float64)
    mid = (rows[:, 0] + rows[:, 2]) / 2
    ema = pd.Series(mid).ewm(span=50, adjust=False).mean().to_numpy()  # y0 = x0, y = y + a (x - y)
    out, last = subtract_mid_ema(rows, 50)
    want = rows.copy()
    for j in (0, 2, 4, 6, 8, 10):  # ask and bid prices of the 3 levels
        want[:, j] -= ema
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-9)
    assert last == pytest.approx(ema[-1])
    np.testing.assert_array_equal(out[:, 1::2], rows[:, 1::2])  # sizes untouched
    # Rows one at a time, or in uneven pieces, give the rows of one call.
    transform = InputTransform(Scaler().fit(out), "ema", 50)
    whole = transform.transform(rows)
    transform.reset()
    pieces = [transform.transform(rows[i:i + 1]) for i in range(300)] + [transform.transform(rows[300:])]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    with pytest.raises(ValueError, match="price_reference"):
        InputTransform(Scaler(), "median")


def test_data_module_ema_reference_per_series_and_in_config():
    book = random_book(1_500, seed=12)
    dm = LOBDataModule.from_arrays(*book, horizon=10, n_folds=1, price_reference="ema", ema_rows=30)
    dm.setup()
    referenced, _ = subtract_mid_ema(lob_features(*book, dtype=np.float64), 30)
    np.testing.assert_allclose(dm.features, dm.scaler.transform(referenced), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(dm.raw_rows, lob_features(*book, dtype=np.float64))  # baselines read these
    assert abs(dm.features[:, 0::4].mean()) < 1.0  # the drifting level is gone from the prices
    assert dm.config()["price_reference"] == "ema" and dm.config()["ema_rows"] == 30
    np.testing.assert_array_equal(dm.input_transform().transform(dm.raw_rows), dm.features)
    with pytest.raises(ValueError, match="price_reference"):
        LOBDataModule.from_arrays(*book, price_reference="vwap")


def test_data_module_stride_keeps_every_kth_window_and_the_purge():
    book = random_book(2_000, seed=13)
    every = LOBDataModule.from_arrays(*book, horizon=10, n_folds=2)
    strided = LOBDataModule.from_arrays(*book, horizon=10, n_folds=2, stride=5)
    every.setup(), strided.setup()
    ends = np.concatenate([strided.ends[s] for s in ("train", "val", "test")])
    assert ((ends - 99) % 5 == 0).all()
    assert len(strided.datasets["train"]) < len(every.datasets["train"]) / 4
    assert_no_leak([Fold(*(strided.ends[s] for s in ("train", "val", "test")))], 100, 10)
    assert strided.config()["stride"] == 5
    with pytest.raises(ValueError, match="stride"):
        LOBDataModule.from_arrays(*book, stride=0)


def test_data_module_labels_balance_and_loaders():
    book = random_book(2_500, seed=5)
    dm = LOBDataModule.from_arrays(*book, horizon=20, alpha=1e-4, n_folds=2, batch_size=32, seed=7)
    dm.setup()
    mid = (book[0][:, 0] + book[2][:, 0]) / 2
    want = fi2010_labels(mid, 20, 1e-4)
    np.testing.assert_array_equal(dm.labels, want)
    assert_no_leak([Fold(*(dm.ends[s] for s in ("train", "val", "test")))], 100, 20)
    balance = dm.class_balance
    assert set(balance) == {"train", "val", "test"}
    assert balance["train"]["count"].sum() == len(dm.datasets["train"])
    np.testing.assert_array_equal(dm.class_weights.numpy(), class_weights(want[dm.ends["train"]]).numpy())

    seen = []
    for x, y in dm.train_dataloader():
        assert x.shape[1:] == (1, 100, 40)
        seen.append(y)
    train_y = torch.cat(seen)
    assert len(train_y) == len(dm.datasets["train"])
    assert not torch.equal(train_y, dm.datasets["train"].batch()[1])  # shuffled ...
    assert sorted(train_y.tolist()) == sorted(dm.datasets["train"].classes.tolist())  # ... within train only
    in_order = torch.cat([y for _, y in dm.train_dataloader(shuffle=False)])
    np.testing.assert_array_equal(in_order.numpy(), dm.datasets["train"].classes)
    x_test = torch.cat([x for x, _ in dm.test_dataloader()])
    np.testing.assert_array_equal(x_test.numpy(), dm.datasets["test"].batch()[0].numpy())  # time order
    info = dm.split_info()
    assert list(info["split"]) == ["train", "val", "test"] and info["windows"].sum() == sum(
        len(d) for d in dm.datasets.values())
    assert dm.config()["purge"] == 119


def test_data_module_triple_barrier_labels():
    book = random_book(1_500, seed=6)
    dm = LOBDataModule.from_arrays(*book, horizon=30, label="triple_barrier", alpha=2e-4, n_folds=1)
    dm.setup()
    assert set(np.unique(dm.labels)) <= {-1, 0, 1, NO_LABEL}
    assert (dm.labels[-30:] == NO_LABEL).sum() > 0
    with pytest.raises(ValueError, match="label="):
        LOBDataModule.from_arrays(*book, label="shuffled_kfold")


def test_data_module_windows_never_span_two_symbols():
    a, b = random_book(900, seed=7, start=100.0), random_book(700, seed=8, start=2_000.0)
    from genesis.features.engine import Snapshots
    snaps = {"x:AAA": Snapshots(np.arange(900) * 10, *a), "x:BBB": Snapshots(np.arange(700) * 13, *b)}
    dm = LOBDataModule.from_snapshots(snaps, horizon=10, n_folds=2, val_fraction=0.0)
    dm.setup()
    series = dm.row_series
    for name, ds in dm.datasets.items():
        starts = ds.ends - 99
        assert np.all(series[starts] == series[ds.ends]), name  # one symbol per window
        assert {0, 1} <= set(series[ds.ends].tolist()) or name == "val"
    # Both series lose their last `horizon` rows to NO_LABEL (labels computed per symbol).
    assert np.all(dm.labels[890:900] == NO_LABEL) and np.all(dm.labels[1590:] == NO_LABEL)
    assert dm.labels[889] != NO_LABEL
    info = dm.split_info()
    assert set(info["symbol"]) == {"x:AAA", "x:BBB"}


def test_data_module_from_store_reads_book_snapshots(store_url):
    """The bundled capture (USD-M BTCUSDT, 6547 event rows) ingested, then read back as windows."""
    from tests.conftest import capture_path
    from genesis.features.store import load_inputs
    from genesis.pipelines.ingest import ingest_binance_capture
    from genesis.store import connect

    ingest_binance_capture(capture_path("usdm_btcusdt_20240808.jsonl.gz"), store_url=store_url, progress=False)
    dm = LOBDataModule.from_store("BTCUSDT", store_url=store_url, horizon=10, n_folds=2, batch_size=8)
    dm.setup()
    assert dm.symbols == ["binance-usdm:BTCUSDT"]
    with connect(store_url) as store:
        snaps, _, _ = load_inputs(store, "BTCUSDT", levels=10)
    assert len(dm.features) == len(snaps) == 6547
    np.testing.assert_array_equal(dm.row_ts, snaps.ts)
    rows = lob_features(snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz, dtype=np.float64)
    # float32 z-scores keep ~7 digits of (x - mean) / std: far below a tick for every column.
    assert np.all(np.abs(dm.scaler.inverse_transform(dm.features) - rows) <= 1e-5 * dm.scaler.std)
    info = dm.split_info().set_index("split")
    assert info.loc["train", "end"] < info.loc["val", "start"] < info.loc["test", "start"]
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (8, 1, 100, 40) and torch.isfinite(x).all() and set(y.tolist()) <= {0, 1, 2}
