"""Papermill pipelines: parameterised notebook steps run in order, with a record of every run.

A pipeline is a YAML file ``pipelines/<name>.yaml`` at the repository root::

    name: demo
    description: Ingest the bundled sample capture and plot its top of book
    schedule: "30 2 * * *"            # optional five-field cron expression (UTC), for the scheduler
    steps:
      - name: ingest                  # optional; default: the notebook's file name without .ipynb
        notebook: notebooks/01_ingest.ipynb
        parameters: {levels: 20}      # strings may use ${GENESIS_HOME} and ${REPO}
        retries: 1                    # optional: run a failing step again, after 2 s, 4 s, ... (default 0)
        timeout: 900                  # optional: seconds, per cell and for the whole step (default none)
      - notebook: notebooks/02_explore.ipynb
        depends_on: [ingest]          # optional: steps run in a topological order of these

Each run writes the executed notebooks, their HTML exports and a ``run.json`` manifest to
``$GENESIS_HOME/runs/<pipeline>/<UTC timestamp>/``, so a scheduled run leaves the same evidence
a person would look at after running the notebook by hand, and records itself in the store's
run registry (tables ``pipeline_runs`` and ``pipeline_steps``, ``clickhouse/008_pipeline_runs.sql``).

A failing step fails the run and the steps after it are skipped; ``run_pipeline(name,
resume=True)`` runs the last failed run again from its failed step, reusing the outputs of the
steps that had succeeded. Two runs of one pipeline never overlap: a run holds the lock
``$GENESIS_HOME/locks/pipeline-<name>.lock`` (``flock``, with the holder's pid and start time
written in it, so a dead holder's lock is simply taken over). A run stopped from outside
(:func:`request_stop`, which ``genesis pipeline run`` calls on SIGTERM) kills its kernel and is
recorded as failed with an 'Interrupted' step, never left 'running'.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from genesis.config import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINES_DIR = REPO_ROOT / "pipelines"
KERNEL_NAME = "python3"
RETRY_BACKOFF_S = 2.0  # a retry waits 2 s, then 4 s, 8 s, ... up to RETRY_BACKOFF_MAX_S
RETRY_BACKOFF_MAX_S = 60.0
MAX_RETRIES = 10

log = logging.getLogger("genesis.pipelines")

_REQUIRED_KEYS = {"name", "steps"}
_OPTIONAL_KEYS = {"description", "schedule"}
_STEP_KEYS = {"name", "parameters", "depends_on", "retries", "timeout"}
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_VARIABLES = ("GENESIS_HOME", "REPO")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Step statuses: pending -> running -> ok | failed; skipped (after a failed step);
# reused (a resumed run took the step's outputs from the earlier run).
DONE = ("ok", "reused")


class PipelineLockedError(RuntimeError):
    """Another live process is running this pipeline."""


class PipelineInterrupted(Exception):
    """The run was asked to stop (:func:`request_stop`; the CLI calls it on SIGTERM)."""


# The running step's kernels in this process, for request_stop() (a signal handler) to kill.
_stop_requested = threading.Event()
_live_kernels: set[int] = set()


@dataclass(frozen=True)
class Step:
    notebook: Path  # absolute
    parameters: dict[str, Any] = field(default_factory=dict)  # as written, placeholders unexpanded
    declared: tuple[str, ...] = ()  # the notebook's own parameters (its ``parameters`` cell)
    name: str = ""  # unique in the pipeline; default: the notebook's stem
    depends_on: tuple[str, ...] = ()
    retries: int = 0  # extra attempts after a failure
    timeout: float | None = None  # seconds: papermill's per-cell limit and the step's wall limit


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    schedule: str | None
    steps: tuple[Step, ...]  # in run order (a topological order of ``depends_on``, else file order)
    path: Path


@dataclass
class StepResult:
    notebook: Path
    output: Path
    parameters: dict[str, Any]
    status: str = "pending"  # -> "running" -> "ok" | "failed"; "skipped" after a failure; "reused"
    started: str | None = None
    finished: str | None = None
    error: str | None = None  # one line: the cell, the exception and its message
    name: str = ""
    attempt: int = 0  # 1 for the first attempt, 2 for the first retry...; 0: never ran here
    error_name: str | None = None  # the failing cell's exception class (ename), or StepTimeout
    error_value: str | None = None
    error_cell: int | None = None  # index of the failing cell in the executed notebook
    reused_from: str | None = None  # the run whose output a resumed run reused

    @property
    def html(self) -> Path:
        return self.output.with_suffix(".html")

    @property
    def duration_s(self) -> float | None:
        if not (self.started and self.finished):
            return None
        return (datetime.fromisoformat(self.finished) - datetime.fromisoformat(self.started)).total_seconds()


@dataclass
class RunResult:
    pipeline: str
    run_dir: Path
    started: str
    parameters: dict[str, Any]  # the run's overrides
    steps: list[StepResult]
    finished: str | None = None
    resumed_from: str | None = None  # the run id this one resumed
    registry_error: str | None = None  # why the store's run registry could not be written, if so

    @property
    def run_id(self) -> str:
        """``<pipeline>-<UTC timestamp>``: the run's key in the registry and its folder's name."""
        return f"{self.pipeline}-{self.run_dir.name}"

    @property
    def ok(self) -> bool:
        return all(step.status in DONE for step in self.steps)

    @property
    def status(self) -> str:
        """'running' until finished, then 'ok' or 'failed'."""
        return "running" if self.finished is None else "ok" if self.ok else "failed"

    @property
    def manifest(self) -> Path:
        return self.run_dir / "run.json"

    @property
    def error(self) -> str | None:
        return next((step.error for step in self.steps if step.error), None)

    @property
    def interrupted(self) -> bool:
        """Whether the run was stopped from outside (:func:`request_stop`, SIGTERM, Ctrl-C)."""
        return any(step.error_name == "Interrupted" for step in self.steps)

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if step.status == "failed"), None)

    @property
    def duration_s(self) -> float | None:
        if self.finished is None:
            return None
        return (datetime.fromisoformat(self.finished) - datetime.fromisoformat(self.started)).total_seconds()

    def summary(self) -> str:
        """What ran, what failed and where, and where the outputs are."""
        resumed = f", resumed from {self.resumed_from}" if self.resumed_from else ""
        lines = [f"pipeline {self.pipeline}: {'ok' if self.ok else 'FAILED'} run {self.run_id}{resumed} "
                 f"({self.run_dir})"]
        for i, step in enumerate(self.steps, 1):
            tries = f" (attempt {step.attempt})" if step.attempt > 1 else ""
            lines.append(f"  step {i} {step.status:<7} {step.name}: {_display(step.notebook)} -> "
                         f"{step.output.name}{tries}")
            if step.error:
                lines.append(f"    {step.error}")
                lines.append(f"    executed notebook: {step.output}")
        lines.append(f"manifest: {self.manifest}")
        if self.registry_error:
            lines.append(f"run registry not written: {self.registry_error}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "ok": self.ok if self.finished else None,  # None while running (or if the runner died)
            "started": self.started,
            "finished": self.finished,
            "duration_s": self.duration_s,
            "error": self.error,
            "parameters": self.parameters,
            "resumed_from": self.resumed_from,
            "steps": [
                {
                    "name": step.name,
                    "notebook": _display(step.notebook),
                    "output": step.output.name,
                    "html": step.html.name if step.html.exists() else None,
                    "status": step.status,
                    "attempt": step.attempt,
                    "started": step.started,
                    "finished": step.finished,
                    "duration_s": step.duration_s,
                    "parameters": step.parameters,
                    "error": step.error,
                    "error_name": step.error_name,
                    "error_value": step.error_value,
                    "error_cell": step.error_cell,
                    "reused_from": step.reused_from,
                }
                for step in self.steps
            ],
        }


def resolve_path(path: str | Path) -> Path:
    """Resolve a data path for a notebook: absolute as is; relative against the current
    directory if it exists there, else against the repository root.

    This is what lets a notebook name the bundled sample as ``data/sample/...`` and find it
    whether it runs from the repository root (pipelines) or from ``notebooks/`` (JupyterLab,
    nbval).
    """
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (REPO_ROOT / path).resolve()


def load_pipeline(name_or_path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline spec, by name (``pipelines/<name>.yaml``) or path.

    Everything a run would trip over later (a misspelt key, a missing notebook, a parameter
    the notebook does not declare, a dependency on an unknown step or a cycle, a malformed
    cron expression) fails here, with the file and the problem named.
    """
    from genesis.pipelines.schedule import CronExpression

    path = _spec_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with keys {sorted(_REQUIRED_KEYS)}, got {type(raw).__name__}")
    _check_keys(raw, _REQUIRED_KEYS, _OPTIONAL_KEYS, f"{path}")

    name = raw["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name != path.stem:
        raise ValueError(f"{path}: name {name!r} must match the file name ({path.stem!r})")
    schedule = raw.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or len(schedule.split()) != 5):
        raise ValueError(f"{path}: schedule {schedule!r} is not a five-field cron expression")
    if schedule is not None:
        try:
            CronExpression.parse(schedule)
        except ValueError as exc:
            raise ValueError(f"{path}: schedule: {exc}") from None
    steps = raw["steps"]
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{path}: 'steps' must be a non-empty list")
    loaded = [_load_step(step, f"{path}: step {i}") for i, step in enumerate(steps, 1)]
    loaded = _name_steps(loaded, steps, path)
    return PipelineSpec(
        name=name,
        description=str(raw.get("description") or ""),
        schedule=schedule,
        steps=tuple(_run_order(loaded, path)),
        path=path,
    )


def list_pipelines() -> list[PipelineSpec]:
    """All pipelines under ``pipelines/``, by name; an invalid spec raises (naming its file)."""
    return [load_pipeline(path) for path in sorted(PIPELINES_DIR.glob("*.yaml"))]


def run_pipeline(
    name: str | Path,
    parameters: dict[str, Any] | None = None,
    progress: bool = True,
    *,
    resume: bool | str | None = None,
    registry: bool = True,
) -> RunResult:
    """Run every step of a pipeline with papermill, in run order; stop at the first failing step.

    ``parameters`` override the spec's, for each step whose notebook declares them.
    Strings (as the CLI's ``-p key=value`` gives) are read as YAML, so ``levels=10`` is an int
    and ``symbols=[a, b]`` a list. A failure is recorded, not raised: look at ``ok`` and
    ``summary()``; the executed notebook (and its HTML export) shows the failing cell.

    ``resume=True`` resumes this pipeline's latest run (if it failed or was interrupted),
    ``resume=RUN_ID`` that run: its successful steps' outputs are copied into the new run (status 'reused') and
    the run goes on from its failed step, with the earlier run's parameters (giving others is
    an error). ``registry=False`` skips the store's run registry (``run.json`` is always written).

    Raises :class:`PipelineLockedError` at once if another live process runs this pipeline.
    """
    spec = load_pipeline(name)
    overrides = {key: _coerce(key, value) for key, value in (parameters or {}).items()}
    declared = {p for step in spec.steps for p in step.declared}
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise ValueError(
            f"pipeline {spec.name}: no step declares parameter(s) {', '.join(unknown)} "
            f"(declared: {', '.join(sorted(declared)) or 'none'})"
        )
    home = settings().home
    _stop_requested.clear()
    with pipeline_lock(spec.name):
        earlier = _earlier_run(spec, resume, overrides) if resume else None
        if earlier is not None:
            overrides = earlier["parameters"]
        result = _new_run(spec, overrides, home, earlier)
        _execute(spec, result, progress, registry)
    return result


# --- the lock ---------------------------------------------------------------------------------


def lock_path(pipeline: str) -> Path:
    """The lock file of ``pipeline``: ``$GENESIS_HOME/locks/pipeline-<name>.lock``."""
    return settings().home / "locks" / f"pipeline-{pipeline}.lock"


@contextmanager
def pipeline_lock(pipeline: str) -> Iterator[Path]:
    """Hold ``pipeline``'s run lock for the ``with`` block, or raise :class:`PipelineLockedError` at once.

    The lock is an ``flock`` on :func:`lock_path`, which holds the holder's pid, host and start
    time for the message a second run gets. The kernel drops an ``flock`` when its process
    dies, so the lock of a dead holder (a killed run, a reboot) is taken over, never waited on.
    """
    path = lock_path(pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by kernels (O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
               if holder else "another process")
        raise PipelineLockedError(
            f"pipeline {pipeline} is already running ({who}; lock {path}): runs of one pipeline never overlap, "
            "wait for that run to finish"
        ) from None
    try:
        stale = _read_holder(fd)
        if stale and stale.get("pid") != os.getpid():
            log.warning("pipeline %s: took over the lock of pid %s (started %s), which is gone",
                        pipeline, stale.get("pid"), stale.get("started"))
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now().isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield path
    finally:
        # Emptied, not removed: removing a locked file lets a waiter lock the old inode while
        # a newcomer locks a new one.
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 4096, 0).decode()
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


# --- a run ------------------------------------------------------------------------------------


def _new_run(spec: PipelineSpec, overrides: dict[str, Any], home: Path, earlier: dict | None) -> RunResult:
    variables = {"GENESIS_HOME": str(home), "REPO": str(REPO_ROOT)}
    started = _now()
    run_dir = _new_run_dir(home / "runs" / spec.name, started)
    outputs = _output_names(spec.steps)
    result = RunResult(
        pipeline=spec.name,
        run_dir=run_dir,
        started=started.isoformat(),
        parameters=overrides,
        resumed_from=earlier["run_id"] if earlier else None,
        steps=[
            StepResult(
                notebook=step.notebook,
                output=run_dir / outputs[step.name],
                name=step.name,
                parameters=_expand(
                    {**step.parameters, **{k: v for k, v in overrides.items() if k in step.declared}}, variables
                ),
            )
            for step in spec.steps
        ],
    )
    if earlier is not None:
        _reuse_done_steps(result, earlier)
    return result


def _execute(spec: PipelineSpec, result: RunResult, progress: bool, registry: bool) -> None:
    recorder = _Registry(result) if registry else None

    def save(step: StepResult | None = None) -> None:
        _write_manifest(result)
        if recorder:
            recorder.step(step) if step is not None else recorder.run()

    save()
    for step in result.steps:
        if step.status == "reused":
            save(step)
    try:
        _run_steps(spec, result, save, progress)
    except BaseException as exc:  # request_stop() (SIGTERM in the CLI), Ctrl-C: record, then stop
        for step in result.steps:
            if step.status in ("running", "pending"):
                interrupted = step.status == "running"
                step.status = "failed" if interrupted else "skipped"
                if interrupted:
                    step.finished = _now().isoformat()
                    step.error_name, step.error_value = "Interrupted", f"the run was stopped ({type(exc).__name__})"
                    step.error = f"{step.error_name}: {step.error_value}"
                save(step)
        result.finished = _now().isoformat()
        save()
        if not isinstance(exc, PipelineInterrupted):
            raise
        return
    result.finished = _now().isoformat()
    save()


def _run_steps(spec: PipelineSpec, result: RunResult, save, progress: bool) -> None:
    failed = False
    for spec_step, step in zip(spec.steps, result.steps, strict=True):
        if step.status == "reused":
            continue
        if failed:
            step.status = "skipped"
            save(step)
            continue
        for attempt in range(1, spec_step.retries + 2):
            if attempt > 1:
                delay = min(RETRY_BACKOFF_S * 2 ** (attempt - 2), RETRY_BACKOFF_MAX_S)
                log.warning("pipeline %s: step %s failed (%s); attempt %d in %.0f s",
                            spec.name, step.name, step.error, attempt, delay)
                _stop_requested.wait(delay)
            if _stop_requested.is_set():
                raise PipelineInterrupted
            step.attempt, step.status = attempt, "running"
            step.started, step.finished = _now().isoformat(), None
            step.error = step.error_name = step.error_value = step.error_cell = None
            save(step)  # a run in progress shows which step, which attempt
            _run_step(step, spec_step.timeout, progress)
            save(step)
            if _stop_requested.is_set():
                raise PipelineInterrupted
            if step.status == "ok":
                break
        failed = step.status != "ok"


def _run_step(step: StepResult, timeout: float | None, progress: bool) -> None:
    """One attempt at one (running) step: papermill into ``step.output``, then its HTML export."""
    import papermill

    kernel_pids: list[int] = []
    timed_out = threading.Event()

    def stop_step() -> None:  # the step's wall limit: its kernel dies, papermill raises
        timed_out.set()
        _kill(kernel_pids)

    def kernel_started(pid: int) -> None:
        kernel_pids.append(pid)
        _live_kernels.add(pid)
        if _stop_requested.is_set():  # asked to stop while the kernel was starting
            _kill([pid])

    # Per cell, papermill stops a cell at `timeout` and names it; the wall limit (a little
    # later, so that a single hanging cell is reported by papermill) catches many slow cells.
    timer = threading.Timer(timeout + 2.0, stop_step) if timeout else None
    try:
        if timer:
            timer.start()
        papermill.execute_notebook(
            step.notebook,
            step.output,
            parameters=step.parameters,
            kernel_name=KERNEL_NAME,
            kernel_manager_class=_this_interpreter_kernel_manager(kernel_started),
            cwd=str(REPO_ROOT),
            progress_bar=progress,
            execution_timeout=timeout,
        )
        step.status = "ok"
    except Exception as exc:  # any failure of a step is recorded, and stops the run
        step.status = "failed"
        _record_failure(step, exc, timeout if timed_out.is_set() else None)
    finally:
        if timer:
            timer.cancel()
        _live_kernels.difference_update(kernel_pids)
    step.finished = _now().isoformat()
    _export_html(step)


def request_stop() -> None:
    """Stop the pipeline running in this process: the running step's kernel is killed, the step
    is recorded as failed ('Interrupted'), later steps as skipped, and ``run_pipeline`` returns.
    Safe to call from a signal handler."""
    _stop_requested.set()
    _kill(list(_live_kernels))


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _record_failure(step: StepResult, exc: Exception, wall_timeout: float | None) -> None:
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    step.error_cell = _failed_cell(step.output)
    if _stop_requested.is_set():
        step.error_name, step.error_value = "Interrupted", "the run was asked to stop (SIGTERM or request_stop())"
    elif wall_timeout is not None:
        step.error_name, step.error_value = "StepTimeout", f"the step ran past its timeout of {wall_timeout:g} s"
    elif isinstance(exc, PapermillExecutionError):
        step.error_name, step.error_value, step.error_cell = exc.ename, exc.evalue, exc.cell_index
    elif isinstance(exc, CellTimeoutError):
        step.error_name, step.error_value = "CellTimeoutError", str(exc).splitlines()[0]
    else:
        step.error_name, step.error_value = type(exc).__name__, str(exc)
    step.error = _describe_failure(exc, step)


def _failed_cell(output: Path) -> int | None:
    """Index of the cell papermill marked as failed or left running in an executed notebook."""
    import nbformat

    try:
        nb = nbformat.read(output, as_version=4)
    except Exception:  # no output written (the kernel never started)
        return None
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("exception") or meta.get("status") in ("failed", "running"):
            return index
    # A cell stopped at its timeout is interrupted: papermill marks it completed, with an error output.
    return next((index for index, cell in enumerate(nb.cells)
                 if any(out.get("output_type") == "error" for out in cell.get("outputs", []))), None)


def _export_html(step: StepResult) -> None:
    """The executed notebook as a stand-alone HTML page beside it (nbconvert, no network)."""
    import nbformat
    from nbconvert import HTMLExporter

    if not step.output.exists():
        return
    try:
        body, _ = HTMLExporter().from_notebook_node(nbformat.read(step.output, as_version=4))
        step.html.write_text(body, encoding="utf-8")
    except Exception as exc:  # the executed notebook is the evidence; its HTML copy is a convenience
        log.warning("pipeline step %s: HTML export of %s failed: %s", step.name, step.output, exc)


# --- resume -----------------------------------------------------------------------------------


def find_run(pipeline: str, run_id: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The folder and ``run.json`` of ``pipeline``'s run ``run_id`` (``<pipeline>-<stamp>`` or
    just ``<stamp>``), or, without ``run_id``, of its latest run."""
    base = settings().runs_dir / pipeline
    manifests = sorted(base.glob("*/run.json"), key=lambda p: p.parent.name) if base.is_dir() else []
    if run_id is None:
        if not manifests:
            raise ValueError(f"pipeline {pipeline}: no run to resume under {base}")
        return manifests[-1].parent, json.loads(manifests[-1].read_text())
    stamp = run_id.removeprefix(f"{pipeline}-")
    path = base / stamp / "run.json"
    if stamp in ("", ".", "..") or "/" in stamp or not path.is_file():
        known = ", ".join(f"{pipeline}-{p.parent.name}" for p in manifests[-5:]) or "none"
        raise ValueError(f"pipeline {pipeline}: no run {run_id!r} under {base} (latest: {known})")
    return path.parent, json.loads(path.read_text())


def _earlier_run(spec: PipelineSpec, resume: bool | str, overrides: dict[str, Any]) -> dict[str, Any]:
    run_dir, manifest = find_run(spec.name, None if resume is True else str(resume))
    run_id = manifest.get("run_id") or f"{spec.name}-{run_dir.name}"
    if manifest.get("ok") is True:
        raise ValueError(f"pipeline {spec.name}: run {run_id} succeeded; there is nothing to resume")
    if overrides and overrides != manifest.get("parameters"):
        raise ValueError(
            f"pipeline {spec.name}: a resumed run keeps the parameters of run {run_id} "
            f"({manifest.get('parameters')}); start a new run to change them"
        )
    earlier_names = [step.get("name") or Path(step["notebook"]).stem for step in manifest["steps"]]
    if earlier_names != [step.name for step in spec.steps]:
        raise ValueError(
            f"pipeline {spec.name}: its steps changed since run {run_id} ({earlier_names} then, "
            f"{[step.name for step in spec.steps]} now); start a new run"
        )
    return {**manifest, "run_id": run_id, "run_dir": run_dir}


def _reuse_done_steps(result: RunResult, earlier: dict[str, Any]) -> None:
    """Copy the outputs of the steps the earlier run completed; they are not run again."""
    for step, before in zip(result.steps, earlier["steps"], strict=True):
        if before["status"] not in DONE:
            break  # a resumed run goes on from the first step that did not succeed
        source = earlier["run_dir"] / before["output"]
        shutil.copy2(source, step.output)
        if source.with_suffix(".html").exists():
            shutil.copy2(source.with_suffix(".html"), step.html)
        step.status, step.attempt = "reused", before.get("attempt") or 1
        step.started, step.finished = before.get("started"), before.get("finished")
        step.reused_from = before.get("reused_from") or earlier["run_id"]


# --- the run registry in the store ------------------------------------------------------------


class _Registry:
    """Writes a run and its steps to ``pipeline_runs``/``pipeline_steps`` as they change.

    Tables are ReplacingMergeTree on a version column: each write is a new row version, read
    back with ``FINAL``. The store is opened for each write and closed at once, because the
    notebooks' kernels (other processes) open the embedded store in between. A store that
    cannot be written is reported in the run's summary, not fatal: ``run.json`` still holds
    the record, and the notebooks themselves will say what is wrong with the store.
    """

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self._version = 0
        self._migrated = False

    def run(self) -> None:
        r = self.result
        failed = r.failed_step
        self._write("pipeline_runs", {
            "run_id": [r.run_id], "pipeline": [r.pipeline], "status": [r.status],
            "started": [_ns(r.started)], "finished": [_ns(r.finished)], "duration_s": [r.duration_s],
            "parameters": [json.dumps(r.parameters, default=str)], "resumed_from": [r.resumed_from or ""],
            "run_dir": [str(r.run_dir)], "host": [socket.gethostname()], "pid": [os.getpid()],
            "failed_step": [failed.name if failed else ""], "error": [r.error or ""],
        })

    def step(self, step: StepResult) -> None:
        position = next(i for i, s in enumerate(self.result.steps) if s is step)
        self._write("pipeline_steps", {
            "run_id": [self.result.run_id], "pipeline": [self.result.pipeline], "position": [position],
            "step": [step.name], "attempt": [step.attempt], "notebook": [_display(step.notebook)],
            "status": [step.status], "started": [_ns(step.started)], "finished": [_ns(step.finished)],
            "duration_s": [step.duration_s], "parameters": [json.dumps(step.parameters, default=str)],
            "output": [str(step.output)], "error_name": [step.error_name or ""],
            "error_value": [step.error_value or ""], "error_cell": [step.error_cell],
            "reused_from": [step.reused_from or ""],
        })

    def _write(self, table: str, columns: dict[str, list]) -> None:
        import pyarrow as pa

        from genesis.store import connect, migrate

        if self.result.registry_error:
            return  # said once is enough
        self._version = max(self._version + 1, time.time_ns())  # strictly increasing row versions
        types = {"duration_s": pa.float64(), "error_cell": pa.int32(), "pid": pa.uint32(),
                 "position": pa.uint16(), "attempt": pa.uint16()}
        try:
            with connect() as store:
                if not self._migrated:
                    migrate(store)
                    self._migrated = True
                store.insert_columns(table, {**columns, "version": [self._version]},
                                     types={**{k: v for k, v in types.items() if k in columns},
                                            "version": pa.uint64()})
        except Exception as exc:
            self.result.registry_error = f"{type(exc).__name__}: {exc}"
            log.warning("pipeline %s: run registry not written: %s", self.result.pipeline, exc)


def run_history(pipeline: str | None = None, limit: int = 20, store_url: str | None = None):
    """Runs from the registry, newest first (a pandas DataFrame): run_id, pipeline, status, started,
    finished, duration_s, failed_step, error, parameters (JSON), resumed_from, run_dir."""
    from genesis.store import connect, migrate

    with connect(store_url) as store:
        migrate(store)
        return store.query_df(
            "SELECT run_id, pipeline, status, started, finished, duration_s, failed_step, error, parameters,"
            " resumed_from, run_dir FROM pipeline_runs FINAL"
            " WHERE {pipeline:String} = '' OR pipeline = {pipeline:String}"
            " ORDER BY started DESC, run_id DESC LIMIT {limit:UInt32}",
            {"pipeline": pipeline or "", "limit": limit},
        )


def run_steps(run_id: str, store_url: str | None = None):
    """The registry's rows for one run's steps, every attempt, in run order (a pandas DataFrame)."""
    from genesis.store import connect, migrate

    with connect(store_url) as store:
        migrate(store)
        return store.query_df(
            "SELECT position, step, attempt, notebook, status, started, finished, duration_s, error_name,"
            " error_value, error_cell, reused_from, output FROM pipeline_steps FINAL"
            " WHERE run_id = {run_id:String} ORDER BY position, attempt",
            {"run_id": run_id},
        )


def _ns(iso: str | None) -> int | None:
    if iso is None:
        return None
    moment = datetime.fromisoformat(iso)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _coerce(key: str, value: Any) -> Any:
    """A command-line string read as YAML (``10`` an int, ``[a, b]`` a list); other values as is."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"parameter {key}={value!r}: not a YAML value ({exc.problem}); quote it to pass a string") from None


def _this_interpreter_kernel_manager(on_start=None) -> type:
    """A kernel manager that starts ipykernel's own ``python3`` spec on ``sys.executable``.

    By name, ``python3`` resolves through the Jupyter path, where a user-level kernelspec
    (``~/.local/share/jupyter/kernels/python3``) wins over the environment's and may point to
    another interpreter, one without ``genesis``. Searching no kernel directories leaves
    only the native spec, which is this interpreter, as a pipeline needs.

    Where pyzmq has CurveZMQ, the kernel's sockets are encrypted too ("auto"), which also
    spares every run ipykernel's warning about plain-text TCP. ``on_start(pid)`` is told the
    kernel's process id, for a step's wall-clock limit to stop it.
    """
    import zmq
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from traitlets import default

    class ThisInterpreterKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _native_spec_only(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)

        @default("transport_encryption")
        def _encrypt_if_possible(self) -> str:
            return "auto" if zmq.has("curve") else "disabled"

        async def _async_launch_kernel(self, kernel_cmd, **kw) -> None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            if on_start is not None and getattr(self.provisioner, "pid", None):
                on_start(self.provisioner.pid)

    return ThisInterpreterKernelManager


def _spec_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text).expanduser().resolve()
    else:
        path = PIPELINES_DIR / f"{text}.yaml"
    if not path.is_file():
        available = ", ".join(p.stem for p in sorted(PIPELINES_DIR.glob("*.yaml"))) or "none"
        raise FileNotFoundError(f"no pipeline {text!r}: {path} does not exist (available: {available})")
    return path


def _check_keys(raw: dict, required: set[str], optional: set[str], where: str) -> None:
    missing = sorted(required - raw.keys())
    if missing:
        raise ValueError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
    unknown = sorted(set(raw) - required - optional, key=str)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (allowed: {allowed})")


def _load_step(raw: Any, where: str) -> Step:
    import papermill

    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping with a 'notebook' key, got {raw!r}")
    _check_keys(raw, {"notebook"}, _STEP_KEYS, where)
    notebook = Path(str(raw["notebook"])).expanduser()
    notebook = notebook if notebook.is_absolute() else REPO_ROOT / notebook
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        raise ValueError(f"{where}: unknown notebook {raw['notebook']!r} (no such .ipynb file: {notebook})")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ValueError(f"{where}: 'parameters' must be a mapping, got {parameters!r}")
    declared = tuple(papermill.inspect_notebook(notebook))
    undeclared = sorted(set(parameters) - set(declared), key=str)
    if undeclared:
        raise ValueError(
            f"{where}: {_display(notebook)} has no parameter(s) {', '.join(map(str, undeclared))} "
            f"(its parameters cell declares: {', '.join(declared) or 'nothing'})"
        )
    _check_placeholders(parameters, where)
    name = raw.get("name", "")
    if name != "" and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise ValueError(f"{where}: name {name!r} must be letters, digits, '_', '.' or '-'")
    depends_on = raw.get("depends_on") or []
    depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        raise ValueError(f"{where}: 'depends_on' must be a step name or a list of step names, got {depends_on!r}")
    retries = raw.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"{where}: 'retries' must be an integer from 0 to {MAX_RETRIES}, got {retries!r}")
    timeout = raw.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"{where}: 'timeout' must be a positive number of seconds, got {timeout!r}")
    return Step(notebook=notebook.resolve(), parameters=parameters, declared=declared, name=name,
                depends_on=tuple(depends_on), retries=retries, timeout=None if timeout is None else float(timeout))


def _name_steps(steps: list[Step], raw: list[dict], path: Path) -> list[Step]:
    """Unnamed steps take their notebook's stem (with ``.step<i>`` when a notebook runs twice);
    names must be unique."""
    stems = [step.notebook.stem for step in steps]
    named: list[Step] = []
    seen: dict[str, int] = {}
    for i, step in enumerate(steps, 1):
        name = step.name or (step.notebook.stem if stems.count(step.notebook.stem) == 1
                             else f"{step.notebook.stem}.step{i}")
        if name in seen:
            raise ValueError(f"{path}: step {i}: name {name!r} is already step {seen[name]}'s; give steps distinct names")
        seen[name] = i
        named.append(replace(step, name=name))
    return named


def _run_order(steps: list[Step], path: Path) -> list[Step]:
    """A topological order of ``depends_on``: of the steps whose dependencies have run, the one
    written first runs next (so a file without ``depends_on`` runs in file order)."""
    names = {step.name: i for i, step in enumerate(steps, 1)}
    for i, step in enumerate(steps, 1):
        for dependency in step.depends_on:
            if dependency not in names:
                raise ValueError(
                    f"{path}: step {i} ({step.name}): depends_on names an unknown step {dependency!r} "
                    f"(steps: {', '.join(names)})"
                )
            if dependency == step.name:
                raise ValueError(f"{path}: step {i} ({step.name}): depends on itself")
    order: list[Step] = []
    placed: set[str] = set()
    remaining = list(steps)
    while remaining:
        ready = next((s for s in remaining if set(s.depends_on) <= placed), None)
        if ready is None:
            cycle = _a_cycle({s.name: s.depends_on for s in remaining})
            raise ValueError(f"{path}: steps depend on each other in a cycle: {' -> '.join(cycle)} "
                             f"(step {names[cycle[0]]}, {cycle[0]!r}, is on it)")
        order.append(ready)
        placed.add(ready.name)
        remaining.remove(ready)
    return order


def _a_cycle(graph: dict[str, tuple[str, ...]]) -> list[str]:
    """One dependency cycle of ``graph`` (every node of which has an unplaced dependency), closed."""
    node = next(iter(graph))
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = next(d for d in graph[node] if d in graph)
    return [*path[path.index(node):], node]


def _check_placeholders(value: Any, where: str) -> None:
    if isinstance(value, str):
        unknown = [m for m in _PLACEHOLDER.findall(value) if m not in _VARIABLES]
        if unknown:
            raise ValueError(
                f"{where}: unknown variable ${{{unknown[0]}}} in {value!r} (known: "
                + ", ".join(f"${{{v}}}" for v in _VARIABLES)
                + ")"
            )
    elif isinstance(value, dict):
        for item in value.values():
            _check_placeholders(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_placeholders(item, where)


def _expand(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _expand(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, variables) for v in value]
    return value


def _output_names(steps: tuple[Step, ...]) -> dict[str, str]:
    """Step name -> output file: the notebook's file name; a notebook that runs twice gets its
    step name instead."""
    names = [step.notebook.name for step in steps]
    return {
        step.name: step.notebook.name if names.count(step.notebook.name) == 1 else f"{step.name}{step.notebook.suffix}"
        for step in steps
    }


def _new_run_dir(base: Path, started: datetime) -> Path:
    """``<base>/<UTC timestamp>``, with a ``-2``, ``-3``... suffix for runs in the same second."""
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        run_dir = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"{base}: too many runs started at {stamp}")


def _describe_failure(exc: Exception, step: StepResult) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        return (
            f"cell In [{exc.exec_count}] (index {exc.cell_index}, `{first_line[:60]}`) "
            f"raised {exc.ename}: {exc.evalue}"
        )
    where = f"cell index {step.error_cell}: " if step.error_cell is not None else ""
    return f"{where}{step.error_name}: {step.error_value}"


def _write_manifest(result: RunResult) -> None:
    tmp = result.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    tmp.replace(result.manifest)


def _display(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _now() -> datetime:
    return datetime.now(UTC)
