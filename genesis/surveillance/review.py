"""What an analyst reviews: alerts with their case state, and the book around an alert.

Used by ``notebooks/05_surveillance.ipynb`` and the dashboards; the plots are
:func:`genesis.viz.book_replay`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
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


# -- the Voila review app (notebooks/surveillance_review.ipynb) ----------------------------
# Parameters a review page takes from its URL (``?symbol=...&alert_id=...``), by name, with how
# to read each; anything else in the query string is ignored.
URL_PARAMETERS = {"symbol": str, "detector": str, "min_severity": str, "state": str, "alert_id": str,
                  "window_s": float}


def url_parameters(query: str | None = None) -> dict[str, Any]:
    """The review parameters given in a page's query string (``symbol=binance-usdm:BTCUSDT&window_s=2``).

    ``query``: the string after ``?``; None reads ``QUERY_STRING``, which Voila sets in the
    kernel for the request that started it (so a link can open the app on one alert). Outside
    Voila the variable is unset and the result is empty. Raises ValueError naming a parameter
    whose value does not parse.
    """
    import os
    from urllib.parse import parse_qs

    query = os.environ.get("QUERY_STRING", "") if query is None else query
    found: dict[str, Any] = {}
    for name, values in parse_qs(query, keep_blank_values=False).items():
        if name not in URL_PARAMETERS:
            continue
        try:
            found[name] = URL_PARAMETERS[name](values[-1])
        except ValueError:
            raise ValueError(f"URL parameter {name}={values[-1]!r}: not a {URL_PARAMETERS[name].__name__}") from None
    return found


def filter_alerts(alerts: pd.DataFrame, *, symbol: str | None = None, detector: str | None = None,
                  min_severity: str | None = None, state: str | None = None) -> pd.DataFrame:
    """The rows of an :func:`alerts_table` frame that pass the filters (None: any), highest
    severity first, then by score. Filters in memory, so that a page's widgets do not go back to
    the store on every change. Raises ValueError for a severity or state that does not exist."""
    from genesis.surveillance.alerts import STATES
    from genesis.surveillance.base import SEVERITIES

    if min_severity is not None and min_severity not in SEVERITIES:
        raise ValueError(f"min_severity={min_severity!r}: severities are {', '.join(SEVERITIES)}")
    if state is not None and state not in STATES:
        raise ValueError(f"state={state!r}: states are {', '.join(STATES)}")
    keep = np.ones(len(alerts), bool)
    for column, value in (("symbol", symbol), ("detector", detector), ("state", state)):
        if value is not None:
            keep &= (alerts[column] == value).to_numpy(bool)
    rank = alerts["severity"].map(SEVERITIES.index).to_numpy(np.int64) if len(alerts) else np.zeros(0, np.int64)
    if min_severity is not None:
        keep &= rank >= SEVERITIES.index(min_severity)
    order = np.lexsort((-alerts["score"].to_numpy(np.float64)[keep], -rank[keep]))
    return alerts[keep].iloc[order]


def alert_overview(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alert counts of an :func:`alerts_table` frame: one row per (symbol, detector), one column
    per severity (info .. critical, all five), then per case state that occurs, then ``total``."""
    from genesis.surveillance.alerts import STATES
    from genesis.surveillance.base import SEVERITIES

    keys = ["symbol", "detector"]
    if not len(alerts):
        return pd.DataFrame(columns=[*SEVERITIES, "total"], index=pd.MultiIndex.from_tuples([], names=keys))
    by_severity = pd.crosstab([alerts["symbol"], alerts["detector"]], alerts["severity"])
    by_severity = by_severity.reindex(columns=list(SEVERITIES), fill_value=0)
    # An alert whose case has no audit rows gets '' from the store's LEFT JOIN (NULL from others).
    states = alerts["state"].astype(object).where(alerts["state"].notna() & (alerts["state"] != ""), "(no case)")
    by_state = pd.crosstab([alerts["symbol"], alerts["detector"]], states)
    by_state = by_state[[s for s in (*STATES, "(no case)") if s in by_state.columns]]
    table = pd.concat([by_severity, by_state], axis=1)
    table["total"] = by_severity.sum(axis=1)
    table.columns.name = None
    return table


def evidence_table(alert: pd.Series) -> pd.DataFrame:
    """One alert's evidence (a row of :func:`alerts_table`) as ``name, value`` rows; times in
    ns (names ending in ``_ts``) are shown as UTC timestamps."""
    rows = []
    for name, value in (alert["evidence"] or {}).items():
        if name.endswith("_ts") and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = pd.Timestamp(int(value), tz="UTC")
        elif isinstance(value, (list, tuple)) and len(value) > 12:
            value = f"{len(value)} values: {', '.join(map(str, value[:12]))}, ..."
        rows.append({"name": name, "value": value})
    return pd.DataFrame(rows, columns=["name", "value"])


def case_history(case_id: str, *, store_url: str | None = None) -> pd.DataFrame:
    """The audit rows of one case, oldest first: ``seq, at, actor, action, state, severity,
    repeats, owner, why`` (empty for an unknown case)."""
    with connect(store_url) as store:
        return store.query_df(
            "SELECT seq, at, actor, action, state, severity, repeats, owner, why FROM alert_audit"
            " WHERE case_id = toUUID({case_id:String}) ORDER BY seq", {"case_id": str(case_id)})


def matching_episodes(alert: pd.Series, *, store_url: str | None = None) -> pd.DataFrame | None:
    """The ground-truth episodes (simulated markets) that one alert matches, by the rule of
    :func:`genesis.surveillance.evaluate.match`. None when the alert's symbol has no stored
    episodes at all (a real market): then there is nothing to check the alert against."""
    from genesis.surveillance.evaluate import EPISODE_KIND, match

    with connect(store_url) as store:
        episodes = store.query_df(
            "SELECT episode_id, kind, start_ts, end_ts, side, detail FROM episodes WHERE symbol = {symbol:String}"
            " ORDER BY start_ts, episode_id", {"symbol": str(alert["symbol"])})
    if not len(episodes):
        return None
    one = pd.DataFrame({"kind": [alert["kind"]], "side": [int(alert["side"])],
                        "start_ts": [pd.Timestamp(alert["start"]).value], "end_ts": [pd.Timestamp(alert["end"]).value]})
    as_ns = episodes.assign(start_ts=episodes["start_ts"].astype("int64"), end_ts=episodes["end_ts"].astype("int64"))
    _, matched = match(one, as_ns, alert["kind"])
    of_kind = episodes[episodes["kind"] == EPISODE_KIND.get(alert["kind"], alert["kind"])]
    return of_kind[matched].reset_index(drop=True)


def alert_replay(alert: pd.Series, *, window_s: float = 3.0, store_url: str | None = None, width: int = 900):
    """:func:`genesis.viz.book_replay` of the book around one alert (a row of :func:`alerts_table`):
    the mid, the trades and the ladder within ``window_s`` of the alert's middle, stretched to
    cover the whole alert, with its span shaded. Raises ValueError when the store has no book
    rows of the alert's symbol there."""
    from genesis.viz import book_replay

    start, end = pd.Timestamp(alert["start"]).value, pd.Timestamp(alert["end"]).value
    center = start + (end - start) // 2
    half_s = window_s + (end - start) / 2e9
    inputs = inputs_around(str(alert["symbol"]), center, window_s=half_s, store_url=store_url)
    label = f"{alert['kind']} ({alert['severity']}, score {float(alert['score']):.0f})"
    return book_replay(inputs.book, inputs.trades, center_ts=center, window_s=half_s, marks=[(start, end, label)],
                       width=width)


def standalone_html(obj, *, height: int = 520, title: str = "genesis") -> str:
    """A Bokeh object as an ``<iframe>`` holding a standalone document (BokehJS inline, so it
    works offline). For an ipywidgets ``HTML`` widget: a Bokeh output inside a widget is not drawn
    when a Voila page first loads, whereas the frame is drawn wherever HTML is (JupyterLab, Voila,
    an HTML export). About 1.8 MB per frame, most of it BokehJS."""
    import html

    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    document = file_html(obj, INLINE, title)
    return (f'<iframe srcdoc="{html.escape(document, quote=True)}" title="{html.escape(title, quote=True)}"'
            f' style="width:100%;height:{int(height)}px;border:0"></iframe>')


__all__ = ["alerts_table", "inputs_around", "url_parameters", "filter_alerts", "alert_overview", "evidence_table",
           "case_history", "matching_episodes", "alert_replay", "standalone_html", "URL_PARAMETERS"]
