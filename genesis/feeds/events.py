"""Normalised market events: the arrays every feed produces and everything downstream reads.

All feeds (live Binance, capture files, LOBSTER files, the simulator) emit the same record
types, NumPy structured arrays with both clocks in int64 nanoseconds since the epoch (UTC):

* :data:`DELTA_DTYPE` - one price level set to an absolute quantity (0 removes it);
  ``is_snapshot`` rows of one ``seq`` replace the whole book (an L2 feed);
* :data:`TRADE_DTYPE` - one execution, ``aggressor`` 1 when the buyer took liquidity,
  -1 when the seller did, 0 when the venue does not say;
* :data:`ORDER_EVENT_DTYPE` - one order-level (L3) event: add, cancel (partial), delete,
  execute (visible or hidden), an auction cross, or a trading-status change. The codes are LOBSTER's, so a
  LOBSTER file maps one to one.

:class:`MarketEvents` bundles what one source produced for one symbol; ingest writes it to
the store (``depth_deltas``, ``trades``, ``order_events``, ``book_snapshots``, ``episodes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DELTA_DTYPE = np.dtype(
    [("exch_ts", "i8"), ("local_ts", "i8"), ("seq", "i8"), ("side", "i1"), ("price", "f8"), ("qty", "f8"),
     ("is_snapshot", "?")]
)
TRADE_DTYPE = np.dtype(
    [("exch_ts", "i8"), ("local_ts", "i8"), ("trade_id", "i8"), ("price", "f8"), ("qty", "f8"), ("aggressor", "i1")]
)
QUOTE_DTYPE = np.dtype(
    [("exch_ts", "i8"), ("local_ts", "i8"), ("update_id", "i8"),
     ("bid_px", "f8"), ("bid_sz", "f8"), ("ask_px", "f8"), ("ask_sz", "f8")]
)

# Order-level event codes (LOBSTER's numbering, plus the two resumptions of a halt).
EV_ADD = 1  # a new limit order rests in the book
EV_CANCEL = 2  # partial cancel: ``qty`` is the amount removed, the order stays
EV_DELETE = 3  # the order leaves the book (its remaining ``qty``)
EV_EXECUTE = 4  # a visible resting order is executed for ``qty``
EV_EXECUTE_HIDDEN = 5  # a hidden order is executed (no visible book change)
EV_CROSS = 6  # an auction (cross) trade: no resting order, no aggressor
EV_HALT = 7  # trading halted
EV_RESUME_QUOTING = 8  # quoting resumes (trading still halted)
EV_RESUME_TRADING = 9  # trading resumes
EVENT_NAMES = {
    EV_ADD: "add", EV_CANCEL: "cancel", EV_DELETE: "delete", EV_EXECUTE: "execute",
    EV_EXECUTE_HIDDEN: "execute_hidden", EV_CROSS: "cross", EV_HALT: "halt", EV_RESUME_QUOTING: "resume_quoting",
    EV_RESUME_TRADING: "resume_trading",
}
NO_ID = -1  # order id, owner or contra id the source does not give

ORDER_EVENT_DTYPE = np.dtype(
    [
        ("exch_ts", "i8"),
        ("local_ts", "i8"),
        ("seq", "i8"),  # position in the source's event stream (ties in time keep this order)
        ("event", "i1"),  # EV_*
        ("order_id", "i8"),  # the resting order the event is about
        ("side", "i1"),  # side of that order: 1 bid (buy), -1 ask (sell); 0 for status events
        ("price", "f8"),  # NaN for status events
        ("qty", "f8"),  # size added, cancelled, deleted or executed
        ("owner", "i8"),  # participant owning the order (NO_ID if unknown)
        ("contra_id", "i8"),  # for executions: the aggressing order (NO_ID if unknown)
        ("contra_owner", "i8"),  # for executions: the aggressor's owner (NO_ID if unknown)
    ]
)

# Ground truth of injected episodes (simulator scenarios): one row each.
EPISODE_COLUMNS = ("episode_id", "kind", "start_ts", "end_ts", "side", "order_ids", "detail")


def empty(dtype: np.dtype) -> np.ndarray:
    return np.empty(0, dtype)


def empty_episodes() -> pd.DataFrame:
    return pd.DataFrame({
        "episode_id": pd.Series(dtype="int64"), "kind": pd.Series(dtype="object"),
        "start_ts": pd.Series(dtype="int64"), "end_ts": pd.Series(dtype="int64"),
        "side": pd.Series(dtype="int8"), "order_ids": pd.Series(dtype="object"),
        "detail": pd.Series(dtype="object"),
    })


def delta_events(deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, row count and snapshot flag of each event in DELTA_DTYPE rows (runs of one ``seq``)."""
    if not len(deltas):
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.bool_)
    seq = deltas["seq"]
    starts = np.flatnonzero(np.concatenate(([True], seq[1:] != seq[:-1])))
    counts = np.diff(np.concatenate((starts, [len(seq)])))
    return starts, counts, deltas["is_snapshot"][starts]


@dataclass
class MarketEvents:
    """Everything one source produced for one (namespaced) symbol, in time order.

    ``book`` optionally carries top-L rows the source itself gives (LOBSTER's orderbook
    file): a dict with ``exch_ts``, ``local_ts``, ``seq`` (n,) and ``bid_px``, ``bid_sz``,
    ``ask_px``, ``ask_sz`` (n, L), NaN for empty levels. Without it, ingest rebuilds the
    top-L from ``deltas``. ``episodes`` has :data:`EPISODE_COLUMNS` (``side`` 1/-1/0,
    ``order_ids`` a list of ints, ``detail`` a short text).
    """

    symbol: str
    deltas: np.ndarray = field(default_factory=lambda: empty(DELTA_DTYPE))
    trades: np.ndarray = field(default_factory=lambda: empty(TRADE_DTYPE))
    orders: np.ndarray = field(default_factory=lambda: empty(ORDER_EVENT_DTYPE))
    book: dict[str, np.ndarray] | None = None
    episodes: pd.DataFrame = field(default_factory=empty_episodes)

    def __post_init__(self) -> None:
        for name, dtype in (("deltas", DELTA_DTYPE), ("trades", TRADE_DTYPE), ("orders", ORDER_EVENT_DTYPE)):
            array = getattr(self, name)
            if array.dtype != dtype:
                raise TypeError(f"MarketEvents.{name} has dtype {array.dtype}, expected {dtype}")
        if ":" not in self.symbol:
            raise ValueError(f"symbol {self.symbol!r} is not namespaced by venue (e.g. 'binance-usdm:BTCUSDT')")


__all__ = [
    "DELTA_DTYPE", "TRADE_DTYPE", "QUOTE_DTYPE", "ORDER_EVENT_DTYPE", "EPISODE_COLUMNS", "MarketEvents",
    "EV_ADD", "EV_CANCEL", "EV_DELETE", "EV_EXECUTE", "EV_EXECUTE_HIDDEN", "EV_CROSS", "EV_HALT", "EV_RESUME_QUOTING",
    "EV_RESUME_TRADING", "EVENT_NAMES", "NO_ID", "empty", "empty_episodes", "delta_events",
]
