"""Every notebook in notebooks/ runs in the suite: under nbval (the Makefile's NOTEBOOK_TESTS,
run by `make test`) and under papermill with small parameters (a test per notebook; this file
holds the one for 03_train_deeplob, the others live beside the code they exercise)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import nbformat
import pytest

from genesis.pipelines.runner import REPO_ROOT, run_pipeline

NOTEBOOKS = sorted(p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))

# Which test module runs each notebook under papermill (through genesis.pipelines.runner).
PAPERMILL_TESTS = {
    "01_ingest.ipynb": "test_pipelines.py",
    "02_explore.ipynb": "test_notebook_explore.py",
    "03_train_deeplob.ipynb": "test_notebooks.py",
    "04_backtest.ipynb": "test_notebook_backtest.py",
    "05_surveillance.ipynb": "test_notebook_surveillance.py",
    "06_cross_asset.ipynb": "test_analytics_notebook.py",
    "surveillance_review.ipynb": "test_voila_app.py",
}


def test_every_notebook_runs_under_nbval():
    makefile = (REPO_ROOT / "Makefile").read_text()
    listed = re.search(r"^NOTEBOOK_TESTS\s*=\s*((?:.*\\\n)*.*)$", makefile, re.M).group(1)
    assert sorted(Path(p).name for p in listed.replace("\\\n", " ").split()) == NOTEBOOKS


def test_every_notebook_has_a_papermill_test():
    assert sorted(PAPERMILL_TESTS) == NOTEBOOKS, "a new notebook needs a papermill test (and a line here)"
    here = Path(__file__).parent
    for notebook, module in PAPERMILL_TESTS.items():
        source = (here / module).read_text()
        assert "run_pipeline" in source, module
        assert notebook.removesuffix(".ipynb") in source, f"{module} does not mention {notebook}"


@pytest.mark.slow
def test_train_notebook_under_papermill(tmp_path):
    parameters = {"seconds": 600.0, "epochs": 1, "limit_train_batches": 4, "seed": 3,
                  "models_dir": str(tmp_path / "models")}
    spec = tmp_path / "train.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: train
        steps:
          - notebook: {REPO_ROOT / "notebooks" / "03_train_deeplob.ipynb"}
            parameters: {json.dumps(parameters)}
        """))
    result = run_pipeline(spec, progress=False)
    assert result.ok, result.steps[0].error
    executed = nbformat.read(result.steps[0].output, as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "limit_train_batches = 4" in injected.source and "seed = 3" in injected.source
    (model,) = (tmp_path / "models").iterdir()
    card = (model / "MODEL_CARD.md").read_text()
    assert "| deeplob |" in card and "| logistic |" in card
    shown = "".join(o.get("data", {}).get("text/markdown", "") for c in executed.cells for o in c.get("outputs", []))
    assert "purge" in shown  # the card is displayed in the notebook
