"""Bokeh figures of the cross-asset analytics (the notebook and the dashboard draw these):
candlesticks with volume, a pair's spread / z-score / position, a correlation over time.
Times on the x axis are the bar times (UTC)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, HoverTool, Span
from bokeh.plotting import figure

UP, DOWN = "#26a69a", "#ef5350"


def _ms(ts) -> np.ndarray:
    """Times (datetime64 values or int64 ns) as ms since the epoch (what a Bokeh datetime axis reads)."""
    values = np.asarray(ts)
    if values.dtype.kind not in "iu":
        values = pd.to_datetime(values).to_numpy("datetime64[ns]").view(np.int64)
    return values.astype(np.float64) / 1e6


def bars_figure(bars: pd.DataFrame, title: str = "Bars", width: int = 900, height: int = 320, x_range=None):
    """Candlesticks (green up, red down) over volume bars; ``bars`` as
    :func:`genesis.analytics.bars.read_bars` returns them. Returns a Bokeh column."""
    x = _ms(bars["ts"])
    step = float(np.median(np.diff(x))) if len(x) > 1 else 1000.0
    up = (bars["close"] >= bars["open"]).to_numpy()
    source = ColumnDataSource(dict(
        x=x, open=bars["open"], high=bars["high"], low=bars["low"], close=bars["close"],
        volume=bars["volume"], trades=bars["trades"], top=np.maximum(bars["open"], bars["close"]),
        bottom=np.minimum(bars["open"], bars["close"]), color=np.where(up, UP, DOWN)))
    kwargs = {"x_range": x_range} if x_range is not None else {}
    price = figure(title=title, x_axis_type="datetime", width=width, height=height, tools="xpan,xwheel_zoom,reset,save",
                   active_scroll="xwheel_zoom", **kwargs)
    price.segment(x0="x", y0="low", x1="x", y1="high", color="color", source=source)
    price.vbar(x="x", width=step * 0.7, top="top", bottom="bottom", fill_color="color", line_color="color",
               source=source)
    price.add_tools(HoverTool(tooltips=[("time", "@x{%F %T}"), ("open", "@open"), ("high", "@high"),
                                        ("low", "@low"), ("close", "@close"), ("volume", "@volume{0.000}"),
                                        ("trades", "@trades")], formatters={"@x": "datetime"}))
    volume = figure(x_axis_type="datetime", width=width, height=max(height // 3, 90), x_range=price.x_range,
                    tools="", toolbar_location=None)
    volume.vbar(x="x", width=step * 0.7, top="volume", color="color", source=source, alpha=0.7)
    volume.yaxis.axis_label = "volume"
    return column(price, volume)


def spread_figure(pair: pd.DataFrame, entry: float, exit: float, title: str = "Spread", width: int = 900,
                  height: int = 220):
    """Three linked plots of :func:`genesis.analytics.pairs.pair_spread`'s frame: hedge ratio,
    z-score with the entry / exit thresholds, and the position with its cumulative return."""
    x = _ms(pair.index)
    source = ColumnDataSource(dict(x=x, beta=pair["beta"].to_numpy(), spread=pair["spread"].to_numpy(),
                                   z=pair["z"].to_numpy(), position=pair["position"].to_numpy(),
                                   cum=np.cumsum(pair["pnl"].to_numpy())))
    tools = "xpan,xwheel_zoom,reset,save"
    beta = figure(title=f"{title}: hedge ratio", x_axis_type="datetime", width=width, height=height, tools=tools,
                  active_scroll="xwheel_zoom")
    beta.line("x", "beta", source=source, color="#1f77b4")
    z = figure(title="z-score of the spread", x_axis_type="datetime", width=width, height=height, tools=tools,
               x_range=beta.x_range, active_scroll="xwheel_zoom")
    z.line("x", "z", source=source, color="#444444")
    for level, color in ((entry, DOWN), (-entry, UP), (exit, "#999999"), (-exit, "#999999")):
        z.add_layout(Span(location=level, dimension="width", line_color=color, line_dash="dashed"))
    pos = figure(title="position (+1 long spread) and cumulative return", x_axis_type="datetime", width=width,
                 height=height, tools=tools, x_range=beta.x_range, active_scroll="xwheel_zoom")
    pos.step("x", "position", source=source, mode="after", color="#ff7f0e", legend_label="position")
    pos.line("x", "cum", source=source, color="#2ca02c", legend_label="cumulative return")
    pos.legend.location = "top_left"
    return column(beta, z, pos)


def correlation_figure(series: pd.Series, title: str | None = None, width: int = 900, height: int = 220):
    """One pair's rolling correlation over time, on [-1, 1]."""
    source = ColumnDataSource(dict(x=_ms(series.index), rho=series.to_numpy()))
    fig = figure(title=title or f"Rolling correlation: {series.name}", x_axis_type="datetime", width=width,
                 height=height, y_range=(-1.05, 1.05), tools="xpan,xwheel_zoom,reset,save")
    fig.line("x", "rho", source=source, color="#9467bd")
    fig.add_layout(Span(location=0, dimension="width", line_color="#999999", line_dash="dotted"))
    return fig


__all__ = ["bars_figure", "spread_figure", "correlation_figure"]
