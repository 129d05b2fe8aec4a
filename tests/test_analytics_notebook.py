"""notebooks/06_cross_asset.ipynb: under papermill with small parameters (as pipelines run it) and
under nbval (as `make test`), on the bundled captures in a throwaway store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pandas as pd
import pytest

from genesis.analytics.price_alerts import load_triggers
from genesis.pipelines.runner import REPO_ROOT, run_pipeline
from genesis.store import connect

pytestmark = pytest.mark.slow

NOTEBOOK = REPO_ROOT / "notebooks" / "06_cross_asset.ipynb"
BOKEH = "application/vnd.bokehjs_exec.v0+json"


def printed(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []) if o.output_type == "stream")


def test_papermill_with_parameters(tmp_path, store_url, monkeypatch):
    monkeypatch.setenv("GENESIS_CLICKHOUSE_URL", store_url)
    parameters = {"method": "ols", "window": 30, "z_window": 30, "start": "2024-08-08 23:55:00",
                  "end": "2024-08-08 23:58:00", "corr_window": 20, "export_dir": str(tmp_path / "csv"),
                  "alert_rules": ["binance-usdm:BTCUSDT cross 61810"]}
    spec = tmp_path / "cross_asset.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: cross_asset
        steps:
          - notebook: {NOTEBOOK}
            parameters: {json.dumps(parameters)}
        """))
    result = run_pipeline(spec, progress=False)
    assert result.ok, result.summary()
    nb = nbformat.read(result.steps[0].output, as_version=4)
    text = printed(nb)
    assert "ingested the bundled capture(s) of binance-usdm:BTCUSDT, binance-spot:ETHUSDT" in text
    assert "binance-usdm:BTCUSDT: 180 1s bars from 2024-08-08 23:55:00 to 2024-08-08 23:57:59" in text
    assert "binance-spot:ETHUSDT ~ binance-usdm:BTCUSDT (ols): beta last" in text
    assert "the live monitor fired the same: True" in text
    # bars, spread, heatmap, rolling correlation
    assert sum(BOKEH in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])) == 4
    exported = pd.read_csv(tmp_path / "csv" / "bars_binance-usdm_BTCUSDT_1s.csv")
    assert len(exported) == 180 and exported["symbol"].eq("binance-usdm:BTCUSDT").all()
    with connect(store_url) as store:
        stored = load_triggers(store)
    assert len(stored) > 0 and set(stored["kind"]) == {"cross"}
    lo, hi = pd.Timestamp("2024-08-08 23:55", tz="UTC").value, pd.Timestamp("2024-08-08 23:58", tz="UTC").value
    assert stored["at_ts"].between(lo, hi - 1).all()


def test_nbval(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_CLICKHOUSE_URL"}
    env["GENESIS_HOME"] = str(tmp_path)
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-q",
         str(NOTEBOOK.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
