"""Genesis market events for the hftbacktest comparison and the replay benchmark (benchmark-only).

Nothing here imports hftbacktest: the arrays are built in the project's environment and handed
to :mod:`benchmarks.hftbacktest_runner`, which runs in the separate hftbacktest environment
(``benchmarks/setup_hftbacktest.sh``). hftbacktest is never a dependency of ``genesis``.

hftbacktest 2.4 (``hftbacktest.types``) reads one structured array of events, 64 bytes a row:
``(ev u8, exch_ts i8, local_ts i8, px f8, qty f8, order_id u8, ival i8, fval f8)``, aligned.
``ev`` is an event kind in its low byte (1 depth, 2 trade, 3 depth clear, 4 depth snapshot)
ORed with flags: ``BUY_EVENT`` (1 << 29: bid side, or buyer-initiated trade), ``SELL_EVENT``
(1 << 28), ``EXCH_EVENT`` (1 << 31: the exchange processor applies the row at ``exch_ts``) and
``LOCAL_EVENT`` (1 << 30: the strategy's local book applies it at ``local_ts``). The two
processors walk the same array with their own cursors, each seeing only the rows carrying its
flag, so each of those two sub-sequences must be sorted by its own clock; a row whose place
differs in the two orders is written twice, once per flag (:func:`to_hbt_events`).

A depth row sets the absolute quantity of one level (quantity that rounds to zero lots removes
it), exactly like Genesis's ``DELTA_DTYPE``. A Genesis snapshot (``is_snapshot`` rows of one
``seq``) becomes a ``DEPTH_CLEAR_EVENT`` row (both sides, ``px`` NaN: clear everything) followed
by ``DEPTH_SNAPSHOT_EVENT`` rows, which hftbacktest applies like depth rows.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from genesis.feeds.events import DELTA_DTYPE, TRADE_DTYPE, MarketEvents, delta_events

# hftbacktest.types.event_dtype, spelled out so that this module needs no hftbacktest; the
# runner checks at start-up that the installed hftbacktest still has this layout.
HBT_EVENT_DTYPE = np.dtype(
    [("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8"), ("qty", "f8"), ("order_id", "u8"),
     ("ival", "i8"), ("fval", "f8")],
    align=True,
)
# Event kinds and flags (hftbacktest.types, version 2.4).
DEPTH_EVENT = 1
TRADE_EVENT = 2
DEPTH_CLEAR_EVENT = 3
DEPTH_SNAPSHOT_EVENT = 4
EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28

# Binance USD-M BTCUSDT contract filters (exchangeInfo, 2024): price tick and quantity step.
BTCUSDT_TICK = 0.1
BTCUSDT_LOT = 0.001

DEFAULT_CAPTURE = Path("/work/shared/data/binance/usdm_btcusdt_20240808.jsonl.gz")
REPO = Path(__file__).resolve().parents[1]
BUNDLED_CAPTURE = REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"


def default_capture() -> Path:
    """The shared full capture when it is beside the repository, else the bundled sample."""
    shared = REPO.parent / "shared" / "data" / "binance" / "usdm_btcusdt_20240808.jsonl.gz"
    for path in (shared, DEFAULT_CAPTURE, BUNDLED_CAPTURE):
        if path.exists():
            return path
    raise FileNotFoundError(f"no BTCUSDT capture: looked for {shared}, {DEFAULT_CAPTURE} and {BUNDLED_CAPTURE}")


def capture_market_events(path: str | Path, symbol: str | None = None) -> MarketEvents:
    """The depth deltas and trades of one symbol of a Binance capture, as both engines replay them.

    :func:`genesis.backtest.events.capture_events` (the applied depth stream, snapshot first,
    as ingest stores it, both clocks non-decreasing along it) with trades received before the
    snapshot dropped (no book to see them against).
    """
    from genesis.backtest.events import capture_events

    events = capture_events(path, symbol)
    d = events.deltas
    if not len(d) or not d["is_snapshot"][0]:
        raise ValueError(f"{path}: {events.symbol} has no applied depth snapshot to start the book from")
    t = events.trades
    trades = np.ascontiguousarray(t[t["local_ts"] >= d["local_ts"][0]])
    return MarketEvents(symbol=events.symbol, deltas=d, trades=trades)


def feed_latency_offset(events: MarketEvents, min_feed_latency_ns: int = 0) -> int:
    """ns to add to every ``local_ts`` so that the smallest feed latency is ``min_feed_latency_ns``.

    Capture machines' clocks are not the venue's: on the 2024-08-08 captures ``local_ts`` is
    about 1.27 s *before* ``exch_ts``. A backtest that matches at ``exch_ts`` and decides at
    ``local_ts`` would then let a strategy act on a book the venue has long left (or, the other
    way, see the future). Both engines get the same shifted data (hftbacktest's own
    ``correct_local_timestamp`` does the same, with its ``base_latency``).
    """
    lat = [a["local_ts"] - a["exch_ts"] for a in (events.deltas, events.trades) if len(a)]
    if not lat:
        raise ValueError(f"{events.symbol}: no events to measure the feed latency on")
    return int(min_feed_latency_ns - min(int(x.min()) for x in lat))


def shift_local_clock(events: MarketEvents, offset_ns: int) -> MarketEvents:
    """A copy of ``events`` with ``offset_ns`` added to every ``local_ts`` (deltas and trades)."""
    deltas, trades = events.deltas.copy(), events.trades.copy()
    deltas["local_ts"] += offset_ns
    trades["local_ts"] += offset_ns
    return MarketEvents(symbol=events.symbol, deltas=deltas, trades=trades)


def repeat_events(events: MarketEvents, copies: int, gap_ns: int = 1_000_000_000) -> MarketEvents:
    """``events`` replayed ``copies`` times back to back, each copy shifted in both clocks.

    Copy k is shifted by k * (span + ``gap_ns``), span being the first-to-last time over both
    clocks; ``seq`` and ``trade_id`` are offset so they keep increasing. Each copy starts with
    the capture's snapshot, which replaces the book left by the copy before (shapes (n * copies,)).
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    d, t = events.deltas, events.trades
    stamps = [a[c] for a in (d, t) if len(a) for c in ("exch_ts", "local_ts")]
    span = int(max(int(s.max()) for s in stamps) - min(int(s.min()) for s in stamps)) + gap_ns
    seq_span = int(d["seq"].max() - d["seq"].min()) + 1 if len(d) else 0
    id_span = int(t["trade_id"].max() - t["trade_id"].min()) + 1 if len(t) else 0
    k_d = np.repeat(np.arange(copies, dtype=np.int64), len(d))
    k_t = np.repeat(np.arange(copies, dtype=np.int64), len(t))
    deltas, trades = np.tile(d, copies), np.tile(t, copies)
    for arr, k in ((deltas, k_d), (trades, k_t)):
        arr["exch_ts"] += k * span
        arr["local_ts"] += k * span
    deltas["seq"] += k_d * seq_span
    trades["trade_id"] += k_t * id_span
    return MarketEvents(symbol=events.symbol, deltas=deltas, trades=trades)


@numba.njit(cache=True)
def _merge_orders(local_order, exch_order, out_index, out_flags):
    """Walk both orders at once: a row next in both gets both flags, else it is written once per clock.

    Writes (row, flags) pairs into ``out_index``/``out_flags`` (capacity 2n); returns how many.
    """
    n = len(local_order)
    seen_local = np.zeros(n, np.bool_)
    seen_exch = np.zeros(n, np.bool_)
    i = 0
    j = 0
    m = 0
    while i < n or j < n:
        if i < n and j < n and local_order[i] == exch_order[j]:
            out_index[m] = local_order[i]
            out_flags[m] = 3
            i += 1
            j += 1
        elif j < n and (i == n or seen_local[exch_order[j]] or not seen_exch[local_order[i]]):
            # The exchange's next row was already given to the local side, or neither side has
            # seen either row yet: let the exchange side have its row on its own.
            out_index[m] = exch_order[j]
            out_flags[m] = 1
            seen_exch[exch_order[j]] = True
            j += 1
        else:
            out_index[m] = local_order[i]
            out_flags[m] = 2
            seen_local[local_order[i]] = True
            i += 1
        m += 1
    return m


def venue_order_rows(events: MarketEvents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``events`` in the venue's message order, as hftbacktest rows without clock flags.

    Messages (a depth ``seq`` run, or one trade) are ordered by exch_ts; at equal exch_ts a trade
    comes before a depth message (the depth update that follows a trade shows its consequence),
    otherwise input order is kept - the convention of :mod:`genesis.backtest.events`, so both
    engines see the same sequence. A snapshot message gets a DEPTH_CLEAR_EVENT row in front.
    Returns ``(rows, first_row_of_message, message_is_depth)``; rows (n_rows,) HBT_EVENT_DTYPE.
    """
    d, t = events.deltas, events.trades
    if len(d) and not (np.isfinite(d["price"]).all() and np.isfinite(d["qty"]).all()):
        raise ValueError(f"{events.symbol}: depth deltas with a non-finite price or quantity")
    starts, counts, snap = delta_events(d)
    n_d, n_t = len(starts), len(t)
    msg_exch = np.concatenate((d["exch_ts"][starts], t["exch_ts"]))
    is_depth = np.concatenate((np.ones(n_d, np.int8), np.zeros(n_t, np.int8)))
    order = np.lexsort((np.arange(n_d + n_t), is_depth, msg_exch))
    n_rows = np.concatenate((counts + snap.astype(np.int64), np.ones(n_t, np.int64)))[order]
    first = np.zeros(len(order), np.int64)
    if len(order):
        np.cumsum(n_rows[:-1], out=first[1:])
    rows = np.zeros(int(n_rows.sum()), HBT_EVENT_DTYPE)
    pos_of = np.empty(n_d + n_t, np.int64)
    pos_of[order] = first
    d_first = pos_of[:n_d]
    # Depth levels: after the message's clear row, if any, in input order.
    level_pos = (np.repeat(d_first + snap.astype(np.int64), counts)
                 + np.arange(len(d), dtype=np.int64) - np.repeat(starts, counts))
    side_flag = np.where(d["side"] > 0, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    kind = np.where(d["is_snapshot"], DEPTH_SNAPSHOT_EVENT, DEPTH_EVENT).astype(np.uint64)
    rows["ev"][level_pos] = kind | side_flag
    rows["exch_ts"][level_pos] = np.repeat(d["exch_ts"][starts], counts)
    rows["local_ts"][level_pos] = np.repeat(d["local_ts"][starts], counts)
    rows["px"][level_pos] = d["price"]
    rows["qty"][level_pos] = d["qty"]
    clear_pos = d_first[snap]
    rows["ev"][clear_pos] = DEPTH_CLEAR_EVENT
    rows["exch_ts"][clear_pos] = d["exch_ts"][starts[snap]]
    rows["local_ts"][clear_pos] = d["local_ts"][starts[snap]]
    rows["px"][clear_pos] = np.nan
    t_pos = pos_of[n_d:]
    rows["ev"][t_pos] = TRADE_EVENT | np.select([t["aggressor"] > 0, t["aggressor"] < 0],
                                                [BUY_EVENT, SELL_EVENT], 0).astype(np.uint64)
    rows["exch_ts"][t_pos] = t["exch_ts"]
    rows["local_ts"][t_pos] = t["local_ts"]
    rows["px"][t_pos] = t["price"]
    rows["qty"][t_pos] = t["qty"]
    return rows, first, is_depth[order].astype(bool)


def to_hbt_events(events: MarketEvents) -> np.ndarray:
    """hftbacktest's event array (:data:`HBT_EVENT_DTYPE`) for Genesis ``events``.

    The exchange side gets the rows in the venue's message order (:func:`venue_order_rows`),
    the local side the same rows stably sorted by ``local_ts``. Returns (m,) rows with
    n_rows <= m <= 2 * n_rows: a row at the same place in both orders carries both clock
    flags, any other is written twice, once per clock. Trades without an aggressor (0) get no
    side flag, so hftbacktest's exchange does not match resting orders against them.
    """
    base, _, _ = venue_order_rows(events)
    if len(base) and np.any(np.diff(base["exch_ts"]) < 0):
        raise ValueError(f"{events.symbol}: venue order is not in exch_ts order")
    local_order = np.argsort(base["local_ts"], kind="stable")
    exch_order = np.arange(len(base), dtype=np.int64)
    out_index = np.empty(2 * len(base), np.int64)
    out_flags = np.empty(2 * len(base), np.int64)
    m = _merge_orders(local_order, exch_order, out_index, out_flags)
    out = base[out_index[:m]]
    flags = out_flags[:m]
    out["ev"] |= np.where(flags & 1, EXCH_EVENT, 0).astype(np.uint64)
    out["ev"] |= np.where(flags & 2, LOCAL_EVENT, 0).astype(np.uint64)
    return out


def check_hbt_order(data: np.ndarray) -> None:
    """Raise ValueError unless the exchange rows and the local rows are each in time order."""
    exch = (data["ev"] & EXCH_EVENT) != 0
    local = (data["ev"] & LOCAL_EVENT) != 0
    for name, mask, clock in (("exchange", exch, "exch_ts"), ("local", local, "local_ts")):
        bad = np.flatnonzero(np.diff(data[clock][mask]) < 0)
        if len(bad):
            raise ValueError(f"hftbacktest events: {len(bad)} {name} rows go back in {clock} (first at {bad[0]})")


def save_market_events(events: MarketEvents, path: str | Path) -> None:
    """Write ``events`` (deltas, trades, symbol) to an uncompressed ``.npz`` the child processes read."""
    np.savez(path, deltas=events.deltas, trades=events.trades, symbol=np.array(events.symbol))


def load_market_events(path: str | Path) -> MarketEvents:
    with np.load(path) as z:
        return MarketEvents(symbol=str(z["symbol"]), deltas=z["deltas"].astype(DELTA_DTYPE),
                            trades=z["trades"].astype(TRADE_DTYPE))


__all__ = [
    "HBT_EVENT_DTYPE", "DEPTH_EVENT", "TRADE_EVENT", "DEPTH_CLEAR_EVENT", "DEPTH_SNAPSHOT_EVENT", "EXCH_EVENT",
    "LOCAL_EVENT", "BUY_EVENT", "SELL_EVENT", "BTCUSDT_TICK", "BTCUSDT_LOT", "default_capture",
    "capture_market_events", "feed_latency_offset", "shift_local_clock", "repeat_events", "venue_order_rows",
    "to_hbt_events", "check_hbt_order", "save_market_events", "load_market_events",
]
