"""Rolling correlation of returns across symbols on a common bar grid, and its heatmap.

Closes come on one grid (:func:`genesis.analytics.bars.close_matrix`: a bar without trades
carries the last close), returns are log returns bar to bar, and the correlation of each pair
is Pearson's over the last ``window`` returns (current included). A window holding a NaN, or a
symbol whose returns are all equal over it (it did not trade), gives NaN for its pairs; the
diagonal is 1 wherever the symbol's returns vary.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pandas as pd


def log_returns(closes: pd.DataFrame) -> pd.DataFrame:
    """Log returns bar to bar, shape ``(n - 1, k)``, indexed by the bar that ends each return."""
    values = closes.to_numpy(np.float64)
    if (values[np.isfinite(values)] <= 0).any():
        raise ValueError("closes: prices must be positive for log returns")
    return pd.DataFrame(np.diff(np.log(values), axis=0), index=closes.index[1:], columns=closes.columns)


@numba.njit(cache=True)
def _rolling_corr(r, window, out):
    n, k = r.shape
    mean = np.empty(k)
    std = np.empty(k)
    for i in range(n):
        for a in range(k):
            for b in range(k):
                out[i, a, b] = np.nan
        if i + 1 < window:
            continue
        lo = i + 1 - window
        for a in range(k):
            s = 0.0
            for j in range(lo, i + 1):
                s += r[j, a]
            mean[a] = s / window  # NaN if the window holds one
            ss = 0.0
            for j in range(lo, i + 1):
                d = r[j, a] - mean[a]
                ss += d * d
            std[a] = np.sqrt(ss)
        for a in range(k):
            if not (std[a] > 0.0):  # NaN or constant
                continue
            out[i, a, a] = 1.0
            for b in range(a + 1, k):
                if not (std[b] > 0.0):
                    continue
                c = 0.0
                for j in range(lo, i + 1):
                    c += (r[j, a] - mean[a]) * (r[j, b] - mean[b])
                rho = c / (std[a] * std[b])
                rho = min(1.0, max(-1.0, rho))
                out[i, a, b] = rho
                out[i, b, a] = rho


class RollingCorrelation(NamedTuple):
    ts: pd.DatetimeIndex  # (n,) the bar ending each window
    symbols: list  # (k,)
    values: np.ndarray  # (n, k, k) correlation matrices; NaN during warm-up

    def at(self, i: int = -1) -> pd.DataFrame:
        """The ``k x k`` matrix of window ``i`` (default the last) as a frame."""
        return pd.DataFrame(self.values[i], index=self.symbols, columns=self.symbols)

    def pair(self, a: str, b: str) -> pd.Series:
        """Correlation of two symbols over time."""
        ia, ib = self.symbols.index(a), self.symbols.index(b)
        return pd.Series(self.values[:, ia, ib], index=self.ts, name=f"{a} ~ {b}")


def rolling_correlation(closes: pd.DataFrame, window: int = 60) -> RollingCorrelation:
    """Correlation matrices of the log returns of ``closes`` (index ts, one column per symbol)
    over each window of ``window`` returns."""
    if closes.shape[1] < 2:
        raise ValueError(f"closes: need at least two symbols, got {list(closes.columns)}")
    if int(window) < 2:
        raise ValueError(f"window={window}: need at least 2 returns")
    returns = log_returns(closes)
    out = np.empty((len(returns), returns.shape[1], returns.shape[1]))
    _rolling_corr(np.ascontiguousarray(returns.to_numpy(np.float64)), int(window), out)
    return RollingCorrelation(pd.DatetimeIndex(returns.index), list(closes.columns), out)


def correlation_matrix(closes: pd.DataFrame) -> pd.DataFrame:
    """Correlation of the log returns over the whole range, ``k x k``."""
    returns = log_returns(closes)
    return rolling_correlation(closes, max(len(returns), 2)).at(-1) if len(returns) >= 2 else \
        pd.DataFrame(np.nan, index=closes.columns, columns=closes.columns)


def correlation_heatmap(matrix: pd.DataFrame, title: str = "Correlation of returns", size: int = 420):
    """A Bokeh heatmap of a ``k x k`` correlation frame (red positive, blue negative, values
    written in the cells)."""
    from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.palettes import RdBu11
    from bokeh.plotting import figure
    from bokeh.transform import transform

    names = [str(c) for c in matrix.columns]
    rows, cols = np.meshgrid(np.arange(len(names)), np.arange(len(names)), indexing="ij")
    values = matrix.to_numpy(np.float64).reshape(-1)
    source = ColumnDataSource(dict(
        y=[names[i] for i in rows.reshape(-1)], x=[names[j] for j in cols.reshape(-1)],
        rho=values, label=["" if not np.isfinite(v) else f"{v:.2f}" for v in values]))
    mapper = LinearColorMapper(palette=list(reversed(RdBu11)), low=-1.0, high=1.0, nan_color="#dddddd")
    fig = figure(title=title, x_range=names, y_range=list(reversed(names)), width=size, height=size,
                 tools="save", toolbar_location="right", x_axis_location="above")
    fig.rect(x="x", y="y", width=1, height=1, source=source, line_color="white",
             fill_color=transform("rho", mapper))
    fig.text(x="x", y="y", text="label", source=source, text_align="center", text_baseline="middle",
             text_font_size="11px")
    fig.add_tools(HoverTool(tooltips=[("pair", "@y ~ @x"), ("correlation", "@rho{0.000}")]))
    fig.xaxis.major_label_orientation = 0.6
    fig.grid.visible = False
    return fig


__all__ = ["log_returns", "rolling_correlation", "RollingCorrelation", "correlation_matrix", "correlation_heatmap"]
