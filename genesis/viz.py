"""Bokeh figures shared by notebooks and dashboards.

Builders take a pandas DataFrame (or feature inputs) and return a Bokeh layout, nothing
else: a notebook ``show``s it, a Panel dashboard wraps it, and a test inspects it without a
browser. Tables come back as DataFrames.

- :func:`top_of_book_figure`: best bid/ask, spread and sizes from the store's top of book.
- :func:`feature_figures`: linked plots of a feature frame (price and trades, spread, depth,
  OFI, OBI, VPIN) and optionally :func:`depth_heatmap`, on one time axis.
- :func:`feature_stats`: count, NaN share, moments and quantiles of each feature column.

Plots stay light whatever the time range: line plots are min-max decimated to a bounded
number of points (:func:`decimate`), trades merged into a bounded number of markers, and the
heatmap is an image of bounded size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from bokeh.layouts import gridplot
from bokeh.models import ColorBar, ColumnDataSource, DataRange1d, HoverTool, LinearAxis, LogColorMapper, Span
from bokeh.palettes import Viridis256
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


# ---------------------------------------------------------------------------------------
# Feature exploration: linked feature plots, a depth heatmap, a statistics table.
# ---------------------------------------------------------------------------------------

# Most rows one plot's data source holds (and most trade markers); see :func:`decimate`.
MAX_POINTS = 5000
# Depth heatmap bounds: time columns x price buckets of the image, and book rows read.
HEATMAP_COLUMNS = 600
HEATMAP_PRICE_BINS = 200
HEATMAP_MAX_ROWS = 200_000

UNKNOWN_COLOR = "#969696"
_BORDER = 80  # px left and right of every linked plot, so that their frames line up


@dataclass(frozen=True)
class Series:
    """One line of a panel: a feature spec item, its legend label, colour, and y axis."""

    item: str
    label: str
    color: str
    right: bool = False  # on the panel's second (right) y axis
    alpha: float = 1.0


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    y_label: str
    height: int
    series: tuple[Series, ...]
    right_label: str | None = None
    zero_line: bool = False


# What :func:`feature_figures` draws, top to bottom. Items are spec items, resolved to
# column names through the registry, so parameters (and so column names) are in one place.
PANELS: tuple[Panel, ...] = (
    Panel("price", "Price: mid, microprice and trades", "price", 280, (
        Series("mid", "mid", MID_COLOR),
        Series("microprice(levels=1)", "microprice", "#3182bd", alpha=0.8),
    )),
    Panel("spread", "Spread", "spread (bps)", 150, (Series("spread_bps", "spread", "#756bb1"),)),
    Panel("depth", "Depth: size on the best 10 levels per side", "size", 170, (
        Series("bid_depth(levels=10)", "bid", BID_COLOR),
        Series("ask_depth(levels=10)", "ask", ASK_COLOR),
    )),
    Panel("ofi", "Order-flow imbalance at level 1", "OFI per row (size)", 170, (
        Series("ofi(level=1, window=1)", "per row", UNKNOWN_COLOR, alpha=0.7),
        Series("ofi(level=1, window=100)", "sum of the last 100 rows", "#e6550d", right=True),
    ), right_label="OFI, 100-row sum", zero_line=True),
    Panel("obi", "Order-book imbalance", "OBI", 150, (
        Series("obi", "level 1", "#636363", alpha=0.7),
        Series("obi_weighted(levels=10, decay=0.5)", "10 levels, weights 0.5^k", "#31a354"),
    ), zero_line=True),
    Panel("vpin", "VPIN (volume-synchronised probability of informed trading)", "VPIN", 150, (
        Series("vpin", "VPIN", "#dd1c77"),
    )),
)

# Every spec item the panels draw.
PLOT_ITEMS: tuple[str, ...] = tuple(s.item for panel in PANELS for s in panel.series)


def plot_spec(spec: Any = None, levels: int | None = None):
    """``spec`` (a :class:`~genesis.features.FeatureSpec`, a list of items, or None for the
    default set, fitted to ``levels`` when given) plus whichever of :data:`PLOT_ITEMS` it
    lacks, so that :func:`feature_figures` finds every column it draws."""
    from genesis.features.registry import FeatureSpec

    return FeatureSpec.coerce(spec, levels).including(PLOT_ITEMS)


def feature_column(frame: pd.DataFrame, item: str) -> str | None:
    """The column of ``frame`` holding spec item ``item`` (``"ofi(level=1, window=100)"``):
    the registry's column name for it, else a column named like the bare feature; None if
    neither is there."""
    from genesis.features.registry import parse_instance

    try:
        column = parse_instance(item).column
    except ValueError:  # not registered (yet), or other parameters
        column = None
    if column is not None and column in frame.columns:
        return column
    bare = item.split("(")[0].strip()
    return bare if bare in frame.columns else None


def decimate(ts: np.ndarray, columns: Sequence[np.ndarray], max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of the rows to draw, at most ``max_points`` of them (all rows when they fit).

    Min-max decimation: the time span is cut into ``B = (max_points - 1) // (2k + 1)`` equal
    buckets (k series); each bucket keeps its first row and, per series, the rows of its
    minimum and maximum, plus the very last row. Spikes and the envelope of every series
    survive at any zoom-out, and a day of events draws as a few thousand points. Zooming in
    shows the same points: narrow the time range to see every row. O(n).
    """
    n = len(ts)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 1) // (2 * max(1, len(columns)) + 1))
    t = np.asarray(ts).astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    span = t[-1] - t[0]
    if span > 0:
        bucket = np.minimum(((t - t[0]) / span * buckets).astype(np.int64), buckets - 1)
    else:
        bucket = np.arange(n) * buckets // n
    starts = np.flatnonzero(np.diff(bucket, prepend=-1))  # ts is sorted, so buckets are runs
    keep = [starts, np.array([n - 1])]
    for values in columns:
        v = np.asarray(values, dtype=np.float64)
        for fill, reduce in ((np.inf, np.minimum), (-np.inf, np.maximum)):
            filled = np.where(np.isnan(v), fill, v)
            extreme = reduce.reduceat(filled, starts)
            hits = np.flatnonzero(filled == np.repeat(extreme, np.diff(np.append(starts, n))))
            first = hits[np.flatnonzero(np.diff(bucket[hits], prepend=-1))]  # first hit per bucket
            keep.append(first)
    return np.unique(np.concatenate(keep))


def feature_figures(
    frame: pd.DataFrame,
    trades: Any = None,
    snapshots: Any = None,
    *,
    extra: Sequence[str] = (),
    max_points: int = MAX_POINTS,
    width: int = 900,
    heatmap: Mapping[str, Any] | None = None,
):
    """Linked plots of a feature frame, one above the other, sharing one time axis.

    ``frame`` is what :func:`genesis.features.compute_features` returns (``ts`` and feature
    columns; compute it with :func:`plot_spec` to have every column drawn). Panels
    (:data:`PANELS`): price (mid, microprice and, with ``trades``, trades as triangles:
    buys up and green, sells down and red, unknown side grey circles, area growing with the
    quantity), spread in bps, bid and ask depth over 10 levels, level-1 OFI per row and its
    100-row sum (right axis), OBI at level 1 and level-weighted, VPIN; then one panel per
    column named in ``extra``; then, with ``snapshots``, the :func:`depth_heatmap` (options
    in ``heatmap``). A panel whose columns are all missing is left out with a warning.

    Zooming and panning in x move every plot; clicking a legend entry hides its series.
    Each plot holds at most ``max_points`` rows (:func:`decimate`), and the trades at most
    ``max_points`` markers (beyond that, trades of one side within a time bucket are
    merged into one marker at their VWAP, with their total quantity).
    Series are steps: a feature's value holds until the next row.
    """
    if "ts" not in frame.columns:
        raise ValueError("feature_figures: the frame has no 'ts' column (use compute_features' output)")
    x = _naive_ns(frame["ts"])
    panels = list(PANELS) + [
        Panel(f"extra:{item}", item, item, 150, (Series(item, item, "#3182bd"),)) for item in extra
    ]
    figures, missing = [], []
    x_range = None
    for panel in panels:
        found = [(s, feature_column(frame, s.item)) for s in panel.series]
        missing += [s.item for s, column in found if column is None]
        found = [(s, column) for s, column in found if column is not None]
        if not found:
            continue
        under = None
        if panel.key == "price" and trades is not None:
            under = lambda fig: _draw_trades(fig, trades, x, max_points)  # noqa: E731 (drawn below the lines)
        fig = _panel_figure(panel, found, frame, x, max_points, width, x_range, under)
        x_range = x_range or fig.x_range
        figures.append(fig)
    if missing:
        warnings.warn(
            f"feature_figures: no column for {', '.join(missing)}; compute the frame with "
            "genesis.viz.plot_spec(spec) to draw them", stacklevel=2,
        )
    if snapshots is not None:
        figures.append(depth_heatmap(snapshots, x_range=x_range, width=width, **(heatmap or {})))
    if not figures:
        raise ValueError("feature_figures: the frame has none of the plotted columns "
                         f"({', '.join(PLOT_ITEMS)}) and no snapshots were given")
    for fig in figures[:-1]:
        fig.xaxis.visible = False  # one time axis, at the bottom; hovers show the time anywhere
    figures[-1].xaxis.axis_label = "exchange time (UTC)"
    return gridplot([[f] for f in figures], toolbar_location="right", merge_tools=True)


def depth_heatmap(
    snapshots: Any,
    *,
    max_columns: int = HEATMAP_COLUMNS,
    price_bins: int = HEATMAP_PRICE_BINS,
    max_rows: int = HEATMAP_MAX_ROWS,
    relative: bool = False,
    x_range=None,
    width: int = 900,
    height: int = 320,
    title: str | None = None,
):
    """The resting size at each price over time, from the book snapshots (all their levels).

    One image of at most ``price_bins`` rows (price buckets) by ``max_columns`` columns
    (equal slices of time), whatever the number of snapshots; colour (log scale) is the
    time-averaged size resting in the bucket during the slice, transparent where nothing
    rested. Each snapshot counts for as long as it stood (until the next one). Beyond
    ``max_rows`` snapshots, the book is read at ``max_rows`` equally spaced times instead
    (the state in force at each), so a day of events costs the same as ``max_rows`` rows.
    Buckets are one tick wide (the smallest gap between adjacent levels) when the price
    range allows, else ``range / (price_bins - 1)`` wide, so over long spans several
    levels share a bucket (their sizes add up): narrow the time range for tick detail.
    Thin lines show the time-averaged best bid and ask of each slice. With
    ``relative=True`` the y axis is the distance from each snapshot's mid in bps instead of
    the price, which shows the book's shape over any time span (rows with a one-sided or
    empty book are then left out).

    The figure's ``x_range`` may be another plot's, to link them.
    """
    from genesis.features.engine import Snapshots

    s = Snapshots.coerce(snapshots)
    if len(s) == 0:
        raise ValueError("depth_heatmap: no snapshots")
    ts = s.ts
    steps = np.diff(ts)
    tail = max(1, int(np.median(steps))) if len(steps) else 1  # the last row stands this long
    t_end = int(ts[-1]) + tail
    if len(s) <= max_rows:
        rows, at = np.arange(len(s)), ts
        weight = np.diff(ts, append=t_end).astype(np.float64)
    else:
        at = np.linspace(ts[0], t_end, max_rows, endpoint=False).astype(np.int64)
        rows = np.searchsorted(ts, at, side="right") - 1
        weight = np.ones(len(at))
    n_cols = int(max(1, min(max_columns, len(rows))))
    span = float(t_end - ts[0])
    col = np.minimum(((at - ts[0]) / span * n_cols).astype(np.int64), n_cols - 1)

    bid_px, ask_px = s.bid_px[rows], s.ask_px[rows]
    tick = _tick(bid_px, ask_px)
    if relative:
        # Distance from the row's mid, in bps; the tick in bps at the typical mid.
        mid = (bid_px[:, :1] + ask_px[:, :1]) / 2
        bid_px, ask_px = (bid_px - mid) / mid * 1e4, (ask_px - mid) / mid * 1e4
        typical = np.nanmedian(mid) if np.isfinite(mid).any() else np.nan
        tick = tick / typical * 1e4 if np.isfinite(typical) and typical > 0 else 1.0
    px = np.concatenate([bid_px, ask_px], axis=1)
    sz = np.concatenate([s.bid_sz[rows], s.ask_sz[rows]], axis=1)
    ok = np.isfinite(px) & np.isfinite(sz) & (sz > 0)
    y_label, y_format = ("distance from mid (bps)", "$y{0.00} bps") if relative else ("price", "$y{0,0.00}")
    what = "distance from mid" if relative else "price"
    fig = _time_figure(title or f"Depth heatmap: resting size by {what} (log colour)", width, height, y_label,
                       **({"x_range": x_range} if x_range is not None else {}))
    fig.min_border_left = fig.min_border_right = _BORDER
    if not ok.any():
        return fig
    lo, hi = float(px[ok].min()), float(px[ok].max())
    bin_w = max(tick, (hi - lo) / max(1, price_bins - 1)) if hi > lo else tick
    n_bins = int(np.floor((hi - lo) / bin_w + 0.5)) + 1
    price_bin = np.floor((px[ok] - lo) / bin_w + 0.5).astype(np.int64)  # buckets centred on tick prices
    cell = np.broadcast_to(col[:, None], px.shape)[ok] * n_bins + np.clip(price_bin, 0, n_bins - 1)
    totals = np.bincount(cell, weights=np.broadcast_to(weight[:, None], px.shape)[ok] * sz[ok],
                         minlength=n_cols * n_bins)
    time_in_col = np.bincount(col, weights=weight, minlength=n_cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = (totals.reshape(n_cols, n_bins).T / time_in_col).astype(np.float32)
    image[~(image > 0)] = np.nan  # nothing rested there: transparent

    positive = image[np.isfinite(image)]
    mapper = LogColorMapper(palette=Viridis256, low=float(np.quantile(positive, 0.01)),
                            high=float(np.quantile(positive, 0.995)), nan_color=(0, 0, 0, 0))
    x0_ms, width_ms = ts[0] / 1e6, span / 1e6  # datetime axes count milliseconds
    img = fig.image(image=[image], x=x0_ms, y=lo - bin_w / 2, dw=width_ms, dh=n_bins * bin_w,
                    color_mapper=mapper, level="image")
    fig.add_tools(HoverTool(
        renderers=[img],
        tooltips=[("time", "$x{%F %T}"), (what, y_format), ("mean size", "@image{0,0.000}")],
        formatters={"$x": "datetime"},
    ))
    # Time-averaged best bid/ask per column, over the time a side was present.
    centres = (ts[0] + (np.arange(n_cols) + 0.5) * span / n_cols).astype("datetime64[ns]")
    for best, color, label in ((bid_px[:, 0], BID_COLOR, "best bid"), (ask_px[:, 0], ASK_COLOR, "best ask")):
        present = np.isfinite(best)
        w = np.where(present, weight, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(col, weights=w * np.where(present, best, 0.0), minlength=n_cols) / np.bincount(
                col, weights=w, minlength=n_cols)
        fig.line(centres, mean, color=color, line_width=1, alpha=0.9, legend_label=label)
    _legend(fig)
    fig.add_layout(ColorBar(color_mapper=mapper, orientation="horizontal", height=8, title="mean resting size"),
                   "below")
    return fig


def feature_stats(frame: pd.DataFrame, quantiles: Sequence[float] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)):
    """One row per numeric feature column (``ts`` left out): ``count`` (finite values),
    ``nan_share`` (share of rows that are NaN or infinite), ``mean``, ``std`` (ddof 1),
    ``min``, the quantiles (columns ``1%``, ``5%``, ...) and ``max``, over the finite values
    (NaN where a column has none)."""
    numeric = frame.drop(columns=["ts"], errors="ignore").select_dtypes("number")
    names = [f"{q * 100:g}%" for q in quantiles]
    rows = {}
    for name in numeric.columns:
        values = numeric[name].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        row = {"count": len(finite), "nan_share": 1 - len(finite) / len(values) if len(values) else np.nan}
        if len(finite):
            qs = np.quantile(finite, quantiles)
            row.update(mean=finite.mean(), std=finite.std(ddof=1) if len(finite) > 1 else np.nan, min=finite.min(),
                       **dict(zip(names, qs)), max=finite.max())
        rows[name] = row
    columns = ["count", "nan_share", "mean", "std", "min", *names, "max"]
    stats = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns)
    stats["count"] = stats["count"].astype("int64")
    stats.index.name = "feature"
    return stats


# -- helpers of the feature plots ---------------------------------------------------------

def _naive_ns(ts: pd.Series | np.ndarray) -> np.ndarray:
    """datetime64[ns], naive UTC (what Bokeh's datetime axis reads), from tz-aware or int ns."""
    values = pd.to_datetime(pd.Series(ts), utc=True).dt.tz_localize(None)
    return values.to_numpy().astype("datetime64[ns]")


def _panel_figure(panel: Panel, found, frame: pd.DataFrame, x: np.ndarray, max_points: int, width: int, x_range,
                  under=None):
    values = [frame[column].to_numpy(dtype=np.float64) for _, column in found]
    rows = decimate(x, values, max_points)
    data = {"ts": x[rows], **{f"y{k}": v[rows] for k, v in enumerate(values)}}
    source = ColumnDataSource(data)
    shown = f" ({len(rows):,} of {len(x):,} rows)" if len(rows) < len(x) else ""
    fig = _time_figure(panel.title + shown, width, panel.height, panel.y_label,
                       **({"x_range": x_range} if x_range is not None else {}))
    fig.min_border_left = fig.min_border_right = _BORDER
    if under is not None:
        under(fig)  # drawn first, so that the lines stay on top
    left, right = [], []
    for k, (series, _) in enumerate(found):
        kwargs = {"y_range_name": "right"} if series.right else {}
        if series.right and "right" not in fig.extra_y_ranges:
            fig.extra_y_ranges = {"right": DataRange1d()}
            fig.add_layout(LinearAxis(y_range_name="right", axis_label=panel.right_label or ""), "right")
        renderer = fig.step("ts", f"y{k}", source=source, mode="after", color=series.color, alpha=series.alpha,
                            legend_label=series.label, **kwargs)
        (right if series.right else left).append(renderer)
    if right:
        fig.extra_y_ranges["right"].renderers = right
        fig.y_range.renderers = left
    if panel.zero_line:
        fig.add_layout(Span(location=0, dimension="width", line_color="#bdbdbd", line_width=1))
    _legend(fig)
    target_k = next(k for k, (s, _) in enumerate(found) if not s.right) if left else 0
    target = fig.line("ts", f"y{target_k}", source=source, line_alpha=0,
                      **({"y_range_name": "right"} if not left else {}))
    fields = [(series.label, f"@y{k}{{0,0.[0000]}}") for k, (series, _) in enumerate(found)]
    fig.add_tools(HoverTool(renderers=[target], tooltips=[("time", "@ts{%F %T.%3N}"), *fields],
                            formatters={"@ts": "datetime"}, mode="vline"))
    return fig


def _draw_trades(fig, trades: Any, x: np.ndarray, max_points: int) -> None:
    """Trades within the frame's time span on the price plot, one renderer per side."""
    from genesis.features.engine import Trades

    t = Trades.coerce(trades)
    if len(x) == 0 or len(t) == 0:
        return
    lo, hi = x[0].astype(np.int64), x[-1].astype(np.int64)
    inside = (t.ts >= lo) & (t.ts <= hi)
    df = pd.DataFrame({"ts": t.ts[inside], "price": t.price[inside], "qty": t.qty[inside],
                       "side": np.sign(np.nan_to_num(t.side[inside])).astype(np.int64), "n": 1})
    if df.empty:
        return
    if len(df) > max_points:
        # Merge each side's trades within a time bucket into one marker at their VWAP.
        buckets = max(1, max_points // 3)
        span = max(1, int(hi - lo))
        df["bucket"] = np.minimum((df["ts"] - lo) / span * buckets, buckets - 1).astype(np.int64)
        df["notional"] = df["price"] * df["qty"]
        g = df.groupby(["bucket", "side"], sort=True)
        df = pd.DataFrame({"ts": g["ts"].mean().astype(np.int64), "qty": g["qty"].sum(),
                           "notional": g["notional"].sum(), "n": g["n"].sum()}).reset_index()
        df["price"] = np.where(df["qty"] > 0, df["notional"] / df["qty"].where(df["qty"] > 0), np.nan)
    reference = float(np.quantile(df["qty"], 0.99)) or 1.0
    df["size"] = np.clip(3 + 11 * np.sqrt(df["qty"] / reference), 3, 14)  # marker area ~ quantity
    df["ts"] = df["ts"].to_numpy().astype("datetime64[ns]")
    renderers = []
    for side, label, marker, color in ((1, "buy", "triangle", BID_COLOR), (-1, "sell", "inverted_triangle", ASK_COLOR),
                                       (0, "side unknown", "circle", UNKNOWN_COLOR)):
        part = df[df["side"] == side]
        if part.empty:
            continue
        source = ColumnDataSource({c: part[c].to_numpy() for c in ("ts", "price", "qty", "size", "n")})
        renderers.append(fig.scatter("ts", "price", source=source, size="size", marker=marker, fill_color=color,
                                     line_color=color, fill_alpha=0.3, line_alpha=0.6,
                                     legend_label=f"{label} trades"))
    fig.add_tools(HoverTool(renderers=renderers, tooltips=[
        ("time", "@ts{%F %T.%3N}"), ("price", "@price{0,0.00}"), ("qty", "@qty{0,0.[0000]}"), ("trades", "@n")],
        formatters={"@ts": "datetime"}))


def _legend(fig) -> None:
    """A compact legend on one line, top left; a click on an entry hides its series."""
    legend = fig.legend[0]
    legend.location = "top_left"
    legend.orientation = "horizontal"
    legend.click_policy = "hide"
    legend.background_fill_alpha = 0.6
    legend.label_text_font_size = "8pt"
    legend.glyph_height = legend.glyph_width = 12
    legend.padding = legend.spacing = 2
    legend.margin = 4


def _tick(bid_px: np.ndarray, ask_px: np.ndarray) -> float:
    """The price grid: the smallest gap between adjacent levels (to 6 significant digits)."""
    gaps = np.concatenate([(bid_px[:, :-1] - bid_px[:, 1:]).ravel(), (ask_px[:, 1:] - ask_px[:, :-1]).ravel()])
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
    if not len(gaps):
        return 1.0
    return float(f"{gaps.min():.6g}")


_REPLAY_JS = """
const k = slider.value;
const f = frames.data;
const lo = times.data.start[k], hi = times.data.stop[k];
ladder.data = {price: f.price.slice(lo, hi), size: f.size.slice(lo, hi), color: f.color.slice(lo, hi),
               side: f.side.slice(lo, hi)};
now.location = times.data.ts[k];
title.text = times.data.label[k];
"""


def book_replay(book: Any, trades: Any = None, *, center_ts: int, window_s: float = 5.0, levels: int = 10,
                max_frames: int = 400, marks: Sequence[tuple[int, int, str]] = (), width: int = 900):
    """A steppable replay of the book around ``center_ts``: a slider walks the book rows of
    ``[center - window, center + window]``; the ladder shows the top ``levels`` per side with
    depth bars at that row, the price plot the mid, the trades (buy/sell, sized by quantity)
    and a line at the row's time. ``marks``: ``(start_ts, end_ts, label)`` spans to shade
    (e.g. an alert's episode). Works in a static HTML export (the stepping runs in the browser).

    ``book``: anything with ``ts``, ``bid_px``, ``bid_sz``, ``ask_px``, ``ask_sz`` (e.g.
    :class:`genesis.surveillance.engine.Book`); ``trades``: a TRADE_DTYPE array or None.
    """
    from bokeh.layouts import column, row
    from bokeh.models import BoxAnnotation, CustomJS, Div, Slider

    half = int(window_s * 1e9)
    rows = np.flatnonzero((book.ts >= center_ts - half) & (book.ts <= center_ts + half))
    if not len(rows):
        raise ValueError(f"no book rows within {window_s} s of {pd.Timestamp(center_ts, tz='UTC')}")
    if len(rows) > max_frames:
        rows = rows[np.linspace(0, len(rows) - 1, max_frames).round().astype(int)]
    depth = min(levels, book.bid_px.shape[1])
    price, size, color, side, start = [], [], [], [], [0]
    for r in rows:
        for px, sz, colour, name in ((book.bid_px[r, :depth], book.bid_sz[r, :depth], BID_COLOR, "bid"),
                                     (book.ask_px[r, :depth], book.ask_sz[r, :depth], ASK_COLOR, "ask")):
            ok = np.isfinite(px) & np.isfinite(sz)
            price.extend(px[ok].tolist())
            size.extend(sz[ok].tolist())
            color.extend([colour] * int(ok.sum()))
            side.extend([name] * int(ok.sum()))
        start.append(len(price))
    frames = ColumnDataSource({"price": price, "size": size, "color": color, "side": side})
    times_ns = book.ts[rows]
    labels = [f"{pd.Timestamp(int(t), tz='UTC'):%Y-%m-%d %H:%M:%S.%f} UTC  ({(int(t) - center_ts) / 1e9:+.3f} s)"
              for t in times_ns]
    times = ColumnDataSource({"ts": (times_ns // 1_000_000).tolist(), "label": labels, "start": start[:-1],
                              "stop": start[1:]})
    k0 = int(np.searchsorted(times_ns, center_ts))
    k0 = min(k0, len(rows) - 1)
    lo, hi = start[k0], start[k0 + 1]
    ladder = ColumnDataSource({"price": price[lo:hi], "size": size[lo:hi], "color": color[lo:hi], "side": side[lo:hi]})

    all_px = np.concatenate([book.bid_px[rows, :depth].ravel(), book.ask_px[rows, :depth].ravel()])
    all_px = all_px[np.isfinite(all_px)]
    tick = _tick(book.bid_px[rows], book.ask_px[rows])
    ladder_fig = figure(title="book ladder (size per level)", width=320, height=420, tools="save",
                        y_range=(float(all_px.min()) - tick, float(all_px.max()) + tick), toolbar_location=None)
    ladder_fig.hbar(y="price", right="size", height=tick * 0.8, color="color", source=ladder)
    ladder_fig.add_tools(HoverTool(tooltips=[("side", "@side"), ("price", "@price{0.0[0000]}"), ("size", "@size")]))
    ladder_fig.xaxis.axis_label = "size"

    price_fig = _time_figure("mid and trades", width - 340, 420, "price", y_range=ladder_fig.y_range)
    mid = (book.bid_px[rows, 0] + book.ask_px[rows, 0]) / 2
    price_fig.step(pd.to_datetime(times_ns), mid, mode="after", color=MID_COLOR, legend_label="mid")
    if trades is not None and len(trades):
        t = trades[(trades["exch_ts"] >= times_ns[0]) & (trades["exch_ts"] <= times_ns[-1])]
        for aggressor, colour, label in ((1, BID_COLOR, "buy"), (-1, ASK_COLOR, "sell")):
            mine = t[t["aggressor"] == aggressor]
            if len(mine):
                radius = 4 + 10 * np.sqrt(mine["qty"] / max(float(t["qty"].max()), 1e-12))
                price_fig.scatter(pd.to_datetime(mine["exch_ts"]), mine["price"], size=radius, color=colour,
                                  alpha=0.6, legend_label=f"{label} trades")
    for start_ts, end_ts, label in marks:
        price_fig.add_layout(BoxAnnotation(left=int(start_ts) // 1_000_000, right=max(int(end_ts), int(start_ts) + 1)
                                           // 1_000_000, fill_alpha=0.12, fill_color="#fdae61"))
        price_fig.title.text = f"mid and trades; shaded: {label}"
    now = Span(location=int(times_ns[k0]) // 1_000_000, dimension="height", line_color="#2166ac", line_width=2)
    price_fig.add_layout(now)
    _legend(price_fig)

    title = Div(text=labels[k0])
    slider = Slider(start=0, end=max(len(rows) - 1, 1), value=k0, step=1, title="book row", width=width - 40,
                    disabled=len(rows) < 2)
    slider.js_on_change("value", CustomJS(args={"slider": slider, "frames": frames, "ladder": ladder, "now": now,
                                                "times": times, "title": title}, code=_REPLAY_JS))
    return column(title, slider, row(ladder_fig, price_fig))


def markdown_table(frame: pd.DataFrame, index: bool = True, floats: str = "{:.3g}") -> str:
    """A DataFrame as a GitHub markdown table (for README figures printed by scripts)."""
    table = frame.reset_index() if index else frame
    def cell(value):
        return floats.format(value) if isinstance(value, float) else str(value)
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])
