"""notebooks/04_backtest.ipynb end to end under papermill, with small parameters, on the
bundled sample (ingested by the notebook itself into a fresh store)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest

from genesis.pipelines.runner import REPO_ROOT, run_pipeline

pytestmark = pytest.mark.slow

BOKEH = "application/vnd.bokehjs_exec.v0+json"


def test_backtest_notebook_runs_stores_reports_and_checks_the_sweep(tmp_path, store_url):
    parameters = {"start": "2024-08-08 23:56:00", "end": "2024-08-08 23:57:30", "store_url": store_url,
                  "sweep_grid": {"window": [20, 50], "entry": [3.0, 5.0], "exit": [0.5]}}
    spec = tmp_path / "backtest.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: backtest
        steps:
          - notebook: {REPO_ROOT / 'notebooks' / '04_backtest.ipynb'}
            parameters: {json.dumps(parameters)}
        """))
    result = run_pipeline(spec, progress=False)
    assert result.ok, result.summary()
    executed = nbformat.read(result.steps[0].output, as_version=4)
    text = "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "ingested the bundled sample" in text
    assert "binance-usdm:BTCUSDT: run " in text and "same fills: True" in text
    assert any(BOKEH in o.get("data", {}) for c in executed.cells for o in c.get("outputs", []))
    from genesis.backtest.store import list_runs
    from genesis.config import settings
    from genesis.store import connect

    with connect(store_url) as store:
        runs = list_runs(store)
    assert len(runs) == 1 and runs["fills"].iloc[0] > 0
    directory = Path(settings().home) / "backtests" / runs["run_id"].iloc[0]
    assert (directory / "report.html").stat().st_size > 500_000
    assert {p.name for p in directory.glob("*.csv")} == {"fills.csv", "trades.csv", "equity.csv", "daily.csv",
                                                         "metrics.csv"}
