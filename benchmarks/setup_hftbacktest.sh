#!/usr/bin/env bash
# Create or update the benchmark-only hftbacktest environment (default .venv-hftbacktest at the
# repository root; HFTBACKTEST_VENV=/path overrides). Idempotent: does nothing when the
# environment already matches benchmarks/requirements-hftbacktest.txt.
#
#   benchmarks/setup_hftbacktest.sh            # PYTHON=python3 by default (>= 3.11)
#   PYTHON=python3.12 benchmarks/setup_hftbacktest.sh
#
# Prints the environment's python path on its last line.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HFTBACKTEST_VENV:-$repo/.venv-hftbacktest}"
python="${PYTHON:-python3}"
req="$repo/benchmarks/requirements-hftbacktest.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$venv/bin/python" -c 'import hftbacktest' 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || {
    echo "setup_hftbacktest.sh: needs Python >= 3.11 ('$python' is $("$python" -V 2>&1)); set PYTHON=..." >&2
    exit 1
}
if ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
    echo "creating $venv with $("$python" -V 2>&1)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || {
        rm -rf "$venv"
        echo "setup_hftbacktest.sh: '$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
    # Keep the environment out of git without touching the repository's .gitignore.
    printf '*\n' > "$venv/.gitignore"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet -r "$req" >&2
"$venv/bin/python" -c 'import hftbacktest; print("hftbacktest", hftbacktest.__version__, "in", __import__("sys").prefix)' >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
