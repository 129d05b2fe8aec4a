"""Pipeline specs, papermill runs and the ingest notebook, end to end.

Runs that start a kernel are marked slow; spec validation needs none.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from genesis.backtest.store import list_runs
from genesis.cli import main
from genesis.pipelines.runner import REPO_ROOT, list_pipelines, load_pipeline, resolve_path, run_pipeline
from genesis.store import connect, queries
from genesis.viz import top_of_book_figure

SYMBOL = "binance-usdm:BTCUSDT"
SAMPLE_TRADES = 21_313  # @trade lines in data/sample/usdm_btcusdt_20240808.jsonl.gz
TIMESTAMP = r"\d{8}T\d{6}Z"  # a run directory, e.g. 20261121T051500Z


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh GENESIS_HOME with the embedded store inside it, for this test only."""
    home = tmp_path / "home"
    monkeypatch.setenv("GENESIS_HOME", str(home))
    monkeypatch.delenv("GENESIS_CLICKHOUSE_URL", raising=False)
    return home


def write_notebook(path, *cells: str, parameters: str = "") -> None:
    """A python3 notebook whose first cell, tagged ``parameters``, holds ``parameters``."""
    params = new_code_cell(parameters, metadata={"tags": ["parameters"]})
    nb = new_notebook(
        cells=[params, *map(new_code_cell, cells)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, path)


def write_spec(directory, name: str, body: str):
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


# --- specs -----------------------------------------------------------------------------


def test_demo_spec_loads():
    spec = load_pipeline("demo")
    assert spec.name == "demo"
    assert spec.path == REPO_ROOT / "pipelines" / "demo.yaml"
    ingest, explore, review, backtest = spec.steps
    assert ingest.notebook == REPO_ROOT / "notebooks" / "01_ingest.ipynb"
    assert {"paths", "symbols", "store_url", "levels", "replace"} <= set(ingest.declared)
    assert explore.notebook == REPO_ROOT / "notebooks" / "02_explore.ipynb"
    assert {"symbol", "start", "end", "sampling", "spec"} <= set(explore.declared)
    assert review.notebook == REPO_ROOT / "notebooks" / "05_surveillance.ipynb"
    assert {"symbol", "start", "end", "store_url", "alert_rank", "window_s"} <= set(review.declared)
    assert backtest.notebook == REPO_ROOT / "notebooks" / "04_backtest.ipynb"
    assert {"strategy", "params", "symbols", "start", "end", "latency_ms"} <= set(backtest.declared)
    assert "demo" in [s.name for s in list_pipelines()]


def test_nightly_spec_loads_in_dependency_order():
    spec = load_pipeline("nightly")
    assert spec.schedule == "30 2 * * *"
    assert [s.name for s in spec.steps] == ["ingest", "features", "surveillance", "train", "backtest"]
    assert [s.notebook.name for s in spec.steps] == [
        "01_ingest.ipynb", "02_explore.ipynb", "05_surveillance.ipynb", "03_train_deeplob.ipynb", "04_backtest.ipynb"]
    by_name = {s.name: s for s in spec.steps}
    assert by_name["backtest"].depends_on == ("ingest", "features")
    assert by_name["ingest"].retries == 2 and all(s.timeout for s in spec.steps)


def test_a_spec_loads_by_path_too(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", parameters="n = 1")
    path = write_spec(tmp_path, "nightly", f"""\
        name: nightly
        description: a test
        schedule: "30 2 * * *"
        steps:
          - notebook: {tmp_path / "nb.ipynb"}
            parameters: {{n: 2}}
        """)
    spec = load_pipeline(path)
    assert (spec.name, spec.schedule, spec.steps[0].parameters) == ("nightly", "30 2 * * *", {"n": 2})


@pytest.mark.parametrize(
    "body, problem",
    [
        ("name: bad\nsteps: [\n", "invalid YAML"),
        ("- just a list\n", "expected a mapping"),
        ("name: bad\n", "missing required key(s) 'steps'"),
        ("steps: [{notebook: NB}]\n", "missing required key(s) 'name'"),
        ("name: bad\nstep: [{notebook: NB}]\nsteps: [{notebook: NB}]\n", "unknown key(s) 'step'"),
        ("name: other\nsteps: [{notebook: NB}]\n", "must match the file name"),
        ("name: bad\nschedule: daily\nsteps: [{notebook: NB}]\n", "not a five-field cron expression"),
        ("name: bad\nschedule: '61 * * * *'\nsteps: [{notebook: NB}]\n", "schedule: cron expression '61 * * * *': minute"),
        ("name: bad\nsteps: []\n", "'steps' must be a non-empty list"),
        ("name: bad\nsteps: [notebooks/nb.ipynb]\n", "step 1: expected a mapping"),
        ("name: bad\nsteps: [{parameters: {}}]\n", "step 1: missing required key(s) 'notebook'"),
        ("name: bad\nsteps: [{notebook: NB, params: {}}]\n", "step 1: unknown key(s) 'params'"),
        ("name: bad\nsteps: [{notebook: NB}, {notebook: nowhere.ipynb}]\n", "step 2: unknown notebook 'nowhere.ipynb'"),
        ("name: bad\nsteps: [{notebook: NB, parameters: [1]}]\n", "'parameters' must be a mapping"),
        ("name: bad\nsteps: [{notebook: NB, parameters: {m: 1}}]\n", "has no parameter(s) m (its parameters cell declares: n)"),
        ("name: bad\nsteps: [{notebook: NB, parameters: {n: '${HOME}/x'}}]\n", "unknown variable ${HOME}"),
    ],
)
def test_invalid_specs_name_the_file_and_the_problem(tmp_path, body, problem):
    write_notebook(tmp_path / "nb.ipynb", parameters="n = 1")
    path = write_spec(tmp_path, "bad", body.replace("NB", str(tmp_path / "nb.ipynb")))
    with pytest.raises(ValueError) as info:
        load_pipeline(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_unknown_pipeline_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"no pipeline 'nope'.*available: .*demo"):
        load_pipeline("nope")


def test_override_of_an_undeclared_parameter_is_refused_before_running(home):
    with pytest.raises(ValueError, match="no step declares parameter.* levles"):
        run_pipeline("demo", parameters={"levles": "10"})
    assert not (home / "runs").exists()


def test_an_override_that_is_not_yaml_is_refused(home):
    with pytest.raises(ValueError, match=r"parameter levels='\[1': not a YAML value"):
        run_pipeline("demo", parameters={"levels": "[1"})


def test_pipeline_list_command(capsys):
    assert main(["pipeline", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[0] == "demo" and "sample" in line for line in lines)


def test_resolve_path_prefers_the_current_directory_then_the_repo(tmp_path, monkeypatch):
    sample = "data/sample/usdm_btcusdt_20240808.jsonl.gz"
    monkeypatch.chdir(REPO_ROOT / "notebooks")
    assert resolve_path(sample) == REPO_ROOT / sample
    (tmp_path / "data" / "sample").mkdir(parents=True)
    (tmp_path / sample).touch()
    monkeypatch.chdir(tmp_path)
    assert resolve_path(sample) == tmp_path / sample
    assert resolve_path(REPO_ROOT / sample) == REPO_ROOT / sample


# --- runs (start a kernel) ---------------------------------------------------------------


@pytest.mark.slow
def test_steps_run_on_this_interpreter_with_coerced_overrides(home, tmp_path, monkeypatch):
    # A user-level kernelspec named python3 for another interpreter must not win.
    shadow = tmp_path / "jupyter" / "kernels" / "python3"
    shadow.mkdir(parents=True)
    (shadow / "kernel.json").write_text(json.dumps(
        {"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "elsewhere", "language": "python"}
    ))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    write_notebook(
        tmp_path / "check.ipynb",
        f"import os, sys\nassert sys.executable == {sys.executable!r}, sys.executable\n"
        f"assert os.getcwd() == {str(REPO_ROOT)!r}\n"
        "assert (n, where, flags) == (10, os.environ['GENESIS_HOME'] + '/out', [True, None]), (n, where, flags)",
        parameters="n = 1\nwhere = ''\nflags = []",
    )
    spec = write_spec(tmp_path, "check", f"""\
        name: check
        steps:
          - notebook: {tmp_path / "check.ipynb"}
            parameters: {{where: "${{GENESIS_HOME}}/out"}}
        """)
    result = run_pipeline(spec, parameters={"n": "10", "flags": "[true, null]"}, progress=False)
    assert result.ok, result.summary()
    manifest = json.loads(result.manifest.read_text())
    assert manifest["parameters"] == {"n": 10, "flags": [True, None]}
    assert manifest["steps"][0]["parameters"] == {"where": f"{home}/out", "n": 10, "flags": [True, None]}


@pytest.mark.slow
def test_a_failing_step_stops_the_run_and_says_where(home, tmp_path, capsys):
    write_notebook(tmp_path / "boom.ipynb", "x = 1", "raise RuntimeError('boom at ' + str(x))")
    write_notebook(tmp_path / "after.ipynb", "print('never')")
    spec = write_spec(tmp_path, "broken", f"""\
        name: broken
        description: fails on purpose
        steps:
          - notebook: {tmp_path / "boom.ipynb"}
          - notebook: {tmp_path / "after.ipynb"}
        """)
    result = run_pipeline(spec, progress=False)

    assert not result.ok
    assert [s.status for s in result.steps] == ["failed", "skipped"]
    assert result.run_dir.parent == home / "runs" / "broken"
    summary = result.summary()
    assert "FAILED" in summary and "boom.ipynb" in summary
    assert "RuntimeError: boom at 1" in summary
    assert f"executed notebook: {result.run_dir / 'boom.ipynb'}" in summary
    executed = nbformat.read(result.run_dir / "boom.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for cell in executed.cells for o in cell.get("outputs", []))
    manifest = json.loads(result.manifest.read_text())
    assert manifest["ok"] is False and "RuntimeError" in manifest["error"]
    assert [s["status"] for s in manifest["steps"]] == ["failed", "skipped"]
    assert (manifest["steps"][0]["error_name"], manifest["steps"][0]["error_cell"]) == ("RuntimeError", 2)
    assert "RuntimeError" in (result.run_dir / "boom.html").read_text()
    assert manifest["finished"] is not None

    assert main(["pipeline", "run", str(spec), "-q"]) == 1
    assert "boom.ipynb" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_pipeline_ingests_the_sample(home):
    result = run_pipeline("demo", parameters={"levels": "10"}, progress=False)

    assert result.ok, result.summary()
    assert result.run_dir.parent == home / "runs" / "demo"
    assert re.fullmatch(TIMESTAMP, result.run_dir.name)
    notebooks = ["01_ingest", "02_explore", "04_backtest", "05_surveillance"]
    assert sorted(p.name for p in result.run_dir.iterdir()) == sorted(
        [f"{nb}.{ext}" for nb in notebooks for ext in ("ipynb", "html")] + ["run.json"])
    manifest = json.loads(result.manifest.read_text())
    assert manifest["pipeline"] == "demo" and manifest["ok"] is True
    assert manifest["steps"][0]["parameters"] == {
        "paths": [str(REPO_ROOT / "data/sample/usdm_btcusdt_20240808.jsonl.gz")],
        "levels": 10,
    }
    executed = nbformat.read(result.run_dir / "01_ingest.ipynb", as_version=4)
    assert any("injected-parameters" in cell.metadata.get("tags", []) for cell in executed.cells)
    with connect() as store:
        levels = store.query_rows("SELECT DISTINCT length(bid_px) FROM book_snapshots WHERE symbol = {s:String}",
                                  {"s": SYMBOL})
        counts = queries.table_counts(store)
        symbols = queries.symbols(store)
        book = queries.top_of_book(store, SYMBOL)
        history = queries.ingest_history(store)
    assert counts.loc[SYMBOL, "trades"] == SAMPLE_TRADES
    assert levels == [(10,)]
    # The review step simulated the market it reviews (the store had none), and surveyed it.
    assert sorted(symbols) == sorted([SYMBOL, "sim:SPOOFING+LAYERING-1"])
    assert list(history["status"]) == ["done", "done"]
    # The backtest step stored its run on the sample.
    with connect() as store:
        runs = list_runs(store)
    assert list(runs["strategy"]) == ["ofi_signal"] and list(runs["symbols"]) == [SYMBOL]

    # The top of book the notebook plotted: a real book, never crossed, in exchange-time order.
    assert list(book.columns) == list(queries.TOP_OF_BOOK_COLUMNS)
    assert len(book) == counts.loc[SYMBOL, "book_snapshots"] > 1000
    assert book["exch_ts"].is_monotonic_increasing
    assert (book["spread"].dropna() > 0).all()
    assert book["mid"].between(book["bid_px"], book["ask_px"]).all()
    layout = top_of_book_figure(book)
    figures = [child[0] for child in layout.children]
    assert len(figures) == 3 and all(f.x_range is figures[0].x_range for f in figures)


@pytest.mark.slow
def test_ingest_notebook_passes_nbval(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_CLICKHOUSE_URL"}
    env["GENESIS_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-q", "notebooks/01_ingest.ipynb"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
