"""``genesis features list``, ``genesis features build`` and ``genesis features sets``.

The feature library and the store are imported inside the handlers, so that building the
parser (``genesis --help``) stays fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Sequence

_STORE_HELP = "store URL (default: GENESIS_CLICKHOUSE_URL)"


def register(sub: argparse._SubParsersAction) -> None:
    from genesis.store.cli import _reporting_store_errors

    features = sub.add_parser("features", help="microstructure features: the registry, builds into the store")
    features_sub = features.add_subparsers(dest="action", required=True, metavar="ACTION")

    lst = features_sub.add_parser("list", help="list the registered features with their parameters")
    lst.add_argument("--family", default=None, help="only this family (prices, depth, imbalance, trades, dynamics)")
    lst.add_argument("--format", choices=("table", "csv", "json"), default="table")
    lst.set_defaults(handler=_cmd_list)

    build = features_sub.add_parser(
        "build",
        help="compute a feature set over stored book rows and trades and store it",
        description=(
            "Compute features over a symbol's stored book snapshots and trades in [--from, --to) and "
            "write them to the features table. Rebuilding a range replaces its rows. Times: anything "
            "pandas.Timestamp reads, naive = UTC, e.g. 2024-08-08T23:55 or '2024-08-09 00:00:00'."
        ),
    )
    build.add_argument("--symbol", required=True, help="e.g. BTCUSDT (when one venue has it) or binance-usdm:BTCUSDT")
    build.add_argument("--from", dest="start", default=None, metavar="TIME",
                       help="first time (inclusive; default: the symbol's first row)")
    build.add_argument("--to", dest="end", default=None, metavar="TIME",
                       help="end time (exclusive; default: just after the symbol's last row)")
    build.add_argument("--sampling", default="event",
                       help="event (default), a duration such as 100ms or 1s, volume:<qty> or notional:<quote>")
    spec = build.add_mutually_exclusive_group()
    spec.add_argument("--spec", default=None,
                      help='feature items separated by ";", e.g. "mid;ofi(level=3);vpin" (default: the full set)')
    spec.add_argument("--spec-file", default=None, metavar="FILE",
                      help="a .yaml/.yml/.json file: a list of items (text or {feature: ofi, level: 3, as: name}), "
                           "or a mapping with that list under 'features'")
    build.add_argument("--set", dest="feature_set", default="default", metavar="NAME",
                       help="feature set name (default: default)")
    build.add_argument("--replace", action="store_true",
                       help="the set is stored with another spec: delete its rows and record this spec")
    build.add_argument("--chunk", default="1h", help="time span read and computed at once (default 1h)")
    build.add_argument("--warmup", type=int, default=None, metavar="ROWS",
                       help="rows read before --from to warm windowed features up (default: the spec's lookback)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.add_argument("--store", default=None, help=_STORE_HELP)
    build.set_defaults(handler=_reporting_store_errors(_cmd_build))

    sets = features_sub.add_parser("sets", help="list the stored feature sets: symbols, rows, time span, columns")
    sets.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sets.add_argument("--store", default=None, help=_STORE_HELP)
    sets.set_defaults(handler=_reporting_store_errors(_cmd_sets))


def _cmd_list(args: argparse.Namespace) -> int:
    from genesis.features.registry import FAMILIES, features

    if args.family is not None and args.family not in FAMILIES:
        raise ValueError(f"--family {args.family!r}: expected one of {', '.join(FAMILIES)}")
    rows = [
        {
            "name": f.name,
            "family": f.family,
            "unit": f.unit,
            "parameters": ", ".join(f"{p.name}={p.default:g}" for p in f.params),
            "doc": f.doc.strip().splitlines()[0] if f.doc.strip() else "",
        }
        for f in features()
        if args.family in (None, f.family)
    ]
    if args.format == "json":
        # Parameters as objects here: name, default, what it means.
        by_name = {f.name: f for f in features()}
        for row in rows:
            row["parameters"] = [{"name": p.name, "default": p.default, "doc": p.doc}
                                 for p in by_name[row["name"]].params]
    elif args.format == "table":
        for row in rows:
            row["doc"] = _short(row["doc"])
    _emit(["name", "family", "unit", "parameters", "doc"], rows, args.format)
    return 0


def _short(doc: str, width: int = 90) -> str:
    """The first sentence of a doc line, cut to ``width`` characters for a terminal table."""
    end = doc.find(". ")
    text = doc[: end + 1] if end >= 0 else doc
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _cmd_build(args: argparse.Namespace) -> int:
    from genesis.features.registry import FeatureSpec
    from genesis.features.store import build_features

    # The spec is parsed before the store is opened: a typo fails at once.
    spec = FeatureSpec.coerce(_read_spec_file(args.spec_file) if args.spec_file else args.spec)
    report = build_features(
        args.symbol, args.start, args.end, spec, sampling=args.sampling, feature_set=args.feature_set,
        store_url=args.store, chunk=args.chunk, progress=not args.no_progress, replace=args.replace,
        warmup=args.warmup,
    )
    print(report.summary())
    return 0


def _read_spec_file(path: str) -> list[Any]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--spec-file {path}: no such file")
    text = file.read_text(encoding="utf-8")
    suffix = file.suffix.lower()
    if suffix == ".json":
        try:
            content = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--spec-file {path}: not valid JSON: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"--spec-file {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        raise ValueError(f"--spec-file {path}: expected a .yaml, .yml or .json file")
    if isinstance(content, dict):
        content = content.get("features")
    if not isinstance(content, list):
        raise ValueError(f"--spec-file {path}: expected a list of feature items, "
                         "or a mapping with one under 'features'")
    return content


def _cmd_sets(args: argparse.Namespace) -> int:
    from genesis.features.store import feature_set_info

    info = feature_set_info(args.store)
    rows = []
    for r in info.itertuples(index=False):
        rows.append({
            "set": r.feature_set, "symbol": r.symbol, "sampling": r.sampling, "rows": int(r.rows),
            "from": _iso(r.start), "to": _iso(r.end), "columns": int(r.n_columns),
            "built_at": _iso(r.built_at),
        })
    names = ["set", "symbol", "sampling", "rows", "from", "to", "columns", "built_at"]
    if args.format == "json":
        for row, r in zip(rows, info.itertuples(index=False)):
            row["columns"] = list(r.columns)
            row["spec"] = list(r.spec)
        names = [*names, "spec"]
    _emit(names, rows, args.format)
    if args.format == "table" and not rows:
        print("(no feature sets yet: genesis features build --symbol ... builds one)")
    return 0


def _iso(value: Any) -> str:
    import pandas as pd

    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    return pd.Timestamp(value).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _emit(names: Sequence[str], rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=1) if rows else "[]")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[row[name] for name in names] for row in rows])
    else:
        from genesis.store.cli import _print_table

        _print_table(names, [[row[name] for name in names] for row in rows])
