"""Paper trading: one strategy on one symbol, driven by the live feed, simulated by the backtest kernel.

A :class:`PaperTrader` is a :class:`~genesis.feeds.binance.live.FeedListener`. The client gives
it every depth message (and REST snapshot) it APPLIES to its book (``on_depth``) and every
trade (``on_trade``); the trader buffers them and feeds them in batches, as replay rows
(:class:`HeldRows`), to ONE :class:`~genesis.backtest.engine.Backtester`.
So the fills are the backtest's: same kernel, same latency, queue and fee models, simulated
against the live book (the venue's book as the client rebuilt it).

Batching. A batch is processed when ``batch_rows`` rows are pending or ``batch_interval_s``
has passed since the last one (checked on each callback; :func:`run_paper` also flushes on a
timer so that a quiet market is not held back). Measured on the bundled spot capture (2 busy
cores): a live-sized batch (3 depth messages) costs ~0.25 ms, almost all of it Python (building
and merging replay rows); a full 2,048-level batch ~3.5 ms (~1 us per replay row; the kernel
itself 50-260 ns per row). So 50 ms batches cost the client's loop ~0.5% at live rates, keep the
strategy's view that close to the feed, and a burst is cut into pieces of a few ms.

Holding back. The simulated timeline does not depend on the batching because rows are held
back ``hold_ns`` of replay time (default 0.5 s) before they are replayed:
the venue's depth and trade streams reach us slightly out of order, and a batch's local rows
replayed at once would put the next batch's earlier venue rows in the past (what
:class:`~genesis.backtest.events.LiveRows` then does: move them to the replay's time). With the
hold, a session replays exactly like a backtest of the stream it received; a row later than the
hold is still moved and counted (``status()['clamped']``). The cost: the simulation (and
``status()``) runs ``hold_ns`` of market time behind the feed; fills are unaffected.

Clocks. Replay time needs both clocks of every event (see :mod:`genesis.backtest.events`):

* ``clock="local"`` (live trading): the strategy sees an event at our receive time; the local
  clock is shifted once, on the first batch, so that no event is seen sooner than
  ``min_feed_latency_ns`` after the venue stamped it (:func:`~genesis.backtest.events.feed_latency_offset`).
* ``clock="exchange"`` (a recorded stream served faster than real time, e.g. FakeBinance with
  ``speed=None``, where receive times say nothing about the market): every event is seen
  ``feed_latency_ns`` after its venue time.

The book the trader replays is the client's, message for message, with three rules that keep
the two clocks consistent with the order the client applied them in: a REST snapshot without
a venue time (spot) takes the venue time of the next depth message applied (else the last one
seen); depth messages' times never go back in apply order (a buffered event applied after a
snapshot is seen when the snapshot is); trades received before the first applied depth message
are dropped (the replay has no book yet, and the snapshot would come after them; counted in
``status()['trades_before_book']``).

Controls: :meth:`start` (entries allowed), :meth:`stop` (exits only; working entry orders
cancelled), :meth:`reset` (cancel all, flatten at the venue's book, clear PnL). Each flushes the
pending rows first (so it acts at the current replay time) and is recorded with the user, the
wall-clock time and the replay time (:attr:`actions`). A trader starts stopped unless told
otherwise. All public methods are thread-safe (the client calls from its asyncio loop, a
dashboard reads from another thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

from genesis.backtest.engine import (F_AVG, F_FEES, F_LAST_MID, F_POS, F_REAL, F_TURN, I_N_FILLS, I_N_REJECTS,
                                     I_NEXT_ID, Backtester, Fees, Latency, QueueModel, mid)
from genesis.backtest.events import FLAG_EXCH, FLAG_LOCAL, REPLAY_DTYPE, feed_latency_offset, replay_rows, row_time
from genesis.backtest.result import BacktestResult
from genesis.feeds.binance.live import FeedListener
from genesis.feeds.events import DELTA_DTYPE, TRADE_DTYPE, MarketEvents

CLOCKS = ("local", "exchange")


class HeldRows:
    """Live batches as replay rows that a backtest of the whole stream would replay identically.

    Each batch's rows (:func:`replay_rows`, ``local_offset_ns`` added to local_ts) are merged with
    the rows held back from earlier batches, and only the rows earlier than ``hold_ns`` before the
    new batch's first row are released: the venue's streams (depth, trades) reach us slightly out
    of order, and a local row released too early would let a later batch's venue rows land
    "in the past". A row that still comes earlier than rows already released is moved to the last
    released time and counted in ``clamped`` (as :class:`~genesis.backtest.events.LiveRows` does
    for every batch edge, which is what holding back avoids). :meth:`drain` releases the rest.
    """

    def __init__(self, local_offset_ns: int = 0, hold_ns: int = 0) -> None:
        self.local_offset_ns = int(local_offset_ns)
        self.hold_ns = int(hold_ns)
        self.carry = np.empty(0, REPLAY_DTYPE)
        self.released_until = np.iinfo(np.int64).min
        self.clamped = 0

    def add(self, deltas: np.ndarray, trades: np.ndarray) -> np.ndarray:
        rows = replay_rows(deltas, trades, local_offset_ns=self.local_offset_ns)
        if not len(rows):
            return rows
        venue = (rows["kind"] & FLAG_EXCH) != 0
        early_venue = venue & (rows["exch_ts"] < self.released_until)
        early_local = ~venue & (rows["local_ts"] < self.released_until)
        if early_venue.any() or early_local.any():
            rows["exch_ts"][early_venue] = self.released_until
            rows["local_ts"][early_local] = self.released_until
            self.clamped += int(np.count_nonzero(early_venue | early_local))
        t_new = row_time(rows)
        merged = np.concatenate((self.carry, rows))
        t = row_time(merged)
        is_local = (merged["kind"] & FLAG_LOCAL) != 0
        order = np.lexsort((np.arange(len(merged)), is_local, t))  # venue rows first at equal times
        merged, t = merged[order], t[order]
        cut = int(np.searchsorted(t, int(t_new.min()) - self.hold_ns, side="left"))
        return self._release(merged, t, cut)

    def drain(self) -> np.ndarray:
        """Release every held row (the end of a session)."""
        return self._release(self.carry, row_time(self.carry), len(self.carry))

    def _release(self, merged: np.ndarray, t: np.ndarray, cut: int) -> np.ndarray:
        if cut:
            self.released_until = max(self.released_until, int(t[cut - 1]))
        self.carry = merged[cut:]
        return merged[:cut]


class LivePredictor:
    """DeepLOB class probabilities for every book the client applies, as ``deeplob_threshold`` inputs.

    Each applied book's top ``levels`` (a :class:`~genesis.feeds.binance.live.BookTop`) becomes one
    :func:`~genesis.models.data.lob_features` row, normalised by the model's
    :class:`~genesis.models.data.InputTransform` (price reference, then scaler), and is pushed into
    a :class:`~genesis.models.inference.RollingPredictor`; once ``window`` rows are in, every push
    gives ``(p_down, p_stationary, p_up)``, stamped with the book's time on the paper trader's
    local replay clock (as the predictions table stamps the book row that ends the window). Books
    with an empty side are skipped (counted in ``skipped``). Predictions are kept in arrays grown
    by doubling; :meth:`inputs` gives views of them (no copy per batch).

    model, scaler, config: as :func:`genesis.models.registry.load_model` returns them (config's
    ``datamodule`` gives ``levels``, ``window`` and the price reference); :meth:`from_registry`
    loads a registered model. Inference runs on the client's loop: one window step per applied
    book, ~1 ms with one torch thread (measured here, 2 busy cores); ``num_threads`` sets torch's
    threads (process-wide): give 1 on a busy machine, where torch's default oversubscribes the
    cores and a step took ~800 ms, enough to stall the client's loop past its ping timeout.
    """

    def __init__(self, model, scaler, config: dict[str, Any] | None = None, *, fast: bool = True,
                 num_threads: int | None = None) -> None:
        from genesis.models.data import InputTransform
        from genesis.models.inference import RollingPredictor

        datamodule = (config or {}).get("datamodule", {})
        self.levels = int(datamodule.get("levels", 10))
        self.window = int(datamodule.get("window", 100))
        self.transform = InputTransform.from_config(scaler, datamodule)
        self.rolling = RollingPredictor(model, None, self.window, fast=fast, num_threads=num_threads)
        self.n = 0  # predictions made
        self.books = 0  # books pushed (skipped ones included)
        self.skipped = 0
        self._ts = np.empty(1024, np.int64)
        self._probs = np.empty((3, 1024), np.float64)

    @classmethod
    def from_registry(cls, model_id: str, models_directory=None, **kwargs: Any) -> "LivePredictor":
        from genesis.models.registry import load_model

        model, scaler, config = load_model(model_id, models_directory)
        return cls(model, scaler, config, **kwargs)

    def push(self, top, ts: int) -> np.ndarray | None:
        """Add one applied book (BookTop) seen at local replay time ``ts``; its probabilities or None."""
        from genesis.models.data import lob_features

        self.books += 1
        if np.isnan(top.bid_px[0]) or np.isnan(top.ask_px[0]):
            self.skipped += 1
            return None
        row = lob_features(top.bid_px[None, : self.levels], top.bid_sz[None, : self.levels],
                           top.ask_px[None, : self.levels], top.ask_sz[None, : self.levels], self.levels,
                           dtype=np.float64)
        probs = self.rolling.push(self.transform.transform(row)[0])
        if probs is None:
            return None
        if self.n == len(self._ts):
            self._ts = np.concatenate((self._ts, np.empty_like(self._ts)))
            self._probs = np.concatenate((self._probs, np.empty_like(self._probs)), axis=1)
        self._ts[self.n] = ts
        self._probs[:, self.n] = probs[:3]
        self.n += 1
        return probs

    def shift(self, ns: int) -> None:
        """Add ``ns`` to the stamps so far (the trader's local clock offset, known after its first batch)."""
        self._ts[: self.n] += int(ns)

    def reset(self) -> None:
        """Start a new window (after a gap in the feed): the next ``window`` books give no prediction."""
        self.rolling.reset()
        if hasattr(self.transform, "reset"):
            self.transform.reset()

    def inputs(self) -> dict[str, np.ndarray]:
        """The predictions so far: ``ts``, ``p_down``, ``p_stationary``, ``p_up`` (views, (n,))."""
        return {"ts": self._ts[: self.n], "p_down": self._probs[0, : self.n],
                "p_stationary": self._probs[1, : self.n], "p_up": self._probs[2, : self.n]}


class PaperTrader(FeedListener):
    """One strategy on one symbol of a live feed (see the module doc).

    strategy, params: as :class:`Backtester` (a registered name or a Strategy; its parameters);
    symbol: the namespaced symbol to trade ('binance-spot:ETHUSDT'; None: the first one seen);
    latency, queue, fees, equity_interval_ns, seed, max_orders, tick_size, lot_size, inputs: the
    Backtester's (a tick or lot left None is taken from the venue's spec when the feed reports it,
    :meth:`on_instruments`, before the first batch; else the tick is inferred); clock: 'local' or 'exchange'; min_feed_latency_ns: the local clock's floor
    (clock='local'); feed_latency_ns: the constant feed latency (clock='exchange');
    batch_rows, batch_interval_s: when a batch is processed; started: entries allowed from the
    first row (default: stopped until :meth:`start`); record: keep every batch as given to the
    replay (:meth:`recording`), to replay it as a backtest; predictor: a :class:`LivePredictor`
    fed every applied book of the symbol, whose predictions become the strategy's inputs before
    each batch (``deeplob_threshold`` in paper mode).
    """

    def __init__(self, strategy, params: dict[str, Any] | None = None, *, symbol: str | None = None,
                 latency: Latency | None = None, queue: QueueModel | None = None, fees: Fees | None = None,
                 equity_interval_ns: int = 1_000_000_000, seed: int = 0, max_orders: int = 256,
                 tick_size: float | None = None, lot_size: float | None = None,
                 inputs: dict[str, np.ndarray] | None = None,
                 clock: str = "local", min_feed_latency_ns: int = 0, feed_latency_ns: int = 0,
                 batch_rows: int = 2048, batch_interval_s: float = 0.05, hold_ns: int = 500_000_000,
                 started: bool = False, user: str = "system", record: bool = False,
                 predictor: LivePredictor | None = None) -> None:
        if clock not in CLOCKS:
            raise ValueError(f"clock={clock!r}: expected one of {CLOCKS}")
        if int(batch_rows) < 1 or batch_interval_s < 0:
            raise ValueError(f"batch_rows={batch_rows} must be >= 1 and batch_interval_s={batch_interval_s} >= 0")
        if int(feed_latency_ns) < 0 or int(min_feed_latency_ns) < 0 or int(hold_ns) < 0:
            raise ValueError("feed_latency_ns, min_feed_latency_ns and hold_ns must be >= 0")
        self.bt = Backtester(strategy, params, inputs=inputs, latency=latency, queue=queue, fees=fees,
                             equity_interval_ns=equity_interval_ns, seed=seed, max_orders=max_orders,
                             tick_size=tick_size, lot_size=lot_size)
        # Compiled now, not on the first batch: a first compile inside the client's event loop
        # stalls it for seconds, past its stale-stream watchdog (a reconnect and a resync follow).
        self.bt.warm_up()
        self.symbol = symbol
        self.clock = clock
        self.min_feed_latency_ns = int(min_feed_latency_ns)
        self.feed_latency_ns = int(feed_latency_ns)
        self.batch_rows = int(batch_rows)
        self.batch_interval_s = float(batch_interval_s)
        self.hold_ns = int(hold_ns)
        self.record = record
        self.predictor = predictor
        self.instrument = None  # the venue's spec once reported (on_instruments)
        self._book_time = 0  # the latest applied book's time on the local replay clock (before the offset)
        self._lock = threading.RLock()
        self._pending_depth: list[np.ndarray] = []
        self._pending_trades: list[np.void] = []
        self._pending_rows = 0
        self._last_flush = time.monotonic()
        self._held: HeldRows | None = None  # made on the first batch (its offset needs data)
        self._n_messages = 0  # depth messages taken (their replay ``seq``)
        self._last_exch = 0  # the latest venue time of a depth message, in apply order
        self._last_local = 0  # the latest receive time of a depth message, in apply order
        self._batches: list[tuple[np.ndarray, np.ndarray]] = []
        self._actions: list[dict[str, Any]] = []
        self._feed_status = ""
        self.counts = {"depth_messages": 0, "depth_rows": 0, "trades": 0, "trades_before_book": 0,
                       "other_symbols": 0, "batches": 0, "rows": 0}
        self.started = False
        self.bt.set_mode("exits_only", user=user)
        self._actions.append(self._action("stop", user))
        if started:
            self.start(user)

    # -- feed (client's loop) -----------------------------------------------------------
    def _mine(self, symbol: str) -> bool:
        if self.symbol is None:
            self.symbol = symbol
        if symbol != self.symbol:
            self.counts["other_symbols"] += 1
            return False
        return True

    def on_depth(self, symbol: str, deltas: np.ndarray) -> None:
        if not self._mine(symbol):
            return
        with self._lock:
            self._pending_depth.append(deltas)
            self._pending_rows += len(deltas)
        self._maybe_flush()

    def on_instruments(self, specs, local_ts: int = 0, raw: bytes = b"") -> None:
        """The venue's specs (:class:`genesis.store.instruments.Instrument`): the traded symbol's
        tick and lot are used when none was given and nothing has been replayed yet."""
        with self._lock:
            for spec in specs:
                if spec.symbol == self.symbol and not self.bt.events:
                    self.bt.set_instrument(None if self.bt.tick_size else spec.tick_size,
                                           None if self.bt.lot_size else spec.lot_size)
                    self.instrument = spec

    def on_trade(self, symbol: str, trade: np.void) -> None:
        if not self._mine(symbol):
            return
        with self._lock:
            if not self._pending_depth and self._n_messages == 0:
                self.counts["trades_before_book"] += 1
                return
            self._pending_trades.append(trade)
            self._pending_rows += 1
        self._maybe_flush()

    def on_book(self, top) -> None:
        if self.predictor is None or top.symbol != self.symbol:  # (on_depth came first and named the symbol)
            return
        # The book is seen when its message is (the rules of _depth_batch: times never go back).
        t = top.exch_ts + self.feed_latency_ns if self.clock == "exchange" else top.local_ts
        self._book_time = max(self._book_time, int(t))
        with self._lock:
            offset = self._held.local_offset_ns if self._held is not None else 0
            self.predictor.push(top, self._book_time + offset)

    def on_status(self, symbol: str, status: str, detail: str) -> None:
        if symbol == self.symbol or self.symbol is None:
            self._feed_status = status
            if status == "gap" and self.predictor is not None:
                with self._lock:
                    self.predictor.reset()  # a window must not span the missing updates

    def _maybe_flush(self) -> None:
        if self._pending_rows >= self.batch_rows or time.monotonic() - self._last_flush >= self.batch_interval_s:
            self.flush()

    # -- batches ------------------------------------------------------------------------
    def flush(self, final: bool = False) -> int:
        """Replay the pending rows now (all but the last ``hold_ns`` of replay time, unless
        ``final``: the end of the session); returns the number of replay rows processed."""
        with self._lock:
            self._last_flush = time.monotonic()
            if not self._pending_rows:
                if final and self._held is not None:
                    return self._process(self._held.drain())
                return 0
            deltas = self._depth_batch()
            trades = np.array(self._pending_trades, TRADE_DTYPE) if self._pending_trades else np.empty(0, TRADE_DTYPE)
            self._pending_trades = []
            self._pending_rows = 0
            if self.clock == "exchange":
                deltas["local_ts"] = deltas["exch_ts"] + self.feed_latency_ns
                trades["local_ts"] = trades["exch_ts"] + self.feed_latency_ns
            if self._held is None:
                offset = 0 if self.clock == "exchange" else feed_latency_offset(deltas, trades,
                                                                               self.min_feed_latency_ns)
                self._held = HeldRows(offset, self.hold_ns)
                if self.predictor is not None:
                    self.predictor.shift(offset)
            if self.record:
                self._batches.append((deltas, trades))
            self.counts["batches"] += 1
            self.counts["trades"] += len(trades)
            n = self._process(self._held.add(deltas, trades))
            if final:
                n += self._process(self._held.drain())
            return n

    def _process(self, rows: np.ndarray) -> int:
        if self.predictor is not None:  # the predictions made so far (views: no copy)
            self.bt.set_inputs(**self.predictor.inputs())
        self.bt.process(rows)
        self.counts["rows"] += len(rows)
        return len(rows)

    def close(self) -> int:
        """The session's end: replay every row still pending or held back."""
        return self.flush(final=True)

    def _depth_batch(self) -> np.ndarray:
        """The pending depth messages as one DELTA_DTYPE array: seq renumbered (a snapshot and the
        delta after it may share an update id), clocks made consistent with the apply order."""
        if not self._pending_depth:
            return np.empty(0, DELTA_DTYPE)
        messages, self._pending_depth = self._pending_depth, []
        counts = np.fromiter((len(m) for m in messages), np.int64, len(messages))
        deltas = np.concatenate(messages)
        n = len(messages)
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        exch = deltas["exch_ts"][first].copy()
        local = deltas["local_ts"][first].copy()
        # A venue time unknown (<= 0: a spot REST snapshot): the next known one in apply order, else the last.
        known = exch > 0
        if not known.all():
            nxt = np.where(known, np.arange(n), n)
            nxt = np.minimum.accumulate(nxt[::-1])[::-1]
            fallback = self._last_exch if self._last_exch > 0 else int(local[0])
            exch = np.where(known, exch, np.where(nxt < n, exch[np.minimum(nxt, n - 1)], fallback))
        # Times never go back in apply order (a buffered event applied after a snapshot is seen with it).
        exch = np.maximum.accumulate(np.maximum(exch, self._last_exch))
        local = np.maximum.accumulate(np.maximum(local, self._last_local))
        self._last_exch, self._last_local = int(exch[-1]), int(local[-1])
        deltas["exch_ts"] = np.repeat(exch, counts)
        deltas["local_ts"] = np.repeat(local, counts)
        deltas["seq"] = np.repeat(np.arange(self._n_messages, self._n_messages + n), counts)
        self._n_messages += n
        self.counts["depth_messages"] += n
        self.counts["depth_rows"] += len(deltas)
        return deltas

    # -- controls (any thread) ----------------------------------------------------------
    def _action(self, action: str, user: str) -> dict[str, Any]:
        return {"action": action, "user": user, "wall_ts": time.time_ns(), "replay_ts": self.bt.now}

    def start(self, user: str = "") -> None:
        """Allow new entries (engine mode entries_allowed), from the current replay time."""
        with self._lock:
            self.flush()
            self.bt.set_mode("entries_allowed", user=user)
            self.started = True
            self._actions.append(self._action("start", user))

    def stop(self, user: str = "") -> None:
        """No new entries; exits still allowed (engine mode exits_only; working orders cancelled,
        the strategy re-sends those that reduce the position)."""
        with self._lock:
            self.flush()
            self.bt.set_mode("exits_only", cancel_entries=True, user=user)
            self.started = False
            self._actions.append(self._action("stop", user))

    def reset(self, user: str = "") -> None:
        """Cancel everything, flatten at the venue's book, clear position, PnL and fees (the mode stays)."""
        with self._lock:
            self.flush()
            self.bt.reset(user=user)
            self._actions.append(self._action("reset", user))

    def set_inputs(self, **arrays: np.ndarray) -> None:
        """Replace the strategy's input arrays (e.g. predictions grown by a live predictor)."""
        with self._lock:
            self.bt.set_inputs(**arrays)

    # -- reading (any thread) -----------------------------------------------------------
    @property
    def actions(self) -> list[dict[str, Any]]:
        """Every control action: action ('start'/'stop'/'reset'), user, wall_ts (UTC ns), replay_ts (ns)."""
        with self._lock:
            return [dict(a) for a in self._actions]

    def status(self) -> dict[str, Any]:
        """What a dashboard polls: position, PnL (realized, unrealized, fees, equity; quote currency),
        last mid, fills, orders, mode, counts, replay and wall times."""
        with self._lock:
            E = self.bt.E
            fst, ist = E.fst, E.ist
            m = mid(E)
            mark = float(fst[F_LAST_MID]) if np.isnan(m) else float(m)
            pos = float(fst[F_POS])
            unreal = pos * (mark - float(fst[F_AVG])) if pos != 0.0 else 0.0
            real, fees = float(fst[F_REAL]), float(fst[F_FEES])
            return {
                "symbol": self.symbol, "strategy": self.bt.strategy.name, "started": self.started,
                "mode": "exits_only" if self.bt.mode else "entries_allowed", "feed_status": self._feed_status,
                "position": pos, "entry_price": float(fst[F_AVG]) if pos != 0.0 else float("nan"),
                "realized_pnl": real, "unrealized_pnl": unreal, "fees": fees, "equity": real + unreal - fees,
                "turnover": float(fst[F_TURN]), "last_mid": mark, "fills": int(ist[I_N_FILLS]),
                "orders_sent": int(ist[I_NEXT_ID]), "rejected_orders": int(ist[I_N_REJECTS]),
                "replay_ts": self.bt.now, "wall_ts": time.time_ns(), "pending_rows": self._pending_rows,
                "held_rows": len(self._held.carry) if self._held is not None else 0,
                "clamped": self._held.clamped if self._held is not None else 0, **self.counts,
            }

    snapshot = status

    def fills(self) -> np.ndarray:
        """FILL_DTYPE rows so far (order_id -1: a reset's flattening)."""
        with self._lock:
            return self.bt.fills()

    def result(self, **config: Any) -> BacktestResult:
        """The session as a BacktestResult (config kind 'paper', symbol, clock; meta counts and actions),
        for :func:`genesis.backtest.store.save_run`."""
        with self._lock:
            self.flush()
            res = self.bt.result(kind="paper", symbol=self.symbol, clock=self.clock,
                                 feed_latency_ns=self.feed_latency_ns, min_feed_latency_ns=self.min_feed_latency_ns,
                                 local_offset_ns=self.local_offset_ns, **config)
            res.meta.update(self.status())
            res.meta["actions"] = self.actions
            return res

    @property
    def local_offset_ns(self) -> int:
        """ns added to every local_ts (fixed on the first batch)."""
        return self._held.local_offset_ns if self._held is not None else 0

    def recording(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The batches as given to the replay ((deltas, trades) each, times adjusted, before the
        local offset), when made with ``record=True``: :func:`replay_recording` replays them."""
        with self._lock:
            return list(self._batches)

    def recorded_events(self) -> MarketEvents:
        """The recording as one MarketEvents (every batch concatenated)."""
        batches = self.recording()
        deltas = np.concatenate([d for d, _ in batches]) if batches else np.empty(0, DELTA_DTYPE)
        trades = np.concatenate([t for _, t in batches]) if batches else np.empty(0, TRADE_DTYPE)
        return MarketEvents(symbol=self.symbol or "", deltas=deltas, trades=trades)


def replay_recording(batches: list[tuple[np.ndarray, np.ndarray]], strategy, params: dict[str, Any] | None = None,
                     *, local_offset_ns: int = 0, hold_ns: int = 500_000_000,
                     mode_changes: list[tuple[int, str]] | None = None, **backtester: Any) -> BacktestResult:
    """A backtest of a paper session's recording, batch by batch as the session replayed it: the
    same batches through :class:`HeldRows` (``local_offset_ns``, ``hold_ns`` as the session's)
    into a fresh Backtester (``backtester``: its keyword arguments), drained at the end.
    ``mode_changes``: (batch index, 'entries_allowed'/'exits_only') applied before that batch (a
    session started before its first batch: ``[(0, 'entries_allowed')]``)."""
    bt = Backtester(strategy, params, **backtester)
    bt.set_mode("exits_only")
    changes = dict(mode_changes or [])
    held = HeldRows(local_offset_ns, hold_ns)
    for k, (deltas, trades) in enumerate(batches):
        if k in changes:
            bt.set_mode(changes[k], cancel_entries=changes[k] == "exits_only")
        bt.process(held.add(deltas, trades))
    bt.process(held.drain())
    return bt.result(kind="backtest")


def run_paper(trader: PaperTrader, venue: str, symbols: list[str] | None = None, *, seconds: float | None = None,
              ws_url: str | None = None, rest_url: str | None = None, until=None,
              listener: FeedListener | None = None, **client_kwargs: Any):
    """Run ``trader`` on a live :class:`BinanceClient` (blocking, on a new event loop) for ``seconds``
    or until ``until(client)`` (polled every 50 ms) is true; pending rows are flushed on a timer,
    and everything at the end (:meth:`PaperTrader.close`). ``listener``: the client's listener when
    it is not the trader alone (one that passes the feed on to the trader and others); ``client_kwargs``
    go to the client.
    Returns the client (its metrics, books)."""
    from genesis.feeds.binance.live import BinanceClient

    symbols = symbols or ([trader.symbol.split(":", 1)[-1]] if trader.symbol else None)
    if not symbols:
        raise ValueError("run_paper: name the symbols (or give the trader a symbol)")
    client = BinanceClient(venue, symbols, listener or trader, ws_url=ws_url, rest_url=rest_url, **client_kwargs)

    async def main() -> None:
        task = asyncio.create_task(client.run())
        began = time.monotonic()
        try:
            while not task.done():
                await asyncio.sleep(min(0.05, trader.batch_interval_s or 0.05))
                trader.flush()
                if seconds is not None and time.monotonic() - began >= seconds:
                    break
                if until is not None and until(client):
                    break
        finally:
            client.stop()
            await task
            trader.close()

    asyncio.run(main())
    return client


__all__ = ["PaperTrader", "LivePredictor", "HeldRows", "replay_recording", "run_paper", "CLOCKS"]
