"""Papermill pipelines: parameterised notebooks run in order, with a record of every run.

A pipeline is a YAML file ``pipelines/<name>.yaml`` at the repository root::

    name: demo
    description: Ingest the bundled sample capture and plot its top of book
    schedule: "30 2 * * *"            # optional cron expression, for a scheduler
    steps:
      - notebook: notebooks/01_ingest.ipynb
        parameters: {levels: 20}      # strings may use ${GENESIS_HOME} and ${REPO}

Each run writes the executed notebooks and a ``run.json`` manifest to
``$GENESIS_HOME/runs/<pipeline>/<UTC timestamp>/``, so a scheduled run leaves the same
evidence a person would look at after running the notebook by hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from genesis.config import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINES_DIR = REPO_ROOT / "pipelines"
KERNEL_NAME = "python3"

_REQUIRED_KEYS = {"name", "steps"}
_OPTIONAL_KEYS = {"description", "schedule"}
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_VARIABLES = ("GENESIS_HOME", "REPO")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Step:
    notebook: Path  # absolute
    parameters: dict[str, Any] = field(default_factory=dict)  # as written, placeholders unexpanded
    declared: tuple[str, ...] = ()  # the notebook's own parameters (its ``parameters`` cell)


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    schedule: str | None
    steps: tuple[Step, ...]
    path: Path


@dataclass
class StepResult:
    notebook: Path
    output: Path
    parameters: dict[str, Any]
    status: str = "pending"  # -> "ok" | "failed" | "not run" (after a failed step)
    started: str | None = None
    finished: str | None = None
    error: str | None = None


@dataclass
class RunResult:
    pipeline: str
    run_dir: Path
    started: str
    parameters: dict[str, Any]  # the run's overrides
    steps: list[StepResult]
    finished: str | None = None

    @property
    def ok(self) -> bool:
        return all(step.status == "ok" for step in self.steps)

    @property
    def manifest(self) -> Path:
        return self.run_dir / "run.json"

    @property
    def error(self) -> str | None:
        return next((step.error for step in self.steps if step.error), None)

    def summary(self) -> str:
        """What ran, what failed and where, and where the outputs are."""
        lines = [f"pipeline {self.pipeline}: {'ok' if self.ok else 'FAILED'} ({self.run_dir})"]
        for i, step in enumerate(self.steps, 1):
            lines.append(f"  step {i} {step.status:<7} {_display(step.notebook)} -> {step.output.name}")
            if step.error:
                lines.append(f"    {step.error}")
                lines.append(f"    executed notebook: {step.output}")
        lines.append(f"manifest: {self.manifest}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "ok": self.ok if self.finished else None,  # None while running (or if the runner died)
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "parameters": self.parameters,
            "steps": [
                {
                    "notebook": _display(step.notebook),
                    "output": step.output.name,
                    "status": step.status,
                    "started": step.started,
                    "finished": step.finished,
                    "parameters": step.parameters,
                    "error": step.error,
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
    the notebook does not declare) fails here, with the file and the problem named.
    """
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
    steps = raw["steps"]
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{path}: 'steps' must be a non-empty list")
    return PipelineSpec(
        name=name,
        description=str(raw.get("description") or ""),
        schedule=schedule,
        steps=tuple(_load_step(step, f"{path}: step {i}") for i, step in enumerate(steps, 1)),
        path=path,
    )


def list_pipelines() -> list[PipelineSpec]:
    """All pipelines under ``pipelines/``, by name; an invalid spec raises (naming its file)."""
    return [load_pipeline(path) for path in sorted(PIPELINES_DIR.glob("*.yaml"))]


def run_pipeline(
    name: str | Path, parameters: dict[str, Any] | None = None, progress: bool = True
) -> RunResult:
    """Run every step of a pipeline with papermill; stop at the first failing step.

    ``parameters`` override the spec's, for each step whose notebook declares them.
    Strings (as the CLI's ``-p key=value`` gives) are read as YAML, so ``levels=10`` is an int
    and ``symbols=[a, b]`` a list. A failure is recorded, not raised: look at ``ok`` and
    ``summary()``; the executed notebook shows the failing cell.
    """
    import papermill

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
    variables = {"GENESIS_HOME": str(home), "REPO": str(REPO_ROOT)}
    started = _now()
    run_dir = _new_run_dir(home / "runs" / spec.name, started)
    outputs = _output_names([step.notebook for step in spec.steps])
    result = RunResult(
        pipeline=spec.name,
        run_dir=run_dir,
        started=started.isoformat(),
        parameters=overrides,
        steps=[
            StepResult(
                notebook=step.notebook,
                output=run_dir / output,
                parameters=_expand(
                    {**step.parameters, **{k: v for k, v in overrides.items() if k in step.declared}}, variables
                ),
            )
            for step, output in zip(spec.steps, outputs, strict=True)
        ],
    )
    _write_manifest(result)
    failed = False
    for step in result.steps:
        if failed:
            step.status = "not run"
            continue
        step.started = _now().isoformat()
        try:
            papermill.execute_notebook(
                step.notebook,
                step.output,
                parameters=step.parameters,
                kernel_name=KERNEL_NAME,
                kernel_manager_class=_this_interpreter_kernel_manager(),
                cwd=str(REPO_ROOT),
                progress_bar=progress,
            )
            step.status = "ok"
        except Exception as exc:  # any failure of a step is recorded, and stops the run
            step.status = "failed"
            step.error = _describe_failure(exc)
            failed = True
        step.finished = _now().isoformat()
        _write_manifest(result)
    result.finished = _now().isoformat()
    _write_manifest(result)
    return result


def _coerce(key: str, value: Any) -> Any:
    """A command-line string read as YAML (``10`` an int, ``[a, b]`` a list); other values as is."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"parameter {key}={value!r}: not a YAML value ({exc.problem}); quote it to pass a string") from None


def _this_interpreter_kernel_manager() -> type:
    """A kernel manager that starts ipykernel's own ``python3`` spec on ``sys.executable``.

    By name, ``python3`` resolves through the Jupyter path, where a user-level kernelspec
    (``~/.local/share/jupyter/kernels/python3``) wins over the environment's and may point to
    another interpreter, one without ``genesis``. Searching no kernel directories leaves
    only the native spec, which is this interpreter, as a pipeline needs.

    Where pyzmq has CurveZMQ, the kernel's sockets are encrypted too ("auto"), which also
    spares every run ipykernel's warning about plain-text TCP.
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
    _check_keys(raw, {"notebook"}, {"parameters"}, where)
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
    return Step(notebook=notebook.resolve(), parameters=parameters, declared=declared)


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


def _output_names(notebooks: list[Path]) -> list[str]:
    """The notebook's file name; a notebook that runs twice gets its step number too."""
    names = [nb.name for nb in notebooks]
    return [
        name if names.count(name) == 1 else f"{nb.stem}.step{i}{nb.suffix}"
        for i, (nb, name) in enumerate(zip(notebooks, names, strict=True), 1)
    ]


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


def _describe_failure(exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        return (
            f"cell In [{exc.exec_count}] (index {exc.cell_index}, `{first_line[:60]}`) "
            f"raised {exc.ename}: {exc.evalue}"
        )
    return f"{type(exc).__name__}: {exc}"


def _write_manifest(result: RunResult) -> None:
    tmp = result.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    tmp.replace(result.manifest)


def _display(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _now() -> datetime:
    return datetime.now(UTC)
