"""Batch prediction over history: a registered model over a symbol's stored book rows, into
the ``predictions`` table (one row per book row that ends a full window)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from genesis.store import connect, migrate
from genesis.store.queries import to_ns


def predict_history(model_id: str, symbol: str, start: Any = None, end: Any = None, *, store_url: str | None = None,
                    models_directory=None, batch_size: int = 512) -> pd.DataFrame:
    """Predict every window of ``symbol``'s event rows in ``[start, end)`` with ``model_id`` and
    write them (replacing that model's earlier rows of the range). Returns the rows written."""
    from genesis.features.store import load_inputs, stored_symbol
    from genesis.models.data import InputTransform, lob_features
    from genesis.models.inference import predict_windows
    from genesis.models.registry import load_model

    model, scaler, config = load_model(model_id, models_directory)
    levels = int(config.get("datamodule", {}).get("levels", 10))
    began = time.perf_counter()
    with connect(store_url) as store:
        migrate(store)
        stored = stored_symbol(store, symbol)
        snaps, _, _ = load_inputs(store, stored, start, end, levels=levels)
    transform = InputTransform.from_config(scaler, config.get("datamodule", {}))
    rows = transform.transform(lob_features(snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz, levels))
    window = int(config.get("datamodule", {}).get("window", 100))
    if len(rows) < window:
        raise ValueError(f"{symbol}: {len(rows)} book rows in the range, a prediction needs {window}")
    probs = np.asarray(predict_windows(model, rows, batch_size=batch_size))
    ts = snaps.ts[window - 1:]
    frame = pd.DataFrame({"ts": ts, "p_down": probs[:, 0], "p_stationary": probs[:, 1], "p_up": probs[:, 2],
                          "predicted": probs.argmax(axis=1).astype(np.int8) - 1})
    lo = int(ts[0]) if start is None else to_ns(start)
    hi = int(ts[-1]) + 1 if end is None else to_ns(end)
    with connect(store_url) as store:
        store.command("DELETE FROM predictions WHERE symbol = {symbol:String} AND model_id = {model:String}"
                      " AND ts >= fromUnixTimestamp64Nano({lo:Int64}) AND ts < fromUnixTimestamp64Nano({hi:Int64})",
                      {"symbol": stored, "model": model_id, "lo": lo, "hi": hi})
        store.insert_columns("predictions", {
            "symbol": stored, "model_id": model_id, "ts": ts, "p_down": frame["p_down"].to_numpy(np.float32),
            "p_stationary": frame["p_stationary"].to_numpy(np.float32), "p_up": frame["p_up"].to_numpy(np.float32),
            "predicted": frame["predicted"].to_numpy(np.int8)})
    frame.attrs["seconds"] = time.perf_counter() - began
    return frame


__all__ = ["predict_history"]
