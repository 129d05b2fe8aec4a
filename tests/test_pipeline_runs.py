"""Pipeline runs: steps in dependency order, failure -> skip, resume, retries, timeouts, the lock,
the run registry in the store, HTML exports.

The notebooks are tiny throwaway ones written into tmp_path; each run starts one kernel per step
(about a second each): those tests are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import nbformat
import pytest

from genesis.cli import main
from genesis.pipelines import runner
from genesis.pipelines.runner import (
    PipelineLockedError,
    load_pipeline,
    lock_path,
    pipeline_lock,
    run_history,
    run_pipeline,
    run_steps,
)
from tests.test_pipelines import write_notebook, write_spec


@pytest.fixture
def three_steps(tmp_path):
    """``first`` writes a marker; ``second`` fails while ``fail`` is true (cell index 2);
    ``third`` depends on ``second``. Each appends its name and ``tag`` to a log file."""
    log = tmp_path / "ran.log"
    record = f"open({str(log)!r}, 'a').write(f'{{STEP}} {{tag}}\\n')"
    write_notebook(tmp_path / "first.ipynb", record.replace("{STEP}", "first"), parameters="tag = 'none'")
    write_notebook(tmp_path / "second.ipynb", record.replace("{STEP}", "second"),
                   "if fail:\n    raise ValueError(f'second failed with tag {tag}')",
                   parameters="tag = 'none'\nfail = True")
    write_notebook(tmp_path / "third.ipynb", record.replace("{STEP}", "third"), parameters="tag = 'none'")
    # Written out of order: depends_on decides the run order.
    spec = write_spec(tmp_path, "three", f"""\
        name: three
        steps:
          - name: third
            notebook: {tmp_path / "third.ipynb"}
            depends_on: second
          - name: first
            notebook: {tmp_path / "first.ipynb"}
          - name: second
            notebook: {tmp_path / "second.ipynb"}
            depends_on: [first]
        """)
    return spec, log


def ran(log) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_failed_step_skips_the_rest_and_a_resume_starts_at_it(three_steps, capsys):
    spec_path, log = three_steps
    assert [s.name for s in load_pipeline(spec_path).steps] == ["first", "second", "third"]

    assert main(["pipeline", "run", str(spec_path), "-q", "-p", "tag=nightly-42"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "ValueError: second failed with tag nightly-42" in out
    assert ran(log) == ["first nightly-42", "second nightly-42"]  # third never started

    (first_dir,) = (p for p in (runner.settings().runs_dir / "three").iterdir() if p.is_dir())
    manifest = json.loads((first_dir / "run.json").read_text())
    run_id = manifest["run_id"]
    assert run_id == f"three-{first_dir.name}" and manifest["status"] == "failed" and manifest["ok"] is False
    first, second, third = manifest["steps"]
    assert [s["status"] for s in manifest["steps"]] == ["ok", "failed", "skipped"]
    assert (second["error_name"], second["error_value"], second["error_cell"]) == (
        "ValueError", "second failed with tag nightly-42", 3)  # parameters, injected parameters, record, raise
    assert third["attempt"] == 0 and third["started"] is None
    # The -p parameter reached every step that ran, visibly, in the executed copies and their HTML.
    for step in (first, second):
        executed = nbformat.read(first_dir / step["output"], as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and 'tag = "nightly-42"' in injected[0].source
        assert step["parameters"] == {"tag": "nightly-42"}
        assert "nightly-42" in (first_dir / step["html"]).read_text()
    assert not (first_dir / "third.ipynb").exists()

    # The registry holds the run, its failure and every step.
    (row,) = run_history("three").itertuples()
    assert (row.run_id, row.status, row.failed_step) == (run_id, "failed", "second")
    assert "ValueError: second failed with tag nightly-42" in row.error
    assert json.loads(row.parameters) == {"tag": "nightly-42"}
    assert row.finished is not None and row.duration_s > 0
    steps = run_steps(run_id)
    assert list(steps["step"]) == ["first", "second", "third"]
    assert list(steps["status"]) == ["ok", "failed", "skipped"]
    assert list(steps["error_name"]) == ["", "ValueError", ""]
    assert steps["error_cell"].iloc[1] == 3

    # Fix the cause (here: the failing step no longer fails) and resume: first is not run again.
    second_nb = nbformat.read(spec_path.parent / "second.ipynb", as_version=4)
    second_nb.cells[0].source = "tag = 'none'\nfail = False"
    nbformat.write(second_nb, spec_path.parent / "second.ipynb")
    assert main(["pipeline", "run", str(spec_path), "-q", "--resume"]) == 0
    assert ran(log) == ["first nightly-42", "second nightly-42", "second nightly-42", "third nightly-42"]
    history = run_history("three")
    assert list(history["status"]) == ["ok", "failed"]
    resumed = history.iloc[0]
    assert resumed["resumed_from"] == run_id
    resumed_dir = runner.settings().runs_dir / "three" / resumed["run_id"].removeprefix("three-")
    manifest = json.loads((resumed_dir / "run.json").read_text())
    assert [s["status"] for s in manifest["steps"]] == ["reused", "ok", "ok"]
    assert manifest["steps"][0]["reused_from"] == run_id
    # The reused step's outputs are in the new run's folder, so it holds the whole run.
    assert sorted(p.name for p in resumed_dir.iterdir()) == [
        "first.html", "first.ipynb", "run.json", "second.html", "second.ipynb", "third.html", "third.ipynb"]

    # Nothing left to resume now.
    capsys.readouterr()
    assert main(["pipeline", "history", "three", "--steps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == [resumed["run_id"], "ok"] and f"(resumed {run_id})" in lines[0]
    assert lines[1].split() == ["1.", "first", "reused", "attempt", "1"]
    assert lines[4].split()[:2] == [run_id, "failed"]
    assert lines[5].strip().startswith("second: cell In [") and "ValueError" in lines[5]

    for resume in (True, resumed["run_id"]):
        with pytest.raises(ValueError, match=f"run {resumed['run_id']} succeeded; there is nothing to resume"):
            run_pipeline(spec_path, resume=resume, progress=False)


def test_resume_refuses_other_parameters_and_unknown_runs(three_steps):
    spec_path, _ = three_steps
    with pytest.raises(ValueError, match="no run to resume under"):
        run_pipeline(spec_path, resume=True)
    run_dir = runner.settings().runs_dir / "three" / "20260101T000000Z"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "pipeline": "three", "ok": False, "parameters": {"tag": "a"},
        "steps": [{"name": n, "notebook": f"{n}.ipynb", "output": f"{n}.ipynb", "status": "skipped"}
                  for n in ("first", "second", "third")]}))
    with pytest.raises(ValueError, match="keeps the parameters of run three-20260101T000000Z"):
        run_pipeline(spec_path, parameters={"tag": "b"}, resume=True)
    with pytest.raises(ValueError, match=r"no run 'three-20990101T000000Z'.*latest: three-20260101T000000Z"):
        run_pipeline(spec_path, resume="three-20990101T000000Z")


@pytest.mark.slow
def test_a_retry_runs_the_step_again(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "RETRY_BACKOFF_S", 0.0)
    counter = tmp_path / "attempts"
    write_notebook(tmp_path / "flaky.ipynb",
                   f"import pathlib\np = pathlib.Path({str(counter)!r})\nn = int(p.read_text()) + 1 if p.exists() else 1\n"
                   "p.write_text(str(n))\nassert n >= 2, f'attempt {n} fails'")
    spec = write_spec(tmp_path, "flaky", f"""\
        name: flaky
        steps:
          - notebook: {tmp_path / "flaky.ipynb"}
            retries: 2
        """)
    result = run_pipeline(spec, progress=False, registry=False)
    assert result.ok, result.summary()
    assert counter.read_text() == "2" and result.steps[0].attempt == 2


@pytest.mark.slow
def test_a_step_past_its_timeout_fails_with_the_cell(tmp_path):
    write_notebook(tmp_path / "slow.ipynb", "x = 1", "import time\ntime.sleep(60)")
    spec = write_spec(tmp_path, "slow", f"""\
        name: slow
        steps:
          - notebook: {tmp_path / "slow.ipynb"}
            timeout: 3
        """)
    result = run_pipeline(spec, progress=False, registry=False)
    (step,) = result.steps
    assert step.status == "failed" and step.error_cell == 2
    assert step.error_name in ("CellTimeoutError", "StepTimeout"), step.error
    assert step.duration_s < 30


@pytest.mark.slow
def test_a_step_past_its_wall_limit_is_stopped(tmp_path):
    # Every cell stays under the per-cell limit; together they pass the step's limit.
    write_notebook(tmp_path / "many.ipynb", *["import time\ntime.sleep(1.5)"] * 8)
    spec = write_spec(tmp_path, "many", f"""\
        name: many
        steps:
          - notebook: {tmp_path / "many.ipynb"}
            timeout: 2
        """)
    result = run_pipeline(spec, progress=False, registry=False)
    (step,) = result.steps
    assert (step.status, step.error_name) == ("failed", "StepTimeout"), step.error
    assert "timeout of 2 s" in step.error_value
    assert step.duration_s < 11


def test_the_lock_refuses_an_overlapping_run(three_steps, capsys):
    spec_path, log = three_steps
    with pipeline_lock("three"):
        holder = json.loads(lock_path("three").read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(PipelineLockedError, match=rf"pipeline three is already running \(pid {os.getpid()} on"):
            run_pipeline(spec_path, progress=False)
        assert main(["pipeline", "run", str(spec_path), "-q"]) == 3
        assert "error: pipeline three is already running" in capsys.readouterr().out
    assert not ran(log) and not (runner.settings().runs_dir / "three").exists()
    assert lock_path("three").read_text() == ""  # released and emptied


def test_the_lock_of_a_live_process_refuses_and_a_dead_ones_is_taken_over(tmp_path):
    code = ("import sys, time\nfrom genesis.pipelines.runner import pipeline_lock\n"
            "with pipeline_lock('three'):\n    print('held', flush=True)\n    sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PipelineLockedError, match=f"pid {holder.pid}"), pipeline_lock("three"):
            pass
    finally:
        holder.kill()  # dies holding the lock: its pid stays written in the file
        holder.wait()
    assert json.loads(lock_path("three").read_text())["pid"] == holder.pid
    with pipeline_lock("three"):
        assert json.loads(lock_path("three").read_text())["pid"] == os.getpid()


@pytest.mark.parametrize(
    "steps, problem",
    [
        ("[{name: a, notebook: NB, depends_on: [b]}]", "step 1 (a): depends_on names an unknown step 'b'"),
        ("[{name: a, notebook: NB, depends_on: a}]", "step 1 (a): depends on itself"),
        ("[{name: a, notebook: NB, depends_on: [c]}, {name: b, notebook: NB, depends_on: [a]},"
         " {name: c, notebook: NB, depends_on: [b]}]", "cycle: a -> c -> b -> a"),
        ("[{name: a, notebook: NB}, {name: a, notebook: NB}]", "step 2: name 'a' is already step 1's"),
        ("[{notebook: NB, retries: -1}]", "'retries' must be an integer from 0 to 10"),
        ("[{notebook: NB, retries: yes}]", "'retries' must be an integer"),
        ("[{notebook: NB, timeout: 0}]", "'timeout' must be a positive number of seconds"),
        ("[{notebook: NB, depends_on: {a: 1}}]", "'depends_on' must be a step name or a list"),
        ("[{notebook: NB, name: 'a b'}]", "name 'a b' must be letters"),
    ],
)
def test_invalid_steps_name_the_file_and_the_step(tmp_path, steps, problem):
    write_notebook(tmp_path / "nb.ipynb", parameters="n = 1")
    path = write_spec(tmp_path, "bad", f"name: bad\nsteps: {steps.replace('NB', str(tmp_path / 'nb.ipynb'))}\n")
    with pytest.raises(ValueError) as info:
        load_pipeline(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_a_notebook_twice_gets_step_names_and_outputs(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", parameters="n = 1")
    path = write_spec(tmp_path, "twice", f"name: twice\nsteps: [{{notebook: {tmp_path / 'nb.ipynb'}}}, "
                                         f"{{notebook: {tmp_path / 'nb.ipynb'}, parameters: {{n: 2}}}}]\n")
    spec = load_pipeline(path)
    assert [s.name for s in spec.steps] == ["nb.step1", "nb.step2"]
    assert runner._output_names(spec.steps) == {"nb.step1": "nb.step1.ipynb", "nb.step2": "nb.step2.ipynb"}


def test_show_and_history_commands(three_steps, capsys):
    spec_path, _ = three_steps
    assert main(["pipeline", "show", str(spec_path)]) == 0
    out = capsys.readouterr().out
    assert "1. first" in out and "3. third" in out and "depends on: second" in out
    assert main(["pipeline", "history"]) == 0
    assert "no runs recorded" in capsys.readouterr().out


def test_an_interrupted_run_is_recorded_as_such(three_steps, monkeypatch):
    spec_path, _ = three_steps

    def stopped(step, timeout, progress):
        if step.name == "second":
            raise KeyboardInterrupt
        step.status = "ok"

    monkeypatch.setattr(runner, "_run_step", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(spec_path, progress=False)
    (run_dir,) = (runner.settings().runs_dir / "three").iterdir()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["finished"] is not None
    assert [s["status"] for s in manifest["steps"]] == ["ok", "failed", "skipped"]
    assert manifest["steps"][1]["error_name"] == "Interrupted"
    (row,) = run_history("three").itertuples()
    assert (row.status, row.failed_step) == ("failed", "second")
    assert list(run_steps(row.run_id)["status"]) == ["ok", "failed", "skipped"]


@pytest.mark.slow
def test_a_terminated_cli_run_is_recorded_as_interrupted(tmp_path):
    write_notebook(tmp_path / "long.ipynb", "import time\ntime.sleep(60)")
    spec = write_spec(tmp_path, "long", f"name: long\nsteps: [{{notebook: {tmp_path / 'long.ipynb'}}}]\n")
    proc = subprocess.Popen([sys.executable, "-m", "genesis.cli", "pipeline", "run", str(spec), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = runner.settings().runs_dir / "long"
    manifest: dict = {}
    for _ in range(300):  # until the step runs (kernel started), at most 30 s
        manifests = list(runs.glob("*/run.json"))
        manifest = json.loads(manifests[0].read_text()) if manifests else {}
        if manifest.get("steps", [{}])[0].get("status") == "running":
            break
        if proc.poll() is not None:
            pytest.fail(proc.stdout.read())
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=60) == 128 + 15
    manifest = json.loads(next(runs.glob("*/run.json")).read_text())
    assert manifest["status"] == "failed"
    assert (manifest["steps"][0]["status"], manifest["steps"][0]["error_name"]) == ("failed", "Interrupted")
    assert "Interrupted" in proc.stdout.read()  # the summary was printed
