"""``genesis serve``: the dashboards over one live engine (see :mod:`genesis.live.serve`).

    genesis serve                                       # REPLAY of every stored symbol at 1x, http://127.0.0.1:5006
    genesis serve --mode simulation --scenario spoofing
    genesis serve --mode live --venue usdm --symbols BTCUSDT ETHUSDT
    GENESIS_SERVE_PASSWORD=... genesis serve --address 0.0.0.0 --auth basic
"""

from __future__ import annotations

import argparse

MODES = ("replay", "simulation", "live")  # genesis.live.engine.MODES (not imported: keeps `genesis --help` quick)


def _speed(text: str) -> float:
    value = text.strip().lower()
    if value == "max":
        return 0.0
    try:
        return float(value.removesuffix("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 1x, 2x, 5x, 10x or max") from None


def _default_symbols(store_url: str | None, limit: int = 3) -> list[str]:
    from genesis.store import connect

    with connect(store_url) as store:
        rows = store.query_rows("SELECT DISTINCT symbol FROM depth_deltas ORDER BY symbol LIMIT {n:UInt32}",
                                {"n": limit})
    if not rows:
        raise ValueError("the store holds no depth data to replay: ingest some first (make run, or genesis ingest "
                         "binance-capture data/sample/usdm_btcusdt_20240808.jsonl.gz), or use --mode simulation")
    return [r[0] for r in rows]


def _cmd_serve(args: argparse.Namespace) -> int:
    from genesis.backtest.cli import parse_params
    from genesis.config import settings
    from genesis.live.engine import EngineConfig
    from genesis.live.serve import serve

    symbols = args.symbols
    if args.mode == "replay" and not symbols:
        symbols = _default_symbols(args.store)
    record = args.record
    if args.mode == "live" and record is None and settings().is_embedded:
        # Embedded store: a running server records captures instead of holding the store open.
        record = str(settings().captures_dir / "binance")
    config = EngineConfig(
        mode=args.mode, symbols=tuple(symbols or ()), start=args.start, end=args.end, speed=args.speed,
        store_url=args.store, scenario=None if args.scenario == "none" else args.scenario,
        sim_seconds=args.sim_seconds, seed=args.seed, venue=args.venue, record_dir=record or None,
        strategy=args.strategy, strategy_params=parse_params(args.param), strategy_symbol=args.strategy_symbol,
        model_id=args.model, address=args.address, persist_alerts=args.persist_alerts)
    extra = dict(item.split("=", 1) for item in args.oauth_extra)
    print(f"Genesis dashboards on http://{args.address}:{args.port}/ ({args.mode}: {', '.join(symbols or [])}"
          f"{' ' + str(config.scenario) if args.mode == 'simulation' else ''}); Ctrl-C stops", flush=True)
    serve(config, port=args.port, auth=args.auth, oauth_provider=args.oauth_provider, oauth_extra=extra,
          websocket_origin=args.allow_websocket_origin or None, show=args.show)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from genesis.feeds.simulator import SCENARIOS

    p = sub.add_parser("serve", help="serve the Panel dashboards (surveillance, strategy, reports) over a live engine",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default="127.0.0.1",
                   help="bind address (default 127.0.0.1; beyond loopback, state changes need --auth)")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--mode", choices=MODES, default="replay")
    p.add_argument("--symbols", nargs="+", metavar="S",
                   help="replay: stored symbols (default: up to 3 stored); live: Binance symbols")
    p.add_argument("--from", dest="start", help="replay range start (UTC time; default: the first stored event)")
    p.add_argument("--to", dest="end", help="replay range end (default: the last stored event)")
    p.add_argument("--speed", type=_speed, default=1.0, help="1x, 2x, 5x, 10x or max (default 1x)")
    p.add_argument("--scenario", choices=(*SCENARIOS, "none"), default="spoofing", help="simulation: the scenario")
    p.add_argument("--sim-seconds", type=float, default=600.0, help="simulation: market length (s)")
    p.add_argument("--seed", type=int, default=1, help="simulation: seed")
    p.add_argument("--venue", default="usdm", help="live: spot, usdm or coinm")
    p.add_argument("--record", metavar="DIR",
                   help="live: write capture files here (default with the embedded store: GENESIS_HOME/captures/binance)")
    p.add_argument("--strategy", default="ofi_signal", help="the paper strategy (genesis backtest strategies)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="strategy parameter")
    p.add_argument("--strategy-symbol", help="the symbol the strategy trades (default: the first)")
    p.add_argument("--model", help="a registered DeepLOB model id feeding the strategy's inputs")
    p.add_argument("--store", help="store URL (default: GENESIS_CLICKHOUSE_URL or the embedded store)")
    p.add_argument("--persist-alerts", action="store_true", help="write alerts and their audit rows to the store")
    p.add_argument("--auth", choices=("basic", "oauth"),
                   help="basic: password from GENESIS_SERVE_PASSWORD (or GENESIS_SERVE_USERS); oauth: see --oauth-provider")
    p.add_argument("--oauth-provider", help="Panel OAuth provider (github, google, azure, generic, ...); "
                   "key and secret from GENESIS_OAUTH_KEY / GENESIS_OAUTH_SECRET")
    p.add_argument("--oauth-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra OAuth parameters passed to Panel")
    p.add_argument("--allow-websocket-origin", action="append", metavar="HOST[:PORT]",
                   help="origins allowed to connect (default: the bind address and localhost)")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.set_defaults(handler=_cmd_serve)
