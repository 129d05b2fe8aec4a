"""Replay input: market events merged into one time-ordered array with both clocks.

Every market event happens twice in a replay: at the venue at ``exch_ts`` (the venue's book
changes, our resting orders may fill) and at our process at ``local_ts`` (the strategy sees
it; the difference is the feed latency, taken from the data). A replay array therefore holds
each event's rows twice, once flagged :data:`FLAG_EXCH` and once :data:`FLAG_LOCAL`, and is
sorted by the time at which each row happens::

    row time = exch_ts if kind & FLAG_EXCH else local_ts

Ties are broken by (venue rows before local rows, then the venue's message order), so the
array is one global timeline; the engine walks it with one cursor, and any split of it into
consecutive chunks replays exactly like the whole (:class:`genesis.backtest.engine.Backtester`).

Row kinds (``kind & KIND_MASK``): :data:`DEPTH` (set the level ``side``/``price`` to the
absolute ``qty``, 0 removes it), :data:`CLEAR` (a snapshot begins: the book is emptied, the
snapshot's levels follow as DEPTH rows), :data:`TRADE` (``side`` is the aggressor, 1 buy,
-1 sell, 0 unknown). :data:`FLAG_LAST` marks the last row of a venue message on its clock
(the strategy is woken once per message, after all its levels, not once per level).

Builders:

* :func:`replay_rows` from DELTA_DTYPE + TRADE_DTYPE arrays (a :class:`MarketEvents`, the
  simulator's ``simulate(...).events``) - :func:`from_market_events`;
* :func:`from_capture` from a Binance capture file (its applied depth stream, as ingest stores it);
* :func:`store_chunks` from the store, in time chunks (bounded memory over many days).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numba as nb
import numpy as np

from genesis.feeds.events import DELTA_DTYPE, TRADE_DTYPE, MarketEvents, delta_events
from genesis.store.queries import arrow_to_structured

REPLAY_DTYPE = np.dtype(
    [
        ("exch_ts", "i8"),  # venue clock, ns since the epoch (UTC)
        ("local_ts", "i8"),  # our receive clock, ns since the epoch (UTC)
        ("kind", "u1"),  # DEPTH / CLEAR / TRADE | FLAG_EXCH or FLAG_LOCAL | FLAG_LAST
        ("side", "i1"),  # DEPTH: 1 bid, -1 ask; TRADE: aggressor 1 buy, -1 sell, 0 unknown
        ("price", "f8"),
        ("qty", "f8"),  # DEPTH: the level's new absolute quantity; TRADE: traded quantity
    ]
)

DEPTH = 1
CLEAR = 2
TRADE = 3
KIND_MASK = 0x0F
FLAG_EXCH = 0x10  # this row happens at the venue, at exch_ts
FLAG_LOCAL = 0x20  # this row happens at our process, at local_ts
FLAG_LAST = 0x40  # last row of its message on its clock


def row_time(rows: np.ndarray) -> np.ndarray:
    """The time (ns) at which each row happens: exch_ts for venue rows, local_ts for local rows."""
    return np.where(rows["kind"] & FLAG_EXCH, rows["exch_ts"], rows["local_ts"])


def check_replay(rows: np.ndarray, name: str = "rows") -> None:
    """Raise a ValueError naming ``name`` if ``rows`` is not a time-ordered REPLAY_DTYPE array."""
    if not isinstance(rows, np.ndarray) or rows.dtype != REPLAY_DTYPE:
        raise TypeError(f"{name}: expected a REPLAY_DTYPE array (genesis.backtest.events), "
                        f"got {getattr(rows, 'dtype', type(rows))}")
    if len(rows) > 1:
        t = row_time(rows)
        bad = np.flatnonzero(t[1:] < t[:-1])
        if len(bad):
            raise ValueError(f"{name}: not in time order at row {bad[0] + 1} "
                             f"({t[bad[0] + 1]} after {t[bad[0]]}); build it with genesis.backtest.events")


def _message_rows(deltas: np.ndarray, trades: np.ndarray) -> np.ndarray:
    """One copy of the events (no clock flag yet) in the venue's message order.

    Messages are ordered by exch_ts; at equal exch_ts a trade comes before a depth message
    (the depth update that follows a trade already shows its consequence), otherwise the
    input order is kept. A snapshot message becomes a CLEAR row followed by its levels.
    """
    starts, counts, snap = delta_events(deltas)
    n_d, n_t = len(starts), len(trades)
    msg_exch = np.concatenate((deltas["exch_ts"][starts], trades["exch_ts"]))
    is_depth = np.concatenate((np.ones(n_d, np.int8), np.zeros(n_t, np.int8)))
    order = np.lexsort((np.arange(n_d + n_t), is_depth, msg_exch))
    total = int(counts.sum() + np.count_nonzero(snap)) + n_t
    out = np.empty(total, REPLAY_DTYPE)
    _fill_messages(order, starts, counts, snap, deltas, trades, out)
    return out


@nb.njit(cache=True)
def _fill_messages(order, starts, counts, snap, deltas, trades, out):
    """Write the messages into ``out`` in ``order`` (ids below len(starts) are depth messages, the
    rest trades): a snapshot's CLEAR row, then a depth message's levels (stamped with its first
    row's clocks), or a trade's row; FLAG_LAST on each message's last row."""
    n_d = starts.shape[0]
    k = 0
    for m in order:
        if m < n_d:
            s = starts[m]
            exch_ts, local_ts = deltas[s].exch_ts, deltas[s].local_ts
            if snap[m]:
                row = out[k]
                row.exch_ts, row.local_ts, row.kind, row.side, row.price, row.qty = \
                    exch_ts, local_ts, CLEAR, 0, np.nan, 0.0
                k += 1
            for j in range(s, s + counts[m]):
                row = out[k]
                d = deltas[j]
                row.exch_ts, row.local_ts, row.kind, row.side, row.price, row.qty = \
                    exch_ts, local_ts, DEPTH, d.side, d.price, d.qty
                k += 1
        else:
            t = trades[m - n_d]
            row = out[k]
            row.exch_ts, row.local_ts, row.kind, row.side, row.price, row.qty = \
                t.exch_ts, t.local_ts, TRADE, t.aggressor, t.price, t.qty
            k += 1
        out[k - 1].kind |= FLAG_LAST


def feed_latency_offset(deltas: np.ndarray, trades: np.ndarray, min_feed_latency_ns: int = 0) -> int:
    """ns to add to every ``local_ts`` so that no event is seen locally sooner than
    ``min_feed_latency_ns`` after the venue stamped it (0 when that already holds).

    A capture machine's clock is not the venue's: on the bundled 2024-08-08 captures ``local_ts``
    runs about 1.27 s BEHIND ``exch_ts``. Replayed raw, the strategy would see the book 1.27 s
    before the venue reaches it and trade on the future. Rows whose ``exch_ts`` is unknown
    (<= 0, e.g. a REST snapshot) are left out. hftbacktest's ``correct_local_timestamp`` does
    the same with its ``base_latency``.
    """
    lows = []
    for a in (deltas, trades):
        known = a["exch_ts"] > 0
        if known.any():
            lows.append(int((a["local_ts"][known] - a["exch_ts"][known]).min()))
    if not lows:
        return 0
    return max(0, int(min_feed_latency_ns) - min(lows))


def replay_rows(deltas: np.ndarray, trades: np.ndarray, *, local_offset_ns: int = 0) -> np.ndarray:
    """Merge DELTA_DTYPE and TRADE_DTYPE arrays into a time-ordered REPLAY_DTYPE array.

    deltas: (n,) DELTA_DTYPE in application order (runs of one ``seq`` are one message; a run
    of ``is_snapshot`` rows replaces the book); trades: (m,) TRADE_DTYPE. Every message of
    ``deltas`` must carry one exch_ts and one local_ts. ``local_offset_ns`` is added to every
    local_ts (see :func:`feed_latency_offset`); an unknown exch_ts (<= 0) is taken to be the
    message's raw local_ts. Returns 2 * (n + m + snapshots) rows.
    """
    for name, array, dtype in (("deltas", deltas, DELTA_DTYPE), ("trades", trades, TRADE_DTYPE)):
        if not isinstance(array, np.ndarray) or array.dtype != dtype:
            raise TypeError(f"{name}: expected a {dtype} array, got {getattr(array, 'dtype', type(array))}")
    if len(deltas):
        starts, counts, _ = delta_events(deltas)
        for clock in ("exch_ts", "local_ts"):
            if np.any(deltas[clock] != np.repeat(deltas[clock][starts], counts)):
                raise ValueError(f"deltas: rows of one seq carry different {clock} values")
    base = _message_rows(deltas, trades)
    unknown = base["exch_ts"] <= 0
    if unknown.any():
        base["exch_ts"][unknown] = base["local_ts"][unknown]
    if local_offset_ns:
        base["local_ts"] += int(local_offset_ns)
    n = len(base)
    # Each copy in its own clock's order (stable: messages stamped together keep venue order); the
    # venue copy already is, unless unknown venue times were replaced.
    local_order = np.argsort(base["local_ts"], kind="stable")
    exch_order = np.argsort(base["exch_ts"], kind="stable") if unknown.any() else np.arange(n)
    out = np.empty(2 * n, REPLAY_DTYPE)
    _merge_clocks(base, exch_order, local_order, out)
    return out


@nb.njit(cache=True)
def _merge_clocks(base, exch_order, local_order, out):
    """Merge the venue copy (``base`` rows in ``exch_order``, at exch_ts) and the local copy (in
    ``local_order``, at local_ts) into ``out`` (2 * len(base) rows), flagged FLAG_EXCH / FLAG_LOCAL.
    At equal times venue rows come first, then each copy keeps its order: the stable sort of the
    two copies laid end to end, in one pass and without the copies (a replay of millions of events
    spends most of its preparation allocating and filling temporaries)."""
    n = base.shape[0]
    i = 0
    j = 0
    for k in range(2 * n):
        if j >= n or (i < n and base[exch_order[i]].exch_ts <= base[local_order[j]].local_ts):
            src = base[exch_order[i]]
            flag = FLAG_EXCH
            i += 1
        else:
            src = base[local_order[j]]
            flag = FLAG_LOCAL
            j += 1
        dst = out[k]
        dst.exch_ts = src.exch_ts
        dst.local_ts = src.local_ts
        dst.kind = src.kind | flag
        dst.side = src.side
        dst.price = src.price
        dst.qty = src.qty


def from_market_events(events: MarketEvents, *, min_feed_latency_ns: int | None = 0) -> np.ndarray:
    """Replay rows of a :class:`MarketEvents` (a source's deltas and trades; e.g. the simulator's).

    min_feed_latency_ns: the local clock is shifted (later) so that no event is seen sooner than
    this after its venue time (:func:`feed_latency_offset`); None replays the clocks as they are.
    """
    if not isinstance(events, MarketEvents):
        raise TypeError(f"events: expected MarketEvents, got {type(events).__name__}")
    offset = 0 if min_feed_latency_ns is None else feed_latency_offset(events.deltas, events.trades,
                                                                        min_feed_latency_ns)
    return replay_rows(events.deltas, events.trades, local_offset_ns=offset)


def capture_events(path: str | Path, symbol: str | None = None) -> MarketEvents:
    """The applied depth stream (as ingest stores it in ``depth_deltas``) and the trades of
    one symbol of a Binance capture file, as :class:`MarketEvents`.

    symbol: namespaced ('binance-usdm:BTCUSDT'), bare ('BTCUSDT'), or None when the file holds one.
    """
    from genesis.book.l2 import L2Book, applied_clocks
    from genesis.feeds.binance.capture import read_capture

    sym = read_capture(path).symbol_events(symbol)
    depth = sym.depth
    book = L2Book(depth=1, sequencing=sym.sequencing)
    result = book.apply_depth(depth.is_snapshot, depth.first_id, depth.last_id, depth.prev_id,
                              depth.level_start, depth.level_count, depth.side, depth.price, depth.qty)
    applied = result.applied
    msg_of_row = np.repeat(applied, depth.level_count[applied])
    from genesis.arrays import concat_ranges

    level_rows = concat_ranges(depth.level_start[applied], depth.level_count[applied])
    deltas = np.empty(len(msg_of_row), DELTA_DTYPE)
    # A snapshot and the first delta after it may share an update id: number messages instead.
    deltas["seq"] = np.repeat(np.arange(len(applied)), depth.level_count[applied])
    deltas["side"] = depth.side[level_rows]
    deltas["price"] = depth.price[level_rows]
    deltas["qty"] = depth.qty[level_rows]
    deltas["is_snapshot"] = depth.is_snapshot[msg_of_row]
    # Clocks that agree with the update-id order, as ingest stores them (a spot snapshot has no
    # venue time; a diff received before its snapshot is applied after it).
    exch_ts, local_ts = applied_clocks(depth.exch_ts[applied], depth.local_ts[applied])
    deltas["exch_ts"] = np.repeat(exch_ts, depth.level_count[applied])
    deltas["local_ts"] = np.repeat(local_ts, depth.level_count[applied])
    return MarketEvents(symbol=sym.symbol, deltas=deltas, trades=sym.trades)


def from_capture(path: str | Path, symbol: str | None = None, *, min_feed_latency_ns: int | None = 0) -> np.ndarray:
    """Replay rows of one symbol of a Binance capture file (see :func:`capture_events`; the
    local clock aligned as in :func:`from_market_events`)."""
    return from_market_events(capture_events(path, symbol), min_feed_latency_ns=min_feed_latency_ns)


def split_chunks(rows: np.ndarray, n_chunks: int) -> list[np.ndarray]:
    """``rows`` cut into ``n_chunks`` consecutive pieces (views), e.g. to replay in chunks."""
    return np.array_split(rows, n_chunks)


# -- from the store ---------------------------------------------------------------------------

_DELTA_COLUMNS = ", ".join(DELTA_DTYPE.names)
_TRADE_COLUMNS = ", ".join(TRADE_DTYPE.names)



def _query(store, sql: str, params: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    return arrow_to_structured(store.query_arrow(sql, params), dtype)


_WHERE = ("WHERE symbol = {symbol:String} AND exch_ts >= fromUnixTimestamp64Nano({lo:Int64})"
          " AND exch_ts < fromUnixTimestamp64Nano({hi:Int64})")


def _book_at(store, symbol: str, start: int) -> np.ndarray:
    """The full book at ``start`` (every delta with exch_ts <= start applied) as one synthetic
    snapshot message (DELTA_DTYPE rows stamped ``start`` on both clocks), rebuilt from the last
    stored snapshot at or before it and the deltas since; empty when no snapshot precedes ``start``."""
    from genesis.book.l2 import L2Book

    last = store.query_rows(
        "SELECT toUnixTimestamp64Nano(max(exch_ts)), count() FROM depth_deltas WHERE symbol = {symbol:String}"
        " AND is_snapshot AND exch_ts <= fromUnixTimestamp64Nano({start:Int64})", {"symbol": symbol, "start": start})
    if not last or not last[0][1]:
        return np.empty(0, DELTA_DTYPE)
    deltas = _query(store, f"SELECT {_DELTA_COLUMNS} FROM depth_deltas {_WHERE} ORDER BY exch_ts, seq",
                    {"symbol": symbol, "lo": int(last[0][0]), "hi": start + 1}, DELTA_DTYPE)
    book = L2Book(depth=1)
    starts, counts, snap = delta_events(deltas)
    book.apply_groups(starts, counts, snap, deltas["side"], deltas["price"], deltas["qty"])
    bid_px, bid_sz, ask_px, ask_sz = book.levels()
    out = np.empty(len(bid_px) + len(ask_px), DELTA_DTYPE)
    out["exch_ts"] = out["local_ts"] = start
    out["seq"] = -1
    out["side"] = np.concatenate((np.ones(len(bid_px), np.int8), -np.ones(len(ask_px), np.int8)))
    out["price"] = np.concatenate((bid_px, ask_px))
    out["qty"] = np.concatenate((bid_sz, ask_sz))
    out["is_snapshot"] = True
    return out


def store_chunks(symbol: str, start: Any, end: Any, *, chunk: str | int = "1h", store_url: str | None = None,
                 min_feed_latency_ns: int | None = 0) -> Iterator[np.ndarray]:
    """Replay rows of ``symbol`` in ``[start, end)`` from the store, one time chunk at a time.

    The book at ``start`` is rebuilt from the last stored snapshot before it and given as one
    snapshot stamped ``start``; then ``depth_deltas`` and ``trades`` are read ``chunk`` by
    ``chunk`` of exch_ts (each chunk read with one query per table, parameters bound). Memory
    is one or two chunks whatever the range. The chunks continue one another: their
    concatenation is the replay of the whole range (see :func:`chunked_rows`). The local clock
    is shifted by one offset for the whole range (:func:`feed_latency_offset` over the range's
    events, computed in the store; None: raw clocks).
    """
    import pandas as pd

    from genesis.features.store import stored_symbol
    from genesis.store import connect
    from genesis.store.queries import to_ns

    lo, hi = to_ns(start), to_ns(end)
    if hi <= lo:
        raise ValueError(f"store_chunks: end {end!r} is not after start {start!r}")
    try:
        step = int(chunk) if isinstance(chunk, (int, np.integer)) else int(pd.Timedelta(chunk).value)
    except ValueError as exc:
        raise ValueError(f"store_chunks: chunk {chunk!r} is not a duration (e.g. '20s', '1h', '1D')") from exc
    if step <= 0:
        raise ValueError(f"store_chunks: chunk {chunk!r} must be a positive duration")

    def pieces() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with connect(store_url) as store:
            stored = stored_symbol(store, symbol)
            book = _book_at(store, stored, lo)
            offset = 0 if min_feed_latency_ns is None else _store_offset(store, stored, lo, hi, min_feed_latency_ns)
        offsets.append(offset)
        yield book, np.empty(0, TRADE_DTYPE)
        a = lo
        while a < hi:
            b = min(a + step, hi)
            params = {"symbol": stored, "lo": a, "hi": b}
            # Open the embedded store per unit of work and close it (one process at a time may hold it).
            with connect(store_url) as store:
                deltas = _query(store, f"SELECT {_DELTA_COLUMNS} FROM depth_deltas {_WHERE} ORDER BY exch_ts, seq",
                                params, DELTA_DTYPE)
                trades = _query(store, f"SELECT {_TRADE_COLUMNS} FROM trades {_WHERE} ORDER BY exch_ts, trade_id",
                                params, TRADE_DTYPE)
            if len(book) and len(deltas) and a == lo:
                # The synthetic snapshot already holds every delta stamped exactly ``start``.
                deltas = deltas[deltas["exch_ts"] > lo]
            yield deltas, trades
            a = b

    offsets: list[int] = []  # found by the first piece, applied to all
    return chunked_rows(pieces(), local_offset_ns=offsets)


def _store_offset(store, symbol: str, lo: int, hi: int, floor: int) -> int:
    lows = []
    for table in ("depth_deltas", "trades"):
        row = store.query_rows(
            f"SELECT min(toUnixTimestamp64Nano(local_ts) - toUnixTimestamp64Nano(exch_ts)), count() FROM {table} "
            f"{_WHERE} AND toUnixTimestamp64Nano(exch_ts) > 0", {"symbol": symbol, "lo": lo, "hi": hi})
        if row and row[0][1]:
            lows.append(int(row[0][0]))
    return max(0, int(floor) - min(lows)) if lows else 0


def chunked_rows(pieces: Iterable[tuple[np.ndarray, np.ndarray]], *, local_offset_ns: int | list[int] = 0
                 ) -> Iterator[np.ndarray]:
    """Replay rows from consecutive (deltas, trades) pieces in venue order, as time-ordered chunks.

    local_offset_ns: added to every local_ts (a one-element list may be filled in by the
    pieces' producer before its first piece).

    A piece's local rows may happen after the next piece's venue rows (feed latency), so each
    piece is held until the next one is read: rows earlier than the next piece's first row are
    emitted, the rest carried. Raises a ValueError if a piece has a row earlier than rows
    already emitted (pieces overlapping by more than a piece's length).
    """
    carry = np.empty(0, REPLAY_DTYPE)
    emitted_until = np.iinfo(np.int64).min
    for deltas, trades in pieces:
        offset = (local_offset_ns[0] if local_offset_ns else 0) if isinstance(local_offset_ns, list) \
            else local_offset_ns
        rows = replay_rows(deltas, trades, local_offset_ns=offset)
        if not len(rows):
            continue
        t = row_time(rows)
        if t[0] < emitted_until:
            raise ValueError(f"chunked_rows: a piece starts at {t[0]}, before rows already replayed up to "
                             f"{emitted_until}; make the chunks longer than the feed latency")
        if len(carry):
            merged = np.concatenate((carry, rows))
            mt = row_time(merged)
            # Stable merge; ties keep venue rows before local rows.
            flag = (merged["kind"] & FLAG_LOCAL) != 0
            order = np.lexsort((np.arange(len(merged)), flag, mt))
            merged, mt = merged[order], mt[order]
        else:
            merged, mt = rows, t
        cut = int(np.searchsorted(mt, t[0], side="left"))
        if cut:
            emitted_until = int(mt[cut - 1])
            yield merged[:cut]
        carry = merged[cut:]
    if len(carry):
        yield carry


class LiveRows:
    """Replay rows for live batches (paper trading): each batch continues the rows already given.

    A live batch holds the messages received since the last one. Its venue rows (exch_ts) may
    lie before rows already replayed (the venue stamped them before we received them, and a
    replay cannot go back): such rows are moved to the last replayed time, and counted in
    ``clamped``. When every batch's rows come after the previous batch's, nothing is moved and
    the rows are those of a backtest (to replay a recording exactly, use :func:`chunked_rows`,
    which holds each piece back until the next one is read).

    local_offset_ns: added to every local_ts (as :func:`replay_rows`).
    """

    def __init__(self, local_offset_ns: int = 0) -> None:
        self.local_offset_ns = int(local_offset_ns)
        self.last = np.iinfo(np.int64).min
        self.clamped = 0

    def add(self, deltas: np.ndarray, trades: np.ndarray) -> np.ndarray:
        rows = replay_rows(deltas, trades, local_offset_ns=self.local_offset_ns)
        if not len(rows):
            return rows
        exch = (rows["kind"] & FLAG_EXCH) != 0
        early_exch = exch & (rows["exch_ts"] < self.last)
        early_local = ~exch & (rows["local_ts"] < self.last)
        n_early = int(np.count_nonzero(early_exch | early_local))
        if n_early:
            rows["exch_ts"][early_exch] = self.last
            rows["local_ts"][early_local] = self.last
            self.clamped += n_early
            t = row_time(rows)
            rows = rows[np.lexsort((np.arange(len(rows)), ~exch, t))]  # venue rows first at equal times
        self.last = int(row_time(rows[-1:])[0])
        return rows


__all__ = [
    "REPLAY_DTYPE", "DEPTH", "CLEAR", "TRADE", "KIND_MASK", "FLAG_EXCH", "FLAG_LOCAL", "FLAG_LAST", "row_time",
    "check_replay", "feed_latency_offset", "replay_rows", "from_market_events", "capture_events", "from_capture", "split_chunks",
    "store_chunks", "chunked_rows", "LiveRows",
]
