"""notebooks/05_surveillance.ipynb end to end under papermill, on a simulated market."""

from __future__ import annotations

import nbformat
import pytest

from genesis.pipelines.runner import REPO_ROOT, run_pipeline

pytestmark = pytest.mark.slow

BOKEH = "application/vnd.bokehjs_exec.v0+json"


def test_review_notebook_simulates_runs_detectors_and_replays(tmp_path, store_url):
    spec = tmp_path / "review.yaml"
    spec.write_text(f"""
name: review
steps:
  - notebook: {REPO_ROOT / 'notebooks' / '05_surveillance.ipynb'}
    parameters:
      symbol: "sim:SPOOFING+LAYERING-1"
      store_url: "{store_url}"
      window_s: 2.0
""")
    result = run_pipeline(spec, progress=False)
    assert result.ok, result.summary()
    executed = nbformat.read(result.steps[0].output, as_version=4)
    text = "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    assert "sim:SPOOFING+LAYERING-1" in text and "alerts" in text
    bokeh_outputs = [o for c in executed.cells for o in c.get("outputs", []) if BOKEH in o.get("data", {})]
    from genesis.store import connect

    with connect(store_url) as store:
        n_alerts = store.query_rows("SELECT count() FROM alerts")[0][0]
    # A replay is drawn whenever the detectors raised something.
    assert (len(bokeh_outputs) >= 1) == (n_alerts > 0)
