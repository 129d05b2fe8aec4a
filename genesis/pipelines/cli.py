"""``genesis ingest ...`` and ``genesis pipeline ...`` sub-commands."""

from __future__ import annotations

import argparse


def _cmd_ingest_binance(args: argparse.Namespace) -> int:
    from genesis.pipelines.ingest import ingest_binance_capture

    report = ingest_binance_capture(
        args.paths,
        store_url=args.store,
        replace=args.replace,
        depth_levels=args.levels,
        grid=args.grid,
        progress=not args.quiet,
    )
    print(report.summary())
    return 0


def _cmd_pipeline_run(args: argparse.Namespace) -> int:
    from genesis.pipelines.runner import run_pipeline

    overrides = dict(kv.split("=", 1) for kv in args.param)
    result = run_pipeline(args.name, parameters=overrides, progress=not args.quiet)
    print(result.summary())
    return 0 if result.ok else 1


def _cmd_pipeline_list(args: argparse.Namespace) -> int:
    from genesis.pipelines.runner import list_pipelines

    for spec in list_pipelines():
        print(f"{spec.name:<16} {spec.schedule or '-':<14} {spec.description}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser("ingest", help="ingest market data into the store")
    ingest_sub = ingest.add_subparsers(dest="source", required=True, metavar="SOURCE")
    binance = ingest_sub.add_parser(
        "binance-capture",
        help="Binance websocket capture files (<local ns> <json> per line, optionally gzip)",
    )
    binance.add_argument("paths", nargs="+", metavar="PATH")
    binance.add_argument("--store", default=None, help="store URL (default: GENESIS_CLICKHOUSE_URL)")
    binance.add_argument("--replace", action="store_true", help="re-ingest files already ingested")
    binance.add_argument("--levels", type=int, default=20, help="book levels per snapshot (default 20)")
    binance.add_argument(
        "--grid", default=None, metavar="DURATION",
        help="also store snapshots on a fixed time grid, e.g. 100ms or 1s",
    )
    binance.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    binance.set_defaults(handler=_cmd_ingest_binance)

    pipeline = sub.add_parser("pipeline", help="run parameterised notebook pipelines (papermill)")
    pipeline_sub = pipeline.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = pipeline_sub.add_parser("run", help="run a pipeline from pipelines/<name>.yaml")
    run.add_argument("name")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE",
        help="override a notebook parameter (repeatable)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_cmd_pipeline_run)
    lst = pipeline_sub.add_parser("list", help="list the pipelines defined under pipelines/")
    lst.set_defaults(handler=_cmd_pipeline_list)
