"""What an analyst reviews: alerts with their case state, and the book around an alert.

Used by ``notebooks/05_surveillance.ipynb`` and the dashboards; the plots are
:func:`genesis.viz.book_replay`.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from genesis.store import connect
from genesis.surveillance.engine import Inputs

_COLUMNS = ("alert_id", "case_id", "symbol", "kind", "severity", "score", "side", "start", "end", "state",
            "case_severity", "repeats", "owner", "detector", "params_version", "evidence")


def alerts_table(symbol: str | None = None, *, store_url: str | None = None, kind: str | None = None,
                 min_severity: str | None = None, state: str | None = None) -> pd.DataFrame:
    """Stored alerts (newest first) with their case's current state; optional filters."""
    from genesis.surveillance.base import SEVERITIES

    conditions, params = [], {}
    for column, value in (("a.symbol", symbol), ("a.kind", kind), ("c.state", state)):
        if value:
            name = column.split(".")[1]
            conditions.append(f"{column} = {{{name}:String}}")
            params[name] = value
    if min_severity:
        conditions.append("has({severities:Array(String)}, a.severity)")
        params["severities"] = list(SEVERITIES[SEVERITIES.index(min_severity):])
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    with connect(store_url) as store:
        frame = store.query_df(
            "SELECT toString(a.alert_id) AS alert_id, toString(a.case_id) AS case_id, a.symbol AS symbol, a.kind AS kind,"
            " a.severity AS severity, a.score AS score, a.side AS side, a.start_ts AS start, a.end_ts AS end,"
            " c.state AS state, c.severity AS case_severity, c.repeats AS repeats, c.owner AS owner,"
            " a.detector AS detector, a.params_version AS params_version, a.evidence AS evidence"
            f" FROM alerts AS a LEFT JOIN alert_cases AS c ON a.case_id = c.case_id {where}"
            " ORDER BY a.start_ts DESC, a.score DESC", params or None)
    if not len(frame):
        return pd.DataFrame(columns=list(_COLUMNS))
    # A plain list: mapping an Arrow-backed column would infer one struct type for all rows,
    # giving every alert every other detector's evidence keys (as None).
    frame["evidence"] = pd.Series([json.loads(e) for e in frame["evidence"].tolist()], index=frame.index,
                                  dtype=object)
    return frame


def inputs_around(symbol: str, center: Any, *, window_s: float = 5.0, store_url: str | None = None,
                  levels: int = 10) -> Inputs:
    """The book rows, trades and order events of ``symbol`` within ``window_s`` of ``center``."""
    from genesis.store.queries import to_ns
    from genesis.surveillance.store import load_inputs

    at = to_ns(center)
    half = int(window_s * 1e9)
    with connect(store_url) as store:
        return load_inputs(store, symbol, at - half, at + half + 1, levels=levels)


__all__ = ["alerts_table", "inputs_around"]
