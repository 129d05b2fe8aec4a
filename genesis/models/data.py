"""DeepLOB data: LOB rows, normalisation, lazy windows, leak-free walk-forward splits.

The model sees windows of ``window`` (100) consecutive book rows, each row the 40 numbers of
FI-2010 / DeepLOB (per level: ask price, ask size, bid price, bid size). A window is named by
its END row ``e``: it holds rows ``e - window + 1 .. e`` and its label is the label of row
``e`` (:mod:`genesis.features.labels`), which looks ``horizon`` rows further. A window thus
touches rows ``[e - window + 1, e + horizon]``; two windows share information when those
spans overlap, and :func:`walk_forward_folds` keeps every train span apart from every
validation/test span (a purge gap), in time order. Shuffled K-fold over windows is not
offered: overlapping windows would put the test period's rows into training.

Classes: Genesis labels are -1 (down), 0 (stationary), 1 (up); the network's class index is
``label + 1`` (0 down, 1 stationary, 2 up), see :func:`label_to_class`.

>>> dm = LOBDataModule.from_store(["BTCUSDT"], "2024-08-08", "2024-08-09", horizon=10)
>>> dm.setup(); dm.class_balance["train"]; x, y = next(iter(dm.train_dataloader()))
>>> x.shape  # (batch, 1, 100, 40)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, NamedTuple, Sequence

import lightning as L
import numba as nb
import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import DataLoader, Dataset

from genesis.features.labels import NO_LABEL, class_balance, fi2010_labels, triple_barrier

WINDOW = 100
LEVELS = 10
# How prices enter the network: as they are ("level", z-scored like FI-2010), or as their
# distance from a causal exponential moving average of the mid ("ema", then z-scored).
PRICE_REFERENCES = ("level", "ema")
CLASS_NAMES = ("down", "stationary", "up")  # class index 0, 1, 2 = Genesis label -1, 0, 1
SPLITS = ("train", "val", "test")


# -- rows ----------------------------------------------------------------------------------

def feature_names(levels: int = LEVELS) -> list[str]:
    """Column names of :func:`lob_features`: ``ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ask_px_2, ...``."""
    return [f"{name}_{i}" for i in range(1, levels + 1) for name in ("ask_px", "ask_sz", "bid_px", "bid_sz")]


def lob_features(bid_px, bid_sz, ask_px, ask_sz, levels: int = LEVELS, dtype=np.float32) -> np.ndarray:
    """The (n, 4 * levels) DeepLOB input rows from four (n, L) book arrays (best level first).

    Column order, as in FI-2010 and the DeepLOB reference code: for level 1, 2, ..., levels:
    ask price, ask size, bid price, bid size. Books with fewer than ``levels`` columns are
    padded as missing levels; extra columns are dropped.

    Missing values (NaN past the book's depth) are filled so that every row is finite and
    the book stays ordered: a missing SIZE is 0 (nothing rests there); a missing PRICE takes
    the price of the nearest better level of the same side in that row (a zero-size level at
    the deepest known price); if a side is empty in a row, its prices are those of the last
    earlier row that had them (forward fill in time), and rows before the first such row
    take the first one (backward fill). Raises ValueError when a side has no price at all.

    ``dtype``: float32 (what the network takes) or float64 (to normalise before rounding:
    float32 keeps ~7 digits, so z-score raw prices in float64 first, see :class:`Scaler`).
    """
    if levels < 1:
        raise ValueError(f"levels={levels}: expected >= 1")
    sides = {}
    n = None
    for name, value in (("bid_px", bid_px), ("bid_sz", bid_sz), ("ask_px", ask_px), ("ask_sz", ask_sz)):
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(f"{name}: expected an (n, L) array, got shape {array.shape}")
        if n is None:
            n = array.shape[0]
        if array.shape[0] != n:
            raise ValueError(f"{name}: {array.shape[0]} rows, bid_px has {n}")
        padded = np.full((n, levels), np.nan)
        width = min(levels, array.shape[1])
        padded[:, :width] = array[:, :width]
        sides[name] = padded
    out = np.empty((n, 4 * levels), dtype=np.float64)
    for k, name in enumerate(("ask_px", "ask_sz", "bid_px", "bid_sz")):
        values = sides[name]
        if name.endswith("_sz"):
            values = np.where(np.isfinite(values), values, 0.0)
        else:
            values = _forward_fill(values, axis=1)  # deeper missing level: the better level's price
            values = _forward_fill(values, axis=0)  # empty side: the last row's prices
            values = _backward_fill_rows(values)
            if n and not np.isfinite(values).all():
                raise ValueError(f"{name}: no finite price in any row; cannot build LOB features")
        out[:, k::4] = values
    return out.astype(dtype, copy=False)


def _forward_fill(values: np.ndarray, axis: int) -> np.ndarray:
    """Each NaN takes the last finite value before it along ``axis`` (NaN when none)."""
    values = np.moveaxis(values, axis, 0)
    finite = np.isfinite(values)
    index = np.where(finite, np.arange(values.shape[0])[:, None], 0)
    np.maximum.accumulate(index, axis=0, out=index)
    filled = np.take_along_axis(values, index, axis=0)
    filled[~np.isfinite(filled)] = np.nan
    return np.moveaxis(filled, 0, axis)


def _backward_fill_rows(values: np.ndarray) -> np.ndarray:
    """Leading all-NaN stretch of each column: the column's first finite value."""
    return _forward_fill(values[::-1], axis=0)[::-1].copy()


# -- price reference -----------------------------------------------------------------------

@nb.njit(cache=True)
def _subtract_mid_ema(rows, alpha, ema):
    out = rows.copy()
    n, d = rows.shape
    for i in range(n):
        mid = 0.5 * (rows[i, 0] + rows[i, 2])  # best ask and best bid (lob_features order)
        ema = mid if ema != ema else ema + alpha * (mid - ema)
        for j in range(0, d, 4):
            out[i, j] -= ema  # ask price of level j // 4 + 1
            out[i, j + 2] -= ema  # bid price
    return out, ema


def subtract_mid_ema(rows, ema_rows: int, ema: float = np.nan) -> tuple[np.ndarray, float]:
    """Every price column of (n, 4L) :func:`lob_features` rows minus a causal EMA of the mid.

    The EMA has span ``ema_rows`` rows (``alpha = 2 / (ema_rows + 1)``) and is updated with
    each row's mid BEFORE that row is referenced, so row i uses mids 0..i only. ``ema`` is the
    value carried over from earlier rows (NaN: start at the first row's mid). Returns the new
    rows (float64) and the EMA after the last row, so that a stream cut into pieces gives the
    same rows as the whole.

    Why: a z-score with training-period statistics maps a price that drifts out of the
    training range to values the network never saw, and leaves a move of a few ticks inside a
    window at a few hundredths of a standard deviation. The distance to a moving average is
    stationary and keeps the recent trend (a rising mid sits above its average).
    """
    if ema_rows < 1:
        raise ValueError(f"ema_rows={ema_rows}: expected >= 1")
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] % 4:
        raise ValueError(f"rows: expected (n, 4L) lob_features rows, got shape {rows.shape}")
    return _subtract_mid_ema(rows, 2.0 / (ema_rows + 1.0), float(ema))


class InputTransform:
    """Raw :func:`lob_features` rows -> the network's rows: price reference, then the scaler.

    With ``price_reference="ema"`` it is stateful: each :meth:`transform` continues the EMA
    where the previous call left off, so pushing rows one at a time (live, e.g. through
    :class:`genesis.models.inference.RollingPredictor`) gives exactly the rows of one call over
    all of them. :meth:`reset` starts over (after a gap in the feed, or for another symbol).
    """

    def __init__(self, scaler: "Scaler", price_reference: str = "level", ema_rows: int = WINDOW):
        if price_reference not in PRICE_REFERENCES:
            raise ValueError(f"price_reference={price_reference!r}: expected one of {PRICE_REFERENCES}")
        self.scaler, self.price_reference, self.ema_rows = scaler, price_reference, int(ema_rows)
        self._ema = np.nan

    @classmethod
    def from_config(cls, scaler: "Scaler", config: dict[str, Any]) -> "InputTransform":
        """From a registered model's ``datamodule`` config (models saved before the option: level)."""
        return cls(scaler, config.get("price_reference", "level"), config.get("ema_rows", WINDOW))

    def reset(self) -> None:
        self._ema = np.nan

    def reference(self, rows) -> np.ndarray:
        """The price reference alone (float64), continuing the state."""
        rows = np.asarray(rows, dtype=np.float64)
        if self.price_reference == "ema":
            rows, self._ema = subtract_mid_ema(rows, self.ema_rows, self._ema)
        return rows

    def transform(self, rows, dtype=np.float32) -> np.ndarray:
        return self.scaler.transform(self.reference(rows), dtype=dtype)


# -- normalisation -------------------------------------------------------------------------

class Scaler:
    """Z-score per column, ``(x - mean) / std``, fitted on the training period only.

    ``fit(rows)`` takes (n, d) rows (float64 preferred: raw prices need the digits) and
    ignores nothing: rows must be finite. A constant column (std 0) gets std 1, so it maps to
    0 instead of dividing by zero. ``to_dict()`` / ``from_dict()`` round-trip the statistics
    as plain lists (JSON), to be saved with the model and applied to live data.
    """

    def __init__(self, mean=None, std=None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)

    def fit(self, rows) -> "Scaler":
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise ValueError(f"Scaler.fit: expected a non-empty (n, d) array, got shape {rows.shape}")
        bad = ~np.isfinite(rows)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(f"Scaler.fit: row {row}, column {col} is {float(rows[row, col])!r} (rows must be finite)")
        self.mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        # A column constant up to rounding (e.g. a size that never moves) is treated as constant.
        scale = np.maximum(np.abs(self.mean), 1.0)
        self.std = np.where(std > 1e-12 * scale, std, 1.0)
        return self

    def transform(self, rows, dtype=np.float32) -> np.ndarray:
        """(n, d) rows normalised, cast to ``dtype`` after the arithmetic in float64."""
        if self.mean is None:
            raise RuntimeError("Scaler.transform before fit (or from_dict)")
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.mean):
            raise ValueError(f"Scaler.transform: expected (n, {len(self.mean)}) rows, got shape {rows.shape}")
        return ((rows - self.mean) / self.std).astype(dtype, copy=False)

    def inverse_transform(self, rows) -> np.ndarray:
        return np.asarray(rows, dtype=np.float64) * self.std + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        if self.mean is None:
            raise RuntimeError("Scaler.to_dict before fit")
        return {"kind": "zscore", "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scaler":
        if data.get("kind", "zscore") != "zscore":
            raise ValueError(f"scaler kind {data.get('kind')!r}: expected 'zscore'")
        mean, std = np.asarray(data["mean"], np.float64), np.asarray(data["std"], np.float64)
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"scaler: mean {mean.shape} and std {std.shape} must be equal 1-D shapes")
        if not (std > 0).all():
            raise ValueError("scaler: every std must be > 0")
        return cls(mean, std)

    def __repr__(self) -> str:
        return "Scaler(unfitted)" if self.mean is None else f"Scaler({len(self.mean)} columns)"


# -- classes -------------------------------------------------------------------------------

def label_to_class(labels) -> np.ndarray:
    """Genesis labels (-1 down, 0 stationary, 1 up) -> class indices 0, 1, 2 (int64)."""
    labels = np.asarray(labels)
    if np.isin(labels, [-1, 0, 1], invert=True).any():
        raise ValueError(f"labels: expected -1, 0 or 1, got {np.setdiff1d(labels, [-1, 0, 1])[:5].tolist()}")
    return labels.astype(np.int64) + 1


def class_to_label(classes) -> np.ndarray:
    """Class indices 0, 1, 2 -> Genesis labels -1, 0, 1 (int8)."""
    return (np.asarray(classes).astype(np.int64) - 1).astype(np.int8)


def class_weights(labels) -> torch.Tensor:
    """(3,) float32 loss weights in class-index order (down, stationary, up).

    Inverse frequency over the labelled rows (NO_LABEL ignored), ``w_c proportional to 1 / n_c``,
    normalised so that the weights average 1 over the K classes present (so every class
    carries the same total weight ``w_c * n_c`` and the loss keeps its usual scale). A class
    absent from ``labels`` gets weight 0 (there is nothing to weigh).
    """
    values = np.asarray(labels)
    counts = np.array([(values == k).sum() for k in (-1, 0, 1)], dtype=np.float64)
    present = counts > 0
    if not present.any():
        raise ValueError("class_weights: no labelled rows")
    weights = np.zeros(3)
    inverse = 1.0 / counts[present]
    weights[present] = inverse / inverse.mean()
    return torch.tensor(weights, dtype=torch.float32)


# -- windows -------------------------------------------------------------------------------

class WindowDataset(Dataset):
    """Windows of ``window`` rows ending at ``ends``, built lazily on one base array.

    ``features``: (n, d) float32 normalised rows (kept as is: not copied). ``labels``: (n,)
    Genesis labels per row (a window's label is its end row's). ``ends``: window end rows
    (inclusive); ends with ``end < window - 1`` or a NO_LABEL label are skipped, so
    ``len(dataset) <= len(ends)``. The windows are one strided view of ``features``
    (:func:`numpy.lib.stride_tricks.sliding_window_view`): memory does not grow with the
    number of windows (only the int64 ``ends``). ``dataset[i]`` is ``(x, y)``: x a
    (1, window, d) float32 tensor holding a copy of that one window, y the int64 class index.
    """

    def __init__(self, features: np.ndarray, labels, ends, window: int = WINDOW):
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(f"features: expected (n, d), got shape {features.shape}")
        if features.dtype != np.float32:
            raise ValueError(f"features: expected float32 rows (normalised), got {features.dtype}")
        labels = np.asarray(labels)
        if labels.shape != (features.shape[0],):
            raise ValueError(f"labels: expected ({features.shape[0]},) one per row, got {labels.shape}")
        if window < 1 or window > max(features.shape[0], 1):
            raise ValueError(f"window={window}: expected 1 <= window <= {features.shape[0]} rows")
        ends = np.asarray(ends, dtype=np.int64).ravel()
        if len(ends) and (ends.max() >= features.shape[0]):
            raise ValueError(f"ends: row {int(ends.max())} is past the last row {features.shape[0] - 1}")
        ends = ends[ends >= window - 1]
        ends = ends[labels[ends] != NO_LABEL]
        self.features = features
        self.window = int(window)
        self.ends = ends
        self.labels = labels[ends].astype(np.int8)  # one byte per window
        self.classes = label_to_class(self.labels)
        self.windows = self._view()

    def _view(self) -> np.ndarray:
        """windows[j] is rows j .. j + window - 1, shape (window, d): a strided view, no copy."""
        return sliding_window_view(self.features, self.window, axis=0).swapaxes(1, 2)

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a strided view copies every window (DataLoader workers under 'spawn'):
        # send the base rows only and rebuild the view on the other side.
        state = self.__dict__.copy()
        del state["windows"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.windows = self._view()

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = int(self.ends[i])
        x = np.array(self.windows[end - self.window + 1])  # the one window, contiguous
        return torch.from_numpy(x).unsqueeze(0), torch.tensor(self.classes[i])

    def batch(self, rows: np.ndarray | slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Several windows at once: ``(x (b, 1, window, d), y (b,))`` (tests, inference)."""
        rows = slice(None) if rows is None else rows
        starts = self.ends[rows] - self.window + 1
        return (torch.from_numpy(np.ascontiguousarray(self.windows[starts])).unsqueeze(1),
                torch.from_numpy(self.classes[rows]))

    def class_balance(self) -> pd.DataFrame:
        return class_balance(self.labels)


# -- splits --------------------------------------------------------------------------------

class Fold(NamedTuple):
    """Window END rows of one walk-forward fold, each array increasing within a group."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def walk_forward_folds(ends, n_folds: int, horizon: int, window: int = WINDOW, purge: int | None = None,
                       val_fraction: float = 0.2, times=None, groups=None,
                       scheme: Literal["expanding", "rolling"] = "expanding") -> list[Fold]:
    """Time-ordered folds with purge gaps: no train window shares a row with a val/test one.

    ``ends``: an int ``n`` (a series of n rows: ends ``window - 1 .. n - 1``) or the candidate
    window end rows. ``times`` (optional, one per end, e.g. ns timestamps): the clock that
    orders them (default: the rows). ``groups`` (optional, one per end, e.g. the symbol):
    rows of different groups never share a window (series concatenated one after another),
    so purging happens within a group; the fold boundaries are common times for all groups.

    The candidates, in time order, are cut into ``n_folds + 1`` blocks of equal count. Fold f
    tests on block f + 1 and trains on blocks 0..f (``"expanding"``) or on block f
    (``"rolling"``); the last ``val_fraction`` (by time) of that training period is its
    validation set. Then the purge: a window ending at row e uses rows
    ``[e - window + 1, e + horizon]`` (its input and its label's look-ahead), so within a
    group every train end must lie more than ``purge`` rows before the first val/test end,
    and every val end more than ``purge`` rows before the first test end, with ``purge``
    at least (and by default) ``horizon + window - 1``. Ends closer than that are dropped
    from the EARLIER set. Returns ``n_folds`` :class:`Fold` of end rows (int64).
    """
    if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 1:
        raise ValueError(f"n_folds={n_folds!r}: expected an integer >= 1")
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon={horizon!r}: expected an integer number of rows >= 1")
    if window < 1:
        raise ValueError(f"window={window}: expected >= 1")
    need = int(horizon) + int(window) - 1
    purge = need if purge is None else int(purge)
    if purge < need:
        raise ValueError(f"purge={purge} rows is too short: train and val/test windows would share rows "
                         f"(needs >= horizon + window - 1 = {need})")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: expected 0 <= val_fraction < 1")
    if scheme not in ("expanding", "rolling"):
        raise ValueError(f"scheme={scheme!r}: expected 'expanding' or 'rolling'")

    if np.ndim(ends) == 0:
        ends = np.arange(int(window) - 1, int(ends), dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    times = ends if times is None else np.asarray(times)
    groups = np.zeros(len(ends), np.int64) if groups is None else np.asarray(groups)
    if times.shape != ends.shape or groups.shape != ends.shape:
        raise ValueError(f"times {times.shape} and groups {groups.shape} must match ends {ends.shape}")
    for g in np.unique(groups):
        rows, clock = ends[groups == g], times[groups == g]
        if np.any(np.diff(rows) <= 0) or np.any(np.diff(clock) < 0):
            raise ValueError(f"group {g!r}: ends must increase and times must not decrease (time order)")
    if len(ends) < n_folds + 1:
        raise ValueError(f"{len(ends)} candidate windows cannot make {n_folds} folds (need >= {n_folds + 1})")

    order = np.argsort(times, kind="stable")
    block = np.empty(len(ends), np.int64)
    block[order] = np.arange(len(ends)) * (n_folds + 1) // len(ends)
    folds = []
    for f in range(n_folds):
        first = 0 if scheme == "expanding" else f
        fit = np.flatnonzero((block >= first) & (block <= f))
        test = np.flatnonzero(block == f + 1)
        # Validation: the latest val_fraction of the training period, by time (ties stay together).
        cut = np.quantile(times[fit].astype(np.float64), 1.0 - val_fraction) if val_fraction > 0 else np.inf
        late = times[fit].astype(np.float64) >= cut if val_fraction > 0 else np.zeros(len(fit), bool)
        if val_fraction > 0 and late.all():
            late[:] = False  # all ties: no room for a validation set
        train, val = fit[~late], fit[late]
        val = _purge(val, test, ends, groups, purge)
        train = _purge(train, np.concatenate([val, test]), ends, groups, purge)
        folds.append(Fold(*(ends[np.sort(s)] for s in (train, val, test))))  # input (row) order
    return folds


def _purge(earlier: np.ndarray, later: np.ndarray, ends: np.ndarray, groups: np.ndarray, purge: int) -> np.ndarray:
    """Positions of ``earlier`` whose end lies more than ``purge`` rows before every end of
    ``later`` in its group (within a group, later sets never start before earlier ones)."""
    if not len(earlier) or not len(later):
        return earlier
    keep = np.ones(len(earlier), bool)
    for g in np.unique(groups[later]):
        first_later = ends[later][groups[later] == g].min()
        mine = groups[earlier] == g
        keep[mine & (ends[earlier] >= first_later - purge)] = False
    return earlier[keep]


# -- the Lightning data module -------------------------------------------------------------

@dataclass
class _Series:
    """One symbol's rows: LOB features (n, 4L) float64, mid (n,), ts (n,) int64."""

    symbol: str
    ts: np.ndarray
    rows: np.ndarray
    mid: np.ndarray


@dataclass
class _Prepared:
    features: np.ndarray  # (N, 4L) float32, the network's rows (price reference, normalised), series after series
    raw: np.ndarray  # (N, 4L) float64 lob_features rows as they are (for the baselines' features)
    labels: np.ndarray  # (N,) int8
    ts: np.ndarray  # (N,) int64
    series: np.ndarray  # (N,) int: index into symbols
    ends: dict[str, np.ndarray] = field(default_factory=dict)


class LOBDataModule(L.LightningDataModule):
    """Windows of book rows with labels, split walk-forward, normalised on train only.

    Build with :meth:`from_arrays` (one series) or :meth:`from_store` (``book_snapshots``
    event rows of one or more symbols). Options: ``horizon`` (label look-ahead, rows),
    ``label`` (``'fi2010'``: :func:`fi2010_labels` of the mid with threshold ``alpha`` and
    ``smoothing``; ``'triple_barrier'``: :func:`triple_barrier` of the mid with both barriers
    at relative width ``alpha`` and the vertical one ``horizon`` rows ahead), ``n_folds`` and
    ``fold`` (which walk-forward fold, default the last: the most training data and the latest
    test period), ``val_fraction``, ``purge`` (rows; default ``horizon + window - 1``),
    ``batch_size``, ``window`` (100), ``levels`` (10), ``seed`` (train shuffling),
    ``price_reference`` (``"level"``: prices z-scored as they are, as in FI-2010; ``"ema"``:
    each price minus a causal EMA of the mid over ``ema_rows`` rows, then z-scored; see
    :func:`subtract_mid_ema`), ``ema_rows`` (default ``window``), ``stride`` (a window ends
    every ``stride`` rows, default 1: every row; neighbouring windows share all but one row, so
    a stride > 1 trains on the same stretch of market for a fraction of the cost).

    After :meth:`setup`: ``scaler`` (fitted on the rows of train windows only),
    ``class_weights`` (from the train labels), ``class_balance`` (DataFrame per split),
    ``datasets`` (:class:`WindowDataset` per split), ``ends`` (window end rows per split),
    ``split_info()`` (per split and symbol: windows and time range, for the model card).
    The train loader shuffles the train windows only; val and test come in time order.
    Windows never span two symbols: each symbol's rows are its own series.
    """

    def __init__(self, series: Sequence[_Series], *, horizon: int = 10,
                 label: Literal["fi2010", "triple_barrier"] = "fi2010", alpha: float = 2e-5,
                 smoothing: Literal["future", "both"] = "future", fold: int = -1, n_folds: int = 5,
                 val_fraction: float = 0.2, purge: int | None = None, batch_size: int = 64, window: int = WINDOW,
                 levels: int = LEVELS, seed: int = 0, num_workers: int = 0,
                 price_reference: Literal["level", "ema"] = "level", ema_rows: int | None = None,
                 stride: int = 1):
        super().__init__()
        if label not in ("fi2010", "triple_barrier"):
            raise ValueError(f"label={label!r}: expected 'fi2010' or 'triple_barrier'")
        if price_reference not in PRICE_REFERENCES:
            raise ValueError(f"price_reference={price_reference!r}: expected one of {PRICE_REFERENCES}")
        if not series:
            raise ValueError("no series given")
        if not -n_folds <= fold < n_folds:
            raise ValueError(f"fold={fold}: expected -{n_folds} <= fold < {n_folds} (n_folds={n_folds})")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected >= 1")
        if isinstance(stride, bool) or int(stride) != stride or stride < 1:
            raise ValueError(f"stride={stride!r}: expected an integer number of rows >= 1")
        self.series = list(series)
        self.symbols = [s.symbol for s in self.series]
        self.horizon, self.label, self.alpha, self.smoothing = int(horizon), label, float(alpha), smoothing
        self.fold, self.n_folds, self.val_fraction, self.purge = int(fold), int(n_folds), float(val_fraction), purge
        self.batch_size, self.window, self.levels = int(batch_size), int(window), int(levels)
        self.seed, self.num_workers = int(seed), int(num_workers)
        self.price_reference = price_reference
        self.ema_rows = int(window if ema_rows is None else ema_rows)
        self.stride = int(stride)
        self.save_hyperparameters(ignore=["series"])
        self._prepared: _Prepared | None = None
        self.scaler: Scaler | None = None
        self.datasets: dict[str, WindowDataset] = {}

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, bid_px, bid_sz, ask_px, ask_sz, ts=None, symbol: str = "series", **options) -> "LOBDataModule":
        """One series from four (n, L) book arrays (best level first, NaN past the book) and
        ``ts`` (n,) int64 ns (default: the row numbers)."""
        levels = options.get("levels", LEVELS)
        return cls([_series(symbol, ts, bid_px, bid_sz, ask_px, ask_sz, levels)], **options)

    @classmethod
    def from_snapshots(cls, snapshots: dict[str, Any], **options) -> "LOBDataModule":
        """Several series: ``{symbol: Snapshots}`` (:class:`genesis.features.engine.Snapshots`)."""
        levels = options.get("levels", LEVELS)
        return cls([_series(sym, s.ts, s.bid_px, s.bid_sz, s.ask_px, s.ask_sz, levels)
                    for sym, s in snapshots.items()], **options)

    @classmethod
    def from_store(cls, symbols: str | Iterable[str], start: Any = None, end: Any = None, store_url: str | None = None,
                   **options) -> "LOBDataModule":
        """The ``'event'`` rows of ``book_snapshots`` for each symbol in ``[start, end)``
        (:func:`genesis.features.store.load_inputs`; None: the symbol's first / last row)."""
        from genesis.features.store import load_inputs, stored_symbol
        from genesis.store import connect

        symbols = [symbols] if isinstance(symbols, str) else list(symbols)
        levels = options.get("levels", LEVELS)
        series = []
        with connect(store_url) as store:  # one short lease for all symbols
            for symbol in symbols:
                symbol = stored_symbol(store, symbol)  # as stored
                snaps, _, _ = load_inputs(store, symbol, start, end, levels=levels)
                series.append(_series(symbol, snaps.ts, snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz, levels))
        return cls(series, **options)

    # -- Lightning -------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Labels, folds, scaler and datasets (once; later calls are no-ops)."""
        if self._prepared is not None:
            return
        labels, ends, times, groups, offsets = [], [], [], [], 0
        for k, s in enumerate(self.series):
            lab = self._labels(s.mid)
            candidates = np.arange(self.window - 1, len(s.mid), self.stride, dtype=np.int64)
            candidates = candidates[lab[candidates] != NO_LABEL]
            labels.append(lab)
            ends.append(candidates + offsets)
            times.append(s.ts[candidates])
            groups.append(np.full(len(candidates), k))
            offsets += len(s.mid)
        ends_all, times_all, groups_all = (np.concatenate(a) for a in (ends, times, groups))
        folds = walk_forward_folds(ends_all, self.n_folds, self.horizon, self.window, self.purge, self.val_fraction,
                                   times=times_all, groups=groups_all)
        chosen = folds[self.fold]
        if not len(chosen.train):
            raise ValueError(f"fold {self.fold} has no training windows: more rows, fewer folds or a shorter purge")
        if not len(chosen.val) and self.val_fraction > 0:
            warnings.warn(f"fold {self.fold} has no validation windows left after the purge of "
                          f"{self.horizon + self.window - 1 if self.purge is None else self.purge} rows "
                          "(more rows, fewer folds or a larger val_fraction)", stacklevel=2)
        raw = np.concatenate([s.rows for s in self.series])
        # The price reference runs over each series from its first row (never across series).
        referenced = np.concatenate([InputTransform(Scaler(), self.price_reference, self.ema_rows).reference(s.rows)
                                     for s in self.series])
        self.scaler = Scaler().fit(referenced[_rows_of(chosen.train, self.window, len(raw))])
        prepared = _Prepared(
            features=self.scaler.transform(referenced),
            raw=raw,
            labels=np.concatenate(labels),
            ts=np.concatenate([s.ts for s in self.series]),
            series=np.repeat(np.arange(len(self.series)), [len(s.mid) for s in self.series]),
            ends=dict(zip(SPLITS, chosen)),
        )
        self.datasets = {name: WindowDataset(prepared.features, prepared.labels, prepared.ends[name], self.window)
                         for name in SPLITS}
        self._prepared = prepared

    def _labels(self, mid: np.ndarray) -> np.ndarray:
        if self.label == "fi2010":
            return fi2010_labels(mid, self.horizon, self.alpha, self.smoothing)
        return triple_barrier(mid, self.horizon, self.alpha, self.alpha)[0]

    def train_dataloader(self, shuffle: bool = True) -> DataLoader:
        """Train windows, shuffled among themselves (seeded by ``seed``); ``shuffle=False``
        gives them in time order (e.g. to fit a baseline)."""
        if not shuffle:
            return self._loader("train", shuffle=False)
        return self._loader("train", shuffle=True, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def _loader(self, split: str, **kwargs) -> DataLoader:
        self.setup()
        return DataLoader(self.datasets[split], batch_size=self.batch_size, num_workers=self.num_workers, **kwargs)

    # -- reports ---------------------------------------------------------------------------

    @property
    def ends(self) -> dict[str, np.ndarray]:
        """Window end rows per split (rows of the concatenated series)."""
        self.setup()
        return {name: ds.ends for name, ds in self.datasets.items()}

    @property
    def features(self) -> np.ndarray:
        """(N, 4L) float32 normalised rows of every series, one after another."""
        self.setup()
        return self._prepared.features

    @property
    def labels(self) -> np.ndarray:
        """(N,) int8 Genesis labels per row (NO_LABEL where none)."""
        self.setup()
        return self._prepared.labels

    @property
    def row_ts(self) -> np.ndarray:
        self.setup()
        return self._prepared.ts

    @property
    def row_series(self) -> np.ndarray:
        """(N,) index into :attr:`symbols` of each row."""
        self.setup()
        return self._prepared.series

    @property
    def class_weights(self) -> torch.Tensor:
        """(3,) loss weights (down, stationary, up) from the train windows' labels."""
        self.setup()
        return class_weights(self.datasets["train"].labels)

    @property
    def class_balance(self) -> dict[str, pd.DataFrame]:
        self.setup()
        return {name: ds.class_balance() for name, ds in self.datasets.items()}

    def split_info(self) -> pd.DataFrame:
        """Per split and symbol: windows, first/last window end time (UTC), first/last end row."""
        self.setup()
        records = []
        for name, ds in self.datasets.items():
            for k, symbol in enumerate(self.symbols):
                ends = ds.ends[self._prepared.series[ds.ends] == k]
                ts = self._prepared.ts[ends]
                records.append({
                    "split": name, "symbol": symbol, "windows": len(ends),
                    "start": pd.Timestamp(int(ts[0]), tz="UTC") if len(ts) else pd.NaT,
                    "end": pd.Timestamp(int(ts[-1]), tz="UTC") if len(ts) else pd.NaT,
                    "first_row": int(ends[0]) if len(ends) else -1, "last_row": int(ends[-1]) if len(ends) else -1,
                })
        return pd.DataFrame.from_records(records)

    @property
    def raw_rows(self) -> np.ndarray:
        """(N, 4L) float64 :func:`lob_features` rows as they are (no reference, no scaling)."""
        self.setup()
        return self._prepared.raw

    def input_transform(self) -> InputTransform:
        """Raw rows -> network rows as trained here (fresh state), to predict on new data."""
        self.setup()
        return InputTransform(self.scaler, self.price_reference, self.ema_rows)

    def config(self) -> dict[str, Any]:
        """The options that rebuild these splits (for the registry)."""
        return {"symbols": self.symbols, "horizon": self.horizon, "label": self.label, "alpha": self.alpha,
                "price_reference": self.price_reference, "ema_rows": self.ema_rows, "stride": self.stride,
                "smoothing": self.smoothing, "fold": self.fold, "n_folds": self.n_folds,
                "val_fraction": self.val_fraction,
                "purge": self.horizon + self.window - 1 if self.purge is None else int(self.purge),
                "batch_size": self.batch_size, "window": self.window, "levels": self.levels, "seed": self.seed}


def _series(symbol: str, ts, bid_px, bid_sz, ask_px, ask_sz, levels: int) -> _Series:
    rows = lob_features(bid_px, bid_sz, ask_px, ask_sz, levels, dtype=np.float64)
    n = len(rows)
    ts = np.arange(n, dtype=np.int64) if ts is None else np.asarray(ts, dtype=np.int64)
    if ts.shape != (n,):
        raise ValueError(f"{symbol}: ts has shape {ts.shape}, expected ({n},) one per row")
    if n > 1 and np.any(np.diff(ts) < 0):
        raise ValueError(f"{symbol}: ts must be non-decreasing (row {int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1})")
    # The label's mid comes from the raw best levels: a filled (stale) price must not make a label.
    bid = np.asarray(bid_px, np.float64).reshape(n, -1)[:, 0]
    ask = np.asarray(ask_px, np.float64).reshape(n, -1)[:, 0]
    return _Series(str(symbol), ts, rows, (bid + ask) / 2.0)


def _rows_of(ends: np.ndarray, window: int, n: int) -> np.ndarray:
    """Boolean mask of the rows inside the windows ending at ``ends``."""
    cover = np.zeros(n + 1, np.int64)
    np.add.at(cover, ends - window + 1, 1)
    np.add.at(cover, ends + 1, -1)
    return np.cumsum(cover[:n]) > 0
