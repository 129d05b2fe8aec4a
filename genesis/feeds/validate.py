"""Validation of normalised events before they are stored: bad rows out, with the reason.

:func:`validate` splits a :class:`~genesis.feeds.events.MarketEvents` into the rows that
can be used and the rows that cannot, each with a reason (ingest writes those to
quarantine). It checks what a row says about itself and about its neighbours:

* values: prices finite and positive, quantities finite and non-negative (positive for
  trades and order events), sides 1 / -1;
* duplicates: a repeated trade id, a repeated order event (same ``seq``), a delta level
  repeated within one event;
* order: exchange time going backwards within a table (the row is out of order).

Whether a delta crosses the book is known only while the book is rebuilt, so that check
is :meth:`genesis.book.l2.L2Book.apply_groups`'s.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from genesis.feeds.events import EV_HALT, EV_RESUME_QUOTING, EV_RESUME_TRADING, MarketEvents

REJECT_COLUMNS = ("table", "index", "exch_ts", "reason", "raw")


def _reasons_values(array: np.ndarray, price_ok: np.ndarray, qty_positive: bool) -> list[tuple[np.ndarray, str]]:
    qty = array["qty"]
    price = array["price"]
    checks = [
        (~np.isfinite(price) & price_ok, "price is not a finite number"),
        ((price <= 0) & price_ok, "price is not positive"),
        (~np.isfinite(qty), "quantity is not a finite number"),
        ((qty <= 0) if qty_positive else (qty < 0), "quantity is not positive" if qty_positive else "quantity is negative"),
    ]
    if "side" in array.dtype.names:
        checks.append((~np.isin(array["side"], (1, -1)) & price_ok, "side is neither 1 (bid) nor -1 (ask)"))
    return checks


def _backwards(exch_ts: np.ndarray) -> np.ndarray:
    """Rows whose exchange time is earlier than the latest time before them."""
    if len(exch_ts) < 2:
        return np.zeros(len(exch_ts), np.bool_)
    running = np.maximum.accumulate(exch_ts)
    out = np.zeros(len(exch_ts), np.bool_)
    out[1:] = exch_ts[1:] < running[:-1]
    return out


def _duplicated(*columns: np.ndarray) -> np.ndarray:
    return pd.DataFrame({f"c{k}": c for k, c in enumerate(columns)}).duplicated().to_numpy()


def _first_reason(checks: list[tuple[np.ndarray, str]], n: int) -> np.ndarray:
    reasons = np.full(n, None, dtype=object)
    for mask, text in checks:
        reasons[mask & (reasons == None)] = text  # noqa: E711 - elementwise
    return reasons


def validate(events: MarketEvents) -> tuple[MarketEvents, pd.DataFrame]:
    """The usable events, and one row per rejected row: ``table`` ('depth_deltas', 'trades',
    'order_events'), ``index`` in the input array, ``exch_ts``, ``reason`` and ``raw`` (the
    row as text)."""
    rejects = []
    kept = {}
    for table, name in (("depth_deltas", "deltas"), ("trades", "trades"), ("order_events", "orders")):
        array = getattr(events, name)
        n = len(array)
        if name == "deltas":
            checks = _reasons_values(array, np.ones(n, np.bool_), qty_positive=False)
            checks.append((_duplicated(array["seq"], array["side"], array["price"]), "level repeated within one event"))
            # Deltas of one event share its time: compare event by event.
            checks.append((_backwards(array["exch_ts"]), "exchange time goes backwards (out of order)"))
        elif name == "trades":
            checks = _reasons_values(array, np.ones(n, np.bool_), qty_positive=True)
            checks.append((_duplicated(array["trade_id"]), "duplicate trade id"))
            checks.append((~np.isin(array["aggressor"], (-1, 0, 1)), "aggressor is not -1, 0 or 1"))
            checks.append((_backwards(array["exch_ts"]), "exchange time goes backwards (out of order)"))
        else:
            status = np.isin(array["event"], (EV_HALT, EV_RESUME_QUOTING, EV_RESUME_TRADING))
            checks = _reasons_values(array, ~status, qty_positive=False)
            checks.append(((array["qty"] <= 0) & ~status, "quantity is not positive"))
            checks.append((_duplicated(array["seq"]), "duplicate event (sequence number seen before)"))
            checks.append((_backwards(array["exch_ts"]), "exchange time goes backwards (out of order)"))
        reasons = _first_reason(checks, n)
        bad = np.flatnonzero(reasons != None)  # noqa: E711
        for i in bad:
            rejects.append((table, int(i), int(array["exch_ts"][i]), reasons[i], _row_text(array[i])))
        kept[name] = np.delete(array, bad) if len(bad) else array
    frame = pd.DataFrame(rejects, columns=list(REJECT_COLUMNS))
    return replace(events, **kept), frame


def _row_text(row: np.void) -> str:
    return ", ".join(f"{name}={row[name].item()!r}" for name in row.dtype.names)


__all__ = ["validate", "REJECT_COLUMNS"]
