"""Training, the registry and history predictions, end to end on a small simulated market."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genesis.feeds.simulator import SimConfig
from genesis.models.data import LOBDataModule
from genesis.models.registry import list_models, load_model
from genesis.models.train import LogisticBaseline, end_row_features, train_and_register, window_features
from genesis.pipelines.ingest_events import ingest_simulation
from genesis.store import connect

pytestmark = pytest.mark.slow


def test_train_register_reload_and_predict(tmp_path, store_url):
    torch.set_num_threads(2)
    ingest_simulation(config=SimConfig(flow_bias=0.3), seconds=40.0, seed=1, symbol="sim:SIGNAL",
                      store_url=store_url)
    datamodule = LOBDataModule.from_store("sim:SIGNAL", store_url=store_url, horizon=20, n_folds=1, batch_size=64)
    path, result = train_and_register(datamodule, directory=tmp_path / "models", max_epochs=1,
                                      limit_train_batches=4, progress=False)
    assert sorted(p.name for p in path.iterdir()) == ["MODEL_CARD.md", "config.json", "metrics.json", "model.pt",
                                                      "scaler.json"]
    metrics = json.loads((path / "metrics.json").read_text())
    assert set(metrics["test"]) == {"deeplob", "majority", "logistic"}
    card = (path / "MODEL_CARD.md").read_text()
    assert "| deeplob |" in card and "| logistic |" in card and "| majority |" in card and "purge" in card
    assert list_models(tmp_path / "models")["model_id"].tolist() == [path.name]

    # The registered model is the trained one: same probabilities after a reload.
    model, scaler, config = load_model(path.name, tmp_path / "models")
    x, _ = next(iter(datamodule.test_dataloader()))
    result.module.eval()
    with torch.inference_mode():
        expected = torch.softmax(result.module(x), dim=1)
        got = torch.softmax(model(x), dim=1)
    torch.testing.assert_close(got, expected)
    assert config["datamodule"]["horizon"] == 20

    from genesis.models.predict import predict_history

    frame = predict_history(path.name, "sim:SIGNAL", store_url=store_url, models_directory=tmp_path / "models")
    with connect(store_url) as store:
        stored = store.query_rows("SELECT count(), min(ts) = max(ts) FROM predictions WHERE model_id = {m:String}",
                                  {"m": path.name})[0]
    assert stored[0] == len(frame) > 1000 and not stored[1]
    assert np.allclose(frame[["p_down", "p_stationary", "p_up"]].sum(axis=1), 1.0, atol=1e-5)
    again = predict_history(path.name, "sim:SIGNAL", store_url=store_url, models_directory=tmp_path / "models")
    with connect(store_url) as store:  # re-predicting a range replaces its rows
        assert store.query_rows("SELECT count() FROM predictions")[0][0] == len(again)


def test_logistic_baseline_learns_a_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    y = np.where(x[:, 0] > 0.5, 2, np.where(x[:, 0] < -0.5, 0, 1))
    model = LogisticBaseline().fit(x, y)
    assert (model.predict_proba(x).argmax(axis=1) == y).mean() > 0.9


def test_window_features_are_finite_and_shaped():
    windows = np.random.default_rng(1).normal(size=(5, 100, 40)).astype(np.float32)
    features = window_features(windows)
    assert features.shape == (5, 10) and np.isfinite(features).all()  # 4 imbalances, spread, 3 returns, 2 size changes
    # Read from the rows of a series at the windows' end rows: the same numbers.
    rows = np.random.default_rng(2).normal(size=(300, 40))
    ends = np.array([99, 150, 299])
    windows = np.stack([rows[e - 99:e + 1] for e in ends])
    np.testing.assert_array_equal(end_row_features(rows, ends), window_features(windows))
    # By hand for one window: level-1 imbalance, spread, the 99-row mid return.
    last, first = rows[299], rows[200]
    got = end_row_features(rows, np.array([299]))[0]
    assert got[0] == pytest.approx((last[3] - last[1]) / (abs(last[3]) + abs(last[1]) + 1e-9), rel=1e-5)
    assert got[4] == pytest.approx(last[0] - last[2], rel=1e-5)
    assert got[7] == pytest.approx((last[0] + last[2]) / 2 - (first[0] + first[2]) / 2, rel=1e-5)
