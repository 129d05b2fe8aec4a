"""Surveillance alert rates on real, ordinary market data: alerts per hour by kind and severity.

For each source, in a throwaway store: ingest it as the CLI does (``genesis ingest lobster``,
``genesis ingest binance-capture``), run every detector over the symbol's whole stored range
as ``genesis surveil run --symbol S`` does (:func:`genesis.surveillance.store.run_surveillance`),
and count the alerts raised per hour of data (hours: the span of the symbol's book rows) by
kind and severity. Also reports the detectors skipped and why (what they need that the data
lacks), and whether the aim of issue 17 holds: at most 1 alert per hour at high or critical
severity per symbol, counting every detector.

Sources (defaults): the LOBSTER GOOG day of 2012-06-21 at one level (``../shared/data/lobster``,
else the gzipped copy in ``tests/data/lobster``) and the five Binance captures of
``../shared/data/binance`` (those missing are skipped, and said so).

    python benchmarks/surveillance_alert_rates.py [--lobster MESSAGE_CSV ORDERBOOK_CSV ...]
                                                  [--capture PATH ...] [--markdown]

Prints one JSON document (``--markdown`` also prints the README table after it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from genesis.surveillance.base import SEVERITIES  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
GOOG = "GOOG_2012-06-21_34200000_57600000_{}_1.csv"
CAPTURES = ("usdm_btcusdt_20240808.jsonl.gz", "usdm_ethusdt_20240808.jsonl.gz", "cm_btcusd_perp_20240808.jsonl.gz",
            "spot_btcusdt_20240808.jsonl.gz", "spot_ethusdt_20240808.jsonl.gz")
HIGH = ("high", "critical")
AIM_PER_HOUR = 1.0


def default_lobster() -> list[tuple[Path, Path]]:
    for folder, suffix in ((SHARED / "lobster", ""), (REPO / "tests" / "data" / "lobster", ".gz")):
        message = folder / (GOOG.format("message") + suffix)
        if message.exists():
            return [(message, folder / (GOOG.format("orderbook") + suffix))]
    return []


def rates(alerts: pd.DataFrame, hours: float) -> dict:
    """{kind: {severity: alerts per hour}} (only the severities seen), plus totals."""
    table: dict[str, dict[str, float]] = {}
    if len(alerts):
        counts = alerts.groupby(["kind", "severity"]).size()
        for (kind, sev), n in counts.items():
            table.setdefault(kind, {})[sev] = round(n / hours, 3)
    high = int(alerts["severity"].isin(HIGH).sum()) if len(alerts) else 0
    high_by_kind = alerts[alerts["severity"].isin(HIGH)]["kind"].value_counts().to_dict() if len(alerts) else {}
    return {"per_hour": dict(sorted(table.items())), "high_or_critical": high,
            "high_or_critical_per_hour": round(high / hours, 3),
            "high_or_critical_per_hour_by_kind": {k: round(v / hours, 3) for k, v in sorted(high_by_kind.items())}}


def measure(symbol: str, store_url: str, source: str) -> dict:
    from genesis.surveillance.store import run_surveillance

    began = time.perf_counter()
    run = run_surveillance(symbol, store_url=store_url)
    hours = (run.end_ts - 1 - run.start_ts) / 3.6e12  # the book rows' span (end_ts is past the last row)
    alerts = run.alerts
    return {"symbol": symbol, "source": source, "hours": round(hours, 4), "events": run.events, "data": run.data,
            "alerts": len(alerts), **rates(alerts, hours), "skipped": run.skipped,
            "aim_met": len(alerts) == 0 or rates(alerts, hours)["high_or_critical_per_hour"] <= AIM_PER_HOUR,
            "seconds": round(time.perf_counter() - began, 2)}


def markdown(results: list[dict]) -> str:
    kinds = sorted({k for r in results for k in r["per_hour"]})
    head = ["symbol", "hours", "alerts/h", "high+critical/h", *kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in results:
        cells = [r["symbol"], f"{r['hours']:.2f}", f"{r['alerts'] / r['hours']:.1f}",
                 f"{r['high_or_critical_per_hour']:.2f}"]
        for kind in kinds:
            by_sev = r["per_hour"].get(kind, {})
            cells.append(" ".join(f"{s[0]}:{by_sev[s]:.3g}" for s in SEVERITIES if s in by_sev) or "0")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lobster", nargs=2, action="append", metavar=("MESSAGE_CSV", "ORDERBOOK_CSV"),
                        help="a LOBSTER pair (repeatable; default: the GOOG day)")
    parser.add_argument("--capture", action="append", metavar="PATH",
                        help="a Binance capture (repeatable; default: the five of ../shared/data/binance)")
    parser.add_argument("--markdown", action="store_true", help="also print the README table")
    args = parser.parse_args(argv)

    from genesis.pipelines.ingest import ingest_binance_capture
    from genesis.pipelines.ingest_events import ingest_lobster

    lobster = [tuple(map(Path, pair)) for pair in args.lobster] if args.lobster else default_lobster()
    captures = [Path(p) for p in args.capture] if args.capture else [SHARED / "binance" / n for n in CAPTURES]
    missing = [str(p) for p in captures if not p.exists()]
    captures = [p for p in captures if p.exists()]
    results = []
    with tempfile.TemporaryDirectory(prefix="genesis-rates-") as home:
        store_url = f"chdb://{home}/store"
        for message, orderbook in lobster:
            report = ingest_lobster(message, orderbook, store_url=store_url)
            for symbol in report.symbols:
                results.append(measure(symbol, store_url, message.name))
        for path in captures:
            report = ingest_binance_capture(path, store_url=store_url, progress=False)
            for symbol in report.files[0].symbols:
                results.append(measure(symbol, store_url, path.name))
    command = "python benchmarks/surveillance_alert_rates.py " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {"benchmark": "surveillance_alert_rates", "command": command.strip(),
           "aim": f"at most {AIM_PER_HOUR:g} alert/h at high or critical severity per symbol",
           "aim_met": all(r["aim_met"] for r in results), "missing_sources": missing, "results": results}
    print(json.dumps(doc, indent=1, default=str))
    if args.markdown:
        print()
        print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
