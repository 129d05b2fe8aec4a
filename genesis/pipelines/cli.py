"""``genesis ingest ...`` and ``genesis pipeline ...`` sub-commands."""

from __future__ import annotations

import argparse
import signal


def _cmd_ingest_binance(args: argparse.Namespace) -> int:
    import sys

    from genesis.pipelines.ingest import ingest_binance_capture

    report = ingest_binance_capture(
        args.paths,
        store_url=args.store,
        replace=args.replace,
        depth_levels=args.levels,
        grid=args.grid,
        venue=args.venue,
        progress=not args.quiet,
    )
    print(report.summary())
    # The other files are in; each one that is not is named, with why, and the exit status says so.
    for failed in report.failed:
        print(f"genesis: error: not ingested: {failed.error}", file=sys.stderr)
    return 1 if report.failed else 0


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
    if report.error:  # 'busy': another live run has it
        return f"{report.status}: {report.error}"
    lines = [f"{report.status} {report.path} as {', '.join(report.symbols)}: {report.messages:,} events"]
    lines += [f"  {key:<15} {value:>12,}" for key, value in report.counts.items()]
    lines += [f"  note: {note}" for note in report.notes]  # e.g. an earlier run found dead, marked crashed
    return "\n".join(lines)


def _cmd_pipeline_run(args: argparse.Namespace) -> int:
    from genesis.pipelines.runner import PipelineLockedError, request_stop, run_pipeline

    overrides = {}
    for kv in args.param:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise ValueError(f"-p {kv!r}: expected KEY=VALUE")
        overrides[key] = value
    # A stopped run (systemd stop, kill) is recorded as interrupted rather than left 'running'.
    signal.signal(signal.SIGTERM, lambda signum, frame: request_stop())
    try:
        result = run_pipeline(args.name, parameters=overrides, progress=not args.quiet, resume=args.resume)
    except PipelineLockedError as exc:
        print(f"error: {exc}")
        return 3
    print(result.summary())
    return 128 + signal.SIGTERM if result.interrupted else 0 if result.ok else 1


def _cmd_pipeline_list(args: argparse.Namespace) -> int:
    from genesis.pipelines.runner import list_pipelines

    for spec in list_pipelines():
        print(f"{spec.name:<16} {spec.schedule or '-':<14} {spec.description}")
    return 0


def _cmd_pipeline_show(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from genesis.pipelines.runner import _display, load_pipeline
    from genesis.pipelines.schedule import CronExpression

    spec = load_pipeline(args.name)
    print(f"pipeline {spec.name}: {spec.description}")
    print(f"  file: {spec.path}")
    if spec.schedule:
        cron, now = CronExpression.parse(spec.schedule), datetime.now(UTC)
        upcoming = cron.times_between(now, cron.next_after(cron.next_after(cron.next_after(now))))
        print(f"  schedule: {spec.schedule} (UTC); next: {', '.join(t.strftime('%Y-%m-%d %H:%M') for t in upcoming)}")
    else:
        print("  schedule: none (run by hand, or by system cron)")
    for i, step in enumerate(spec.steps, 1):
        print(f"  {i}. {step.name}: {_display(step.notebook)}")
        if step.depends_on:
            print(f"       depends on: {', '.join(step.depends_on)}")
        if step.parameters:
            print(f"       parameters: {json.dumps(step.parameters)}")
        limits = [f"retries {step.retries}"] if step.retries else []
        limits += [f"timeout {step.timeout:g} s"] if step.timeout else []
        if limits:
            print(f"       {', '.join(limits)}")
        print(f"       declares: {', '.join(step.declared) or 'nothing'}")
    return 0


def _cmd_pipeline_history(args: argparse.Namespace) -> int:
    from genesis.pipelines.runner import run_history, run_steps

    runs = run_history(args.name, limit=args.limit)
    if not len(runs):
        print(f"no runs recorded{' of ' + args.name if args.name else ''}")
        return 0
    for run in runs.itertuples():
        took = "" if run.duration_s != run.duration_s or run.duration_s is None else f"{run.duration_s:8.1f} s"
        resumed = f" (resumed {run.resumed_from})" if run.resumed_from else ""
        print(f"{run.run_id:<36} {run.status:<8} {str(run.started)[:19]} {took}{resumed}")
        if run.error:
            print(f"    {run.failed_step}: {run.error}")
        if args.steps:
            for step in run_steps(run.run_id).itertuples():
                print(f"    {step.position + 1}. {step.step:<20} {step.status:<8} attempt {step.attempt}")
    return 0


def _cmd_pipeline_schedule(args: argparse.Namespace) -> int:
    import logging

    from genesis.pipelines.runner import list_pipelines, load_pipeline
    from genesis.pipelines.schedule import Scheduler, schedules_of

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # not a line per notebook inspected
    specs = [load_pipeline(name) for name in args.names] if args.names else list_pipelines()
    scheduler = Scheduler(schedules_of(specs))
    for name, when in scheduler.next_times().items():
        print(f"{name:<16} {scheduler.schedules[name].text:<14} next at {when:%Y-%m-%d %H:%M} UTC", flush=True)
    try:
        scheduler.run()
    except KeyboardInterrupt:
        print("scheduler stopped")
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
    binance.add_argument(
        "--venue", default=None, choices=["spot", "usdm", "coinm"],
        help="venue of every symbol (default: told by the depth events, contract suffixes or the file name "
             "prefix spot_/usdm_/cm_)",
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
    run.add_argument(
        "--resume", nargs="?", const=True, default=None, metavar="RUN_ID",
        help="re-run the latest failed run (or RUN_ID) from its failed step, reusing the earlier steps' outputs",
    )
    run.set_defaults(handler=_cmd_pipeline_run)
    lst = pipeline_sub.add_parser("list", help="list the pipelines defined under pipelines/")
    lst.set_defaults(handler=_cmd_pipeline_list)
    show = pipeline_sub.add_parser("show", help="a pipeline's steps in run order, parameters and schedule")
    show.add_argument("name")
    show.set_defaults(handler=_cmd_pipeline_show)
    history = pipeline_sub.add_parser("history", help="recorded runs (the store's run registry), newest first")
    history.add_argument("name", nargs="?", default=None, help="only this pipeline's runs")
    history.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    history.add_argument("--steps", action="store_true", help="also each run's steps")
    history.set_defaults(handler=_cmd_pipeline_history)
    schedule = pipeline_sub.add_parser(
        "schedule", help="run pipelines at their cron 'schedule:' times (UTC), until interrupted")
    schedule.add_argument("names", nargs="*", metavar="NAME", help="default: every pipeline with a schedule")
    schedule.set_defaults(handler=_cmd_pipeline_schedule)
