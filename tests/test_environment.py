"""The ways to install and test Genesis agree: pyproject.toml, environment.yml, the Makefile.

environment.yml lists pyproject's dependencies and test extra, under ``pip:``, with the same
requirement strings; torch is pinned in both; ``make test`` runs the tests and the notebooks.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TORCH_PIN = "==2.13.0"

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def normalise_name(name: str) -> str:
    """PEP 503: case-insensitive, runs of ``-``, ``_`` and ``.`` are the same."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(lines: list[str], where: str) -> dict[str, str]:
    """``{normalised name: extras + specifier (+ marker), whitespace removed}``; duplicates fail."""
    parsed: dict[str, str] = {}
    for line in lines:
        match = _REQUIREMENT.match(line)
        assert match, f"{where}: cannot read requirement {line!r}"
        name, extras, rest = match.groups()
        key = normalise_name(name)
        assert key not in parsed, f"{where}: {name} is listed twice"
        parsed[key] = re.sub(r"\s+", "", (extras or "") + rest)
    return parsed


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def conda_env() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def pyproject_requirements(pyproject: dict) -> dict[str, str]:
    project = pyproject["project"]
    lines = list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("test", []))
    return parse_requirements(lines, "pyproject.toml")


def conda_pip_requirements(conda_env: dict) -> dict[str, str]:
    pip_sections = [d["pip"] for d in conda_env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml: expected one `- pip:` section"
    return parse_requirements([str(line) for line in pip_sections[0]], "environment.yml (pip)")


def conda_packages(conda_env: dict) -> list[str]:
    return [d for d in conda_env["dependencies"] if isinstance(d, str)]


def test_environment_yml_lists_exactly_pyprojects_requirements(pyproject, conda_env):
    expected = pyproject_requirements(pyproject)
    actual = conda_pip_requirements(conda_env)
    missing = {k: v for k, v in expected.items() if k not in actual}
    extra = {k: v for k, v in actual.items() if k not in expected}
    differ = {k: (expected[k], actual[k]) for k in expected.keys() & actual.keys() if expected[k] != actual[k]}
    assert not (missing or extra or differ), (
        "environment.yml is out of step with pyproject.toml: "
        f"missing {missing}, not in pyproject {extra}, different bounds (pyproject, environment.yml) {differ}"
    )


def test_environment_yml_is_a_python_311_conda_forge_env(pyproject, conda_env):
    assert conda_env["name"] == "genesis"
    assert conda_env["channels"] == ["conda-forge"]
    packages = conda_packages(conda_env)
    assert "python=3.11" in packages
    assert "pip" in packages
    # The conda Python satisfies pyproject's requires-python.
    assert pyproject["project"]["requires-python"] == ">=3.11"
    # Everything else comes through pip, so the two lists cannot drift apart.
    assert sorted(packages) == ["pip", "python=3.11"]


def test_torch_is_pinned_in_both(pyproject, conda_env):
    assert pyproject_requirements(pyproject)["torch"] == TORCH_PIN
    assert conda_pip_requirements(conda_env)["torch"] == TORCH_PIN


def test_requirement_names_are_normalised():
    parsed = parse_requirements(["Clickhouse_Connect >= 0.8", "ruamel.yaml", "pkg[extra] ==1"], "t")
    assert parsed == {"clickhouse-connect": ">=0.8", "ruamel-yaml": "", "pkg": "[extra]==1"}


# -- Makefile ------------------------------------------------------------------------------


def makefile_variables(text: str) -> dict[str, str]:
    """Simple ``NAME = value`` / ``?=`` / ``:=`` assignments (not target-specific ones)."""
    variables = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?|:)?=\s*(.*?)\s*$", line)
        if match:
            variables.setdefault(match.group(1), match.group(2))
    return variables


def expand(text: str, variables: dict[str, str]) -> str:
    for _ in range(10):
        expanded = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), text)
        if expanded == text:
            break
        text = expanded
    return text


def recipe(text: str, target: str) -> str:
    """The recipe of ``target`` (its tab-indented lines, continuations joined), variables expanded."""
    lines = text.splitlines()
    rule = re.compile(rf"^{re.escape(target)}\s*:(?!=)(?!\s*export\b)")
    starts = [i for i, line in enumerate(lines) if rule.match(line)]
    assert len(starts) == 1, f"Makefile: expected one rule for {target!r}, found {len(starts)}"
    body = []
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("\t"):
            break
        body.append(line[1:])
    assert body, f"Makefile: {target!r} has an empty recipe"
    joined = re.sub(r"\\\n", " ", "\n".join(body))
    return expand(joined, makefile_variables(text))


@pytest.fixture(scope="module")
def makefile() -> str:
    return (REPO / "Makefile").read_text()


def test_make_test_runs_pytest_and_nbval_with_throwaway_homes(makefile):
    body = recipe(makefile, "test")
    assert re.search(r"\bpytest tests/", body), "make test must run pytest over tests/"
    assert re.search(r"\bpytest --nbval-lax\b.*notebooks/01_ingest\.ipynb", body), "make test must run nbval"
    assert "-p no:cacheprovider" in body
    assert body.count("mktemp -d") >= 2, "each pytest run gets a throwaway GENESIS_HOME"
    assert body.count("GENESIS_HOME=") >= 2
    assert "-u GENESIS_CLICKHOUSE_URL" in body, "a user's store URL must not leak into the tests"
    assert re.search(r"^test\s*:.*\bsetup\b", makefile, re.M), "make test depends on setup"


def test_make_setup_installs_from_pyproject_only(makefile):
    variables = makefile_variables(makefile)
    stamp = expand("$(STAMP)", variables)
    assert stamp == ".venv/.installed"
    assert re.search(rf"^{re.escape('$(STAMP)')}\s*:.*\bpyproject\.toml\b", makefile, re.M)
    body = recipe(makefile, "$(STAMP)")
    assert "-m venv" in body
    assert "pip install -e '.[test]'" in body
    # torch only ever arrives through pyproject's pin.
    assert not re.search(r"pip install[^\n]*\btorch\b", body)
    assert expand("$(TORCH_PIN)", variables) == TORCH_PIN.removeprefix("==")


def test_makefile_defaults_and_targets(makefile):
    assert re.search(r"^\.DEFAULT_GOAL\s*:=\s*help\s*$", makefile, re.M)
    for target in ("help", "setup", "run", "test", "bench", "clean"):
        assert re.search(rf"^{target}\s*:(?!=)", makefile, re.M), f"Makefile: no {target!r} target"
    assert re.search(r"^PYTHON\s*\?=\s*python3\s*$", makefile, re.M)
    # `clean` never touches the user's store.
    assert "GENESIS_HOME" not in recipe(makefile, "clean")


def test_ci_script_is_executable_and_runs_make_test():
    script = REPO / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    text = script.read_text()
    assert text.startswith("#!") and "set -euo pipefail" in text
    assert re.search(r"^\s*(exec\s+)?make\b.*\btest\b", text, re.M)
