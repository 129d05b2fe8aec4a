"""``genesis backtest ...``: run a strategy over stored events, list and show stored runs, write reports.

    genesis backtest run --strategy ofi_signal --param window=50 --param entry=5 \\
        --symbol binance-usdm:BTCUSDT --start '2024-08-09 00:00' --end '2024-08-09 00:05' \\
        --latency-ms 5 --fees-bps=-0.5,4.5 --queue conservative --report run.html
    genesis backtest list
    genesis backtest show RUN_ID
    genesis backtest report RUN_ID --out run.html [--csv DIR]
    genesis backtest strategies
"""

from __future__ import annotations

import argparse
import json


def _numbers(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--{name} {text!r}: expected numbers separated by a comma") from None


def parse_params(items: list[str]) -> dict[str, float]:
    """``['window=50', 'entry=5']`` -> ``{'window': 50.0, 'entry': 5.0}`` (ValueError naming the bad item)."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {item!r}: expected NAME=VALUE, e.g. --param window=50")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--param {item!r}: {value!r} is not a number") from None
    return params


def _print_metrics(metrics: dict[str, float]) -> None:
    from genesis.backtest.metrics import metrics_table

    table = metrics_table(metrics)
    width = max(map(len, table.index))
    for name, row in table.iterrows():
        print(f"  {name:<{width}}  {row['value']:>16,.6g}  {row['meaning']}")


def _cmd_run(args: argparse.Namespace) -> int:
    from genesis.backtest.metrics import compute_metrics
    from genesis.backtest.report import describe_instrument, export_csv, write_report
    from genesis.backtest.store import run_stored, save_run
    from genesis.store import connect, migrate

    latency = _numbers(args.latency_ms, "latency-ms")
    if len(latency) not in (1, 2) or min(latency) < 0:
        raise ValueError(f"--latency-ms {args.latency_ms!r}: expected ENTRY or ENTRY,RESPONSE milliseconds >= 0")
    fees = _numbers(args.fees_bps, "fees-bps")
    if len(fees) != 2:
        raise ValueError(f"--fees-bps {args.fees_bps!r}: expected MAKER,TAKER basis points, e.g. -0.5,4.5")
    result = run_stored(args.strategy, parse_params(args.param), args.symbol, args.start, args.end,
                        latency_ms=tuple(latency) if len(latency) == 2 else latency[0], fees_bps=tuple(fees),
                        queue=args.queue, equity_interval=args.equity_interval, seed=args.seed, chunk=args.chunk,
                        model_id=args.model, store_url=args.store, progress=None if args.progress else False,
                        tick_size=args.tick_size, lot_size=args.lot_size)
    metrics = compute_metrics(result)
    meta = result.meta
    print(f"{args.strategy} on {result.config['symbol']} {result.config['start']} .. {result.config['end']}: "
          f"{meta['events']:,} replay rows in {meta['seconds']:.2f} s, {len(result.fills):,} fills")
    print(f"instrument: {describe_instrument(result.config)}")
    if not args.no_store:
        with connect(args.store) as store:
            migrate(store)
            run_id = save_run(store, result, metrics=metrics)
        print(f"run {run_id} stored (genesis backtest show {run_id})")
    _print_metrics(metrics)
    if args.report:
        print(f"report: {write_report(result, args.report, metrics=metrics)}")
    if args.csv:
        paths = export_csv(result, args.csv, metrics=metrics)
        print(f"csv: {', '.join(str(p) for p in paths.values())}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from genesis.backtest.store import list_runs
    from genesis.store import connect

    with connect(args.store) as store:
        runs = list_runs(store, kind=args.kind, strategy=args.strategy, symbol=args.symbol)
    if not len(runs):
        print("no stored runs (genesis backtest run ... stores one)")
        return 0
    shown = runs.drop(columns=["params"]).head(args.limit)
    for column in ("created", "start", "end"):
        shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from genesis.backtest.metrics import compute_metrics, daily_breakdown, json_safe
    from genesis.backtest.store import load_run
    from genesis.store import connect

    with connect(args.store) as store:
        result = load_run(store, args.run_id)
    meta = result.meta
    print(f"run {args.run_id} ({meta['kind']}, created {meta['created']}): {len(result.fills):,} fills, "
          f"{len(result.equity):,} equity samples")
    print("config:")
    print(json.dumps(json_safe(result.config), indent=2, sort_keys=True))
    print("metrics:")
    _print_metrics(compute_metrics(result))
    days = daily_breakdown(result)
    if len(days):
        print("per UTC day:")
        print(days.to_string(float_format=lambda v: f"{v:,.4g}"))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from genesis.backtest.report import export_csv, write_report
    from genesis.backtest.store import load_run
    from genesis.store import connect

    with connect(args.store) as store:
        result = load_run(store, args.run_id)
    print(f"report: {write_report(result, args.out)}")
    if args.csv:
        paths = export_csv(result, args.csv)
        print(f"csv: {', '.join(str(p) for p in paths.values())}")
    return 0


def _cmd_strategies(args: argparse.Namespace) -> int:
    from genesis.strategy import strategies

    for name, strategy in sorted(strategies().items()):
        params = ", ".join(f"{n}={v:g}" for n, v in strategy.params)
        inputs = f"  inputs: {', '.join(n for n, _ in strategy.inputs)}" if strategy.inputs else ""
        print(f"{name:<20} {strategy.description}")
        print(f"  params: {params or '(none)'}{inputs}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    backtest = sub.add_parser("backtest", help="replay backtests: run a strategy, stored runs, reports")
    actions = backtest.add_subparsers(dest="action", required=True, metavar="ACTION")

    run = actions.add_parser("run", help="backtest a strategy over a symbol's stored events; store the run")
    run.add_argument("--strategy", required=True, help="a registered strategy (genesis backtest strategies)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="strategy parameter (repeatable)")
    run.add_argument("--symbol", required=True)
    run.add_argument("--start", "--from", dest="start", default=None,
                     help="start (UTC), default: the symbol's first event")
    run.add_argument("--end", "--to", dest="end", default=None, help="end (UTC, exclusive), default: past the last")
    run.add_argument("--latency-ms", default="0", metavar="ENTRY[,RESPONSE]", help="constant order latency (ms)")
    run.add_argument("--fees-bps", default="0,0", metavar="MAKER,TAKER",
                     help="fees in bps, negative = rebate; write a leading minus as --fees-bps=-0.5,4.5")
    run.add_argument("--queue", default="conservative", choices=("conservative", "probabilistic"),
                     help="queue-position model of resting orders")
    run.add_argument("--equity-interval", default="1s", help="equity sampling interval (e.g. 100ms, 1s, 1min)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--chunk", default="1h", help="events read per store query (bounded memory)")
    run.add_argument("--tick-size", type=float, default=None,
                     help="price increment (default: the symbol's spec in the instruments table)")
    run.add_argument("--lot-size", type=float, default=None,
                     help="quantity increment; orders of other sizes are rejected (default: the symbol's spec)")
    run.add_argument("--model", default=None,
                     help="deeplob_threshold: model id of the predictions (default: the one with most rows)")
    run.add_argument("--report", default=None, metavar="PATH", help="write the HTML report there")
    run.add_argument("--csv", default=None, metavar="DIR", help="write fills, trades, equity CSVs there")
    run.add_argument("--no-store", action="store_true", help="do not store the run")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    run.add_argument("--store", default=None, help="store URL (default: GENESIS_CLICKHOUSE_URL)")
    run.set_defaults(handler=_cmd_run)

    listing = actions.add_parser("list", help="stored runs, newest first, with headline metrics")
    listing.add_argument("--kind", choices=("backtest", "paper"), default=None)
    listing.add_argument("--strategy", default=None)
    listing.add_argument("--symbol", default=None)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--store", default=None)
    listing.set_defaults(handler=_cmd_list)

    show = actions.add_parser("show", help="a stored run's config, metrics and per-day breakdown")
    show.add_argument("run_id")
    show.add_argument("--store", default=None)
    show.set_defaults(handler=_cmd_show)

    report = actions.add_parser("report", help="write a stored run's HTML report (and CSVs)")
    report.add_argument("run_id")
    report.add_argument("--out", required=True, metavar="PATH", help="the .html file to write")
    report.add_argument("--csv", default=None, metavar="DIR")
    report.add_argument("--store", default=None)
    report.set_defaults(handler=_cmd_report)

    listed = actions.add_parser("strategies", help="the registered strategies and their parameters")
    listed.set_defaults(handler=_cmd_strategies)
