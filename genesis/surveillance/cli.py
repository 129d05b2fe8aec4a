"""``genesis surveil ...``: run detectors over the store, list detectors and cases, work a case."""

from __future__ import annotations

import argparse


def _cmd_run(args: argparse.Namespace) -> int:
    from genesis.surveillance.detectors import by_name, default_detectors
    from genesis.surveillance.store import run_surveillance

    detectors = [by_name(n) for n in args.detector] if args.detector else default_detectors()
    run = run_surveillance(args.symbol, args.start, args.end, store_url=args.store, detectors=detectors)
    print(run.summary())
    return 0


def _cmd_detectors(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from genesis.surveillance.detectors import all_detectors

    for d in all_detectors():
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in asdict(d.params).items())
        print(f"{d.name:<18} {d.params_version}  inputs={'+'.join(d.inputs):<18} kinds={','.join(d.kinds)}")
        print(f"  {d.description}")
        print(f"  needs: {d.requirements()}")
        print(f"  {params}")
    return 0


def _cmd_cases(args: argparse.Namespace) -> int:
    import pandas as pd

    from genesis.surveillance.alerts import AlertManager

    frame = AlertManager.load(args.store, symbol=args.symbol).frame()
    if args.state and len(frame):
        frame = frame[frame["state"] == args.state]
    if not len(frame):
        print("no cases")
        return 0
    for column in ("start_ts", "end_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    print(frame.drop(columns=["seq"]).sort_values("start_ts").to_string(index=False))
    return 0


def _cmd_case(args: argparse.Namespace) -> int:
    from genesis.surveillance.alerts import AlertManager

    manager = AlertManager.load(args.store)
    if args.to:
        manager.transition(args.case_id, args.to, actor=args.actor, why=args.why)
    elif args.assign:
        manager.assign(args.case_id, args.assign, actor=args.actor, why=args.why or "")
    elif args.note:
        manager.note(args.case_id, args.note, actor=args.actor)
    print(manager.history(args.case_id)[["seq", "at", "actor", "action", "state", "severity", "repeats", "owner",
                                          "why"]].to_string(index=False))
    return 0


def _cmd_rates(args: argparse.Namespace) -> int:
    from genesis.surveillance.store import alert_rates
    from genesis.viz import markdown_table

    rates = alert_rates(args.store, args.symbol or None)
    print(markdown_table(rates, floats="{:.3g}") if args.markdown else rates.round(3).to_string())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import sys

    from genesis.surveillance.evaluate import run

    return run(args, "genesis " + " ".join(sys.argv[1:]))


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluation's options (``genesis surveil evaluate`` and ``python -m genesis.surveillance.evaluate``)."""
    parser.add_argument("--seeds", type=int, nargs=2, default=(0, 5), metavar=("FIRST", "STOP"),
                        help="seeds range(FIRST, STOP) (default 0 5)")
    parser.add_argument("--seconds", type=float, default=900.0, help="simulated seconds per scenario run")
    parser.add_argument("--clean-seconds", type=float, default=3600.0, help="simulated seconds per clean run")
    parser.add_argument("--scenarios", nargs="+", default=None, help="scenarios (default: every target kind, iceberg)")
    parser.add_argument("--tolerance", type=float, default=None, help="matching tolerance (s; default 1)")


def register(sub: argparse._SubParsersAction) -> None:
    surveil = sub.add_parser("surveil", help="market surveillance: detectors, alerts, cases")
    surveil_sub = surveil.add_subparsers(dest="action", required=True, metavar="ACTION")

    run = surveil_sub.add_parser("run", help="run the detectors over a symbol's stored events and file the alerts")
    run.add_argument("--symbol", required=True)
    run.add_argument("--from", dest="start", default=None, help="start time (UTC), default: the symbol's first")
    run.add_argument("--to", dest="end", default=None, help="end time (UTC, exclusive), default: past the last")
    run.add_argument("--detector", action="append", default=[], metavar="NAME", help="only these (repeatable)")
    run.add_argument("--store", default=None, help="store URL (default: GENESIS_CLICKHOUSE_URL)")
    run.set_defaults(handler=_cmd_run)

    detectors = surveil_sub.add_parser("detectors", help="list the detectors, their parameters and versions")
    detectors.set_defaults(handler=_cmd_detectors)

    cases = surveil_sub.add_parser("cases", help="list alert cases and their state")
    cases.add_argument("--symbol", default=None)
    cases.add_argument("--state", default=None, choices=("open", "investigating", "escalated", "closed"))
    cases.add_argument("--store", default=None)
    cases.set_defaults(handler=_cmd_cases)

    case = surveil_sub.add_parser("case", help="show a case's history; move it along the workflow, assign or note it")
    case.add_argument("case_id")
    case.add_argument("--to", default=None, choices=("open", "investigating", "escalated", "closed"))
    case.add_argument("--assign", default=None, metavar="OWNER")
    case.add_argument("--note", default=None)
    case.add_argument("--actor", default=None, help="who makes the change (required for a change)")
    case.add_argument("--why", default=None, help="the reason (required for a state change)")
    case.add_argument("--store", default=None)
    case.set_defaults(handler=_cmd_case)

    rates = surveil_sub.add_parser("rates", help="stored alerts per hour of market data, by symbol and kind")
    rates.add_argument("--symbol", action="append", default=[], help="only these symbols (repeatable)")
    rates.add_argument("--markdown", action="store_true", help="as a markdown table")
    rates.add_argument("--store", default=None)
    rates.set_defaults(handler=_cmd_rates)

    evaluate = surveil_sub.add_parser("evaluate", help="precision/recall of the detectors on simulated episodes")
    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(handler=_cmd_evaluate)
