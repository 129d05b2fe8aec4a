"""Price alerts: rules above / below / cross, over history and on a live trade stream.

A rule watches one symbol's price against a level:

* ``above``: fires when the price reaches ``level`` or more, coming from below it; the first
  price seen fires if it is already there (the rule starts armed). It re-arms once the price
  is back below the level.
* ``below``: the same with ``price <= level``.
* ``cross``: fires each time the price moves to the other side of ``level``: up (direction 1)
  at the first price ``>= level`` after one below it, down (direction -1) at the first price
  below it after one at or above it. The first price seen only sets the side.

History and live use one kernel: :func:`evaluate` runs it over a batch of prices (trades, or
bar closes) from a fresh state; :class:`PriceAlertMonitor` keeps each rule's state and runs it
on every batch of trades it is fed, so feeding a history piece by piece fires exactly what one
pass over it fires. Fired alerts are stored in ``price_alerts`` (``clickhouse/009_bars.sql``)
with the rule and the venue time.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import numba
import numpy as np
import pandas as pd

from genesis.store.queries import add_time_range

KINDS = {"above": 0, "below": 1, "cross": 2}
TRIGGER_COLUMNS = ("rule_id", "symbol", "kind", "level", "at_ts", "price", "prev_price", "direction", "rule")
_UNKNOWN = -1


@dataclass(frozen=True)
class PriceRule:
    """Alert on ``symbol`` ('venue:SYMBOL') when its price goes ``kind`` ('above', 'below',
    'cross') ``level``; ``name`` is free text shown with the alert."""

    symbol: str
    kind: str
    level: float
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"price rule kind {self.kind!r}: choose from {', '.join(KINDS)}")
        if not isinstance(self.symbol, str) or ":" not in self.symbol:
            raise ValueError(f"price rule symbol {self.symbol!r}: expected 'venue:SYMBOL', e.g. 'binance-usdm:BTCUSDT'")
        level = float(self.level)
        if not np.isfinite(level) or level <= 0:
            raise ValueError(f"price rule level {self.level!r}: must be a positive number")
        object.__setattr__(self, "level", level)

    @property
    def rule_id(self) -> str:
        """A stable id from the rule's fields (the same rule always gets the same id)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> PriceRule:
        """``'binance-usdm:BTCUSDT above 61900'`` (an optional name after the level)."""
        parts = text.split(maxsplit=3)
        if len(parts) < 3:
            raise ValueError(f"price rule {text!r}: expected 'SYMBOL above|below|cross LEVEL [name]'")
        try:
            level = float(parts[2])
        except ValueError:
            raise ValueError(f"price rule {text!r}: level {parts[2]!r} is not a number") from None
        return cls(parts[0], parts[1], level, parts[3] if len(parts) > 3 else "")


@numba.njit(cache=True)
def _evaluate(price, kind, level, state, out_index, out_direction):
    """Run one rule over ``price`` from ``state`` (-1 nothing seen yet, else whether the last
    finite price met the rule's condition: ``>= level`` for above and cross, ``<= level`` for
    below). Writes the indices and directions of the prices that fired; returns (count, state).
    NaN prices are skipped."""
    count = 0
    for i in range(len(price)):
        p = price[i]
        if not np.isfinite(p):
            continue
        now = 1 if (p <= level if kind == 1 else p >= level) else 0
        if kind == 2:
            if state != -1 and now != state:
                out_index[count] = i
                out_direction[count] = 1 if now == 1 else -1
                count += 1
        elif now == 1 and state != 1:
            out_index[count] = i
            out_direction[count] = 1 if kind == 0 else -1
            count += 1
        state = now
    return count, state


def _run_rule(rule: PriceRule, price: np.ndarray, state: int) -> tuple[np.ndarray, np.ndarray, int]:
    index = np.empty(len(price), np.int64)
    direction = np.empty(len(price), np.int8)
    count, state = _evaluate(price, KINDS[rule.kind], rule.level, state, index, direction)
    return index[:count], direction[:count], int(state)


def _triggers(rule: PriceRule, ts: np.ndarray, price: np.ndarray, index: np.ndarray, direction: np.ndarray,
              before: float) -> pd.DataFrame:
    """Rows of fired alerts; ``prev_price`` is the last finite price before each (``before``
    carries it across batches)."""
    finite = np.isfinite(price)
    last_finite = np.where(finite, np.arange(len(price)), -1)
    np.maximum.accumulate(last_finite, out=last_finite)
    prev_pos = np.where(index > 0, last_finite[np.maximum(index - 1, 0)], -1)
    prev = np.where(prev_pos >= 0, price[np.maximum(prev_pos, 0)], before)
    return pd.DataFrame({
        "rule_id": rule.rule_id, "symbol": rule.symbol, "kind": rule.kind, "level": rule.level,
        "at_ts": ts[index], "price": price[index], "prev_price": prev, "direction": direction,
        "rule": rule.to_json(),
    }, columns=list(TRIGGER_COLUMNS))


def evaluate(rules: Iterable[PriceRule], symbol: str, ts: np.ndarray, price: np.ndarray) -> pd.DataFrame:
    """Alerts the rules of ``symbol`` fire over one history of its prices: ``ts`` int64 ns (venue
    time) and ``price``, shape ``(n,)``, in time order (trades, or bar closes). Rules of other
    symbols are ignored. Returns one row per alert (columns ``TRIGGER_COLUMNS``), by time then
    rule id."""
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    price = np.ascontiguousarray(price, dtype=np.float64)
    if ts.shape != price.shape or ts.ndim != 1:
        raise ValueError(f"ts and price: need two 1-D arrays of one length, got {ts.shape} and {price.shape}")
    if len(ts) > 1 and (np.diff(ts) < 0).any():
        raise ValueError("ts: prices must be in time order")
    frames = []
    for rule in rules:
        if rule.symbol != symbol:
            continue
        index, direction, _ = _run_rule(rule, price, _UNKNOWN)
        frames.append(_triggers(rule, ts, price, index, direction, np.nan))
    return _sorted(frames)


def evaluate_trades(rules: Iterable[PriceRule], trades: np.ndarray | pd.DataFrame, symbol: str) -> pd.DataFrame:
    """:func:`evaluate` over one symbol's trades (TRADE_DTYPE rows or a frame with exch_ts, price)."""
    return evaluate(rules, symbol, np.asarray(trades["exch_ts"], np.int64), np.asarray(trades["price"], np.float64))


def evaluate_store(store, rules: Iterable[PriceRule], start: Any = None, end: Any = None, *,
                   source: str = "trades", interval: str = "1s") -> pd.DataFrame:
    """Alerts the rules fire over the store's history in ``[start, end)``: over every trade
    (``source='trades'``), or over bar closes (``source='bars'`` at ``interval``; an alert's time
    is then the bar's start, and a level touched only inside a bar does not fire)."""
    from genesis.analytics.bars import read_bars

    rules = list(rules)
    frames = []
    for symbol in sorted({r.symbol for r in rules}):
        if source == "trades":
            where, parameters = ["symbol = {symbol:String}"], {"symbol": symbol}
            add_time_range(where, parameters, "exch_ts", start, end)
            table = store.query_arrow(
                "SELECT toUnixTimestamp64Nano(exch_ts) AS ts, price FROM trades WHERE "
                + " AND ".join(where) + " ORDER BY exch_ts, trade_id", parameters)
            ts = table.column("ts").to_numpy() if table.num_rows else np.empty(0, np.int64)
            price = table.column("price").to_numpy() if table.num_rows else np.empty(0)
        elif source == "bars":
            bars = read_bars(store, symbol, interval, start, end)
            ts, price = bars["ts"].to_numpy("datetime64[ns]").view(np.int64), bars["close"].to_numpy()
        else:
            raise ValueError(f"source={source!r}: choose 'trades' or 'bars'")
        frames.append(evaluate(rules, symbol, ts, price))
    return _sorted(frames)


class PriceAlertMonitor:
    """Price alert rules on a live stream: feed it each batch of trades as it arrives
    (:meth:`on_trades`); it returns the alerts that batch fired and keeps them all in
    :attr:`history` (a frame, oldest first)."""

    def __init__(self, rules: Iterable[PriceRule]) -> None:
        self.rules = list(rules)
        ids = [r.rule_id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("price rules: the same rule is given twice")
        self._state = {r.rule_id: _UNKNOWN for r in self.rules}
        self._last_price: dict[str, float] = {}
        self._last_ts: dict[str, int] = {}
        self._history: list[pd.DataFrame] = []

    def on_trades(self, symbol: str, trades: np.ndarray | pd.DataFrame) -> pd.DataFrame:
        """Evaluate one batch of ``symbol``'s trades (in time order, after the previous batch)."""
        ts = np.ascontiguousarray(np.asarray(trades["exch_ts"], np.int64))
        price = np.ascontiguousarray(np.asarray(trades["price"], np.float64))
        return self.on_prices(symbol, ts, price)

    def on_prices(self, symbol: str, ts: np.ndarray, price: np.ndarray) -> pd.DataFrame:
        """Evaluate one batch of ``symbol``'s prices (int64 ns venue times, prices)."""
        ts = np.ascontiguousarray(ts, dtype=np.int64)
        price = np.ascontiguousarray(price, dtype=np.float64)
        if len(ts) == 0:
            return pd.DataFrame(columns=list(TRIGGER_COLUMNS))
        if ts.shape != price.shape:
            raise ValueError(f"ts and price: shapes differ ({ts.shape} and {price.shape})")
        if (len(ts) > 1 and (np.diff(ts) < 0).any()) or ts[0] < self._last_ts.get(symbol, ts[0]):
            raise ValueError(f"{symbol}: trades must arrive in time order")
        before = self._last_price.get(symbol, np.nan)
        frames = []
        for rule in self.rules:
            if rule.symbol != symbol:
                continue
            index, direction, self._state[rule.rule_id] = _run_rule(rule, price, self._state[rule.rule_id])
            if len(index):  # (most batches fire nothing: no frame to build)
                frames.append(_triggers(rule, ts, price, index, direction, before))
        finite = np.flatnonzero(np.isfinite(price))
        if len(finite):
            self._last_price[symbol] = float(price[finite[-1]])
        self._last_ts[symbol] = int(ts[-1])
        fired = _sorted(frames)
        if len(fired):
            self._history.append(fired)
        return fired

    @property
    def history(self) -> pd.DataFrame:
        return _sorted(self._history)


def save_triggers(store, triggers: pd.DataFrame, *, mode: str, run_id: str | None = None) -> str:
    """Store fired alerts in ``price_alerts`` (``mode`` 'history' or 'live'); returns the run id."""
    if mode not in ("history", "live"):
        raise ValueError(f"mode={mode!r}: choose 'history' or 'live'")
    run_id = run_id or uuid.uuid4().hex[:12]
    if len(triggers):
        n = len(triggers)
        store.insert_columns("price_alerts", {
            **{c: triggers[c].to_numpy() for c in ("rule_id", "symbol", "kind", "rule")},
            "level": triggers["level"].to_numpy(np.float64), "price": triggers["price"].to_numpy(np.float64),
            "prev_price": triggers["prev_price"].to_numpy(np.float64),
            "direction": triggers["direction"].to_numpy(np.int8),
            "at_ts": triggers["at_ts"].to_numpy(np.int64), "mode": mode, "run_id": run_id,
            "created_at": np.full(n, int(datetime.now(timezone.utc).timestamp() * 1e6) * 1000, np.int64),
        })
    return run_id


def load_triggers(store, symbol: str | None = None, start: Any = None, end: Any = None,
                  run_id: str | None = None) -> pd.DataFrame:
    """Stored alerts, oldest first: columns ``TRIGGER_COLUMNS`` (at_ts int64 ns) plus mode,
    run_id, created_at."""
    where, parameters = ["1"], {}
    if symbol is not None:
        where.append("symbol = {symbol:String}")
        parameters["symbol"] = symbol
    if run_id is not None:
        where.append("run_id = {run_id:String}")
        parameters["run_id"] = run_id
    add_time_range(where, parameters, "at_ts", start, end)
    columns = [*TRIGGER_COLUMNS, "mode", "run_id", "created_at"]
    select = ", ".join("toUnixTimestamp64Nano(at_ts) AS at_ts" if c == "at_ts" else c for c in columns)
    frame = store.query_df(f"SELECT {select} FROM price_alerts WHERE {' AND '.join(where)}"
                           " ORDER BY at_ts, rule_id", parameters=parameters or None)
    return frame if len(frame.columns) else pd.DataFrame(columns=columns)


def _sorted(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(TRIGGER_COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    # By time, then rule: the same order however the history was cut into batches.
    return out.sort_values(["at_ts", "rule_id"], kind="stable").reset_index(drop=True)


__all__ = ["PriceRule", "KINDS", "TRIGGER_COLUMNS", "evaluate", "evaluate_trades", "evaluate_store",
           "PriceAlertMonitor", "save_triggers", "load_triggers"]
