"""``genesis record ...``: record live market data to capture files; ``genesis fake binance``:
serve capture files as a local Binance (for offline work, demos and benchmarks)."""

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
    from genesis.feeds.binance.venues import exchange_info_path

    print(f"recorded {metrics.messages:,} messages into {len(files)} file(s) under {directory}")
    for path in files:
        terms = exchange_info_path(path)
        print(f"  {path}" + (f"  (terms: {terms.name})" if terms.exists() else ""))
    if metrics.exchange_info_errors:
        print(f"exchangeInfo failed {metrics.exchange_info_errors} time(s): {metrics.last_error}")
    return 0


def _instrument_terms(text: str) -> tuple[str, dict[str, float]]:
    """``BTCUSDT:tick_size=0.01,lot_size=0.00001`` -> ("BTCUSDT", {...})."""
    from genesis.feeds.binance.fake import INSTRUMENT_TERMS

    symbol, sep, rest = text.partition(":")
    terms = {}
    for item in rest.split(",") if sep else []:
        name, eq, value = item.partition("=")
        if not eq or name.strip() not in INSTRUMENT_TERMS:
            raise argparse.ArgumentTypeError(
                f"{text!r}: {item!r} is not TERM=VALUE with TERM one of {INSTRUMENT_TERMS}")
        try:
            terms[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {name}={value!r} is not a number") from None
    if not symbol.strip() or not terms:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SYMBOL:TERM=VALUE[,TERM=VALUE...], "
                                         "e.g. BTCUSDT:tick_size=0.01,lot_size=0.00001")
    return symbol.strip().upper(), terms


def _cmd_fake_binance(args: argparse.Namespace) -> int:
    import asyncio

    from genesis.feeds.binance.fake import FakeBinance, Faults

    async def main() -> None:
        faults = Faults(drop_rate=args.drop_rate, seed=args.seed, exchange_info_errors=args.exchange_info_errors)
        speed = args.speed if args.speed > 0 else None
        fake = await FakeBinance(args.paths, speed=speed, faults=faults, port=args.port,
                                 instruments=dict(args.instrument)).start()
        venue = fake.venue.key
        print(f"serving {len(fake.messages):,} messages of {', '.join(fake.markets)} as Binance {venue}", flush=True)
        print(f"  GENESIS_BINANCE_{venue.upper()}_WS={fake.ws_url}", flush=True)
        print(f"  GENESIS_BINANCE_{venue.upper()}_REST={fake.rest_url}", flush=True)
        for symbol, spec in fake.instruments.items():
            print(f"  {symbol}: tick {spec.tick_size:g}, lot {spec.lot_size:g}, min notional {spec.min_notional:g}, "
                  f"contract {spec.contract_size:g} ({spec.source})", flush=True)
        await fake.done.wait()
        print(f"done: {fake.stats.sent:,} frames sent, {fake.stats.snapshots} snapshots served", flush=True)
        if not args.stay:
            await asyncio.sleep(1.0)  # let clients read the last frames
            await fake.stop()
            return
        await asyncio.Event().wait()

    asyncio.run(main())
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

    fake = sub.add_parser("fake", help="serve capture files as a local exchange (127.0.0.1)")
    fake_sub = fake.add_subparsers(dest="exchange", required=True, metavar="EXCHANGE")
    fake_binance = fake_sub.add_parser("binance", help="replay captures of one venue as Binance's stream + REST snapshot")
    fake_binance.add_argument("paths", nargs="+", metavar="CAPTURE")
    fake_binance.add_argument("--speed", type=float, default=1.0, help="times real time (default 1; 0 for as fast as possible)")
    fake_binance.add_argument("--port", type=int, default=0, help="default: a free port")
    fake_binance.add_argument("--drop-rate", type=float, default=0.0, help="drop this share of depth messages (fault injection)")
    fake_binance.add_argument("--seed", type=int, default=0)
    fake_binance.add_argument("--instrument", action="append", default=[], type=_instrument_terms,
                              metavar="SYMBOL:TERM=VALUE[,...]",
                              help="terms exchangeInfo declares, e.g. BTCUSDT:tick_size=0.01,lot_size=0.00001,"
                                   "min_notional=5 (default: inferred from the capture's prices and sizes)")
    fake_binance.add_argument("--exchange-info-errors", type=int, default=0, metavar="N",
                              help="fail the first N exchangeInfo requests with HTTP 500 (fault injection)")
    fake_binance.add_argument("--stay", action="store_true", help="keep serving (snapshots) after the replay ends")
    fake_binance.set_defaults(handler=_cmd_fake_binance)
