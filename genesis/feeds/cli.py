"""``genesis record ...``: record live market data to capture files."""

from __future__ import annotations

import argparse


def _cmd_record_binance(args: argparse.Namespace) -> int:
    from genesis.config import settings
    from genesis.feeds.binance.recorder import record

    directory = args.out or settings().captures_dir / "binance"
    metrics, files = record(
        args.venue, args.symbols, directory, seconds=args.seconds, max_bytes=int(args.max_mb * (1 << 20)),
        ws_url=args.ws_url, rest_url=args.rest_url, stale_after=args.stale_after,
    )
    print(f"recorded {metrics.messages:,} messages into {len(files)} file(s) under {directory}")
    for path in files:
        print(f"  {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    record = sub.add_parser("record", help="record live market data to capture files")
    record_sub = record.add_subparsers(dest="source", required=True, metavar="SOURCE")
    binance = record_sub.add_parser(
        "binance", help="Binance diff depth + snapshots, trades and bookTicker, one gzip file per symbol and UTC day")
    binance.add_argument("--symbols", nargs="+", required=True, metavar="SYMBOL", help="e.g. BTCUSDT ETHUSDT")
    binance.add_argument("--venue", default="usdm", choices=("spot", "usdm", "coinm"), help="default usdm")
    binance.add_argument("--out", default=None, help="directory (default GENESIS_HOME/captures/binance)")
    binance.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    binance.add_argument("--max-mb", type=float, default=256.0, help="rotate a file at this compressed size")
    binance.add_argument("--stale-after", type=float, default=10.0,
                         help="reconnect when no message came for this many seconds")
    binance.add_argument("--ws-url", default=None, help="websocket base URL (default Binance's, or GENESIS_BINANCE_<VENUE>_WS)")
    binance.add_argument("--rest-url", default=None, help="REST base URL (default Binance's, or GENESIS_BINANCE_<VENUE>_REST)")
    binance.set_defaults(handler=_cmd_record_binance)
