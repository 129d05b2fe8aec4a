"""genesis.backtest.store on the embedded store: save, load (arrays equal), list, replace,
delete, and clear errors for unknown runs and bad ids."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from genesis.backtest.result import EQUITY_DTYPE, FILL_DTYPE, BacktestResult
from genesis.backtest.store import delete_run, list_runs, load_run, save_run
from genesis.store import connect
from tests.test_backtest_metrics import DAY0, hand_result

CONFIG = {"strategy": "ofi", "params": {"threshold": 0.3, "size": 0.01}, "symbol": "binance-usdm:BTCUSDT",
          "start": "2024-08-08 00:00:00", "end": "2024-08-08 00:05:00", "latency_ms": 5.0,
          "fees_bps": {"maker": -0.5, "taker": 4.5}, "queue": "conservative"}


def test_save_and_load_give_back_the_same_run(store_url):
    result = hand_result(**CONFIG)
    result.meta["events"] = 1234
    with connect(store_url) as store:
        run_id = save_run(store, result)
        loaded = load_run(store, run_id)
    assert result.meta["run_id"] == run_id == loaded.meta["run_id"]
    # Arrays equal, bit for bit (ns times included), in the saved order.
    assert loaded.fills.dtype == FILL_DTYPE and loaded.equity.dtype == EQUITY_DTYPE
    np.testing.assert_array_equal(loaded.fills, result.fills)
    np.testing.assert_array_equal(loaded.equity, result.equity)
    assert loaded.config == CONFIG
    assert loaded.meta["events"] == 1234 and loaded.meta["kind"] == "backtest"
    assert loaded.meta["metrics"]["profit_factor"] == math.inf  # non-finite floats survive JSON
    assert loaded.meta["metrics"]["trades"] == 2


def test_list_runs_newest_first_with_filters(store_url):
    with connect(store_url) as store:
        assert len(list_runs(store)) == 0 and "pnl_net" in list_runs(store).columns
        first = save_run(store, hand_result(**CONFIG))
        paper = save_run(store, hand_result(**(CONFIG | {"strategy": "mm", "symbols": ["a:X", "b:Y"]})), kind="paper")
        runs = list_runs(store)
        assert set(runs["run_id"]) == {first, paper}
        row = runs.set_index("run_id").loc[first]
        assert row["strategy"] == "ofi" and row["kind"] == "backtest" and row["fills"] == 5
        assert row["symbols"] == "binance-usdm:BTCUSDT"
        assert str(row["start"]) == "2024-08-08 00:00:00+00:00" and str(row["end"]) == "2024-08-08 00:05:00+00:00"
        assert row["pnl_net"] == pytest.approx(26.55) and row["trades"] == 2
        assert list(list_runs(store, kind="paper")["run_id"]) == [paper]
        assert list(list_runs(store, symbol="b:Y")["run_id"]) == [paper]
        assert list(list_runs(store, strategy="ofi")["run_id"]) == [first]


def test_saving_again_needs_replace_and_replaces(store_url):
    result = hand_result(**CONFIG)
    with connect(store_url) as store:
        run_id = save_run(store, result)
        with pytest.raises(ValueError, match="already stored"):
            save_run(store, result)
        shorter = BacktestResult(result.fills[:2], result.equity[:3], config=CONFIG, meta={"run_id": run_id})
        assert save_run(store, shorter, replace=True) == run_id
        loaded = load_run(store, run_id)
        assert len(loaded.fills) == 2 and len(loaded.equity) == 3
        assert len(list_runs(store)) == 1
        delete_run(store, run_id)
        with pytest.raises(ValueError, match="no such run"):
            load_run(store, run_id)


def test_empty_run_and_range_from_the_data(store_url):
    equity = np.zeros(2, EQUITY_DTYPE)
    equity["ts"] = [DAY0, DAY0 + 10**9]
    with connect(store_url) as store:
        run_id = save_run(store, BacktestResult(np.zeros(0, FILL_DTYPE), equity, config={"strategy": "noop"}))
        loaded = load_run(store, run_id)
        row = list_runs(store).iloc[0]
    assert len(loaded.fills) == 0 and len(loaded.equity) == 2
    assert row["start"].value == DAY0 and row["end"].value == DAY0 + 10**9 + 1


def test_bad_input_is_named(store_url):
    with connect(store_url) as store:
        with pytest.raises(ValueError, match="kind"):
            save_run(store, hand_result(), kind="live")
        with pytest.raises(ValueError, match="run id"):
            load_run(store, "x'; DROP TABLE backtest_runs; --")
        with pytest.raises(TypeError, match="BacktestResult"):
            save_run(store, {"fills": []})


# -- running over the store, and the command line ---------------------------------------------------

SAMPLE = "usdm_btcusdt_20240808.jsonl.gz"
SYMBOL = "binance-usdm:BTCUSDT"


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    """The bundled capture ingested once into an embedded store shared by this module's tests."""
    from genesis.pipelines.ingest import ingest_binance_capture
    from tests.conftest import capture_path

    url = f"chdb://{tmp_path_factory.mktemp('backtest') / 'store'}"
    ingest_binance_capture(capture_path(SAMPLE), store_url=url, progress=False)
    return url


def cli(*argv: str) -> int:
    """``genesis backtest ...`` through this package's own parser (as genesis.cli registers it)."""
    import argparse

    from genesis.backtest.cli import register

    parser = argparse.ArgumentParser(prog="genesis")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def test_run_stored_equals_the_replay_of_the_capture(sample_store):
    from genesis.backtest.engine import Fees, Latency, run_backtest
    from genesis.backtest.events import store_chunks
    from genesis.backtest.store import run_stored

    start, end = "2024-08-08 23:56:00", "2024-08-08 23:57:00"
    params = {"window": 20, "entry": 3.0, "exit": 0.5, "qty": 0.001}
    result = run_stored("ofi_signal", params, SYMBOL, start, end, latency_ms=5, fees_bps=(-0.5, 4.5),
                        chunk="10s", store_url=sample_store, progress=False)
    rows = np.concatenate(list(store_chunks(SYMBOL, start, end, chunk="1h", store_url=sample_store)))
    whole = run_backtest("ofi_signal", params, rows, latency=Latency.constant(5e6), fees=Fees(-0.5, 4.5))
    assert len(result.fills) > 0
    np.testing.assert_array_equal(result.fills, whole.fills)
    assert result.config["symbol"] == SYMBOL and result.config["fees_bps"] == [-0.5, 4.5]
    assert result.config["start"] == "2024-08-08T23:56:00+00:00"


def test_cli_run_list_show_report(sample_store, tmp_path, capsys):
    report = tmp_path / "run.html"
    assert cli("backtest", "run", "--strategy", "ofi_signal", "--param", "window=20", "--param", "entry=3",
               "--param", "exit=0.5", "--symbol", SYMBOL, "--start", "2024-08-08 23:56:00",
               "--end", "2024-08-08 23:56:30", "--latency-ms", "5", "--fees-bps=-0.5,4.5",
               "--queue", "probabilistic", "--report", str(report), "--csv", str(tmp_path / "csv"),
               "--no-progress", "--store", sample_store) == 0
    out = capsys.readouterr().out
    run_id = re.search(r"run (\S+) stored", out).group(1)
    assert "pnl_net" in out and "sharpe" in out and report.exists() and (tmp_path / "csv" / "trades.csv").exists()
    assert cli("backtest", "list", "--store", sample_store) == 0
    assert run_id in capsys.readouterr().out
    assert cli("backtest", "show", run_id, "--store", sample_store) == 0
    shown = capsys.readouterr().out
    assert '"queue_model": "probabilistic"' in shown and "per UTC day" in shown
    again = tmp_path / "again.html"
    assert cli("backtest", "report", run_id, "--out", str(again), "--store", sample_store) == 0
    assert again.stat().st_size > 500_000
    assert cli("backtest", "strategies") == 0
    assert "ofi_signal" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (("--param", "window"), "NAME=VALUE"),
    (("--param", "window=x"), "not a number"),
    (("--fees-bps", "4.5"), "MAKER,TAKER"),
    (("--latency-ms", "a"), "numbers"),
])
def test_cli_names_bad_arguments(argv, message):
    with pytest.raises(ValueError, match=message):
        cli("backtest", "run", "--strategy", "ofi_signal", "--symbol", SYMBOL, *argv)


def test_deeplob_threshold_reads_the_predictions_table(sample_store):
    from genesis.backtest.engine import run_backtest
    from genesis.backtest.events import store_chunks
    from genesis.backtest.store import load_predictions, run_stored
    from genesis.store.queries import to_ns

    start, end = "2024-08-08 23:56:00", "2024-08-08 23:57:00"
    lo, hi = to_ns(start), to_ns(end)
    rng = np.random.default_rng(3)
    n = 120
    probs = rng.dirichlet([1, 1, 1], n).astype(np.float32)
    ts = np.sort(rng.integers(lo - 10**9, hi + 10**9, n))  # some outside the range: left out
    with connect(sample_store) as store:
        for model, shift in (("m-small", 0), ("m-main", 1)):  # m-main has more rows: the default
            keep = slice(0, n // 2) if model == "m-small" else slice(None)
            store.insert_columns("predictions", {
                "symbol": SYMBOL, "model_id": model, "ts": ts[keep] + shift, "p_down": probs[keep, 0],
                "p_stationary": probs[keep, 1], "p_up": probs[keep, 2],
                "predicted": np.argmax(probs[keep], axis=1).astype(np.int8) - 1})
        model_id, preds = load_predictions(store, SYMBOL, lo, hi)
        with pytest.raises(ValueError, match="no predictions"):
            load_predictions(store, "binance-usdm:ETHUSDT", lo, hi)
    assert model_id == "m-main" and len(preds["ts"]) == int(np.sum((ts + 1 >= lo) & (ts + 1 < hi)))
    params = {"threshold": 0.45, "qty": 0.001}
    result = run_stored("deeplob_threshold", params, SYMBOL, start, end, latency_ms=2, store_url=sample_store,
                        progress=False)
    rows = np.concatenate(list(store_chunks(SYMBOL, start, end, store_url=sample_store)))
    from genesis.backtest.engine import Latency

    whole = run_backtest("deeplob_threshold", params, rows, inputs=preds, latency=Latency.constant(2e6))
    assert result.config["model_id"] == "m-main" and len(result.fills) > 0
    np.testing.assert_array_equal(result.fills, whole.fills)
