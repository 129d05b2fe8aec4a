"""The live engine: one per dashboard server process.

feed -> book -> features -> surveillance -> regimes (:class:`~genesis.live.pipeline.SymbolPipeline`
per symbol) -> paper strategy (:class:`~genesis.strategy.paper.PaperTrader` on one symbol),
run on the engine's own thread, in one of three modes:

* ``replay``: a symbol set and time range read from the store once (:func:`load_replay`),
  played at 1x, 2x, 5x, 10x or as fast as the engine goes (speed 0, "max"); pause, resume,
  and seek (scrub) to any time of the range;
* ``simulation``: the same over a simulated market with a chosen scenario (spoofing, ...);
* ``live``: a :class:`~genesis.feeds.binance.live.BinanceClient` on an asyncio loop of the
  engine's thread; with ``record_dir`` every message is also written to capture files (with the
  embedded store, ``genesis serve`` records instead of holding the store open); with a
  ClickHouse server the applied rows are inserted in batches (:mod:`genesis.live.writer`).

Sessions. The engine never sends anything per event. Every ``1/publish_hz`` seconds it
publishes one update (decimated prices and features, the latest ladder, new trades, new
alerts, strategy status, health) to every subscribed :class:`~genesis.live.buffers.SessionBuffer`;
a session that does not drain its buffer loses its oldest updates (counted), so a slow or
closed browser costs the engine one append per update, never a wait.

Seek. Moving forward processes the events in between (alerts and strategy included), publishing
only the last ``seek_history_s``; moving back restarts the pipelines and the paper trader (flat,
with its parameters, running if it was: a replay cannot go back in time) and runs forward again. Detection is deterministic,
so alerts already filed are recognised and not filed twice (cases keep their workflow state).

Controls (strategy start/stop/reset/parameters, alert state changes) take the requesting user
and are checked by :func:`genesis.live.auth.authorize` against the server's address.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from genesis.feeds.events import ORDER_EVENT_DTYPE, MarketEvents
from genesis.live.auth import authorize
from genesis.live.buffers import Hub, SessionBuffer
from genesis.live.pipeline import FEATURES, Step, SymbolPipeline
from genesis.live.sources import Cursor, LiveCollector, load_replay, simulated_market
from genesis.surveillance.alerts import AlertManager

log = logging.getLogger(__name__)

MODES = ("replay", "simulation", "live")
SPEEDS = (1.0, 2.0, 5.0, 10.0, 0.0)  # 0: as fast as the engine goes ("max")
ALERT_KEY = ("symbol", "kind", "detector", "side", "start_ts", "end_ts", "at_ts")


@dataclass
class EngineConfig:
    """What one engine runs (see the module docstring).

    mode: 'replay', 'simulation' or 'live'; symbols: store symbols (replay) or Binance symbols
    (live); start, end: the replay range (None: everything stored); speed: 1, 2, 5, 10 or 0 (max);
    scenario, sim_seconds, seed: the simulated market; venue, ws_url, rest_url, record_dir: live;
    levels: book levels; strategy, strategy_params, strategy_symbol (None: the first symbol):
    the paper strategy; model_id: a registered DeepLOB model whose probabilities feed the
    strategy's inputs; publish_hz: updates per second to sessions; tick_s: the engine's step;
    max_events_per_tick: events one step processes at most (bounds the time a step holds the
    engine); points_per_update: price/feature points per symbol per update; seek_history_s: market
    seconds before a seek's target shown after it; skip_quiet_s: a stretch of market time longer
    than this without any event is jumped over (to 1 s before the next event); buffer_size: updates
    a session buffer holds; address, auth: the server's bind address and whether it
    authenticates (:func:`authorize`); persist_alerts: write alerts and audit rows to the store;
    insert_live, insert_every_s: LIVE rows inserted into the store in batches
    (:class:`~genesis.live.writer.StoreWriter`; None: when the store is a server, not the
    embedded one).
    """

    mode: str = "replay"
    symbols: Sequence[str] = ()
    start: Any = None
    end: Any = None
    speed: float = 1.0
    store_url: str | None = None
    scenario: str | None = "spoofing"
    sim_seconds: float = 300.0
    seed: int = 1
    venue: str = "usdm"
    ws_url: str | None = None
    rest_url: str | None = None
    record_dir: str | None = None
    levels: int = 20
    strategy: str = "ofi_signal"
    strategy_params: dict[str, float] = field(default_factory=dict)
    strategy_symbol: str | None = None
    model_id: str | None = None
    publish_hz: float = 5.0
    tick_s: float = 0.02
    max_events_per_tick: int = 20_000
    points_per_update: int = 120
    trades_per_update: int = 300
    seek_history_s: float = 20.0
    skip_quiet_s: float = 30.0
    buffer_size: int = 64
    address: str = "127.0.0.1"
    auth: bool = False
    persist_alerts: bool = False
    insert_live: bool | None = None
    insert_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: choose from {MODES}")
        if self.speed < 0:
            raise ValueError(f"speed={self.speed}: must be >= 0 (0 is as fast as possible)")
        if self.publish_hz <= 0 or self.tick_s <= 0 or self.max_events_per_tick < 1:
            raise ValueError("publish_hz, tick_s and max_events_per_tick must be positive")
        if self.mode == "replay" and not self.symbols:
            raise ValueError("replay mode needs symbols (stored symbols, e.g. binance-usdm:BTCUSDT)")
        if self.mode == "live" and not self.symbols:
            raise ValueError("live mode needs symbols (Binance symbols, e.g. BTCUSDT)")


class _Quantiles:
    """The last ``n`` samples of a quantity, for p50/p99."""

    def __init__(self, n: int = 2048):
        self.values: deque = deque(maxlen=n)

    def add(self, value: float) -> None:
        self.values.append(value)

    def q(self, quantile: float) -> float:
        return float(np.quantile(np.fromiter(self.values, float), quantile)) if self.values else float("nan")


class _Strategy:
    """The paper trader on one symbol, fed the engine's slices (replay clock: exchange time)."""

    def __init__(self, name: str, params: dict[str, float], symbol: str, predictor=None, user: str = "system",
                 clock: str = "exchange", instrument=None):
        from genesis.strategy.paper import PaperTrader

        self.name, self.params, self.symbol = name, dict(params), symbol
        # Batches are flushed by the engine after each slice (huge batch limits: never on their own).
        # A replay's slices follow one another strictly in exchange time, so each is replayed whole
        # at once (seen at its venue time: no hold-back, no feed latency, nothing moved), and the
        # session equals a backtest of the rows; a live feed's batches overlap in time and are held
        # back as PaperTrader does by default.
        self.replay = clock == "exchange"
        # The symbol's tick and lot from its spec (the store's, the simulator's; a live feed
        # reports the venue's through the trader's on_instruments).
        self.trader = PaperTrader(name, self.params or None, symbol=symbol, clock=clock, feed_latency_ns=0,
                                  batch_rows=1 << 40, batch_interval_s=1e9, user=user, predictor=predictor,
                                  tick_size=instrument.tick_size if instrument else None,
                                  lot_size=instrument.lot_size if instrument else None,
                                  **({"hold_ns": 0} if self.replay else {}))
        self.trader.instrument = instrument
        self.fills_seen = 0
        self.decision_ms = _Quantiles()
        self.last_top = None

    def feed(self, deltas: np.ndarray, trades: np.ndarray, step: Step) -> None:
        from genesis.feeds.binance.live import BookTop

        began = time.perf_counter()
        t = self.trader
        if len(deltas):
            seq = deltas["seq"]
            cuts = np.flatnonzero(np.concatenate(([True], seq[1:] != seq[:-1], [True])))
            for a, b in zip(cuts[:-1], cuts[1:]):
                t.on_depth(self.symbol, deltas[a:b])
        if t.predictor is not None:
            b = step.book
            for k in range(len(b)):
                t.on_book(BookTop(self.symbol, int(b.ts[k]), int(b.ts[k]), -1, b.bid_px[k], b.bid_sz[k],
                                  b.ask_px[k], b.ask_sz[k]))
        for row in trades:
            t.on_trade(self.symbol, row)
        t.flush(final=self.replay)
        if len(deltas) or len(trades):
            self.decision_ms.add((time.perf_counter() - began) * 1e3)

    def update(self, consume: bool = True, max_fills: int = 50) -> dict[str, Any]:
        """Status, and the fills since the last consuming call (``consume=False``: the last
        ``max_fills`` fills, for a new session's first picture, leaving the stream as it was)."""
        status = self.trader.status()
        fills = self.trader.fills()
        start = self.fills_seen if consume else max(0, len(fills) - max_fills)
        # Per-fill PnL: the step in cumulative realized PnL (average cost) less the fill's fee.
        realized = fills["realized_pnl"]
        before = realized[start - 1] if start > 0 else 0.0
        new = fills[start:]
        pnl = np.diff(np.concatenate(([before], realized[start:]))) - new["fee"]
        if consume:
            self.fills_seen = len(fills)
        recent = [{"exch_ts": int(f["exch_ts"]), "side": int(f["side"]), "price": float(f["price"]),
                   "qty": float(f["qty"]), "fee": float(f["fee"]), "maker": bool(f["maker"]),
                   "position": float(f["position"]), "pnl": float(p)}
                  for f, p in zip(new[-max_fills:], pnl[-max_fills:])]
        spec = self.trader.instrument
        instrument = spec.describe() if spec is not None else {"symbol": self.symbol, "tick_size": self.trader.bt.tick_size,
                                                               "source": "inferred from the replay"}
        return {**status, "params": dict(self.params), "new_fills": recent, "instrument": instrument,
                "decision_ms_p50": self.decision_ms.q(0.5), "decision_ms_p99": self.decision_ms.q(0.99),
                "probabilities": self._probabilities(), "actions": self.trader.actions[-10:]}

    def _probabilities(self) -> list[float] | None:
        predictor = self.trader.predictor
        if predictor is None:
            return None
        inputs = predictor.inputs()
        if not len(inputs.get("ts", ())):
            return None
        return [float(inputs[k][-1]) for k in ("p_down", "p_stationary", "p_up") if k in inputs] or None


class LiveEngine:
    """One engine per server process (see the module docstring).

    config: an :class:`EngineConfig` (keyword overrides also accepted); events: the replay's
    events per symbol, given directly instead of read from the store (tests, notebooks);
    predictor_factory: makes the strategy's :class:`~genesis.strategy.paper.LivePredictor`
    (called again when a seek back restarts the trader); default: from ``config.model_id``.
    Call :meth:`start` to run it on its thread, or :meth:`tick` / :meth:`run_until_done` to
    drive it from the caller's thread.
    """

    def __init__(self, config: EngineConfig | None = None, *, events: dict[str, MarketEvents] | None = None,
                 predictor_factory: Callable[[], Any] | None = None, **overrides: Any):
        self.config = replace(config or EngineConfig(**{k: overrides.pop(k) for k in list(overrides)
                                                       if k in ("mode", "symbols")}), **overrides)
        self.hub = Hub()
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client = None
        self.collector: LiveCollector | None = None
        self.writer = None  # LIVE with a ClickHouse server: batches inserted into the store
        self.manager = AlertManager(self.config.store_url, persist=self.config.persist_alerts)
        self._filed: set[tuple] = set()
        self._alerts_out: list[dict] = []
        self._all_alerts: deque = deque(maxlen=5000)  # the newest alerts, for sessions that join later
        self._cases_out: list[dict] = []
        self.speed = float(self.config.speed)
        self.playing = self.config.mode != "live"
        self.ended = False
        self._reset_flag = True
        self.lag_ms = _Quantiles()
        self._rate: deque = deque(maxlen=64)  # (monotonic s, events) per tick
        self.events_processed = 0
        self.errors: deque = deque(maxlen=20)
        self.publish_seq = 0
        self._predictor_factory = predictor_factory
        self._load(events)

    # -- set-up -------------------------------------------------------------------------
    def _load(self, events: dict[str, MarketEvents] | None) -> None:
        c = self.config
        from_store = c.mode == "replay" and events is None
        if c.mode == "live":
            self.markets: dict[str, MarketEvents] = {}
            self.symbols = [f"binance-{c.venue.removeprefix('binance-')}:{s.upper()}" for s in c.symbols]
        else:
            if events is None:
                events = ({m.symbol: m for m in [simulated_market(c.scenario, seconds=c.sim_seconds, seed=c.seed)]}
                          if c.mode == "simulation" else load_replay(c.symbols, c.start, c.end, store_url=c.store_url))
            self.markets = dict(events)
            self.symbols = list(self.markets)
        self.instruments = self._instruments(from_store)
        self._restart()

    def _instruments(self, from_store: bool) -> dict[str, Any]:
        """Each symbol's spec: the simulator's config, or the store's at the replay's start (when
        the replay was read from the store); a live feed reports the venue's as it starts."""
        from genesis.store.instruments import SIMULATOR, Instrument, resolve_instrument

        c = self.config
        if c.mode == "simulation":
            from genesis.feeds.simulator import SimConfig

            sim = SimConfig()
            return {s: Instrument(s, sim.tick_size, sim.lot_size, source=SIMULATOR) for s in self.symbols}
        if not from_store:
            return {}
        from genesis.store import connect

        with connect(c.store_url) as store:
            return {s: resolve_instrument(store, s, int(m.deltas["exch_ts"][0]) if len(m.deltas) else None)
                    for s, m in self.markets.items()}

    def _sources(self, symbol: str) -> tuple[str, ...]:
        m = self.markets.get(symbol)
        if m is None:  # live Binance: no order-level events
            return ("trades", "book")
        return tuple(s for s, n in (("orders", len(m.orders)), ("trades", len(m.trades)), ("book", 1)) if n)

    def _features(self, symbol: str) -> list[str]:
        """The dashboards' features; VPIN's volume bucket sized to the symbol's trades (about 50
        median trades a bucket; the default 1M quote suits BTC, not a simulated 100-dollar book)."""
        m = self.markets.get(symbol)
        if m is None or not len(m.trades):
            return list(FEATURES)
        notional = float(np.median(m.trades["price"] * m.trades["qty"])) * 50
        bucket = float(f"{max(notional, 1e-6):.1g}")  # one significant digit: a readable column name
        return [f"vpin(bucket_notional={bucket:g})" if f == "vpin" else f for f in FEATURES]

    def _detectors(self, symbol: str):
        """The default detectors, given the symbol's tick where its spec is known (as ``surveil run`` does)."""
        from genesis.surveillance.detectors import default_detectors
        from genesis.surveillance.store import with_instrument

        return with_instrument(default_detectors(), self.instruments.get(symbol))

    def _restart(self, user: str = "system") -> None:
        """Fresh pipelines and cursors at the start of the data (the paper trader too)."""
        c = self.config
        self.cursors = {s: Cursor(m) for s, m in self.markets.items()}
        self.pipelines = {s: SymbolPipeline(s, sources=self._sources(s), levels=c.levels, features=self._features(s),
                                            detectors=self._detectors(s))
                          for s in self.symbols}
        self.range = ((min(cu.first_ts for cu in self.cursors.values()), max(cu.last_ts for cu in self.cursors.values()))
                      if self.cursors else (0, 0))
        self.clock = self.range[0] - 1 if self.cursors else 0
        self.ended = False
        self._finished = False
        self._latest: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, list[Step]] = {s: [] for s in self.symbols}
        self._reset_flag = True
        strategy_symbol = c.strategy_symbol or (self.symbols[0] if self.symbols else None)
        previous = getattr(self, "strategy", None)
        params = previous.params if previous is not None else dict(c.strategy_params)
        self.strategy = None
        if c.strategy and strategy_symbol:
            if strategy_symbol not in self.symbols:
                raise ValueError(f"strategy_symbol {strategy_symbol!r} is not among the engine's symbols {self.symbols}")
            self.strategy = _Strategy(c.strategy, params, strategy_symbol, self._predictor(), user, self._clock(),
                                      self.instruments.get(strategy_symbol))
            if previous is not None and previous.trader.started:  # a seek back keeps the trader running
                self.strategy.trader.start(user)

    def _inserts_live(self) -> bool:
        if self.config.insert_live is not None:
            return bool(self.config.insert_live)
        from genesis.config import settings

        url = self.config.store_url or settings().clickhouse_url
        return not url.startswith("chdb://")  # a server: insert; the embedded store: record files instead

    def _clock(self) -> str:
        # A replay runs faster than real time: its receive times mean nothing; live trades on ours.
        return "local" if self.config.mode == "live" else "exchange"

    def _predictor(self):
        if self._predictor_factory is not None:
            return self._predictor_factory()
        if not self.config.model_id:
            return None
        from genesis.strategy.paper import LivePredictor

        return LivePredictor.from_registry(self.config.model_id, num_threads=1)

    # -- thread -------------------------------------------------------------------------
    def start(self) -> LiveEngine:
        """Run on the engine's own thread (daemon) until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        target = self._run_live if self.config.mode == "live" else self._run_replay
        self._thread = threading.Thread(target=target, name="genesis-live-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._loop is not None and self.client is not None:
            self._loop.call_soon_threadsafe(self.client.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        if self.collector is not None:
            for listener in self.collector.also:
                close = getattr(listener, "close", None)
                if close is not None:
                    close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_replay(self) -> None:
        last_publish = time.monotonic()
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                self.tick(now - last)
            except Exception as exc:  # keep serving: the error goes to health and the log
                log.exception("engine step failed")
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.playing = False
            last = now
            if now - last_publish >= 1.0 / self.config.publish_hz:
                self.publish()
                last_publish = now
            time.sleep(max(0.0, self.config.tick_s - (time.monotonic() - now)))

    def _run_live(self) -> None:
        from genesis.feeds.binance.live import BinanceClient

        c = self.config
        also = []
        if c.record_dir:
            from genesis.feeds.binance.recorder import CaptureRecorder
            from genesis.feeds.binance.venues import venue as resolve_venue

            also.append(CaptureRecorder(c.record_dir, resolve_venue(c.venue, ws_url=c.ws_url, rest_url=c.rest_url)))
        if self._inserts_live():
            from genesis.live.writer import StoreWriter

            self.writer = StoreWriter(c.store_url, c.venue, flush_s=c.insert_every_s)
        self.collector = LiveCollector([*also, self.writer] if self.writer is not None else also)
        self.client = BinanceClient(c.venue, list(c.symbols), self.collector, depth_levels=c.levels,
                                    ws_url=c.ws_url, rest_url=c.rest_url)
        self._loop = asyncio.new_event_loop()

        async def main() -> None:
            task = asyncio.create_task(self.client.run())
            last_publish = time.monotonic()
            while not task.done() and not self._stop.is_set():
                await asyncio.sleep(c.tick_s)
                try:
                    self.tick_live()
                except Exception as exc:
                    log.exception("engine step failed")
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                if time.monotonic() - last_publish >= 1.0 / c.publish_hz:
                    self.publish()
                    last_publish = time.monotonic()
            self.client.stop()
            await task
            self.tick_live()  # what arrived during the shutdown
            if self.writer is not None:
                self.writer.flush()

        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.close()

    # -- stepping -----------------------------------------------------------------------
    def tick(self, wall_dt: float) -> int:
        """Advance the replay by ``wall_dt`` seconds of wall time at the current speed (max
        speed: one step of at most ``max_events_per_tick`` events). Returns events processed."""
        with self._lock:
            if not self.playing or self.ended:
                return 0
            if self.speed > 0:
                target = self.clock + int(wall_dt * self.speed * 1e9)
                # A quiet stretch (symbols of different days, a weekend) is jumped over, not waited out.
                upcoming = [t for t in (cu.next_ts() for cu in self.cursors.values()) if t is not None]
                if upcoming and min(upcoming) - target > self.config.skip_quiet_s * 1e9:
                    target = min(upcoming) - int(1e9)
                    self.clock = max(self.clock, target)
                # Replay lag: how late the step is on its schedule (events due before it waited a step).
                self.lag_ms.add(wall_dt * 1e3)
            else:
                target = self._max_target()
            n = self._advance(min(target, self.range[1]), publish=True)
            if all(cu.done for cu in self.cursors.values()):
                self._finish()
            return n

    def _max_target(self) -> int:
        k = self.config.max_events_per_tick
        targets = []
        for cu in self.cursors.values():
            if cu.done:
                continue
            for ts, pos in ((cu.msg_ts, cu.msg), (cu.trade_ts, cu.trade), (cu.order_ts, cu.order)):
                if pos < len(ts):
                    targets.append(int(ts[min(pos + k, len(ts) - 1)]))
        return min(targets) if targets else self.range[1]

    def _advance(self, target: int, publish: bool) -> int:
        """Process every event up to ``target`` (exchange ns), in pieces of bounded size."""
        total = 0
        k = self.config.max_events_per_tick
        for symbol, cursor in self.cursors.items():
            while True:
                deltas, trades, orders = cursor.take(target, k)
                if not (len(deltas) or len(trades) or len(orders)):
                    break
                total += self._process(symbol, deltas, trades, orders, publish)
        self.clock = max(self.clock, target)
        self._count(total)
        return total

    def _process(self, symbol: str, deltas: np.ndarray, trades: np.ndarray, orders: np.ndarray,
                 publish: bool) -> int:
        step = self._step(symbol, deltas, trades, orders, publish)
        return step.messages + len(trades) + len(orders)

    def _step(self, symbol: str, deltas: np.ndarray, trades: np.ndarray, orders: np.ndarray, publish: bool) -> Step:
        step = self.pipelines[symbol].step(deltas, trades, orders)
        self._file(step.alerts)
        if self.strategy is not None and symbol == self.strategy.symbol:
            self.strategy.feed(deltas, trades, step)
        if publish and self.hub.sessions:  # (nobody to show it to: keep nothing)
            self._pending[symbol].append(step)
        self._remember(step)
        return step

    def _finish(self) -> None:
        if self._finished:
            return
        for symbol, pipeline in self.pipelines.items():
            step = pipeline.finish()
            self._file(step.alerts)
            if self.hub.sessions:
                self._pending[symbol].append(step)
        if self.strategy is not None:
            self.strategy.trader.close()
        self._finished = True
        self.ended = True
        self.playing = False

    def _count(self, n: int) -> None:
        self.events_processed += n
        self._rate.append((time.monotonic(), n))

    def tick_live(self) -> int:
        """Process what the live client applied since the last call."""
        with self._lock:
            batches = self.collector.take() if self.collector is not None else {}
            s = self.strategy
            if s is not None and s.trader.instrument is None and self.collector is not None:
                # The venue's spec, once the client has it (before the first batch, the trader takes it).
                spec = self.collector.instruments.get(s.symbol)
                if spec is not None:
                    s.trader.on_instruments([spec])
            total = 0
            now_ns = time.time_ns()
            for symbol, (deltas, update_ids, trades) in batches.items():
                if symbol not in self.pipelines:
                    continue
                # A venue's trade stream can be a few ms out of order against itself: keep each source monotonic.
                pipe = self.pipelines[symbol]
                if len(trades):
                    trades["exch_ts"] = np.maximum.accumulate(np.maximum(trades["exch_ts"], pipe.last_trade_ts))
                step = self._step(symbol, deltas, trades, np.empty(0, ORDER_EVENT_DTYPE), True)
                total += step.messages + len(trades)
                if self.writer is not None:
                    self.writer.add(symbol, deltas, update_ids, step)
                local = [int(a["local_ts"].max()) for a in (deltas, trades) if len(a)]
                if local:
                    self.lag_ms.add((now_ns - max(local)) / 1e6)
                if len(deltas):
                    self.clock = max(self.clock, int(deltas["exch_ts"].max()))
            self._count(total)
            return total

    def active_symbol(self) -> str | None:
        """The symbol a new view should show first: the one whose data spans the replay clock,
        else the next to start (symbols of different days replay one after another), else the
        first. None without symbols."""
        with self._lock:
            if not self.cursors:
                return self.symbols[0] if self.symbols else None
            spans = {s: (cu.first_ts, cu.last_ts) for s, cu in self.cursors.items()}
            now = [s for s, (a, b) in spans.items() if a <= self.clock <= b]
            later = sorted((a, s) for s, (a, _) in spans.items() if a > self.clock)
            return now[0] if now else later[0][1] if later else self.symbols[0]

    def warm_up(self, events: int = 5_000) -> float:
        """Run a throwaway engine (same settings, alerts not stored) over the first ``events``
        depth rows of each market, so that every Numba kernel a step goes through is compiled, or
        loaded from Numba's cache, before sessions arrive: compiling holds the GIL for seconds,
        which would stall the server's first page loads. Nothing of this engine changes. Returns
        the seconds it took (0 in LIVE mode, which has no events yet)."""
        if not self.markets:
            return 0.0
        began = time.perf_counter()
        heads = {}
        for symbol, market in self.markets.items():
            times = market.deltas["exch_ts"] if len(market.deltas) else market.trades["exch_ts"]
            if not len(times):
                continue
            cutoff = times[min(events, len(times) - 1)]
            heads[symbol] = MarketEvents(symbol, *(a[a["exch_ts"] <= cutoff]
                                                   for a in (market.deltas, market.trades, market.orders)))
        config = replace(self.config, persist_alerts=False, insert_live=False, record_dir=None)
        LiveEngine(config, events=heads, predictor_factory=self._predictor_factory).run_until_done()
        return time.perf_counter() - began

    def run_until_done(self, max_ticks: int = 10_000_000) -> int:
        """Replay everything at max speed on the caller's thread (publishing as it goes)."""
        with self._lock:
            speed, self.speed, self.playing = self.speed, 0.0, True
        n = 0
        for _ in range(max_ticks):
            n += self.tick(0.0)
            if self.ended:
                break
        self.speed = speed
        return n

    # -- alerts -------------------------------------------------------------------------
    def _file(self, alerts: pd.DataFrame) -> None:
        if not len(alerts):
            return
        keys = [tuple(r) for r in alerts[list(ALERT_KEY)].itertuples(index=False)]
        fresh = np.array([k not in self._filed for k in keys])
        if not fresh.any():
            return
        new = alerts[fresh]
        self._filed.update(k for k, f in zip(keys, fresh) if f)
        filed = self.manager.submit(new)
        for row, (_, f) in zip(new.itertuples(index=False), filed.iterrows()):
            case = self.manager.cases[f["case_id"]]
            self._alerts_out.append(alert := {
                "alert_id": f["alert_id"], "case_id": f["case_id"], "symbol": row.symbol, "kind": row.kind,
                "severity": row.severity, "score": float(row.score), "side": int(row.side),
                "start_ts": int(row.start_ts), "end_ts": int(row.end_ts), "at_ts": int(row.at_ts),
                "price": float(row.price), "state": case.state, "case_severity": case.severity,
                "repeats": case.repeats})
            self._all_alerts.append(alert)

    def cases(self) -> pd.DataFrame:
        with self._lock:
            return self.manager.frame()

    def change_alert(self, case_id: str, to_state: str, note: str, user: str | None) -> dict[str, Any]:
        """Move a case to ``to_state`` with the analyst's ``note`` (refused without an authorised
        user; the user and note go to the case's audit trail). Returns the case as a dict."""
        who = authorize(self.config.address, user, "an alert state change", auth=self.config.auth)
        with self._lock:
            case = self.manager.transition(case_id, to_state, actor=who, why=note)
            out = {"case_id": case.case_id, "state": case.state, "severity": case.severity,
                   "repeats": case.repeats, "actor": who, "note": note}
            self._cases_out.append(out)
            return out

    # -- replay controls ----------------------------------------------------------------
    def play(self) -> None:
        with self._lock:
            if self.config.mode != "live" and not self.ended:
                self.playing = True

    def pause(self) -> None:
        with self._lock:
            self.playing = False

    def set_speed(self, speed: float) -> None:
        """1, 2, 5, 10 (x real time) or 0 (as fast as the engine goes)."""
        speed = float(speed)
        if speed not in SPEEDS:
            raise ValueError(f"speed={speed}: choose from {SPEEDS} (0 is max)")
        with self._lock:
            self.speed = speed

    def seek(self, ts: int, user: str = "system") -> int:
        """Move the replay clock to ``ts`` (exchange ns, clipped to the range); see the module
        docstring. Returns the new clock."""
        if self.config.mode == "live":
            raise ValueError("seek: a live feed cannot be moved in time")
        ts = int(min(max(int(ts), self.range[0]), self.range[1]))
        with self._lock:
            if ts < self.clock:
                self._restart(user)
            self._pending = {s: [] for s in self.symbols}  # the charts restart at the new time
            # The last seek_history_s before the new time are published (the charts show how it got there).
            self._advance(max(self.clock, ts - int(self.config.seek_history_s * 1e9)), publish=False)
            self._advance(ts, publish=True)
            if all(cu.done for cu in self.cursors.values()):
                self._finish()
            self._reset_flag = True
            return self.clock

    def set_scenario(self, scenario: str | None, seconds: float | None = None, seed: int | None = None) -> None:
        """SIMULATION: a new simulated market with ``scenario`` (the replay restarts at its start)."""
        if self.config.mode != "simulation":
            raise ValueError("set_scenario: only in simulation mode")
        with self._lock:
            self.config = replace(self.config, scenario=scenario,
                                  sim_seconds=self.config.sim_seconds if seconds is None else seconds,
                                  seed=self.config.seed if seed is None else seed)
            self._load(None)
            self.playing = True

    # -- strategy controls --------------------------------------------------------------
    def _trader(self):
        if self.strategy is None:
            raise ValueError("this engine runs no paper strategy (EngineConfig.strategy)")
        return self.strategy.trader

    def strategy_start(self, user: str | None) -> str:
        who = authorize(self.config.address, user, "starting the strategy", auth=self.config.auth)
        with self._lock:
            self._trader().start(who)
        return who

    def strategy_stop(self, user: str | None) -> str:
        who = authorize(self.config.address, user, "stopping the strategy", auth=self.config.auth)
        with self._lock:
            self._trader().stop(who)
        return who

    def strategy_reset(self, user: str | None) -> str:
        who = authorize(self.config.address, user, "resetting the strategy", auth=self.config.auth)
        with self._lock:
            self._trader().reset(who)
        return who

    def set_strategy_params(self, params: dict[str, float], user: str | None) -> str:
        """New strategy parameters: the paper trader is rebuilt (flat, stopped) from now on."""
        who = authorize(self.config.address, user, "changing strategy parameters", auth=self.config.auth)
        from genesis.strategy import get_strategy

        with self._lock:
            s = self.strategy
            if s is None:
                raise ValueError("this engine runs no paper strategy")
            known = dict(get_strategy(s.name).params)
            unknown = set(params) - set(known)
            if unknown:
                raise ValueError(f"{s.name} has no parameter(s) {sorted(unknown)}; it has {sorted(known)}")
            merged = {**s.params, **{k: float(v) for k, v in params.items()}}
            fresh = _Strategy(s.name, merged, s.symbol, s.trader.predictor, who, self._clock(), s.trader.instrument)
            # The new trader continues from the replay's current book: feed it nothing earlier.
            self.strategy = fresh
            if self.config.mode != "live":
                self._reseed_strategy()
        return who

    def _reseed_strategy(self) -> None:
        """Bring a new trader to the current clock: replay its symbol's events up to now."""
        symbol = self.strategy.symbol
        cursor = Cursor(self.markets[symbol])
        k = self.config.max_events_per_tick
        while True:
            deltas, trades, _ = cursor.take(self.clock, k)
            if not (len(deltas) or len(trades)):
                break
            self.strategy.feed(deltas, trades, Step(symbol, *_empty_step(self.config.levels)))

    # -- publishing ---------------------------------------------------------------------
    def subscribe(self, maxlen: int | None = None, name: str = "") -> SessionBuffer:
        """A bounded buffer that receives every update from now on (call :meth:`unsubscribe` when done)."""
        buffer = self.hub.subscribe(maxlen or self.config.buffer_size, name)
        buffer.put(self.snapshot())  # a new session starts from the current picture
        return buffer

    def unsubscribe(self, buffer: SessionBuffer) -> None:
        self.hub.unsubscribe(buffer)

    def _remember(self, step: Step) -> None:
        latest = self._latest.setdefault(step.symbol, {})
        if len(step.book):
            b = step.book
            latest["top"] = {"ts": int(b.ts[-1]), "bid_px": b.bid_px[-1].copy(), "bid_sz": b.bid_sz[-1].copy(),
                             "ask_px": b.ask_px[-1].copy(), "ask_sz": b.ask_sz[-1].copy()}
            latest["features"] = dict(zip(step.columns, step.features[:, -1].tolist()))
        if len(step.regimes):
            latest["regime"] = int(step.regimes[-1])

    def _symbol_update(self, symbol: str, steps: list[Step]) -> dict[str, Any]:
        c = self.config
        books = [s for s in steps if len(s.book)]
        out: dict[str, Any] = {}
        if books:
            ts = np.concatenate([s.book.ts for s in books])
            feats = np.concatenate([s.features for s in books], axis=1)
            n = len(ts)
            keep = np.unique(np.linspace(0, n - 1, min(n, c.points_per_update)).astype(np.int64))
            out["ts"] = ts[keep]
            for name, row in zip(books[0].columns, feats[:, keep]):
                out[_short(name)] = row
        trades = [s.trades for s in steps if len(s.trades)]
        if trades:
            t = np.concatenate(trades)[-c.trades_per_update:]
            out["trades"] = {"ts": t["exch_ts"], "price": t["price"], "qty": t["qty"], "side": t["aggressor"]}
        latest = self._latest.get(symbol, {})
        if "top" in latest:
            out["top"] = latest["top"]
            out["last"] = {_short(k): v for k, v in latest.get("features", {}).items()}
        out["regime"] = latest.get("regime", 0)
        return out

    def publish(self) -> dict[str, Any]:
        """Build one update from what happened since the last one and give it to every session."""
        with self._lock:
            update = self._update()
        self.hub.publish(update)
        return update

    def snapshot(self) -> dict[str, Any]:
        """The current picture without consuming pending data (a new session's first update)."""
        with self._lock:
            # Every alert filed so far, with its case's current state (a session may join late).
            alerts = [{**a, "state": self.manager.cases[a["case_id"]].state,
                       "repeats": self.manager.cases[a["case_id"]].repeats} for a in self._all_alerts]
            return self._header(reset=True, strategy=self.strategy.update(consume=False) if self.strategy else None,
                                symbols={s: self._symbol_update(s, []) for s in self.symbols},
                                alerts=alerts, cases=[])

    def _update(self) -> dict[str, Any]:
        symbols = {s: self._symbol_update(s, steps) for s, steps in self._pending.items()}
        self._pending = {s: [] for s in self.symbols}
        alerts, self._alerts_out = self._alerts_out, []
        cases, self._cases_out = self._cases_out, []
        reset, self._reset_flag = self._reset_flag, False
        self.publish_seq += 1
        return self._header(reset=reset, strategy=self.strategy.update() if self.strategy else None,
                            symbols=symbols, alerts=alerts, cases=cases)

    def _header(self, **parts: Any) -> dict[str, Any]:
        return {"seq": self.publish_seq, "wall_ns": time.time_ns(), "mode": self.config.mode, "clock_ts": self.clock,
                "range": self.range, "playing": self.playing, "speed": self.speed, "ended": self.ended,
                "scenario": self.config.scenario if self.config.mode == "simulation" else None,
                "health": self.health(), **parts}

    def health(self) -> dict[str, Any]:
        """Messages/s (last ~2 s of wall time), lag p50/p99 (ms; replay: the step's delay, live:
        receive to processed), resyncs, reconnects, drops (sessions + feed), backlog (events due
        but not processed yet), sessions, errors."""
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._rate) if now - t <= 2.0]
        span = (now - recent[0][0]) if len(recent) > 1 else 0.0
        rate = sum(n for _, n in recent[1:]) / span if span > 0 else 0.0
        metrics = self.client.metrics if self.client is not None else None
        backlog = 0
        if self.config.mode != "live" and self.playing and self.speed > 0:
            backlog = sum(cu.pending(self.clock) for cu in self.cursors.values())
        return {"messages_per_s": rate, "lag_p50_ms": self.lag_ms.q(0.5), "lag_p99_ms": self.lag_ms.q(0.99),
                "resyncs": metrics.resyncs if metrics else 0, "reconnects": metrics.reconnects if metrics else 0,
                "feed_dropped": (metrics.dropped if metrics else 0) + (self.collector.dropped if self.collector else 0),
                "session_drops": self.hub.dropped, "sessions": self.hub.sessions, "backlog": backlog,
                "events": self.events_processed, "errors": list(self.errors)[-3:]}

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in self._header().items() if k != "health"}


def _short(column: str) -> str:
    """Feature column -> the name the dashboards use ('ofi_l1_w1' -> 'ofi')."""
    for name in sorted(FEATURES, key=len, reverse=True):
        if column == name or column.startswith(name + "_"):
            return name
    return column


def _empty_step(levels: int):
    from genesis.feeds.events import TRADE_DTYPE
    from genesis.surveillance.engine import Book

    return (Book.empty(levels), np.empty((0, 0)), [], np.empty(0, TRADE_DTYPE), pd.DataFrame(),
            np.empty(0, np.int64), np.empty(0, np.int8), 0)


__all__ = ["LiveEngine", "EngineConfig", "MODES", "SPEEDS"]
