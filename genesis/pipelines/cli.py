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


def _cmd_ingest_lobster(args: argparse.Namespace) -> int:
    from genesis.pipelines.ingest_events import ingest_lobster

    report = ingest_lobster(args.message_file, args.orderbook_file, symbol=args.symbol, store_url=args.store,
                            replace=args.replace)
    print(_one_source_summary(report))
    return 0


def _cmd_ingest_simulate(args: argparse.Namespace) -> int:
    from genesis.pipelines.ingest_events import ingest_simulation

    scenarios = tuple(args.scenario)
    symbol = args.symbol or f"sim:{'+'.join(scenarios).upper() or 'CLEAN'}-{args.seed}"
    report = ingest_simulation(seconds=args.seconds, seed=args.seed, scenarios=scenarios,
                               bad_data=tuple(args.bad_data), symbol=symbol, store_url=args.store,
                               replace=args.replace)
    print(_one_source_summary(report))
    return 0


def _one_source_summary(report) -> str:
    if report.status == "skipped":
        return f"{report.path}: already ingested as {', '.join(report.symbols)} (use --replace to re-ingest)"
    lines = [f"{report.status} {report.path} as {', '.join(report.symbols)}: {report.messages:,} events"]
    lines += [f"  {key:<15} {value:>12,}" for key, value in report.counts.items()]
    return "\n".join(lines)


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

    lobster = ingest_sub.add_parser("lobster", help="a LOBSTER message file and its orderbook file")
    lobster.add_argument("message_file", metavar="MESSAGE_CSV")
    lobster.add_argument("orderbook_file", nargs="?", default=None, metavar="ORDERBOOK_CSV",
                         help="default: the message file's name with _message_ replaced by _orderbook_")
    lobster.add_argument("--symbol", default=None, help="default nasdaq:<TICKER from the file name>")
    lobster.add_argument("--store", default=None, help="store URL (default: GENESIS_CLICKHOUSE_URL)")
    lobster.add_argument("--replace", action="store_true", help="re-ingest files already ingested")
    lobster.set_defaults(handler=_cmd_ingest_lobster)

    # Scenario and bad-data names are checked by the simulator (an unknown one is an error that
    # lists the known ones): importing it here would load Numba for every `genesis` command.
    simulate = ingest_sub.add_parser("simulate", help="a simulated market with injected episodes (ground truth stored)")
    simulate.add_argument("--scenario", action="append", default=[], metavar="KIND",
                          help="inject this kind of episode (repeatable; none: a clean market): spoofing, layering, "
                               "quote_stuffing, momentum_ignition, flash_crash, wash_trades, iceberg")
    simulate.add_argument("--seconds", type=float, default=600.0, help="simulated time (default 600)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same events")
    simulate.add_argument("--bad-data", action="append", default=[], metavar="KIND",
                          help="also inject bad rows of this kind (they end in quarantine): crossed_book, "
                               "nan_negative, duplicates, out_of_order")
    simulate.add_argument("--symbol", default=None, help="default sim:<SCENARIOS>-<SEED>")
    simulate.add_argument("--store", default=None, help="store URL (default: GENESIS_CLICKHOUSE_URL)")
    simulate.add_argument("--replace", action="store_true", help="simulate and store again")
    simulate.set_defaults(handler=_cmd_ingest_simulate)

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
