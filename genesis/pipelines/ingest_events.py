"""Ingest normalised events from sources other than Binance captures: LOBSTER files and
simulated markets.

Both go through :func:`write_market_events`: validation (bad rows to quarantine with the
reason), order-level events, L2 deltas, the top-L book after every event (given by the
source, or rebuilt from the deltas with crossed-book events rejected), trades, and the
ground truth of simulated episodes, all tagged with the source's id so that a re-ingest
replaces exactly them (:func:`genesis.pipelines.ingest.run_source`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from dataclasses import replace as replace_fields
from pathlib import Path

import numpy as np
import pandas as pd

from genesis.book.l2 import L2Book
from genesis.feeds.events import MarketEvents, delta_events
from genesis.feeds.validate import validate
from genesis.pipelines.ingest import FileReport, insert_book_rows, file_sha256, run_source
from genesis.store import Store, connect, migrate
from genesis.store.instruments import LOBSTER, SIMULATOR, Instrument, write_instruments


def write_market_events(store: Store, events: MarketEvents, source_id: str, *, depth_levels: int = 20,
                        path: str = "") -> dict[str, int]:
    """Write one symbol's events; returns rows per table (and 'quarantine', 'crossed').

    Rejected rows go to ``quarantine`` with ``stream`` = the table they were meant for and
    ``line_no`` = their 1-based row in the input array.
    """
    counts = dict.fromkeys(("order_events", "depth_deltas", "book_snapshots", "trades", "episodes",
                            "quarantine", "crossed"), 0)
    n_input_deltas = len(events.deltas)
    events, rejects = validate(events)
    # Quarantine rows name the input row; validation removed some, so map kept rows back.
    delta_row = np.setdiff1d(np.arange(n_input_deltas),
                             rejects.loc[rejects["table"] == "depth_deltas", "index"].to_numpy(np.int64))
    tag = {"symbol": events.symbol, "source_id": source_id}
    quarantine = [(int(r.index), int(r.exch_ts), r.table, r.reason, r.raw) for r in rejects.itertuples()]

    o = events.orders
    if len(o):
        counts["order_events"] = store.insert_columns("order_events", {
            **tag, "exch_ts": o["exch_ts"], "local_ts": o["local_ts"], "seq": o["seq"].astype(np.uint64),
            "event": o["event"], "order_id": o["order_id"], "side": o["side"], "price": o["price"], "qty": o["qty"],
            "owner": o["owner"], "contra_id": o["contra_id"], "contra_owner": o["contra_owner"]})

    d = events.deltas
    if len(d):
        starts, lengths, snapshot = delta_events(d)
        book = L2Book(depth_levels)
        bid_px, bid_sz, ask_px, ask_sz, crossed = book.apply_groups(starts, lengths, snapshot,
                                                                    d["side"], d["price"], d["qty"])
        keep_rows = np.repeat(~crossed, lengths)
        for g in np.flatnonzero(crossed):
            first = int(starts[g])
            quarantine.append((int(delta_row[first]), int(d["exch_ts"][first]), "depth_deltas",
                               "event would cross the book (best bid >= best ask): not applied",
                               "; ".join(f"side={int(s)} price={p!r} qty={q!r}" for s, p, q in
                                         zip(d["side"][first:first + lengths[g]].tolist(),
                                             d["price"][first:first + lengths[g]].tolist(),
                                             d["qty"][first:first + lengths[g]].tolist()))))
        counts["crossed"] = int(crossed.sum())
        kept = d[keep_rows]
        counts["depth_deltas"] = store.insert_columns("depth_deltas", {
            **tag, "exch_ts": kept["exch_ts"], "local_ts": kept["local_ts"], "seq": kept["seq"].astype(np.uint64),
            "side": kept["side"], "price": kept["price"], "qty": kept["qty"], "is_snapshot": kept["is_snapshot"]})
        if events.book is None:
            good = ~crossed
            first = starts[good]
            counts["book_snapshots"] += insert_book_rows(
                store, tag, "event", d["exch_ts"][first], d["local_ts"][first], d["seq"][first],
                bid_px[good], bid_sz[good], ask_px[good], ask_sz[good])
    if events.book is not None:
        b = events.book
        counts["book_snapshots"] += insert_book_rows(store, tag, "event", b["exch_ts"], b["local_ts"], b["seq"],
                                                      b["bid_px"], b["bid_sz"], b["ask_px"], b["ask_sz"])

    t = events.trades
    if len(t):
        counts["trades"] = store.insert_columns("trades", {
            **tag, "exch_ts": t["exch_ts"], "local_ts": t["local_ts"], "trade_id": t["trade_id"].astype(np.uint64),
            "price": t["price"], "qty": t["qty"], "aggressor": t["aggressor"]})

    e = events.episodes
    if len(e):
        counts["episodes"] = store.insert_columns("episodes", {
            **tag, "episode_id": e["episode_id"].to_numpy(np.uint32), "kind": e["kind"].astype(str).tolist(),
            "start_ts": e["start_ts"].to_numpy(np.int64), "end_ts": e["end_ts"].to_numpy(np.int64),
            "side": e["side"].to_numpy(np.int8), "order_ids": [list(map(int, ids)) for ids in e["order_ids"]],
            "detail": e["detail"].astype(str).tolist()})

    if quarantine:
        quarantine.sort(key=lambda q: (q[2], q[0]))
        line_no, local_ts, stream, reason, raw = zip(*quarantine)
        counts["quarantine"] = store.insert_columns("quarantine", {
            "source_id": source_id, "path": path, "line_no": np.array(line_no, np.uint64) + 1,
            "local_ts": np.array(local_ts, np.int64), "stream": list(stream), "reason": list(reason), "raw": list(raw)})
    return counts


# -- LOBSTER ------------------------------------------------------------------------------
def ingest_lobster(message_path: str | Path, orderbook_path: str | Path | None = None, *,
                   symbol: str | None = None, store_url: str | None = None, replace: bool = False) -> FileReport:
    """Ingest one LOBSTER message + orderbook pair: order events, trades, the book after every
    message, halts. Messages that disagree with the orderbook rows around them are quarantined
    (and counted as ``inconsistent``); the rest is stored as given."""
    from genesis.feeds.lobster import check_consistency, read_lobster

    message_path = Path(message_path)
    data = read_lobster(message_path, orderbook_path, symbol=symbol)
    digest = hashlib.sha256((file_sha256(message_path) + file_sha256(Path(data.orderbook_path))).encode()).hexdigest()

    def write(run: dict) -> dict[str, int]:
        run["messages"] = len(data)
        run["symbols"] = [data.symbol]
        counts = write_market_events(store, data.events, digest, depth_levels=data.levels, path=str(message_path))
        # NASDAQ quotes these stocks in cents and trades whole shares (LOBSTER's prices are x 10000).
        counts["instruments"] = _record_spec(store, data.events, digest, tick_size=0.01, lot_size=1.0,
                                             source=LOBSTER)
        report = check_consistency(data)
        counts["inconsistent"] = len(report)
        if len(report):
            store.insert_columns("quarantine", {
                "source_id": digest, "path": str(message_path), "line_no": report["line"].to_numpy(np.uint64),
                "local_ts": np.zeros(len(report), np.int64), "stream": "lobster-consistency",
                "reason": report["reason"].astype(str).tolist(),
                "raw": [json.dumps(row, default=str) for row in report.to_dict("records")]})
            counts["quarantine"] += len(report)
        counts["halts"] = len(data.halts)
        return counts

    with connect(store_url) as store:
        migrate(store)
        return run_source(store, source_id=digest, path=message_path.resolve(), kind="lobster", replace=replace,
                          write=write)


def _record_spec(store: Store, events: MarketEvents, source_id: str, *, tick_size: float, lot_size: float,
                 source: str) -> int:
    """Record the declared spec of a source's symbol, valid from its first event."""
    times = [int(a["exch_ts"].min()) for a in (events.deltas, events.trades, events.orders) if len(a)]
    spec = Instrument(events.symbol, float(tick_size), float(lot_size), valid_from=min(times) if times else 0,
                      source=source)
    return write_instruments(store, [spec], source_id)


# -- simulator ----------------------------------------------------------------------------
def simulation_source_id(description: dict) -> str:
    """A simulation is identified by everything that determines its events."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


def ingest_simulation(*, seconds: float, seed: int, scenarios: tuple[str, ...] = (), bad_data: tuple[str, ...] = (),
                      symbol: str | None = None, config=None, store_url: str | None = None,
                      replace: bool = False, depth_levels: int = 20) -> FileReport:
    """Simulate a market and store it with its episodes (ground truth) and any injected bad
    rows in quarantine. The same arguments give the same source id: a re-run is skipped."""
    from genesis.feeds.simulator import SimConfig, simulate

    config = config or SimConfig()
    if symbol:
        config = replace_fields(config, symbol=symbol)
    description = {"config": asdict(config), "seconds": seconds, "seed": seed, "scenarios": list(scenarios),
                   "bad_data": list(bad_data)}
    source_id = simulation_source_id(description)
    label = f"simulate:{','.join(scenarios) or 'clean'}:seconds={seconds:g}:seed={seed}"

    def write(run: dict) -> dict[str, int]:
        simulation = simulate(config, seconds=seconds, seed=seed, scenarios=scenarios, bad_data=bad_data)
        events = simulation.events
        run["messages"] = len(events.orders) or len(events.deltas)
        run["symbols"] = [events.symbol]
        counts = write_market_events(store, events, source_id, depth_levels=depth_levels, path=label)
        counts["instruments"] = _record_spec(store, events, source_id, tick_size=config.tick_size,
                                             lot_size=config.lot_size, source=SIMULATOR)
        return counts

    with connect(store_url) as store:
        migrate(store)
        return run_source(store, source_id=source_id, path=label, kind="simulation", replace=replace, write=write)


def episodes(store: Store, symbol: str | None = None) -> pd.DataFrame:
    """The stored ground truth of simulated episodes (all symbols, or one)."""
    where = "WHERE symbol = {symbol:String}" if symbol else ""
    return store.query_df(f"SELECT * FROM episodes {where} ORDER BY symbol, start_ts, episode_id",
                          {"symbol": symbol} if symbol else None)


__all__ = ["write_market_events", "ingest_lobster", "ingest_simulation", "episodes"]
