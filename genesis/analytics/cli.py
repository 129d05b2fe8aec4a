"""``genesis bars ...`` and ``genesis alerts-price ...``: bars export / upload / rebuild, and price
alerts over the stored history.

Imports of the store and pandas happen inside the handlers, so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    store_help = "store URL (default: GENESIS_CLICKHOUSE_URL)"
    bars = sub.add_parser("bars", help="OHLCV bars kept from trades: show, export CSV, upload CSV/Parquet, rebuild")
    bars_sub = bars.add_subparsers(dest="action", required=True, metavar="ACTION")

    show = bars_sub.add_parser("export", help="print or write one symbol's bars as CSV")
    show.add_argument("symbol", help="venue:SYMBOL, e.g. binance-usdm:BTCUSDT")
    show.add_argument("--interval", default="1m", help="1s, 1m, 5m (from trades) or an uploaded interval")
    show.add_argument("--start", default=None, help="first bar (inclusive), e.g. '2024-08-08 23:55'")
    show.add_argument("--end", default=None, help="end (exclusive)")
    show.add_argument("--source", choices=("trades", "upload", "all"), default="trades")
    show.add_argument("--out", default=None, help="CSV file (default: stdout)")
    show.add_argument("--store", default=None, help=store_help)
    show.set_defaults(handler=_cmd_export)

    upload = bars_sub.add_parser("upload", help="upload historical bars from CSV or Parquet (bad rows quarantined)")
    upload.add_argument("path")
    upload.add_argument("--symbol", default=None, help="venue:SYMBOL for a file without a symbol column")
    upload.add_argument("--interval", default=None, help="e.g. 1m, 1h, 1d for a file without an interval column")
    upload.add_argument("--ts-unit", choices=("s", "ms", "us", "ns"), default=None,
                        help="unit of integer times (default: from their magnitude)")
    upload.add_argument("--replace", action="store_true", help="upload a file uploaded before again")
    upload.add_argument("--store", default=None, help=store_help)
    upload.set_defaults(handler=_cmd_upload)

    rebuild = bars_sub.add_parser("rebuild", help="recompute the bars from the stored trades")
    rebuild.add_argument("--symbol", default=None, help="one symbol (default: all)")
    rebuild.add_argument("--store", default=None, help=store_help)
    rebuild.set_defaults(handler=_cmd_rebuild)

    alerts = sub.add_parser("price-alerts", help="price alert rules (above / below / cross) over the stored history")
    alerts.add_argument("rules", nargs="+", metavar="RULE",
                        help="'venue:SYMBOL above|below|cross LEVEL', e.g. 'binance-usdm:BTCUSDT above 61900'")
    alerts.add_argument("--start", default=None)
    alerts.add_argument("--end", default=None)
    alerts.add_argument("--on", choices=("trades", "bars"), default="trades",
                        help="evaluate on trades or 1s bar closes")
    alerts.add_argument("--save", action="store_true", help="store the alerts in price_alerts")
    alerts.add_argument("--store", default=None, help=store_help)
    alerts.set_defaults(handler=_cmd_price_alerts)


def _cmd_export(args: argparse.Namespace) -> int:
    from genesis.analytics.bars import csv_frame, export_csv, read_bars
    from genesis.store import connect

    with connect(args.store) as store:
        bars = read_bars(store, args.symbol, args.interval, args.start, args.end, args.source)
    if args.out:
        path = export_csv(bars, args.out, symbol=args.symbol, interval=args.interval)
        print(f"{len(bars):,} {args.interval} bars of {args.symbol} -> {path}")
    else:
        csv_frame(bars, args.symbol, args.interval).to_csv(sys.stdout, index=False)
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    from genesis.analytics.bars import upload_bars

    report = upload_bars(args.path, symbol=args.symbol, interval=args.interval, ts_unit=args.ts_unit,
                         store_url=args.store, replace=args.replace)
    print(report.summary())
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from genesis.analytics.bars import rebuild
    from genesis.store import connect

    with connect(args.store) as store:
        migrate_first(store)
        rows = rebuild(store, args.symbol)
    print(f"{rows:,} bars rebuilt from trades ({args.symbol or 'all symbols'})")
    return 0


def _cmd_price_alerts(args: argparse.Namespace) -> int:
    from genesis.analytics.price_alerts import PriceRule, evaluate_store, save_triggers
    from genesis.store import connect

    rules = [PriceRule.parse(text) for text in args.rules]
    with connect(args.store) as store:
        migrate_first(store)
        fired = evaluate_store(store, rules, args.start, args.end, source=args.on, interval="1s")
        run_id = save_triggers(store, fired, mode="history") if args.save else None
    import pandas as pd

    shown = fired.assign(at=pd.to_datetime(fired["at_ts"].astype("int64"), utc=True)) if len(fired) else fired
    for row in shown.itertuples():
        arrow = "up" if row.direction > 0 else "down"
        print(f"{row.at}  {row.symbol}  {row.kind} {row.level:g}  {arrow} at {row.price:g} (from {row.prev_price:g})")
    print(f"{len(fired):,} alert(s)" + (f", stored as run {run_id}" if run_id else ""))
    return 0


def migrate_first(store) -> None:
    from genesis.store import migrate

    migrate(store)
