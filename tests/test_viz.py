"""Bokeh builders of genesis.viz: linked feature plots, the depth heatmap, the stats table.

Figures are inspected as Bokeh models (no browser): what they hold, how they are linked,
and that their size stays bounded.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from bokeh.models import DatetimeAxis, GlyphRenderer, HoverTool, Image

from genesis.features import Snapshots, compute_features
from genesis.features.registry import parse_instance
from genesis.viz import (
    PANELS,
    PLOT_ITEMS,
    decimate,
    depth_heatmap,
    feature_column,
    feature_figures,
    feature_stats,
    plot_spec,
    top_of_book_figure,
)
from tests.features_data import real, synthetic_book

CAPTURE = "usdm_btcusdt_20240808.jsonl.gz"


@pytest.fixture(scope="module")
def sample():
    """(frame, snapshots, trades) of the bundled capture, with every plotted column."""
    snaps, trades = real(CAPTURE)
    return compute_features(snaps, trades, plot_spec(["mid", "spread"])), snaps, trades


def trades_within(snaps, trades):
    """The trades the price plot draws: those within the snapshots' time span."""
    inside = (trades.ts >= snaps.ts[0]) & (trades.ts <= snaps.ts[-1])
    return trades.qty[inside], trades.side[inside]


def figures_of(layout):
    return [child[0] for child in layout.children]


def sources_of(fig):
    return [r.data_source for r in fig.renderers if isinstance(r, GlyphRenderer)]


def heatmap_image(fig) -> np.ndarray:
    (renderer,) = [r for r in fig.renderers if isinstance(r.glyph, Image)]
    return np.asarray(renderer.data_source.data["image"][0])


# --- the plotted features -------------------------------------------------------------------


def test_every_plotted_feature_is_registered():
    for item in PLOT_ITEMS:
        parse_instance(item)  # raises for an unknown feature or parameter


def test_plot_spec_adds_the_plotted_columns_after_the_given_ones():
    spec = plot_spec(["spread", "vpin"])
    assert spec.columns[:2] == ["spread", parse_instance("vpin").column]
    assert {parse_instance(item).column for item in PLOT_ITEMS} <= set(spec.columns)
    assert len(spec.columns) == len(set(spec.columns))
    default = plot_spec(None)
    assert {parse_instance(item).column for item in PLOT_ITEMS} <= set(default.columns)


def test_feature_column_resolves_spec_items_and_bare_names():
    frame = pd.DataFrame({"ts": [0], "ofi_l1_w100": [1.0], "vpin": [0.5]})
    assert feature_column(frame, "ofi(level=1, window=100)") == "ofi_l1_w100"
    assert feature_column(frame, "ofi(level=1, window=1)") is None
    assert feature_column(frame, "vpin") == "vpin"  # an alias column named like the feature
    assert feature_column(frame, "no_such_feature(x=1)") is None


# --- linked plots -----------------------------------------------------------------------------


def test_feature_figures_link_every_plot_on_one_time_axis(sample):
    frame, snaps, trades = sample
    layout = feature_figures(frame, trades, snaps, max_points=1500)
    figures = figures_of(layout)
    titles = [f.title.text for f in figures]

    assert len(figures) == len(PANELS) + 1  # every panel, then the heatmap
    for panel, title in zip(PANELS, titles):
        assert title.startswith(panel.title)
    assert titles[-1].startswith("Depth heatmap")
    assert all(f.x_range is figures[0].x_range for f in figures)
    assert all(isinstance(f.xaxis[0], DatetimeAxis) for f in figures)
    assert [f.xaxis[0].visible for f in figures] == [False] * (len(figures) - 1) + [True]
    for fig in figures:
        assert fig.legend and fig.legend[0].click_policy == "hide"
        assert any(isinstance(tool, HoverTool) for tool in fig.tools)
    assert [f.width for f in figures] == [figures[0].width] * len(figures)


def test_price_plot_draws_the_trades_by_side(sample):
    frame, snaps, trades = sample
    price = figures_of(feature_figures(frame, trades, max_points=100_000))[0]
    labels = [item.label.value for item in price.legend[0].items]
    assert {"mid", "microprice", "buy trades", "sell trades"} <= set(labels)
    markers = {r.glyph.marker: r.data_source.data for r in price.renderers if hasattr(r.glyph, "marker")}
    assert set(markers) == {"triangle", "inverted_triangle"}  # Binance gives every trade's side
    qty, side = trades_within(snaps, trades)
    assert 0 < len(qty) <= len(trades)
    assert sum(len(data["qty"]) for data in markers.values()) == len(qty)  # all fit: one marker each
    assert np.isclose(markers["triangle"]["qty"].sum(), qty[side > 0].sum())
    sizes = np.concatenate([data["size"] for data in markers.values()])
    assert sizes.min() >= 3 and sizes.max() <= 14


def test_plots_stay_bounded_and_merged_trades_keep_their_quantity(sample):
    frame, snaps, trades = sample
    max_points = 300
    figures = figures_of(feature_figures(frame, trades, max_points=max_points))
    for fig in figures:
        for source in sources_of(fig):
            assert len(source.data["ts"]) <= max_points
    markers = [r.data_source.data for r in figures[0].renderers if hasattr(r.glyph, "marker")]
    assert sum(len(data["qty"]) for data in markers) <= max_points
    qty, _ = trades_within(snaps, trades)
    assert len(qty) > max_points
    assert np.isclose(sum(data["qty"].sum() for data in markers), qty.sum())
    assert sum(data["n"].sum() for data in markers) == len(qty)
    assert "of 6,547 rows" in figures[0].title.text


def test_a_panel_without_its_columns_is_left_out_with_a_warning(sample):
    frame, _, _ = sample
    vpin = feature_column(frame, "vpin")
    with pytest.warns(UserWarning, match=r"no column for vpin"):
        figures = figures_of(feature_figures(frame.drop(columns=[vpin])))
    assert not any(f.title.text.startswith("VPIN") for f in figures)
    with pytest.raises(ValueError, match="none of the plotted columns"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feature_figures(frame[["ts"]])


def test_extra_columns_get_a_panel_each(sample):
    frame, _, _ = sample
    figures = figures_of(feature_figures(frame, extra=["spread"]))
    assert figures[-1].title.text.startswith("spread")
    assert figures[-1].x_range is figures[0].x_range


# --- decimation -----------------------------------------------------------------------------


def test_decimate_keeps_every_row_when_they_fit():
    ts = np.arange(10)
    assert decimate(ts, [np.arange(10.0)], 10).tolist() == list(range(10))


def test_decimate_is_bounded_and_keeps_each_buckets_extremes():
    rng = np.random.default_rng(3)
    n = 100_000
    ts = np.sort(rng.integers(0, 10**12, n))
    a, b = rng.normal(size=n).cumsum(), rng.normal(size=n)
    b[[17, 5000, 99_000]] = [50.0, -50.0, np.nan]
    a[2000:3000] = np.nan
    rows = decimate(ts, [a, b], 1000)
    assert len(rows) <= 1000
    assert np.all(np.diff(rows) > 0)
    assert rows[0] == 0 and rows[-1] == n - 1
    assert {17, 5000, int(np.nanargmax(a)), int(np.nanargmin(a))} <= set(rows.tolist())


def test_decimate_on_one_instant():
    rows = decimate(np.zeros(50, np.int64), [np.arange(50.0)], 11)
    assert len(rows) <= 11 and {0, 49} <= set(rows.tolist())


# --- depth heatmap ------------------------------------------------------------------------------


def test_heatmap_of_the_sample_is_bounded_and_centred_on_ticks():
    snaps, _ = real(CAPTURE)
    fig = depth_heatmap(snaps, max_columns=400, price_bins=150)
    image = heatmap_image(fig)
    assert image.shape[1] == 400 and image.shape[0] <= 150
    assert image.dtype == np.float32
    assert np.nanmin(image) > 0  # empty cells are NaN (transparent), never 0
    assert isinstance(fig.xaxis[0], DatetimeAxis)
    (renderer,) = [r for r in fig.renderers if isinstance(r.glyph, Image)]
    glyph = renderer.glyph
    # The image spans the snapshots' prices and time.
    assert glyph.y <= np.nanmin(snaps.bid_px) and glyph.y + glyph.dh >= np.nanmax(snaps.ask_px)
    assert glyph.x == pytest.approx(snaps.ts[0] / 1e6)
    assert glyph.x + glyph.dw >= snaps.ts[-1] / 1e6


def test_heatmap_reads_at_most_max_rows_snapshots():
    snaps, _ = real(CAPTURE)
    image = heatmap_image(depth_heatmap(snaps, max_rows=500, max_columns=50, price_bins=60))
    assert image.shape[1] == 50 and image.shape[0] <= 60
    assert np.isfinite(image).any()


def test_heatmap_averages_size_over_time_per_tick():
    # Two rows one second apart; the last row stands as long as the median step (1 s).
    s = 1_000_000_000
    snaps = Snapshots(
        np.array([0, s]) + 1_700_000_000 * s,
        bid_px=[[99.0, 98.0], [100.0, 99.0]], bid_sz=[[1.0, 2.0], [5.0, 6.0]],
        ask_px=[[101.0, 102.0], [101.0, np.nan]], ask_sz=[[3.0, 4.0], [7.0, np.nan]],
    )
    image = heatmap_image(depth_heatmap(snaps, max_columns=1))
    assert image.shape == (5, 1)  # prices 98..102, one tick apart
    expected = [(2 + 0) / 2, (1 + 6) / 2, (0 + 5) / 2, (3 + 7) / 2, (4 + 0) / 2]
    np.testing.assert_allclose(image[:, 0], expected)

    two = heatmap_image(depth_heatmap(snaps, max_columns=2))
    np.testing.assert_allclose(two[:, 0], [2, 1, np.nan, 3, 4])
    np.testing.assert_allclose(two[:, 1], [np.nan, 6, 5, 7, np.nan])


def test_heatmap_relative_to_mid_and_linked():
    snaps, _ = synthetic_book(300)
    fig = depth_heatmap(snaps, relative=True, max_columns=30)
    assert fig.yaxis[0].axis_label == "distance from mid (bps)"
    image = heatmap_image(fig)
    assert image.shape[1] == 30
    (renderer,) = [r for r in fig.renderers if isinstance(r.glyph, Image)]
    assert renderer.glyph.y < 0 < renderer.glyph.y + renderer.glyph.dh
    other = depth_heatmap(snaps, x_range=fig.x_range)
    assert other.x_range is fig.x_range


def test_heatmap_of_an_empty_book_is_an_empty_figure():
    snaps, _ = synthetic_book(10)
    nan = np.full_like(snaps.bid_px, np.nan)
    fig = depth_heatmap(Snapshots(snaps.ts, nan, nan, nan, nan))
    assert not [r for r in fig.renderers if isinstance(r.glyph, Image)]
    with pytest.raises(ValueError, match="no snapshots"):
        depth_heatmap(snaps.take(slice(0, 0)))


# --- statistics --------------------------------------------------------------------------------


def test_feature_stats_columns_and_values():
    frame = pd.DataFrame({
        "ts": pd.to_datetime(np.arange(5), unit="s", utc=True),
        "a": [1.0, 2.0, np.nan, 4.0, np.inf],
        "b": [np.nan] * 5,
        "label": list("xyzuv"),
    })
    stats = feature_stats(frame)
    assert list(stats.columns) == ["count", "nan_share", "mean", "std", "min", "1%", "5%", "25%", "50%", "75%",
                                   "95%", "99%", "max"]
    assert list(stats.index) == ["a", "b"]  # ts and non-numeric columns left out
    a = stats.loc["a"]
    assert a["count"] == 3 and a["nan_share"] == pytest.approx(0.4)
    assert a["mean"] == pytest.approx(7 / 3) and a["std"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert (a["min"], a["50%"], a["max"]) == (1.0, 2.0, 4.0)
    b = stats.loc["b"]
    assert b["count"] == 0 and b["nan_share"] == 1.0 and b.drop(["count", "nan_share"]).isna().all()


def test_feature_stats_of_the_sample(sample):
    frame, _, _ = sample
    stats = feature_stats(frame)
    assert list(stats.index) == [c for c in frame.columns if c != "ts"]
    assert (stats["count"] <= len(frame)).all()
    assert stats["nan_share"].between(0, 1).all()
    ordered = stats[["min", "1%", "25%", "50%", "75%", "99%", "max"]].dropna()
    assert (ordered.diff(axis=1).iloc[:, 1:] >= -1e-9 * ordered.abs().max(axis=1).to_numpy()[:, None]).all().all()
    mid = stats.loc["mid"]
    assert mid["count"] == len(frame) and mid["nan_share"] == 0


# --- the top of book figure still builds ------------------------------------------------------


def test_top_of_book_figure_still_builds():
    n = 50
    df = pd.DataFrame({
        "exch_ts": pd.date_range("2024-08-08", periods=n, freq="100ms"),
        "bid_px": np.linspace(100, 101, n), "ask_px": np.linspace(100.1, 101.1, n),
        "bid_sz": np.ones(n), "ask_sz": np.full(n, 2.0),
    })
    figures = figures_of(top_of_book_figure(df))
    assert len(figures) == 3 and all(f.x_range is figures[0].x_range for f in figures)
