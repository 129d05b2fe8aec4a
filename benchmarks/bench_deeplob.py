"""DeepLOB on CPU: single-window latency, batch windows/s, training samples/s; one JSON document.

    python benchmarks/bench_deeplob.py [--windows 20000] [--eager-windows 4000] [--threads 2]

Input: a random normal (T, 40) series (already "normalised") and a randomly initialised
DeepLOB (143,907 parameters) in eval mode; speed does not depend on the values. All runs
use ``torch.set_num_threads(--threads)`` (2 by default, the live setting). Measured, each
after a warm-up:

- ``single_window``: latency of one prediction, p50/p99 in ms over ``--latency-steps``
  calls: ``eager`` (the eager model on a (1, 1, 100, 40) window + softmax, inference mode),
  ``frozen`` (:func:`genesis.models.inference.freeze_for_inference`, the same window through
  a frozen TorchScript graph) and ``rolling`` (:class:`RollingPredictor.push`, fast path:
  one new snapshot in, probabilities out; conv work of the previous 99 rows reused).
  Aim (issue 6): <= 1 ms p50.
- ``batch``: :func:`predict_windows` over ``--windows`` windows with its three methods:
  ``shared`` (conv blocks, inception interior and LSTM input projection computed once per
  series step; recurrence per window, batched), ``conv`` (conv blocks shared, inception and
  LSTM per window) and ``eager`` (every window through the whole eager model, same batch
  size; over ``--eager-windows`` windows only, for time: rates are per window). Max
  |probability difference| against eager on the windows both computed. Aim: >= 2,000
  windows/s.
- ``training``: forward + backward + Adam step on batches of 64 windows, eager, train mode.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genesis.models.deeplob import WINDOW, DeepLOB, count_parameters  # noqa: E402
from genesis.models.inference import RollingPredictor, freeze_for_inference, predict_windows  # noqa: E402


def percentiles_ms(seconds: list[float]) -> dict:
    a = np.asarray(seconds) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4),
            "mean_ms": round(float(a.mean()), 4)}


def time_calls(fn, inputs) -> list[float]:
    out = []
    clock = time.perf_counter
    for x in inputs:
        t0 = clock()
        fn(x)
        out.append(clock() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=20_000)
    ap.add_argument("--eager-windows", type=int, default=4_000)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--latency-steps", type=int, default=2_000)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DeepLOB().eval()
    rng = np.random.default_rng(0)
    n_rows = max(args.windows, args.eager_windows, args.latency_steps + 200) + WINDOW - 1
    X = rng.standard_normal((n_rows, 40)).astype(np.float32)
    Xt = torch.from_numpy(X)

    # -- single window ------------------------------------------------------------------
    n_lat = args.latency_steps
    starts = range(0, n_lat)
    windows = [Xt[s:s + WINDOW][None, None] for s in starts]

    def eager_one(x):
        with torch.inference_mode():
            return torch.softmax(model(x), dim=-1)

    frozen = freeze_for_inference(model)

    def frozen_one(x):
        with torch.inference_mode():
            return frozen(x)

    for x in windows[:50]:
        eager_one(x), frozen_one(x)
    eager_lat = time_calls(eager_one, windows)
    frozen_lat = time_calls(frozen_one, windows)
    rolling = RollingPredictor(model)
    for row in X[:WINDOW + 50]:
        rolling.push(row)
    rolling_lat = time_calls(rolling.push, X[WINDOW + 50:WINDOW + 50 + n_lat])
    # the three agree: the rolling predictor's last output vs eager on the same window
    last_end = WINDOW + 50 + n_lat
    p_roll = rolling.push(X[last_end])
    p_eager = eager_one(Xt[last_end - WINDOW + 1:last_end + 1][None, None])[0].numpy()
    rolling_p50 = float(np.percentile(rolling_lat, 50)) * 1e3

    # -- batch ---------------------------------------------------------------------------
    n_shared, n_eager = args.windows, args.eager_windows
    predict_windows(model, X[:WINDOW + 255], batch_size=args.batch_size)     # warm-up
    runs = {}
    probs = {}
    for method, n in (("shared", n_shared), ("conv", n_shared), ("eager", n_eager)):
        t0 = time.perf_counter()
        probs[method] = predict_windows(model, X[:n + WINDOW - 1], batch_size=args.batch_size,
                                        method=method)
        seconds = time.perf_counter() - t0
        runs[method] = {"windows": n, "seconds": round(seconds, 3),
                        "windows_per_s": round(n / seconds)}
    n_common = min(n_shared, n_eager)
    shared_wps = runs["shared"]["windows_per_s"]

    # -- training ------------------------------------------------------------------------
    train_model = DeepLOB().train()
    opt = torch.optim.Adam(train_model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xb = torch.randn(64, 1, WINDOW, 40)
    yb = torch.randint(0, 3, (64,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(train_model(xb), yb)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    train_s = time.perf_counter() - t0

    result = {
        "benchmark": "deeplob",
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads()},
        "model": {"parameters": count_parameters(model), "input": [1, 1, WINDOW, 40]},
        "single_window": {
            "calls": n_lat,
            "eager": percentiles_ms(eager_lat),
            "frozen": percentiles_ms(frozen_lat),
            "rolling": percentiles_ms(rolling_lat),
            "rolling_speedup_p50_vs_eager": round(
                float(np.percentile(eager_lat, 50)) * 1e3 / rolling_p50, 2),
            "rolling_max_abs_diff_vs_eager": float(np.abs(p_roll - p_eager).max()),
            "aim_p50_ms": 1.0, "aim_met": rolling_p50 <= 1.0,
        },
        "batch": {
            "batch_size": args.batch_size,
            **runs,
            "speedup_shared_vs_eager": round(shared_wps / runs["eager"]["windows_per_s"], 2),
            "speedup_conv_vs_eager": round(runs["conv"]["windows_per_s"]
                                           / runs["eager"]["windows_per_s"], 2),
            "max_abs_diff_probabilities_vs_eager": {
                m: float(np.abs(probs[m][:n_common] - probs["eager"][:n_common]).max())
                for m in ("shared", "conv")},
            "aim_windows_per_s": 2000, "aim_met": shared_wps >= 2000,
        },
        "training": {"batch_size": 64, "steps": args.train_steps, "seconds": round(train_s, 3),
                     "samples_per_s": round(64 * args.train_steps / train_s, 1),
                     "optimizer": "Adam(lr=1e-3)", "mode": "eager, train"},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
