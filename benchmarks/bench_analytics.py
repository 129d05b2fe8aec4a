"""Cross-asset analytics kernels beside plain baselines in the same run; prints one JSON document.

    .venv/bin/python benchmarks/bench_analytics.py

- Kalman hedge ratio (random-walk beta and intercept), 200k points: ``genesis.analytics.pairs.
  kalman_hedge`` (Numba) against the textbook filter in a NumPy loop;
- rolling OLS hedge ratio, 20k points, window 60: ``rolling_ols`` against ``np.linalg.lstsq``
  per window;
- rolling correlation matrix, 50k bars x 5 symbols, window 60: ``rolling_correlation`` against
  pandas ``rolling().corr()``.
Each figure is the best of 3 after a warm-up call (Numba compiles or loads its cache).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genesis.analytics.correlation import rolling_correlation  # noqa: E402
from genesis.analytics.pairs import kalman_hedge, rolling_ols  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def kalman_numpy(y, x, delta, obs_var):
    """The filter written plainly: state (beta, alpha), random-walk transition."""
    theta, p, w = np.zeros(2), np.eye(2), np.eye(2) * delta / (1 - delta)
    beta = np.empty(len(y))
    for t in range(len(y)):
        r = p + w
        f = np.array([x[t], 1.0])
        q = f @ r @ f + obs_var
        k = r @ f / q
        theta = theta + k * (y[t] - f @ theta)
        p = r - np.outer(k, f @ r)
        beta[t] = theta[0]
    return beta


def ols_lstsq(y, x, window):
    for i in range(window - 1, len(y)):
        np.linalg.lstsq(np.c_[x[i - window + 1:i + 1], np.ones(window)], y[i - window + 1:i + 1], rcond=None)


def main() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    x = np.cumsum(rng.normal(0, 1e-4, n))
    y = 0.7 * x + rng.normal(0, 1e-4, n)
    closes = pd.DataFrame(np.exp(np.cumsum(rng.normal(0, 1e-3, (50_000, 5)), axis=0)))
    kalman_hedge(y[:10], x[:10])
    rolling_ols(y[:100], x[:100], 60)
    rolling_correlation(closes.iloc[:100], 10)
    m = 20_000
    out = {
        "benchmark": "analytics",
        "kalman_200k": {"genesis_s": best_of(lambda: kalman_hedge(y, x, 1e-9, 1e-8)),
                        "numpy_loop_s": best_of(lambda: kalman_numpy(y, x, 1e-9, 1e-8), 1)},
        "rolling_ols_20k_w60": {"genesis_s": best_of(lambda: rolling_ols(y[:m], x[:m], 60)),
                                "lstsq_per_window_s": best_of(lambda: ols_lstsq(y[:m], x[:m], 60), 1)},
        "rolling_corr_50k_x5_w60": {"genesis_s": best_of(lambda: rolling_correlation(closes, 60)),
                                    "pandas_s": best_of(lambda: np.log(closes).diff().rolling(60).corr())},
    }
    for figures in out.values():
        if isinstance(figures, dict):
            genesis_s = figures["genesis_s"]
            baseline = next(v for k, v in figures.items() if k != "genesis_s")
            figures["speedup"] = round(baseline / genesis_s, 1)
            for k in list(figures):
                if k.endswith("_s"):
                    figures[k] = round(figures[k], 4)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
