"""A backtest's report: one self-contained HTML file, and CSV exports.

>>> from genesis.backtest.report import write_report, export_csv, report_layout
>>> write_report(result, "run.html")          # opens offline: BokehJS is inlined
>>> export_csv(result, "run_csv/")            # fills.csv, trades.csv, equity.csv, daily.csv, metrics.csv
>>> show(report_layout(result))               # the same plots inline in a notebook

The report holds, top to bottom: the metrics table and the run's configuration; equity (net and
gross of fees); drawdown; the fills over the mid (buys and sells as markers); the distributions
of round-trip PnL and holding times; the per-day breakdown. All times are the local clock (the
strategy's; see :mod:`genesis.backtest.metrics`), drawn as UTC.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Div, HoverTool, Span
from bokeh.plotting import figure
from bokeh.resources import INLINE

from genesis.backtest.metrics import METRIC_DESCRIPTIONS, compute_metrics, daily_breakdown, json_safe, round_trips
from genesis.backtest.result import BacktestResult
from genesis.viz import ASK_COLOR, BID_COLOR, MAX_POINTS, MID_COLOR, decimate

NET_COLOR = "#2166ac"
GROSS_COLOR = "#969696"
DRAWDOWN_COLOR = "#d6604d"
_TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"
WIDTH = 1000


def report_layout(result: BacktestResult, *, metrics: dict[str, float] | None = None, title: str | None = None,
                  width: int = WIDTH):
    """The report as a Bokeh layout (what :func:`write_report` writes; ``show`` it in a notebook).

    ``metrics`` defaults to :func:`compute_metrics` of ``result``. Line plots are min-max
    decimated to at most :data:`genesis.viz.MAX_POINTS` points and fill markers thinned to as
    many, so a long run still draws quickly (the exports keep every row).
    """
    metrics = compute_metrics(result) if metrics is None else metrics
    trades = round_trips(result.fills)
    header = Div(text=_header_html(result, metrics, title), width=width)
    equity_fig, drawdown_fig = equity_figures(result, width=width)
    fills_fig = fills_figure(result, width=width, x_range=equity_fig.x_range)
    pnl_hist = _histogram(trades.loc[trades["closed"], "pnl_net"].to_numpy(), "Round-trip net PnL",
                          "net PnL (quote)", width // 2)
    hold_hist = _histogram(trades.loc[trades["closed"], "holding_s"].to_numpy(), "Holding time",
                           "seconds", width // 2)
    daily = daily_breakdown(result)
    days = Div(text="<h3>Per UTC day</h3>" + (daily.to_html(float_format=lambda v: f"{v:,.4g}", border=0)
                                              if len(daily) else "<p>no data</p>"), width=width)
    return column(header, equity_fig, drawdown_fig, fills_fig, row(pnl_hist, hold_hist), days)


def equity_figures(result: BacktestResult, *, width: int = WIDTH):
    """(equity, drawdown) figures on one linked time axis.

    Equity: net PnL (realized + unrealized - fees) and gross (before fees), quote currency.
    Drawdown: the net PnL's distance below its running peak (the start counts as a peak),
    drawn downward from 0.
    """
    from genesis.backtest.metrics import drawdown

    eq = result.equity
    ts = _naive(eq["ts"])
    net = eq["equity"].astype(np.float64)
    gross = net + eq["fees"]
    dd, _ = drawdown(eq)
    keep = decimate(ts, [net, gross, dd], MAX_POINTS) if len(ts) else np.arange(0)
    source = ColumnDataSource({"ts": ts[keep], "net": net[keep], "gross": gross[keep], "dd": -dd[keep],
                               "position": eq["position"][keep]})
    equity_fig = _time_figure("Equity (PnL, quote currency)", width, 300)
    equity_fig.line("ts", "gross", source=source, color=GROSS_COLOR, legend_label="gross (before fees)")
    net_line = equity_fig.line("ts", "net", source=source, color=NET_COLOR, line_width=2, legend_label="net of fees")
    equity_fig.add_layout(Span(location=0, dimension="width", line_color="#bbbbbb", line_dash="dashed"))
    equity_fig.legend.location = "top_left"
    equity_fig.legend.click_policy = "hide"
    equity_fig.add_tools(HoverTool(renderers=[net_line], mode="vline", formatters={"@ts": "datetime"},
                                   tooltips=[("time", "@ts{%F %T}"), ("net", "@net{0,0.00}"),
                                             ("gross", "@gross{0,0.00}"), ("position", "@position")]))
    drawdown_fig = _time_figure("Drawdown (net PnL below its peak)", width, 180, x_range=equity_fig.x_range)
    drawdown_fig.varea("ts", "dd", 0, source=source, fill_color=DRAWDOWN_COLOR, fill_alpha=0.5)
    drawdown_fig.line("ts", "dd", source=source, color=DRAWDOWN_COLOR)
    return equity_fig, drawdown_fig


def fills_figure(result: BacktestResult, *, width: int = WIDTH, x_range=None, prices: pd.DataFrame | None = None):
    """Fills over the mid: buys as green up-triangles, sells as red down-triangles, at their
    price and local time; maker fills hollow, taker fills solid.

    The mid comes from the equity curve (one value per sampling interval) unless ``prices``
    (columns ``ts`` int64 ns or datetime, ``mid``) gives a finer one.
    """
    fig = _time_figure("Fills over the mid", width, 320, **({"x_range": x_range} if x_range is not None else {}))
    if prices is None:
        ts, mid = _naive(result.equity["ts"]), result.equity["mid"].astype(np.float64)
    else:
        ts = _naive(pd.DatetimeIndex(pd.to_datetime(prices["ts"], utc=True)).as_unit("ns").asi8)
        mid = prices["mid"].to_numpy(np.float64)
    keep = decimate(ts, [mid], MAX_POINTS) if len(ts) else np.arange(0)
    fig.line(ts[keep], mid[keep], color=MID_COLOR, legend_label="mid")
    fills = result.fills
    if len(fills) > MAX_POINTS:  # evenly thinned: every fill stays in the CSV export
        fills = fills[np.linspace(0, len(fills) - 1, MAX_POINTS).astype(np.int64)]
        fig.title.text += f" ({MAX_POINTS:,} of {len(result.fills):,} fills shown)"
    for side, name, marker, color in ((1, "buy", "triangle", BID_COLOR), (-1, "sell", "inverted_triangle", ASK_COLOR)):
        these = fills[fills["side"] == side]
        source = ColumnDataSource({
            "ts": _naive(these["local_ts"]), "price": these["price"], "qty": these["qty"],
            "fee": these["fee"], "position": these["position"],
            "fill": np.where(these["maker"], "white", color), "kind": np.where(these["maker"], "maker", "taker"),
        })
        glyph = fig.scatter("ts", "price", source=source, marker=marker, size=9, line_color=color,
                            fill_color="fill", legend_label=name)
        fig.add_tools(HoverTool(renderers=[glyph], formatters={"@ts": "datetime"},
                                tooltips=[("time", "@ts{%F %T.%3N}"), (name, "@qty @ @price{0,0.00}"),
                                          ("", "@kind, fee @fee{0.0000}"), ("position after", "@position")]))
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    return fig


def write_report(result: BacktestResult, path: str | Path, *, metrics: dict[str, float] | None = None,
                 title: str | None = None) -> Path:
    """Write the report to ``path`` (an ``.html`` file; parent folders are created) and return
    it. BokehJS is inlined, so the file opens offline and can be mailed as is."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report path {path}: expected an .html file")
    path.parent.mkdir(parents=True, exist_ok=True)
    title = title or _title(result)
    document = file_html(report_layout(result, metrics=metrics, title=title), INLINE, title=title)
    path.write_text(document, encoding="utf-8")
    return path


def export_csv(result: BacktestResult, directory: str | Path, *, metrics: dict[str, float] | None = None
               ) -> dict[str, Path]:
    """Write ``fills.csv``, ``trades.csv`` (round trips), ``equity.csv``, ``daily.csv`` and
    ``metrics.csv`` under ``directory`` (created); returns their paths by name.

    Times are ISO 8601 UTC with nanoseconds (``pandas.read_csv(..., parse_dates=[...])``
    reads them back exactly); money in the quote currency, quantities in the base currency.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fills = pd.DataFrame(result.fills)
    for name in ("exch_ts", "local_ts"):
        fills[name] = _utc(fills[name])
    trades = round_trips(result.fills)
    for name in ("entry_ts", "exit_ts", "entry_exch_ts", "exit_exch_ts"):
        trades[name] = _utc(trades[name])
    equity = pd.DataFrame(result.equity)
    equity["ts"] = _utc(equity["ts"])
    metrics = compute_metrics(result) if metrics is None else metrics
    frames = {
        "fills": fills,
        "trades": trades,
        "equity": equity,
        "daily": daily_breakdown(result).reset_index(),
        "metrics": pd.DataFrame({"metric": list(metrics), "value": list(metrics.values()),
                                 "meaning": [METRIC_DESCRIPTIONS.get(k, "") for k in metrics]}),
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = directory / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def _title(result: BacktestResult) -> str:
    config = result.config
    strategy = config.get("strategy", "backtest")
    symbols = config.get("symbols") or config.get("symbol") or ""
    if isinstance(symbols, (list, tuple)):
        symbols = ", ".join(map(str, symbols))
    run_id = result.meta.get("run_id")
    return " ".join(p for p in (f"{strategy}", str(symbols), f"(run {run_id})" if run_id else "") if p)


def describe_instrument(config: dict[str, Any]) -> str:
    """One line saying which tick and lot a run used and where they came from."""
    spec = config.get("instrument") or {}
    tick, lot = spec.get("tick_size", config.get("tick_size")), spec.get("lot_size", config.get("lot_size"))
    source = spec.get("source", "not recorded")
    note = " (inferred from the data: pass --tick-size/--lot-size to be sure)" if spec.get("inferred") else ""
    return f"tick {_fmt(tick) if tick else 'n/a'}, lot {_fmt(lot) if lot else 'not enforced'}, from {source}{note}"


def _header_html(result: BacktestResult, metrics: dict[str, float], title: str | None) -> str:
    rows = "".join(
        f"<tr><td><b>{html.escape(name)}</b></td><td style='text-align:right'>{_fmt(value)}</td>"
        f"<td style='color:#666'>{html.escape(METRIC_DESCRIPTIONS.get(name, ''))}</td></tr>"
        for name, value in metrics.items())
    config = html.escape(json.dumps(json_safe(result.config), indent=2, sort_keys=True))
    meta = html.escape(json.dumps(json_safe(result.meta), indent=2, sort_keys=True))
    return (f"<h2>{html.escape(title or _title(result))}</h2>"
            f"<p class='instrument'>Instrument: {html.escape(describe_instrument(result.config))}</p>"
            "<div style='display:flex;gap:40px;align-items:flex-start'>"
            f"<div><h3>Metrics</h3><table class='metrics'>{rows}</table></div>"
            f"<div><h3>Configuration</h3><pre class='config'>{config}</pre>"
            f"<h3>Run</h3><pre class='meta'>{meta}</pre></div></div>")


def _fmt(value: Any) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:,.6g}"
    return html.escape(str(value))


def _histogram(values: np.ndarray, title: str, x_label: str, width: int):
    fig = figure(title=title, width=width, height=260, tools="pan,box_zoom,reset,save")
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = "trades"
    values = values[np.isfinite(values)]
    if len(values):
        counts, edges = np.histogram(values, bins=min(50, max(5, int(np.sqrt(len(values))))))
        fig.quad(top=counts, bottom=0, left=edges[:-1], right=edges[1:], fill_color=NET_COLOR, fill_alpha=0.6,
                 line_color="white")
    else:
        fig.title.text += " (no closed trades)"
    return fig


def _time_figure(title: str, width: int, height: int, **kwargs):
    fig = figure(title=title, width=width, height=height, x_axis_type="datetime", tools=_TOOLS,
                 active_scroll="xwheel_zoom", **kwargs)
    return fig


def _naive(ts: np.ndarray) -> np.ndarray:
    """int64 ns since the epoch as naive-UTC datetime64 (what Bokeh's datetime axis reads)."""
    return np.asarray(ts, dtype=np.int64).astype("datetime64[ns]")


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.astype("int64"), unit="ns", utc=True)
