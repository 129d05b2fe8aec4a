"""Bad data: realistic faulty rows added to clean simulated arrays, and the list of them.

Every fault is an *extra* row inserted into ``orders``, ``deltas`` or ``trades``, so dropping
the rows listed in ``bad_rows`` gives back the clean arrays exactly (what an ingest's
quarantine should achieve):

* ``crossed_book``: a delta setting a bid level at one tick above the best ask of the moment
  (best bid >= best ask after it), an event of its own (a ``seq`` after the stream's last);
* ``nan_negative``: a delta with a NaN price, a trade with a negative quantity, an order event
  with a negative price (copies of real rows next to them);
* ``duplicates``: an exact copy, right after the original, of one order event, one delta and
  one trade;
* ``out_of_order``: a delta and a trade stamped (``exch_ts``) at least 1 s before the row
  they follow: a stale update delivered late (the delta carries the ``seq`` of the event of
  its time and repeats the current size of another level, so applying it changes nothing;
  the trade has a new ``trade_id``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis.book.l2 import L2Book
from genesis.feeds.events import EV_ADD, MarketEvents

BAD_DATA = ("crossed_book", "nan_negative", "duplicates", "out_of_order")
BAD_ROW_COLUMNS = ("kind", "table", "index", "description")
LATE_NS = 1_000_000_000  # how far back in exch_ts an out-of-order row goes, at least


def _pick(rng: np.random.Generator, lo: int, hi: int, what: str) -> int:
    """A row index in [lo, hi) away from the ends; a clear error when the stream is too short."""
    if hi - lo < 3:
        raise ValueError(f"the simulation has too few {what} rows to inject bad data; simulate longer")
    return int(rng.integers(lo + (hi - lo) // 10, hi - (hi - lo) // 10))


def _late_after(ts: np.ndarray, i: int) -> int | None:
    """The first row j > i whose exch_ts is at least LATE_NS later than row i's."""
    j = int(np.searchsorted(ts, ts[i] + LATE_NS, side="left"))
    return j if j < len(ts) else None


def inject(events: MarketEvents, kinds: list[str], rng: np.random.Generator,
           tick_size: float) -> tuple[MarketEvents, pd.DataFrame]:
    """Insert the bad rows of ``kinds``; returns the new events and ``bad_rows`` (final indices)."""
    tables = {"orders": events.orders, "deltas": events.deltas, "trades": events.trades}
    inserts: dict[str, list] = {name: [] for name in tables}  # (insert before, row, kind, description)
    deltas, trades, orders = events.deltas, events.trades, events.orders
    first_delta = int(np.argmin(deltas["is_snapshot"])) if len(deltas) else 0

    def add(table: str, before: int, row, kind: str, description: str) -> None:
        inserts[table].append((before, row.copy(), kind, description))

    for kind in kinds:
        if kind == "crossed_book":
            p = _pick(rng, first_delta + 1, len(deltas), "delta")
            top = L2Book(depth=1).apply_deltas(deltas["side"][:p], deltas["price"][:p], deltas["qty"][:p])
            best_ask = float(top[2][-1, 0])
            row = deltas[p - 1].copy()
            # An event of its own (a sequence number the stream does not use), so that rejecting
            # it leaves the neighbouring events alone.
            row["seq"] = int(deltas["seq"].max()) + 1
            row["side"] = 1
            row["price"] = round(best_ask + tick_size, 12)
            row["qty"] = float(np.median(deltas["qty"][first_delta:]))
            row["is_snapshot"] = False
            add("deltas", p, row, kind, f"bid level {row['price']} above the best ask {best_ask} (crossed book)")
        elif kind == "nan_negative":
            p = _pick(rng, first_delta, len(deltas), "delta")
            row = deltas[p].copy()
            row["price"] = np.nan
            add("deltas", p + 1, row, kind, f"delta with a NaN price (copy of row {p})")
            q = _pick(rng, 0, len(trades), "trade")
            row = trades[q].copy()
            row["qty"] = -row["qty"]
            row["trade_id"] = int(trades["trade_id"].max()) + 1
            add("trades", q + 1, row, kind, f"trade with a negative qty {row['qty']}")
            adds = np.flatnonzero(orders["event"] == EV_ADD)
            r = int(adds[_pick(rng, 0, len(adds), "add order")])
            row = orders[r].copy()
            row["price"] = -row["price"]
            add("orders", r + 1, row, kind, f"order event with a negative price {row['price']} (copy of row {r})")
        elif kind == "duplicates":
            for name, lo in (("orders", 0), ("deltas", first_delta), ("trades", 0)):
                arr = tables[name]
                i = _pick(rng, lo, len(arr), name)
                add(name, i + 1, arr[i], kind, f"exact duplicate of row {i}")
        elif kind == "out_of_order":
            for name, lo in (("deltas", first_delta), ("trades", 0)):
                arr = tables[name]
                for _ in range(100):
                    i = _pick(rng, lo, len(arr), name)
                    j = _late_after(arr["exch_ts"], i)
                    if j is not None and (name == "trades" or arr["side"][i] != arr["side"][j]
                                          or arr["price"][i] != arr["price"][j]):
                        break
                else:
                    raise ValueError(f"the simulation is too short for an out-of-order {name} row; simulate longer")
                row = arr[j].copy()  # arrives with row j ...
                row["exch_ts"] = arr["exch_ts"][i]  # ... but stamped as early as row i
                if name == "trades":
                    row["trade_id"] = int(arr["trade_id"].max()) + 2
                else:
                    row["seq"] = arr["seq"][i]  # the stale update's own sequence number
                add(name, j + 1, row, kind, f"exch_ts {int(arr['exch_ts'][i])} is "
                    f"{(int(arr['exch_ts'][j]) - int(arr['exch_ts'][i])) / 1e9:.3f} s before the previous row's")
        else:
            raise ValueError(f"unknown bad_data {kind!r}; known: {', '.join(BAD_DATA)}")

    out = dict(tables)
    listed = []
    for name, items in inserts.items():
        if not items:
            continue
        items.sort(key=lambda item: item[0])
        before = np.array([item[0] for item in items], np.int64)
        rows = np.array([item[1] for item in items], dtype=tables[name].dtype)
        out[name] = np.insert(tables[name], before, rows)
        for rank, (b, _, kind, description) in enumerate(items):
            listed.append((kind, name, int(b + rank), description))
    bad_rows = pd.DataFrame(listed, columns=list(BAD_ROW_COLUMNS)).sort_values(["table", "index"], ignore_index=True)
    return MarketEvents(symbol=events.symbol, deltas=out["deltas"], trades=out["trades"], orders=out["orders"],
                        book=events.book, episodes=events.episodes), bad_rows
