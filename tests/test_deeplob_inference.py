"""Fast DeepLOB inference equals eager per-window PyTorch (eval mode) within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genesis.models.deeplob import DeepLOB
from genesis.models.inference import (
    RollingPredictor,
    fold_conv_batchnorm,
    freeze_for_inference,
    predict_windows,
)

TOL = 1e-5


@pytest.fixture(autouse=True)
def _two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def _random_model(seed: int = 0) -> DeepLOB:
    """Random weights AND random BatchNorm statistics, so eval-mode BN is not ~identity."""
    torch.manual_seed(seed)
    m = DeepLOB()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0.0, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0.0, 0.3)
    return m.eval()


def _series(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 40)).astype(np.float32)


def _eager_per_window(m: DeepLOB, X: np.ndarray, window: int = 100) -> np.ndarray:
    """Reference: the eager model on each window, one at a time."""
    x = torch.from_numpy(X)
    with torch.no_grad():
        return np.concatenate([
            torch.softmax(m(x[t - window + 1:t + 1][None, None]), dim=-1).numpy()
            for t in range(window - 1, len(X))])


@pytest.mark.parametrize("method", ["shared", "conv", "eager"])
def test_predict_windows_equals_eager_per_window(method):
    m, X = _random_model(), _series(260)
    expected = _eager_per_window(m, X)
    got = predict_windows(m, X, batch_size=64, method=method)   # ragged last batch
    assert got.shape == (161, 3) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOL
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 1000])
def test_shared_path_does_not_depend_on_batch_size(batch_size):
    m, X = _random_model(5), _series(140, seed=5)
    expected = _eager_per_window(m, X)
    got = predict_windows(m, X, batch_size=batch_size)
    assert np.abs(got - expected).max() < TOL


def test_shared_path_other_window_lengths():
    """Short windows (few interior steps, or none: falls back to "conv") stay exact."""
    m, X = _random_model(6), _series(60, seed=6)
    for window in (19, 24, 27, 40):
        got = predict_windows(m, X, window=window, batch_size=16)
        assert np.abs(got - _eager_per_window(m, X, window)).max() < TOL, window


def test_predict_windows_restores_training_mode_and_short_series():
    m = _random_model().train()
    X = _series(120)
    got = predict_windows(m, X)
    assert m.training
    assert np.abs(got - _eager_per_window(m.eval(), X)).max() < TOL
    assert predict_windows(m, _series(99)).shape == (0, 3)
    assert predict_windows(m, _series(100)).shape == (1, 3)


def test_predict_windows_bad_input():
    m = _random_model()
    with pytest.raises(ValueError, match=r"X must be \(T, 40\)"):
        predict_windows(m, np.zeros((200, 39)))
    with pytest.raises(ValueError, match="batch_size"):
        predict_windows(m, _series(200), batch_size=0)
    with pytest.raises(ValueError, match="method must be one of"):
        predict_windows(m, _series(200), method="fast")
    with pytest.raises(ValueError, match="window must be >= 19"):
        predict_windows(m, _series(200), window=18)


@pytest.mark.parametrize("method", ["shared", "conv"])
def test_nan_rows_poison_only_their_windows(method):
    m, X = _random_model(), _series(250)
    X[180] = np.nan
    got = predict_windows(m, X, batch_size=64, method=method)
    bad = np.isnan(got).any(axis=1)
    # windows i .. i+99 containing row 180: i in 81 .. 150
    assert np.flatnonzero(bad).tolist() == list(range(81, 151))


@pytest.mark.parametrize("fast", [True, False])
def test_rolling_predictor_equals_eager(fast):
    m, X = _random_model(1), _series(260, seed=1)
    rp = RollingPredictor(m, fast=fast)
    outs = [rp.push(row) for row in X]
    assert all(o is None for o in outs[:99])
    got = np.stack(outs[99:])
    assert got.shape == (161, 3)
    assert np.abs(got - _eager_per_window(m, X)).max() < TOL
    assert rp.ready and rp.n_pushed == 260


def test_rolling_predictor_with_scaler_and_reset():
    class ZScore:
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

        def transform(self, rows):
            return (rows - self.mean) / self.std

    rng = np.random.default_rng(2)
    raw = rng.normal(100.0, 5.0, size=(150, 40))
    scaler = ZScore(raw.mean(axis=0), raw.std(axis=0))
    m = _random_model(2)
    rp = RollingPredictor(m, scaler, fast=False)
    got = np.stack([p for p in (rp.push(r) for r in raw) if p is not None])
    expected = _eager_per_window(m, scaler.transform(raw).astype(np.float32))
    assert np.abs(got - expected).max() < TOL
    rp.reset()
    assert not rp.ready
    assert all(rp.push(r) is None for r in raw[:99])
    assert np.abs(rp.push(raw[99]) - expected[0]).max() < TOL


def test_rolling_predictor_is_not_changed_by_later_training():
    m, X = _random_model(3), _series(100, seed=3)
    rp = RollingPredictor(m, fast=False)
    with torch.no_grad():
        m.fc1.bias.add_(5.0)
    p = [rp.push(r) for r in X][-1]
    m.fc1.bias.data.sub_(5.0)
    assert np.abs(p - _eager_per_window(m, X)[0]).max() < TOL


def test_rolling_predictor_bad_row():
    rp = RollingPredictor(_random_model(), fast=False)
    with pytest.raises(ValueError, match=r"shape \(40,\)"):
        rp.push(np.zeros(41))


def test_frozen_single_window_equals_eager():
    m, X = _random_model(4), _series(100, seed=4)
    f = freeze_for_inference(m)
    got = f(torch.from_numpy(X)[None, None]).numpy()
    assert np.abs(got - _eager_per_window(m, X)).max() < TOL


def test_folded_conv_blocks_equal_the_eval_conv_blocks():
    m = _random_model(7)
    folded = fold_conv_batchnorm(m)
    assert sum(isinstance(x, nn.BatchNorm2d) for x in folded) == 1
    assert sum(isinstance(x, nn.Conv2d) for x in folded) == 9
    x = torch.from_numpy(_series(230, seed=7))[None, None]
    with torch.no_grad():
        expected = m.conv_features(x)
        got = folded(x)
    assert got.shape == expected.shape == (1, 32, 212, 1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert m.conv1[2].training is False and m.conv2[0].weight.requires_grad   # m untouched
