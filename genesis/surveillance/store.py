"""Surveillance over the store: read a symbol's events, run the detectors, file the alerts.

``genesis surveil run --symbol S --from T --to T`` is :func:`run_surveillance`: it reads the
order events (where the source has them), trades and book rows of the range, runs every
detector in one batch, and hands the alerts to the :class:`AlertManager`, which merges them
into cases and writes alerts and audit rows. A run is identified by the symbol, the range
and the detectors' parameter versions: running it again finds its alerts and adds nothing.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import pandas as pd

from genesis.feeds.events import ORDER_EVENT_DTYPE, TRADE_DTYPE
from genesis.features.store import load_inputs as load_book
from genesis.features.store import stored_symbol
from genesis.store import Store, connect, migrate
from genesis.store.instruments import resolve_instrument
from genesis.store.queries import arrow_to_structured, to_ns
from genesis.surveillance.alerts import AlertManager
from genesis.surveillance.base import Detector
from genesis.surveillance.engine import Book, Inputs, run_detectors

_ORDER_COLUMNS = ", ".join(ORDER_EVENT_DTYPE.names)
_TRADE_COLUMNS = ", ".join(TRADE_DTYPE.names)


def load_inputs(store: Store, symbol: str, start: Any = None, end: Any = None, *, levels: int = 20) -> Inputs:
    """Book rows (sampling 'event'), trades and order events of ``symbol`` in ``[start, end)``.

    The book has the levels the stored rows hold, at most ``levels`` (a 1-level LOBSTER book
    is read as 1 level, not padded to ``levels``)."""
    snapshots, _, _ = load_book(store, symbol, start, end, levels=None)
    symbol = stored_symbol(store, symbol)
    lo = int(snapshots.ts[0]) if start is None else to_ns(start)
    hi = int(snapshots.ts[-1]) + 1 if end is None else to_ns(end)
    window = {"symbol": symbol, "lo": lo, "hi": hi}
    where = ("WHERE symbol = {symbol:String} AND exch_ts >= fromUnixTimestamp64Nano({lo:Int64})"
             " AND exch_ts < fromUnixTimestamp64Nano({hi:Int64})")
    trades = arrow_to_structured(store.query_arrow(
        f"SELECT {_TRADE_COLUMNS} FROM trades {where} ORDER BY exch_ts, trade_id", window), TRADE_DTYPE)
    orders = arrow_to_structured(store.query_arrow(
        f"SELECT {_ORDER_COLUMNS} FROM order_events {where} ORDER BY exch_ts, seq", window), ORDER_EVENT_DTYPE)
    book = Book(snapshots.ts, snapshots.bid_px, snapshots.bid_sz, snapshots.ask_px, snapshots.ask_sz).trim(levels)
    return Inputs(symbol, orders, trades, book)



@dataclass
class SurveillanceRun:
    run_id: str
    symbol: str
    start_ts: int
    end_ts: int
    events: dict[str, int]
    alerts: pd.DataFrame  # the alerts of this run (empty when it had run before)
    cases_opened: int
    already_run: bool
    seconds: float
    data: str = ""  # what the data holds (DataProfile.describe)
    skipped: dict[str, str] = field(default_factory=dict)  # detectors not run: name -> why

    def summary(self) -> str:
        head = (f"{self.symbol} {pd.Timestamp(self.start_ts, tz='UTC')} .. {pd.Timestamp(self.end_ts, tz='UTC')}: "
                + ", ".join(f"{n:,} {k}" for k, n in self.events.items()))
        if self.data:
            head += f"\ndata: {self.data}"
        for name, why in self.skipped.items():
            head += f"\nskipped {name}: {why}"
        if self.already_run:
            return head + f"\nalready run (run {self.run_id}): its alerts are in the store; nothing added"
        lines = [head, f"{len(self.alerts):,} alerts, {self.cases_opened:,} new cases (run {self.run_id}, "
                       f"{self.seconds:.2f} s)"]
        if len(self.alerts):
            table = self.alerts.pivot_table(index="kind", columns="severity", values="score", aggfunc="count",
                                            fill_value=0)
            lines.append(table.to_string())
        return "\n".join(lines)


def with_instrument(detectors: Sequence[Detector], spec) -> list[Detector]:
    """``detectors`` with the symbol's tick (an :class:`~genesis.store.instruments.Instrument`, or
    None to leave them as they are) given to those that count in ticks."""
    if spec is None:
        return list(detectors)
    return [d.with_params(tick_size=spec.tick_size) if "tick_size" in {f.name for f in fields(d.params)} else d
            for d in detectors]


def run_surveillance(symbol: str, start: Any = None, end: Any = None, *, store_url: str | None = None,
                     detectors: Sequence[Detector] | None = None, levels: int = 20) -> SurveillanceRun:
    """Detect over ``[start, end)`` of ``symbol`` and file the alerts (see the module docstring)."""
    from genesis.surveillance.detectors import default_detectors

    began = time.perf_counter()
    detectors = list(default_detectors() if detectors is None else detectors)
    with connect(store_url) as store:
        migrate(store)
        inputs = load_inputs(store, symbol, start, end, levels=levels)
        lo = int(inputs.book.ts[0]) if start is None else to_ns(start)
        hi = int(inputs.book.ts[-1]) + 1 if end is None else to_ns(end)
        spec = resolve_instrument(store, inputs.symbol, lo)
    detectors = with_instrument(detectors, spec)
    versions = sorted(f"{d.name}={d.params_version}" for d in detectors)
    run_id = hashlib.sha256(f"{inputs.symbol}|{lo}|{hi}|{','.join(versions)}".encode()).hexdigest()[:16]
    events = {"book rows": len(inputs.book), "trades": len(inputs.trades), "order events": len(inputs.orders)}
    profile = inputs.profile()
    skipped = {d.name: d.unmet(profile) for d in detectors if d.unmet(profile)}
    with connect(store_url) as store:
        done = store.query_rows("SELECT count() FROM alerts WHERE run_id = {run_id:String}", {"run_id": run_id})[0][0]
    if done:  # (a run that raised nothing leaves no trace: running it again raises nothing again)
        return SurveillanceRun(run_id, inputs.symbol, lo, hi, events, pd.DataFrame(), 0, True,
                               time.perf_counter() - began, profile.describe(), skipped)
    detection = run_detectors(inputs, detectors)
    alerts = detection.alerts
    manager = AlertManager.load(store_url, symbol=inputs.symbol)
    params = {d.name: asdict(d.params) for d in detectors}
    filed = manager.submit(alerts, run_id=run_id, params=params)
    return SurveillanceRun(run_id, inputs.symbol, lo, hi, events, alerts, int(filed["opened"].sum()) if len(filed) else 0,
                           False, time.perf_counter() - began, profile.describe(), detection.skipped)


def alert_rates(store_url: str | None = None, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Alerts per hour of market data, by symbol and kind: each symbol's stored alerts over the
    time its book rows span (symbols with book rows but no alerts get zeros)."""
    with connect(store_url) as store:
        spans = store.query_df(
            "SELECT symbol, (toUnixTimestamp64Nano(max(exch_ts)) - toUnixTimestamp64Nano(min(exch_ts))) / 3.6e12"
            " AS hours FROM book_snapshots WHERE sampling = 'event' GROUP BY symbol")
        counts = store.query_df("SELECT symbol, kind, count() AS alerts FROM alerts GROUP BY symbol, kind")
    if symbols:
        spans = spans[spans["symbol"].isin(symbols)]
    if not len(counts):
        counts = pd.DataFrame({"symbol": pd.Series(dtype=str), "kind": pd.Series(dtype=str),
                               "alerts": pd.Series(dtype=int)})
    table = counts.pivot_table(index="symbol", columns="kind", values="alerts", aggfunc="sum", fill_value=0)
    table = table.reindex(spans["symbol"], fill_value=0)
    hours = spans.set_index("symbol")["hours"]
    rates = table.div(hours, axis=0)
    rates.insert(0, "hours", hours)
    return rates.sort_index()


__all__ = ["load_inputs", "run_surveillance", "alert_rates", "SurveillanceRun"]
