"""notebooks/02_explore.ipynb end to end: run with papermill (as pipelines run it), from a
capture file and from the store, and under nbval after the ingest notebook (as `make test`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

from genesis.pipelines.ingest import ingest_binance_capture
from genesis.pipelines.runner import REPO_ROOT, run_pipeline

pytestmark = pytest.mark.slow

NOTEBOOK = REPO_ROOT / "notebooks" / "02_explore.ipynb"
SAMPLE = REPO_ROOT / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"
SYMBOL = "binance-usdm:BTCUSDT"
BOKEH = "application/vnd.bokehjs_exec.v0+json"


def run_explore(tmp_path, **parameters):
    """Runs the notebook as a one-step pipeline (this interpreter's kernel, repo root as cwd);
    returns the result and the executed notebook."""
    spec = tmp_path / "explore.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: explore
        steps:
          - notebook: {NOTEBOOK}
            parameters: {json.dumps(parameters)}
        """))
    result = run_pipeline(spec, progress=False)
    executed = nbformat.read(result.steps[0].output, as_version=4)
    return result, executed


def outputs(nb, mime: str) -> list[str]:
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if mime in output.get("data", {}):
                data = output["data"][mime]
                found.append(data if isinstance(data, str) else json.dumps(data))
    return found


def printed(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []) if o.output_type == "stream")


def assert_explored(nb, rows: int):
    assert f"{rows:,} event rows" in printed(nb)
    assert len(outputs(nb, BOKEH)) == 1  # the linked plots (the widgets draw nothing until clicked)
    # The linked figures, as their titles appear in the document the plot cell embeds.
    document = "\n".join(outputs(nb, "application/javascript"))
    for title in ("Price: mid, microprice and trades", "Order-flow imbalance", "VPIN", "Depth heatmap"):
        assert title in document
    # The statistics table: one row per feature, its columns.
    html = "\n".join(outputs(nb, "text/html"))
    for text in ("nan_share", "99%", "ofi_l1_w100", "obi_weighted_l10_d0p5"):
        assert text in html
    assert outputs(nb, "application/vnd.jupyter.widget-view+json")  # the widgets are displayed


def test_explore_a_capture_file(tmp_path):
    result, nb = run_explore(tmp_path, capture=str(SAMPLE), max_points=500)
    assert result.ok, result.summary()
    assert_explored(nb, 6547)
    # Bounded plots: the plot cell's output stays small whatever the number of rows.
    plot_cell = next(c for c in nb.cells if any(BOKEH in o.get("data", {}) for o in c.get("outputs", [])))
    assert len(json.dumps(plot_cell["outputs"])) < 400_000


def test_explore_from_the_store(tmp_path, store_url, monkeypatch):
    ingest_binance_capture([SAMPLE], store_url=store_url, progress=False)
    monkeypatch.setenv("GENESIS_CLICKHOUSE_URL", store_url)  # the kernel's store
    result, nb = run_explore(tmp_path)  # the default parameters: the sample's symbol, all of it
    assert result.ok, result.summary()
    assert_explored(nb, 6547)


def test_explore_a_time_range_from_the_store(tmp_path, store_url, monkeypatch):
    ingest_binance_capture([SAMPLE], store_url=store_url, progress=False)
    monkeypatch.setenv("GENESIS_CLICKHOUSE_URL", store_url)
    result, nb = run_explore(tmp_path, symbol="BTCUSDT", start="2024-08-08 23:56:00", end="2024-08-08 23:58:00")
    assert result.ok, result.summary()
    assert "event rows from 2024-08-08 23:56:00" in printed(nb)
    assert len(outputs(nb, BOKEH)) == 1


def test_a_symbol_the_store_lacks_says_what_it_holds_and_how_to_ingest(tmp_path, store_url, monkeypatch):
    ingest_binance_capture([SAMPLE], store_url=store_url, progress=False)
    monkeypatch.setenv("GENESIS_CLICKHOUSE_URL", store_url)
    result, _ = run_explore(tmp_path, symbol="binance-spot:ETHUSDT")
    assert not result.ok
    assert "LookupError" in result.error and SYMBOL in result.error and "make run" in result.error


def test_ingest_then_explore_pass_nbval(tmp_path):
    """What `make test` runs: both notebooks, in order, on one throwaway GENESIS_HOME."""
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_CLICKHOUSE_URL"}
    env["GENESIS_HOME"] = str(tmp_path)
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-q",
         "notebooks/01_ingest.ipynb", "notebooks/02_explore.ipynb"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
