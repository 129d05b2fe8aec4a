"""What the three apps share: the engine of this server, the session's user, times, styling.

Layout and wiring only; every number comes from ``genesis`` (the live engine's updates).
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import numpy as np
import panel as pn

from genesis.live.serve import current_engine

REFRESH_MS = 200  # how often a session drains its buffer (5 Hz): the engine publishes at its own fixed rate
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
SEVERITY_COLOR = {"critical": "#7b1fa2", "high": "#c62828", "medium": "#ef6c00", "low": "#f9a825", "info": "#607d8b"}
REGIME_COLOR = {"calm": "#2e7d32", "execution_hot": "#f9a825", "stressed": "#ef6c00", "manipulation_suspected": "#c62828"}


def engine():
    return current_engine()


def session_user() -> str | None:
    """The logged-in user of this browser session (None without authentication, 'guest' when
    the server authenticates and the visitor has not logged in)."""
    return pn.state.user


def utc(ts_ns: int | float | None) -> str:
    if ts_ns is None or not np.isfinite(ts_ns) or ts_ns <= 0:
        return "-"
    return datetime.fromtimestamp(ts_ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def ms(ts_ns) -> np.ndarray:
    """ns since the epoch -> ms (what a Bokeh datetime axis reads)."""
    return np.asarray(ts_ns, np.float64) / 1e6


def fmt(value, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    return "-" if not np.isfinite(v) else f"{v:,.{digits}g}" if abs(v) < 1e4 else f"{v:,.2f}"


def kv_html(items: dict, test_id: str) -> str:
    """A small key/value table; each value has an id ``<test_id>-<key as a slug>`` ('messages/s' ->
    'health-messages-s'; the browser tests read them)."""
    cells = "".join(f"<tr><td style='padding:1px 8px;color:#555'>{html.escape(str(k))}</td>"
                    f"<td id='{test_id}-{_slug(k)}' style='padding:1px 8px;font-family:monospace'>{v}</td></tr>"
                    for k, v in items.items())
    return f"<table id='{test_id}' style='font-size:12px'>{cells}</table>"


def _slug(key) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(key).lower()).strip("-")


def header(title: str, mode: str, user: str | None) -> pn.pane.HTML:
    who = user or "local (loopback, no login)"
    login = " · <a href='/login'>log in</a>" if user in ("guest",) else ""
    return pn.pane.HTML(f"<h2 style='margin:4px 0'>Genesis · {html.escape(title)}</h2>"
                        f"<div style='font-size:12px;color:#555'>mode <b>{html.escape(mode)}</b> · "
                        f"user <b id='user'>{html.escape(str(who))}</b>{login} · "
                        "<a href='/surveillance'>surveillance</a> · <a href='/strategy'>strategy</a> · "
                        "<a href='/reports'>reports</a> · <a href='/cross_asset'>cross-asset</a></div>", sizing_mode="stretch_width")


def message(text: str, ok: bool) -> str:
    color = "#2e7d32" if ok else "#c62828"
    return f"<div id='message' style='color:{color};font-size:12px'>{html.escape(text)}</div>"


def subscribe(name: str):
    """This session's bounded buffer on the engine, released when the session ends."""
    eng = engine()
    buffer = eng.subscribe(name=name)
    pn.state.on_session_destroyed(lambda context: eng.unsubscribe(buffer))
    return eng, buffer
