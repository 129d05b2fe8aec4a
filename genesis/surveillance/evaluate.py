"""Episode-level precision and recall of the manipulation detectors on simulated markets.

For every scenario kind and seed, :func:`evaluate` simulates ``seconds`` of the default
market with that one scenario (its episodes laid out 60-120 s apart, as many as fit), runs
:func:`genesis.surveillance.engine.detect` over ``Inputs.from_events(sim.events)``, and
matches alerts to the ground-truth episodes:

* an alert *matches* an episode of the same kind (``spoofing_l2`` alerts: ``spoofing``
  episodes) when their intervals overlap, the alert's ``[start_ts, end_ts]`` widened by
  ``tolerance_s`` on both sides, and their sides agree where both are set (non-zero);
* precision of a kind = matched alerts of that kind / alerts of that kind, over every
  scenario run (an alert of one kind raised in another kind's episode counts against it);
* recall = episodes of that kind matched by at least one alert / episodes of that kind.

Clean runs (no scenario, ``clean_seconds`` each, same seeds) give false alerts per simulated
hour by kind: every alert there is false. The table has one row per scenario kind, then one
per other manipulation kind that alerted anywhere.

``python -m genesis.surveillance.evaluate`` prints the table as markdown with the command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from genesis.feeds.simulator import SimConfig, simulate
from genesis.surveillance.base import MANIPULATION_KINDS, Detector
from genesis.surveillance.cli import add_evaluate_arguments
from genesis.surveillance.engine import Inputs, detect

TARGET_KINDS = ("spoofing", "layering", "quote_stuffing", "momentum_ignition", "wash_trades")
DEFAULT_SCENARIOS = TARGET_KINDS + ("iceberg",)
TOLERANCE_S = 1.0  # alert intervals are widened by this much on each side before matching
# Alert kinds whose ground truth is an episode of another kind (the same manipulation seen another way).
EPISODE_KIND = {"spoofing_l2": "spoofing"}
NS = 1_000_000_000


def match(alerts: pd.DataFrame, episodes: pd.DataFrame, kind: str, tolerance_s: float = TOLERANCE_S
          ) -> tuple[np.ndarray, np.ndarray]:
    """Which alerts of ``kind`` match an episode of ``kind`` (of ``EPISODE_KIND[kind]`` for an
    alert kind listed there) and which episodes are matched.

    Returns (alert_matched bool (n_alerts_of_kind,), episode_matched bool (n_episodes_of_kind,)).
    """
    a = alerts[alerts["kind"] == kind] if len(alerts) else alerts
    e = episodes[episodes["kind"] == EPISODE_KIND.get(kind, kind)] if len(episodes) else episodes
    if not len(a) or not len(e):
        return np.zeros(len(a), bool), np.zeros(len(e), bool)
    tol = int(round(tolerance_s * NS))
    a_start = a["start_ts"].to_numpy(np.int64)[:, None] - tol
    a_end = a["end_ts"].to_numpy(np.int64)[:, None] + tol
    a_side = a["side"].to_numpy(np.int64)[:, None]
    e_start = e["start_ts"].to_numpy(np.int64)[None, :]
    e_end = e["end_ts"].to_numpy(np.int64)[None, :]
    e_side = e["side"].to_numpy(np.int64)[None, :]
    ok = (a_start <= e_end) & (e_start <= a_end) & ((a_side == 0) | (e_side == 0) | (a_side == e_side))
    return ok.any(axis=1), ok.any(axis=0)


def _run(kind: str | None, seed: int, seconds: float, detectors, config: SimConfig
         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = simulate(config, seconds=seconds, seed=seed, scenarios=[kind] if kind else [])
    alerts = detect(Inputs.from_events(sim.events), detectors)
    return alerts, sim.events.episodes


def evaluate(scenarios: Sequence[str] = DEFAULT_SCENARIOS, seeds: Iterable[int] = range(5), seconds: float = 900.0,
             detectors: Sequence[Detector] | None = None, *, clean_seconds: float = 3600.0,
             tolerance_s: float = TOLERANCE_S, config: SimConfig | None = None) -> pd.DataFrame:
    """Precision, recall and clean-run false alerts per hour by kind (see the module docstring).

    scenarios: scenario kinds to inject (one simulation per kind and seed); seeds: simulator
    seeds; seconds: horizon of each scenario run (s); detectors: None for every detector with
    default parameters; clean_seconds: horizon of each clean run (0 skips them).

    Returns one row per scenario kind plus any other manipulation kind alerted: ``kind, episodes,
    detected, recall, alerts, matched, precision, clean_alerts, clean_hours, false_per_hour``
    (recall/precision NaN where undefined).
    """
    config = config if config is not None else SimConfig()
    seeds = list(seeds)
    scenario_alerts, episodes, runs = [], [], []
    for kind in scenarios:
        for seed in seeds:
            alerts, eps = _run(kind, seed, seconds, detectors, config)
            tag = f"{kind}/{seed}"
            runs.append(tag)
            scenario_alerts.append(alerts.assign(run=tag))
            episodes.append(eps.assign(run=tag))
    clean = []
    if clean_seconds > 0:
        for seed in seeds:
            alerts, _ = _run(None, seed, clean_seconds, detectors, config)
            clean.append(alerts)
    alerts = pd.concat(scenario_alerts, ignore_index=True) if scenario_alerts else pd.DataFrame(columns=["kind", "run"])
    episodes = pd.concat(episodes, ignore_index=True) if episodes else pd.DataFrame(columns=["kind", "run"])
    clean_alerts = pd.concat(clean, ignore_index=True) if clean else pd.DataFrame(columns=["kind"])
    clean_hours = len(clean) * clean_seconds / 3600.0
    kinds = list(scenarios) + sorted(
        (set(alerts["kind"]) | set(clean_alerts["kind"])) & set(MANIPULATION_KINDS) - set(scenarios))
    rows = []
    for kind in kinds:
        n_alerts = n_matched = n_episodes = n_detected = 0
        for run in runs:
            a = alerts[alerts["run"] == run]
            e = episodes[episodes["run"] == run]
            am, em = match(a, e, kind, tolerance_s)
            n_alerts += len(am)
            n_matched += int(am.sum())
            n_episodes += len(em)
            n_detected += int(em.sum())
        n_clean = int((clean_alerts["kind"] == kind).sum()) if len(clean_alerts) else 0
        rows.append({
            "kind": kind, "episodes": n_episodes, "detected": n_detected,
            "recall": n_detected / n_episodes if n_episodes else np.nan,
            "alerts": n_alerts, "matched": n_matched,
            "precision": n_matched / n_alerts if n_alerts else np.nan,
            "clean_alerts": n_clean, "clean_hours": clean_hours,
            "false_per_hour": n_clean / clean_hours if clean_hours else np.nan,
        })
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """The table as a markdown pipe table (no extra dependency)."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            if isinstance(v, float):
                cells.append("-" if np.isnan(v) else f"{v:.3f}" if c in ("recall", "precision", "false_per_hour")
                             else f"{v:g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> int:
    """Evaluate with the options of :func:`genesis.surveillance.cli.add_evaluate_arguments` and
    print the table, headed by the ``command`` that made it."""
    table = evaluate(args.scenarios or DEFAULT_SCENARIOS, range(*args.seeds), args.seconds,
                     clean_seconds=args.clean_seconds,
                     tolerance_s=TOLERANCE_S if args.tolerance is None else args.tolerance)
    print(f"`{command.strip()}`\n")
    print(to_markdown(table))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesis.surveillance.evaluate",
                                     description="episode-level precision/recall of the manipulation detectors")
    add_evaluate_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, "python -m genesis.surveillance.evaluate " + " ".join(sys.argv[1:] if argv is None else argv))


__all__ = ["evaluate", "match", "to_markdown", "run", "main", "TARGET_KINDS", "DEFAULT_SCENARIOS", "TOLERANCE_S"]

if __name__ == "__main__":
    raise SystemExit(main())
