"""Bokeh figures shared by notebooks and dashboards.

Builders take a pandas DataFrame and return a Bokeh layout, nothing else: a notebook
``show``s it, a Panel dashboard wraps it, and a test inspects it without a browser.
"""

from __future__ import annotations

import pandas as pd
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool, LinearAxis
from bokeh.plotting import figure

BID_COLOR = "#1a9850"
ASK_COLOR = "#d73027"
MID_COLOR = "#4d4d4d"
_TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"
_TIME = ("time", "@exch_ts{%F %T.%3N}")

TOP_OF_BOOK_COLUMNS = ("exch_ts", "bid_px", "ask_px", "bid_sz", "ask_sz")


def top_of_book_figure(df: pd.DataFrame, title: str | None = None, width: int = 900):
    """Three linked-x plots of the best bid and ask over time.

    - price: mid with the bid-ask band around it;
    - spread: in price units (left axis) and in basis points of mid (right axis);
    - size at the best bid and at the best ask.

    ``df`` has one row per book state, as :func:`genesis.store.queries.top_of_book` returns:
    ``exch_ts`` (datetime64, naive meaning UTC, or int64 nanoseconds since the epoch) and
    ``bid_px``, ``ask_px``, ``bid_sz``, ``ask_sz`` (NaN where a side of the book is empty). The book holds its state until the
    next row, so every series is drawn as a step ("after"). Data goes to the browser once,
    in one shared source; a few 10k rows draw interactively.
    """
    missing = [c for c in TOP_OF_BOOK_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"top_of_book_figure: DataFrame lacks column(s) {', '.join(missing)}")
    # Naive UTC, what Bokeh's datetime axis expects.
    data = {"exch_ts": pd.to_datetime(df["exch_ts"], utc=True).dt.tz_localize(None).to_numpy()}
    data.update({c: df[c].to_numpy(dtype="float64") for c in TOP_OF_BOOK_COLUMNS[1:]})
    data["mid"] = (data["bid_px"] + data["ask_px"]) / 2
    data["spread"] = data["ask_px"] - data["bid_px"]
    data["spread_bps"] = data["spread"] / data["mid"] * 1e4
    source = ColumnDataSource(data)  # plain arrays: no index column, no pandas round trip

    price = _time_figure(title or "Top of book", width, 300, "price")
    price.varea_step(
        "exch_ts", "bid_px", "ask_px", source=source, step_mode="after",
        fill_color="#9ecae1", fill_alpha=0.5, legend_label="bid-ask",
    )
    price.step("exch_ts", "mid", source=source, mode="after", color=MID_COLOR, legend_label="mid")
    price.legend.location = "top_left"
    price.legend.click_policy = "hide"
    _hover(price, source, "mid", [("bid", "@bid_px{0,0.00}"), ("ask", "@ask_px{0,0.00}"), ("mid", "@mid{0,0.000}")])

    spread = _time_figure("Spread", width, 180, "spread (price)", x_range=price.x_range)
    in_price = spread.step("exch_ts", "spread", source=source, mode="after", color=MID_COLOR)
    spread.extra_y_ranges = {"bps": DataRange1d()}
    in_bps = spread.step(
        "exch_ts", "spread_bps", source=source, mode="after", color="#756bb1", alpha=0.6, y_range_name="bps"
    )
    spread.extra_y_ranges["bps"].renderers = [in_bps]
    spread.y_range.renderers = [in_price]
    spread.add_layout(LinearAxis(y_range_name="bps", axis_label="spread (bps)"), "right")
    _hover(spread, source, "spread", [("spread", "@spread{0,0.00}"), ("bps", "@spread_bps{0.000}")])

    sizes = _time_figure("Size at best", width, 180, "size", x_range=price.x_range)
    sizes.step("exch_ts", "bid_sz", source=source, mode="after", color=BID_COLOR, legend_label="bid")
    sizes.step("exch_ts", "ask_sz", source=source, mode="after", color=ASK_COLOR, legend_label="ask")
    sizes.legend.location = "top_left"
    sizes.legend.click_policy = "hide"
    sizes.xaxis.axis_label = "exchange time (UTC)"
    _hover(sizes, source, "bid_sz", [("bid size", "@bid_sz{0,0.000}"), ("ask size", "@ask_sz{0,0.000}")])

    return gridplot([[price], [spread], [sizes]], toolbar_location="right", merge_tools=True)


def _time_figure(title: str, width: int, height: int, y_label: str, **kwargs):
    fig = figure(
        title=title, width=width, height=height, x_axis_type="datetime",
        tools=_TOOLS, active_scroll="xwheel_zoom", **kwargs,
    )
    fig.yaxis.axis_label = y_label
    return fig


def _hover(fig, source: ColumnDataSource, y: str, fields: list[tuple[str, str]]) -> None:
    """One hover per plot, following the mouse in x, showing all its series at once.

    Bokeh's step glyphs have no hit testing, so the hover targets an invisible line
    over the same source.
    """
    target = fig.line("exch_ts", y, source=source, line_alpha=0)
    fig.add_tools(
        HoverTool(
            renderers=[target],
            tooltips=[_TIME, *fields],
            formatters={"@exch_ts": "datetime"},
            mode="vline",
        )
    )
